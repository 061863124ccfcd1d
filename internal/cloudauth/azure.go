package cloudauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"

	"github.com/sigwatch/sigwatch/internal/registry"
)

// acrUser is the user name ACR takes with a refresh token as the password.
const acrUser = "00000000-0000-0000-0000-000000000000"

// maxACRExchange bounds the answer of ACR's token exchange.
const maxACRExchange = 1 << 20

// azureSource exchanges a Microsoft Entra token of the pod's identity (workload identity when
// AZURE_FEDERATED_TOKEN_FILE is set, else the managed identity, AZURE_CLIENT_ID choosing a user-assigned
// one) for an ACR refresh token at the registry's /oauth2/exchange, as `az acr login` does. A refresh
// token is reused until 5 minutes before the Entra token it came from expires.
type azureSource struct {
	insecure registry.HostPatterns
	client   *http.Client
	now      func() time.Time
	// credential returns the identity's token credential (built once).
	credential func() (azcore.TokenCredential, error)
	// present says whether this pod has an Azure identity: workload identity's variables, or an Azure
	// instance metadata service (asked once a minute at most until it answers).
	present func() bool

	sf     singleflight.Group
	mu     sync.Mutex
	tokens map[string]acrToken
	failed failures
}

type acrToken struct {
	refresh string
	expires time.Time
}

func newAzure(insecure registry.HostPatterns) *azureSource {
	s := &azureSource{insecure: insecure, client: &http.Client{Timeout: cloudCallTimeout}, now: time.Now,
		credential: sync.OnceValues(defaultAzureCredential), tokens: map[string]acrToken{}}
	probe := &presence{now: time.Now, check: func() bool {
		return os.Getenv("AZURE_FEDERATED_TOKEN_FILE") != "" || azureIMDS("http://169.254.169.254")
	}}
	s.present = probe.get
	return s
}

// presence caches whether an identity is there: a yes for good, a no for a minute.
type presence struct {
	now   func() time.Time
	check func() bool

	mu      sync.Mutex
	yes     bool
	checked time.Time
}

func (p *presence) get() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.yes || !p.checked.IsZero() && p.now().Sub(p.checked) < retryNoIdentity {
		return p.yes
	}
	p.yes, p.checked = p.check(), p.now()
	return p.yes
}

// azureIMDS says whether Azure's instance metadata service answers at base: a 200 with the instance's
// compute document. Other clouds' metadata servers at the same address answer otherwise.
func azureIMDS(base string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metadata/instance/compute?api-version=2021-02-01", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Metadata", "true")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	var compute struct {
		AzEnvironment string `json:"azEnvironment"`
		VMID          string `json:"vmId"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return err == nil && resp.StatusCode == http.StatusOK && json.Unmarshal(body, &compute) == nil && compute.VMID != ""
}

func defaultAzureCredential() (azcore.TokenCredential, error) {
	if os.Getenv("AZURE_FEDERATED_TOKEN_FILE") != "" {
		return azidentity.NewWorkloadIdentityCredential(nil)
	}
	var opts azidentity.ManagedIdentityCredentialOptions
	if id := os.Getenv("AZURE_CLIENT_ID"); id != "" {
		opts.ID = azidentity.ClientID(id)
	}
	return azidentity.NewManagedIdentityCredential(&opts)
}

// Authenticator returns credentials exchanged when a request needs them; none when this pod has no
// Azure identity (outside Azure: ACR registries with anonymous pull are then read anonymously).
func (a *azureSource) Authenticator(host string) (authn.Authenticator, error) {
	if a.present != nil && !a.present() {
		return nil, nil
	}
	return &azureAuth{src: a, host: host}, nil
}

type azureAuth struct {
	src  *azureSource
	host string
}

func (a *azureAuth) Authorization() (*authn.AuthConfig, error) {
	t, err := a.src.token(a.host)
	if err != nil {
		return nil, err
	}
	return &authn.AuthConfig{Username: acrUser, Password: t}, nil
}

func (a *azureSource) token(host string) (string, error) {
	a.mu.Lock()
	t, ok := a.tokens[host]
	recent := a.failed.recent(host, a.now())
	a.mu.Unlock()
	if ok && a.now().Before(t.expires) {
		return t.refresh, nil
	}
	if recent != nil {
		return "", recent
	}
	v, err, _ := a.sf.Do(host, func() (any, error) {
		refresh, err := a.fetch(host)
		a.mu.Lock()
		a.failed.set(host, err, a.now())
		a.mu.Unlock()
		return refresh, err
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// fetch gets a new ACR refresh token for host and caches it.
func (a *azureSource) fetch(host string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cloudCallTimeout)
	defer cancel()
	cred, err := a.credential()
	if err != nil {
		return "", fmt.Errorf("the pod's Azure identity (workload identity or managed identity): %w", err)
	}
	aad, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{azureScope(host)}})
	if err != nil {
		return "", fmt.Errorf("getting a Microsoft Entra token for the pod's Azure identity (workload identity or managed identity): %w", err)
	}
	refresh, err := a.exchange(ctx, host, aad.Token)
	if err != nil {
		return "", fmt.Errorf("exchanging the Entra token for an ACR refresh token at %s: %w", host, err)
	}
	expires := aad.ExpiresOn
	if exp, ok := jwtExpiry(refresh); ok && exp.Before(expires) {
		expires = exp // ACR's refresh tokens live about 3 hours, Entra's tokens up to a day
	}
	a.mu.Lock()
	a.tokens[host] = acrToken{refresh: refresh, expires: expires.Add(-5 * time.Minute)}
	a.mu.Unlock()
	return refresh, nil
}

// jwtExpiry reads the exp claim of a JWT without verifying it (the registry that issued it checks it;
// this only decides when to ask for a new one).
func jwtExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Int64()
	if err != nil || exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(exp, 0), true
}

// azureScope is the Entra scope whose tokens the registry's cloud exchanges.
func azureScope(host string) string {
	host = strings.ToLower(host)
	switch {
	case strings.HasSuffix(host, ".azurecr.cn"):
		return "https://management.chinacloudapi.cn/.default"
	case strings.HasSuffix(host, ".azurecr.us"):
		return "https://management.usgovcloudapi.net/.default"
	}
	return "https://management.azure.com/.default"
}

// exchange trades an Entra access token for an ACR refresh token.
func (a *azureSource) exchange(ctx context.Context, host, accessToken string) (string, error) {
	scheme := "https"
	if a.insecure.Match(host) {
		scheme = "http"
	}
	form := url.Values{"grant_type": {"access_token"}, "service": {host}, "access_token": {accessToken}}
	if tenant := os.Getenv("AZURE_TENANT_ID"); tenant != "" {
		form.Set("tenant", tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+host+"/oauth2/exchange", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// The token is for this host only: never follow a redirect elsewhere with it.
	client := *a.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxACRExchange+1))
	if err != nil {
		return "", err
	}
	if len(body) > maxACRExchange {
		return "", fmt.Errorf("answer larger than %d bytes", maxACRExchange)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("answer is not JSON: %w", err)
	}
	if out.RefreshToken == "" {
		return "", errors.New("answer has no refresh_token")
	}
	return out.RefreshToken, nil
}
