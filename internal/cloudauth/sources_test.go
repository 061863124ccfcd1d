package cloudauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	googauth "golang.org/x/oauth2/google"

	"github.com/sigwatch/sigwatch/internal/registry"
)

// TestAWSTokensAreReusedUntilNearExpiry: one GetAuthorizationToken per region serves every request
// until 30 minutes before the token expires; the region comes from the ECR host.
func TestAWSTokensAreReusedUntilNearExpiry(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var calls []string
	src := &awsSource{now: func() time.Time { return now }, tokens: map[string]awsToken{},
		getToken: func(_ context.Context, region string, fips bool) (string, string, time.Time, error) {
			calls = append(calls, region)
			return "AWS", "pw-" + region, now.Add(12 * time.Hour), nil
		}}
	auth, _ := src.Authenticator("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
	for range 3 {
		c, err := auth.Authorization()
		if err != nil || c.Username != "AWS" || c.Password != "pw-eu-west-1" {
			t.Fatalf("got %+v, %v", c, err)
		}
	}
	other, _ := src.Authenticator("123456789012.dkr.ecr.us-east-1.amazonaws.com")
	if _, err := other.Authorization(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(calls, ",") != "eu-west-1,us-east-1" {
		t.Fatalf("calls %v, want one per region", calls)
	}
	now = now.Add(11*time.Hour + 31*time.Minute)
	if _, err := auth.Authorization(); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[2] != "eu-west-1" {
		t.Errorf("calls %v: a token 29 minutes from expiry must be replaced", calls)
	}

	failing := &awsSource{now: time.Now, tokens: map[string]awsToken{},
		getToken: func(context.Context, string, bool) (string, string, time.Time, error) {
			return "", "", time.Time{}, errors.New("AccessDeniedException")
		}}
	auth, _ = failing.Authenticator("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
	if _, err := auth.Authorization(); err == nil || !strings.Contains(err.Error(), "IRSA") || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Errorf("a refused token: %v; want the cause and where the identity comes from", err)
	}
}

// TestGCPNoCredentials: no Google credentials at all is no identity (anonymous, looked for again after
// a minute); credentials named by GOOGLE_APPLICATION_CREDENTIALS that cannot be used are an error.
func TestGCPNoCredentials(t *testing.T) {
	now := time.Now()
	finds := 0
	g := &gcpSource{now: func() time.Time { return now }, find: func(context.Context) (*googauth.Credentials, error) {
		finds++
		return nil, errors.New("could not find default credentials")
	}}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	for range 2 {
		if a, err := g.Authenticator("gcr.io"); a != nil || err != nil {
			t.Fatalf("got %v, %v; want no identity", a, err)
		}
	}
	now = now.Add(2 * time.Minute)
	_, _ = g.Authenticator("gcr.io")
	if finds != 2 {
		t.Errorf("%d searches, want one per minute", finds)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/secrets/google/key.json")
	g.lastFailed = time.Time{}
	if _, err := g.Authenticator("gcr.io"); err == nil || !strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS=/var/run/secrets/google/key.json") {
		t.Errorf("unusable configured credentials: %v; want an error", err)
	}
}

type fakeEntra struct{ calls atomic.Int32 }

func (f *fakeEntra) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.calls.Add(1)
	if len(o.Scopes) != 1 || o.Scopes[0] != "https://management.azure.com/.default" {
		return azcore.AccessToken{}, errors.New("unexpected scopes " + strings.Join(o.Scopes, " "))
	}
	return azcore.AccessToken{Token: "entra-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestAzureExchange: the Entra token is exchanged at the registry's /oauth2/exchange for a refresh
// token, which is then the password; every way the exchange can answer wrong is an error that says so,
// and the Entra token never follows a redirect.
func TestAzureExchange(t *testing.T) {
	var answer func(w http.ResponseWriter, r *http.Request)
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/exchange" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "access_token" ||
			r.PostForm.Get("access_token") != "entra-token" || r.PostForm.Get("service") != r.Host || r.PostForm.Get("tenant") != "tenant-1" {
			http.Error(w, "bad exchange request", http.StatusBadRequest)
			return
		}
		answer(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	t.Setenv("AZURE_TENANT_ID", "tenant-1")
	newSource := func() (*azureSource, *fakeEntra) {
		entra := &fakeEntra{}
		s := newAzure(registry.NewHostPatterns("127.0.0.1:*"))
		s.credential = func() (azcore.TokenCredential, error) { return entra, nil }
		s.present = func() bool { return true }
		return s, entra
	}

	answer = func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"refresh_token":"acr-refresh"}`))
	}
	s, entra := newSource()
	auth, _ := s.Authenticator(host)
	for range 2 {
		c, err := auth.Authorization()
		if err != nil || c.Username != acrUser || c.Password != "acr-refresh" {
			t.Fatalf("got %+v, %v", c, err)
		}
	}
	if entra.calls.Load() != 1 {
		t.Errorf("%d Entra tokens, want one reused", entra.calls.Load())
	}

	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		want   string
	}{
		{"refused", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "identity has no AcrPull", http.StatusUnauthorized)
		}, "HTTP 401: identity has no AcrPull"},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }, "not JSON"},
		{"no token", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"access_token":"x"}`)) }, "no refresh_token"},
		{"huge", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"refresh_token":"` + strings.Repeat("a", maxACRExchange) + `"}`))
		}, "larger than"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/oauth2/exchange", http.StatusTemporaryRedirect)
		}, "HTTP 307"},
	} {
		answer = tc.answer
		s, _ := newSource()
		auth, _ := s.Authenticator(host)
		_, err := auth.Authorization()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), host) {
			t.Errorf("%s: %v; want an error with %q naming the host", tc.name, err, tc.want)
		}
	}
	if elsewhere.Load() != 0 {
		t.Error("the exchange followed a redirect to another host")
	}

	// A host not listed as insecure is exchanged over HTTPS only.
	s, _ = newSource()
	s.insecure = registry.NewHostPatterns()
	auth, _ = s.Authenticator(host)
	if _, err := auth.Authorization(); err == nil {
		t.Error("an exchange over plain HTTP with a host not listed as insecure")
	}
}

func TestAzureScopes(t *testing.T) {
	for host, want := range map[string]string{
		"r.azurecr.io": "https://management.azure.com/.default",
		"r.azurecr.cn": "https://management.chinacloudapi.cn/.default",
		"r.azurecr.us": "https://management.usgovcloudapi.net/.default",
	} {
		if got := azureScope(host); got != want {
			t.Errorf("%s: %s, want %s", host, got, want)
		}
	}
}

// TestACRRefreshTokenExpiry: an ACR refresh token is replaced before its own expiry, which comes before
// the Entra token's; a failed exchange is not retried by every request for 30 seconds.
func TestACRRefreshTokenExpiry(t *testing.T) {
	now := time.Now()
	exp := now.Add(3 * time.Hour)
	refresh := "e30." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".sig"
	var exchanges atomic.Int32
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exchanges.Add(1)
		if fail {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"refresh_token":"` + refresh + `"}`))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s := newAzure(registry.NewHostPatterns("127.0.0.1:*"))
	s.now = func() time.Time { return now }
	s.present = func() bool { return true }
	s.credential = func() (azcore.TokenCredential, error) { return dayLongEntra{}, nil }
	if _, err := s.token(host); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2*time.Hour + 50*time.Minute)
	_, _ = s.token(host)
	if exchanges.Load() != 1 {
		t.Fatalf("%d exchanges: the refresh token is good for 10 more minutes", exchanges.Load())
	}
	now = now.Add(6 * time.Minute)
	fail = true
	for range 3 {
		if _, err := s.token(host); err == nil {
			t.Fatal("a refresh token 4 minutes from its expiry was used")
		}
	}
	if exchanges.Load() != 2 {
		t.Errorf("%d exchanges, want one more, its failure remembered", exchanges.Load())
	}
	now = now.Add(31 * time.Second)
	fail = false
	if _, err := s.token(host); err != nil || exchanges.Load() != 3 {
		t.Errorf("after 30s the exchange is tried again: %v, %d exchanges", err, exchanges.Load())
	}
}

type dayLongEntra struct{}

func (dayLongEntra) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "entra", ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

// TestAzurePresence: without workload identity's variables, an Azure identity is there only where
// Azure's instance metadata service answers with the instance's compute document; other clouds'
// metadata servers answer otherwise, and ACR is then read anonymously.
func TestAzurePresence(t *testing.T) {
	for name, tc := range map[string]struct {
		handler http.HandlerFunc
		want    bool
	}{
		"Azure IMDS": {func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Metadata") != "true" {
				http.Error(w, "Bad request", http.StatusBadRequest)
				return
			}
			_, _ = w.Write([]byte(`{"azEnvironment":"AzurePublicCloud","vmId":"02aab8a4-74ef-476e-8182-f6d2ba4166a6"}`))
		}, true},
		"GCE metadata server": {func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) }, false},
		"EC2 IMDS":            {func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "", http.StatusUnauthorized) }, false},
		"not JSON":            {func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }, false},
	} {
		srv := httptest.NewServer(tc.handler)
		if got := azureIMDS(srv.URL); got != tc.want {
			t.Errorf("%s: present %t, want %t", name, got, tc.want)
		}
		srv.Close()
	}
	src := newAzure(registry.NewHostPatterns())
	checks := 0
	now := time.Now()
	p := &presence{now: func() time.Time { return now }, check: func() bool { checks++; return false }}
	src.present = p.get
	for range 3 {
		if a, err := src.Authenticator("team.azurecr.io"); a != nil || err != nil {
			t.Fatalf("no Azure identity: %v, %v; want none (anonymous)", a, err)
		}
	}
	now = now.Add(2 * time.Minute)
	_, _ = src.Authenticator("team.azurecr.io")
	if checks != 2 {
		t.Errorf("%d checks, want one a minute", checks)
	}
}

// TestAWSFailuresAreRemembered: a token that could not be had is not asked for again by each request
// for 30 seconds.
func TestAWSFailuresAreRemembered(t *testing.T) {
	now := time.Now()
	calls := 0
	src := &awsSource{now: func() time.Time { return now }, tokens: map[string]awsToken{},
		getToken: func(context.Context, string, bool) (string, string, time.Time, error) {
			calls++
			return "", "", time.Time{}, errors.New("no EC2 IMDS role found")
		}}
	auth, _ := src.Authenticator("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
	for range 3 {
		if _, err := auth.Authorization(); err == nil || !strings.Contains(err.Error(), "no EC2 IMDS role found") {
			t.Fatalf("got %v", err)
		}
	}
	now = now.Add(31 * time.Second)
	_, _ = auth.Authorization()
	if calls != 2 {
		t.Errorf("%d calls, want one per 30s", calls)
	}
}
