//go:build integration

package controllers_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/cloudauth"
	"github.com/sigwatch/sigwatch/test/cosign"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// The cloud credential tests run the real cloud paths of the manager (go-containerregistry's Google
// helper over golang.org/x/oauth2's metadata-server credentials; the AWS SDK's ECR client) against
// loopback stand-ins of the cloud APIs, pointed at with the variables the SDKs read (GCE_METADATA_HOST,
// AWS_ENDPOINT_URL_ECR). The loopback registry plays the cloud registry: it is named for the cloud with
// --cloud-registry, as a registry mirror would be, and it answers only the cloud's token. No pod has a
// pull secret. They set process environment, so they never run in parallel.

func randomToken(t *testing.T, prefix string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// requireBasic makes reg answer only requests with user:pass, and records the Authorization headers
// of the others.
func requireBasic(reg *testregistry.Registry, user, pass string) {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == want {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="cloud-registry"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		return true
	})
}

// authorizations records the Authorization headers a registry receives.
type authorizations struct {
	mu       sync.Mutex
	seen     []string
	requests int
}

func (a *authorizations) record(reg *testregistry.Registry) {
	reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.requests++
		if h := r.Header.Get("Authorization"); h != "" {
			a.seen = append(a.seen, h)
		}
		return false
	})
}

// get returns the Authorization headers seen; it fails the test if the registry served nothing (then
// the absence of a token would prove nothing).
func (a *authorizations) get(t *testing.T) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.requests == 0 {
		t.Fatal("the public registry served no request")
	}
	return append([]string(nil), a.seen...)
}

// metadataServer is a stand-in for the GCE/GKE metadata server: the default service account's access
// token, for requests with the Metadata-Flavor header only.
func metadataServer(t *testing.T, token string, fail bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		switch r.URL.Path {
		case "/computeMetadata/v1/instance/service-accounts/default/token":
			if fail {
				http.Error(w, "the service account is not enabled for Workload Identity", http.StatusNotFound)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
		case "/computeMetadata/v1/project/project-id":
			_, _ = w.Write([]byte("sigwatch-test"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// cloudFixture is a key-signed image on a registry that answers only the cloud's token, and a signed
// image on another registry that anyone may read.
type cloudFixture struct {
	private, public     cloudImage
	publicAuthorization *authorizations
}

type cloudImage struct {
	image, id, repo, digest string
}

func newCloudFixture(t *testing.T, user, pass string) (cloudFixture, *testregistry.Registry) {
	t.Helper()
	key := cosign.GenerateKeyPair(t, t.TempDir())
	private := testregistry.Start(t, true)
	img := private.PushRandomImage(t, "team/app")
	cosign.Sign(t, key, img.String(), cosign.SignOptions{NewBundleFormat: true})
	keyPolicy(t, private.Host, key.PublicKeyPEM)
	requireBasic(private, user, pass)

	public := testregistry.Start(t, true)
	pub := public.PushRandomImage(t, "team/public")
	cosign.Sign(t, key, pub.String(), cosign.SignOptions{NewBundleFormat: true})
	keyPolicy(t, public.Host, key.PublicKeyPEM)
	seen := &authorizations{}
	seen.record(public)
	return cloudFixture{
		private:             cloudImage{image: img.Context().Name() + ":v1", id: imageID(img), repo: repoOf(img), digest: img.DigestStr()},
		public:              cloudImage{image: pub.Context().Name() + ":v1", id: imageID(pub), repo: repoOf(pub), digest: pub.DigestStr()},
		publicAuthorization: seen,
	}, private
}

func cloudKeychain(t *testing.T, p cloudauth.Provider, host string) *cloudauth.Keychain {
	t.Helper()
	k, err := cloudauth.New(cloudauth.Options{Providers: cloudauth.AllProviders, Registries: []cloudauth.Rule{{Provider: p, Pattern: host}},
		Insecure: []string{"127.0.0.1:*"}})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// hermeticCloudEnv clears what the SDKs would otherwise find on this machine (unset, not empty: the AWS
// SDK tells an empty variable from an absent one), and restores it after the test.
func hermeticCloudEnv(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("CLOUDSDK_CONFIG", home)
	t.Setenv("AWS_CONFIG_FILE", home+"/aws-config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", home+"/aws-credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST",
		"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ROLE_ARN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_USE_FIPS_ENDPOINT", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST"} {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGKEStyleMetadataServerCredentials: on a GKE-style cluster (the manager's pod has a Google
// identity through the metadata server, the pods no pull secret), a private image is verified with the
// metadata server's token; a registry that is not Google's never sees that token; and a metadata server
// that refuses the token leaves the private image "could not verify", saying why.
func TestGKEStyleMetadataServerCredentials(t *testing.T) {
	hermeticCloudEnv(t)
	token := randomToken(t, "ya29.sigwatch-")
	md := metadataServer(t, token, false)
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
	f, private := newCloudFixture(t, "_token", token)
	startManager(t, func(c *controllers.Config) { c.Keychain = cloudKeychain(t, cloudauth.GCP, private.Host) })

	ns := namespace(t, nil)
	runPod(t, ns, "app-1", "app", f.private.image, f.private.id)
	verified(t, signedImageFor(t, ns, f.private.repo, f.private.digest), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)

	runPod(t, ns, "public-1", "public", f.public.image, f.public.id)
	verified(t, signedImageFor(t, ns, f.public.repo, f.public.digest), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	for _, h := range f.publicAuthorization.get(t) {
		if strings.Contains(h, base64.StdEncoding.EncodeToString([]byte("_token:"+token))) || strings.Contains(h, token) {
			t.Fatalf("the Google token was sent to a registry that is not Google's: %q", h)
		}
	}
}

func TestGKEStyleMetadataServerRefusal(t *testing.T) {
	g := NewWithT(t)
	hermeticCloudEnv(t)
	md := metadataServer(t, "", true)
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
	f, private := newCloudFixture(t, "_token", randomToken(t, "ya29.sigwatch-"))
	startManager(t, func(c *controllers.Config) { c.Keychain = cloudKeychain(t, cloudauth.GCP, private.Host) })

	ns := namespace(t, nil)
	runPod(t, ns, "app-1", "app", f.private.image, f.private.id)
	si := verified(t, signedImageFor(t, ns, f.private.repo, f.private.digest), metav1.ConditionUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	g.Expect(si.Status.Policies[0].Message).To(And(ContainSubstring("Google service account"), ContainSubstring("Workload Identity")))
}

// stsStandIn answers STS's AssumeRoleWithWebIdentity (AWS query protocol) as for IRSA: the projected
// service-account token and the role give temporary credentials.
func stsStandIn(t *testing.T, roleARN, webIdentityToken, accessKey, sessionToken string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "AssumeRoleWithWebIdentity" ||
			r.PostForm.Get("RoleArn") != roleARN || r.PostForm.Get("WebIdentityToken") != webIdentityToken {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>` + accessKey + `</AccessKeyId>
      <SecretAccessKey>temporary-secret</SecretAccessKey>
      <SessionToken>` + sessionToken + `</SessionToken>
      <Expiration>` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `</Expiration>
    </Credentials>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/sigwatch/manager</Arn><AssumedRoleId>AROASIGWATCH:manager</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// ecrStandIn answers ECR's GetAuthorizationToken (AWS JSON 1.1) for SigV4-signed requests of the
// expected access key (and session token, when not empty) and region.
func ecrStandIn(t *testing.T, accessKey, sessionToken, region, password string, calls *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		auth := r.Header.Get("Authorization")
		switch {
		case r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken":
			http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
			return
		case !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+accessKey+"/") || !strings.Contains(auth, "/"+region+"/ecr/aws4_request") ||
			sessionToken != "" && r.Header.Get("X-Amz-Security-Token") != sessionToken:
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`))
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + password)),
			"expiresAt":          float64(time.Now().Add(12 * time.Hour).Unix()),
			"proxyEndpoint":      "https://123456789012.dkr.ecr." + region + ".amazonaws.com",
		}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestEKSStyleECRCredentials: on an EKS-style cluster (the manager's pod has an AWS identity through
// IRSA: a projected service-account token and a role, exchanged at STS; the pods have no pull secret), a
// private image is verified with the token ECR's API gives that identity, one API call for every image
// of the region; a registry that is not ECR never sees the token; and an identity
// ECR refuses leaves the image "could not verify", saying so.
func TestEKSStyleECRCredentials(t *testing.T) {
	g := NewWithT(t)
	hermeticCloudEnv(t)
	password, session := randomToken(t, "ecr-"), randomToken(t, "session-")
	var calls atomic.Int32
	const role = "arn:aws:iam::123456789012:role/sigwatch"
	saToken := randomToken(t, "eyJprojected.")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(saToken), 0o600); err != nil {
		t.Fatal(err)
	}
	sts := stsStandIn(t, role, saToken, "ASIASIGWATCHTEST", session)
	ecr := ecrStandIn(t, "ASIASIGWATCHTEST", session, "us-west-2", password, &calls)
	t.Setenv("AWS_ENDPOINT_URL_ECR", ecr.URL)
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	t.Setenv("AWS_REGION", "us-west-2")
	t.Setenv("AWS_ROLE_ARN", role)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	f, private := newCloudFixture(t, "AWS", password)
	startManager(t, func(c *controllers.Config) { c.Keychain = cloudKeychain(t, cloudauth.AWS, private.Host) })

	ns := namespace(t, nil)
	runPod(t, ns, "app-1", "app", f.private.image, f.private.id)
	verified(t, signedImageFor(t, ns, f.private.repo, f.private.digest), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	other := namespace(t, nil)
	runPod(t, other, "app-1", "app", f.private.image, f.private.id)
	verified(t, signedImageFor(t, other, f.private.repo, f.private.digest), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	g.Expect(calls.Load()).To(BeEquivalentTo(1), "one GetAuthorizationToken serves the region")

	runPod(t, ns, "public-1", "public", f.public.image, f.public.id)
	verified(t, signedImageFor(t, ns, f.public.repo, f.public.digest), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	for _, h := range f.publicAuthorization.get(t) {
		if strings.Contains(h, base64.StdEncoding.EncodeToString([]byte("AWS:"+password))) {
			t.Fatalf("the ECR token was sent to a registry that is not ECR: %q", h)
		}
	}
}

func TestEKSStyleECRRefusal(t *testing.T) {
	g := NewWithT(t)
	hermeticCloudEnv(t)
	var calls atomic.Int32
	ecr := ecrStandIn(t, "AKIASIGWATCHTEST", "", "us-west-2", "unused", &calls)
	t.Setenv("AWS_ENDPOINT_URL_ECR", ecr.URL)
	t.Setenv("AWS_REGION", "us-west-2")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAOTHERIDENTITY")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	f, private := newCloudFixture(t, "AWS", randomToken(t, "ecr-"))
	startManager(t, func(c *controllers.Config) { c.Keychain = cloudKeychain(t, cloudauth.AWS, private.Host) })

	ns := namespace(t, nil)
	runPod(t, ns, "app-1", "app", f.private.image, f.private.id)
	si := verified(t, signedImageFor(t, ns, f.private.repo, f.private.digest), metav1.ConditionUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	g.Expect(si.Status.Policies[0].Message).To(ContainSubstring("ECR GetAuthorizationToken with the pod's AWS identity (IRSA, EKS Pod Identity or the node role)"))
}
