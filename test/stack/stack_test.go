//go:build e2e

package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/bundleverify"
	"github.com/sigwatch/sigwatch/internal/trust"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

const (
	bundleMediaType     = "application/vnd.dev.sigstore.bundle.v0.3+json"
	bundlePredicateKey  = "dev.sigstore.bundle.predicateType"
	cosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"
	slsaProvenanceV1    = "https://slsa.dev/provenance/v1"
)

// release is the workflow the tests sign as: yourorg/app's release.yaml on main.
var release = GitHubWorkflow("yourorg/app", "release.yaml", "refs/heads/main")

// TestGitHubWorkflowClaims pins the claims of a workflow run and the SAN Fulcio derives from them.
func TestGitHubWorkflowClaims(t *testing.T) {
	g := NewWithT(t)
	c := GitHubWorkflow("yourorg/app", "release.yaml", "refs/heads/main")
	g.Expect(c.Subject).To(Equal("repo:yourorg/app:ref:refs/heads/main"))
	g.Expect(c.Repository).To(Equal("yourorg/app"))
	g.Expect(c.RepositoryOwner).To(Equal("yourorg"))
	g.Expect(c.JobWorkflowRef).To(Equal("yourorg/app/.github/workflows/release.yaml@refs/heads/main"))
	g.Expect(c.WorkflowRef).To(Equal(c.JobWorkflowRef))
	g.Expect(c.Workflow).To(Equal("release"))
	g.Expect(c.SHA).To(HaveLen(40))
	g.Expect(c.CertificateIdentity()).To(Equal("https://github.com/yourorg/app/.github/workflows/release.yaml@refs/heads/main"))
	g.Expect(GitHubWorkflow("yourorg/app", "release.yaml", "refs/heads/main")).To(Equal(c), "deterministic")
	g.Expect(GitHubWorkflow("yourorg/app", "release.yaml", "refs/tags/v1").SHA).NotTo(Equal(c.SHA))
}

// TestIssuerToken checks a token against the issuer's own discovery document and JWKS, as Fulcio does.
func TestIssuerToken(t *testing.T) {
	g := NewWithT(t)
	iss, err := StartIssuer("")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = iss.Close() })

	var discovery struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, iss.URL+"/.well-known/openid-configuration", &discovery)
	g.Expect(discovery.Issuer).To(Equal(iss.URL))
	g.Expect(iss.URL).To(HavePrefix("http://127.0.0.1:"))
	var keys jose.JSONWebKeySet
	getJSON(t, discovery.JWKSURI, &keys)
	g.Expect(keys.Keys).To(HaveLen(1))

	raw, err := iss.Token(release, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	g.Expect(err).NotTo(HaveOccurred())
	var std jwt.Claims
	var gh GitHubClaims
	g.Expect(tok.Claims(keys.Keys[0].Key, &std, &gh)).To(Succeed())
	g.Expect(std.ValidateWithLeeway(jwt.Expected{Issuer: iss.URL, AnyAudience: jwt.Audience{Audience}}, 0)).To(Succeed())
	g.Expect(std.Expiry.Time()).To(BeTemporally("~", time.Now().Add(time.Minute), 2*time.Second))
	g.Expect(gh).To(Equal(release))

	expired, err := iss.Token(release, -time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	tok, err = jwt.ParseSigned(expired, []jose.SignatureAlgorithm{jose.RS256})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.Claims(keys.Keys[0].Key, &std)).To(Succeed())
	g.Expect(std.ValidateWithLeeway(jwt.Expected{Issuer: iss.URL}, 0)).To(MatchError(jwt.ErrExpired))

	_, err = iss.Token(GitHubClaims{}, 0)
	g.Expect(err).To(HaveOccurred())
}

// TestKeylessSign signs an image keyless as a GitHub workflow with the real cosign, Fulcio, Rekor v2 and
// TSA, then checks that cosign accepts exactly that workflow and that sigwatch's own verifier accepts the
// bundle stored as a referrer, with the workflow's GitHub claims.
func TestKeylessSign(t *testing.T) {
	g := NewWithT(t)
	s := StartT(t)
	ctx := t.Context()
	reg := testregistry.Start(t, true)
	image := reg.PushRandomImage(t, "yourorg/app")

	began := time.Now()
	out, err := s.Sign(ctx, image.String(), release, SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("cosign sign (%s):\n%s", time.Since(began).Round(time.Millisecond), out)
	bundle := referrerBundle(t, image, cosignSignPredicate)

	t.Run("cosign accepts the workflow", func(t *testing.T) {
		g := NewWithT(t)
		out, err := s.Verify(ctx, image.String(), VerifyOptions{
			CertificateIdentity: "https://github.com/yourorg/app/.github/workflows/release.yaml@refs/heads/main",
		})
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("cosign verify:\n%s", out)
	})

	refusals := []struct {
		name string
		opts VerifyOptions
	}{
		{"another workflow", VerifyOptions{CertificateIdentity: "https://github.com/yourorg/app/.github/workflows/other.yaml@refs/heads/main"}},
		{"another ref", VerifyOptions{CertificateIdentity: "https://github.com/yourorg/app/.github/workflows/release.yaml@refs/heads/dev"}},
		{"GitHub's issuer", VerifyOptions{CertificateIdentity: release.CertificateIdentity(),
			CertificateOIDCIssuer: "https://token.actions.githubusercontent.com"}},
	}
	for _, tc := range refusals {
		t.Run("cosign refuses "+tc.name, func(t *testing.T) {
			g := NewWithT(t)
			out, err := s.Verify(ctx, image.String(), tc.opts)
			g.Expect(err).To(HaveOccurred(), "cosign accepted:\n%s", out)
			g.Expect(string(out)).To(ContainSubstring("no matching CertificateIdentity found"))
		})
	}

	root, err := trust.FromJSON(s.TrustedRootJSON(), "test stack")
	g.Expect(err).NotTo(HaveOccurred())

	t.Run("sigwatch verifies the bundle", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(root.RequireSCT()).To(BeFalse(), "the stack has no CT log")
		res, err := bundleverify.Verify(ctx, bundleverify.Request{
			Bundle:         bundle,
			ArtifactDigest: image.DigestStr(),
			Identity: bundleverify.Identity{
				CertificateIdentity:   release.CertificateIdentity(),
				CertificateOIDCIssuer: s.OIDC.URL,
			},
			TrustRoot: root,
		})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.PredicateType).To(Equal(cosignSignPredicate))
		cert := res.Certificate
		g.Expect(cert).NotTo(BeNil())
		g.Expect(cert.SubjectAlternativeName).To(Equal(release.CertificateIdentity()))
		g.Expect(cert.Issuer).To(Equal(s.OIDC.URL))
		g.Expect(cert.SourceRepositoryURI).To(Equal("https://github.com/yourorg/app"))
		g.Expect(cert.SourceRepositoryRef).To(Equal("refs/heads/main"))
		g.Expect(cert.SourceRepositoryDigest).To(Equal(release.SHA))
		g.Expect(cert.SourceRepositoryOwnerURI).To(Equal("https://github.com/yourorg"))
		g.Expect(cert.BuildSignerURI).To(Equal(release.CertificateIdentity()))
		g.Expect(cert.BuildConfigURI).To(Equal(release.CertificateIdentity()))
		g.Expect(cert.BuildTrigger).To(Equal("push"))
		g.Expect(cert.RunnerEnvironment).To(Equal("github-hosted"))
		g.Expect(cert.RunInvocationURI).To(Equal("https://github.com/yourorg/app/actions/runs/4242/attempts/1"))
		g.Expect(cert.GithubWorkflowRepository).To(Equal("yourorg/app"))
		g.Expect(cert.GithubWorkflowRef).To(Equal("refs/heads/main"))
		g.Expect(cert.SourceRepositoryVisibilityAtSigning).To(Equal("public"))
		g.Expect(res.TlogEntries).To(HaveLen(1))
		g.Expect(res.TlogEntries[0].RekorV2).To(BeTrue())
		g.Expect(res.TlogEntries[0].IntegratedTime.IsZero()).To(BeTrue(), "Rekor v2 records no integrated time")
		g.Expect(res.VerifiedTimestamps).To(ContainElement(HaveField("Source", "TimestampAuthority")))
		g.Expect(res.SignedAt()).To(BeTemporally("~", began, time.Minute))
	})

	t.Run("sigwatch refuses another workflow", func(t *testing.T) {
		g := NewWithT(t)
		_, err := bundleverify.Verify(ctx, bundleverify.Request{
			Bundle:         bundle,
			ArtifactDigest: image.DigestStr(),
			Identity: bundleverify.Identity{
				CertificateIdentity:   GitHubWorkflow("yourorg/app", "other.yaml", "refs/heads/main").CertificateIdentity(),
				CertificateOIDCIssuer: s.OIDC.URL,
			},
			TrustRoot: root,
		})
		g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	})
}

// TestKeylessAttestSLSAProvenance attests SLSA provenance keyless and finds it as a bundle referrer that
// cosign and sigwatch accept.
func TestKeylessAttestSLSAProvenance(t *testing.T) {
	g := NewWithT(t)
	s := StartT(t)
	ctx := t.Context()
	reg := testregistry.Start(t, true)
	image := reg.PushRandomImage(t, "yourorg/app")

	predicate := []byte(`{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1",` +
		`"externalParameters":{"workflow":{"ref":"refs/heads/main","repository":"https://github.com/yourorg/app",` +
		`"path":".github/workflows/release.yaml"}}},"runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}`)
	out, err := s.Attest(ctx, image.String(), release, "slsaprovenance1", predicate, SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("cosign attest:\n%s", out)
	bundle := referrerBundle(t, image, slsaProvenanceV1)

	out, err = s.Verify(ctx, image.String(), VerifyOptions{CertificateIdentity: release.CertificateIdentity(), AttestationType: "slsaprovenance1"})
	g.Expect(err).NotTo(HaveOccurred())
	// cosign prints the verified DSSE envelope, one JSON object per line.
	envelope := out[bytes.LastIndex(bytes.TrimSpace(out), []byte("\n"))+1:]
	var dsse struct {
		Payload []byte `json:"payload"`
	}
	g.Expect(json.Unmarshal(envelope, &dsse)).To(Succeed(), "cosign's output:\n%s", out)
	var statement struct {
		PredicateType string `json:"predicateType"`
	}
	g.Expect(json.Unmarshal(dsse.Payload, &statement)).To(Succeed())
	g.Expect(statement.PredicateType).To(Equal(slsaProvenanceV1))

	root, err := trust.FromJSON(s.TrustedRootJSON(), "test stack")
	g.Expect(err).NotTo(HaveOccurred())
	res, err := bundleverify.Verify(ctx, bundleverify.Request{
		Bundle:         bundle,
		ArtifactDigest: image.DigestStr(),
		Identity:       bundleverify.Identity{CertificateIdentity: release.CertificateIdentity(), CertificateOIDCIssuer: s.OIDC.URL},
		TrustRoot:      root,
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.PredicateType).To(Equal(slsaProvenanceV1))
}

// TestFulcioRefusesExpiredToken shows that Fulcio really checks the issuer's tokens.
func TestFulcioRefusesExpiredToken(t *testing.T) {
	g := NewWithT(t)
	s := StartT(t)
	reg := testregistry.Start(t, true)
	image := reg.PushRandomImage(t, "yourorg/app")

	out, err := s.Sign(t.Context(), image.String(), release, SignOptions{TokenValidity: -time.Minute})
	g.Expect(err).To(HaveOccurred(), "cosign signed with an expired token:\n%s", out)
	g.Expect(string(out)).To(ContainSubstring("There was an error processing the identity token"))
	g.Expect(os.ReadFile(filepath.Join(s.Dir, "fulcio.log"))).To(ContainSubstring("oidc: token is expired"))
	g.Expect(referrers(t, image)).To(BeEmpty())
}

// TestStopLeavesNoProcess checks that Stop kills every service, closes every port and removes the
// temporary directory; the issuer listens on the address given.
func TestStopLeavesNoProcess(t *testing.T) {
	g := NewWithT(t)
	port, err := freePorts(1)
	g.Expect(err).NotTo(HaveOccurred())
	issuer := fmt.Sprintf("127.0.0.1:%d", port[0])
	s, err := Start(t.Context(), Options{IssuerAddress: issuer})
	if errors.Is(err, ErrMissingBinary) {
		t.Skipf("skipping the test with a real Sigstore stack: %v", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("stack up in %s", s.StartupDuration)
	g.Expect(s.OIDC.URL).To(Equal("http://" + issuer))
	g.Expect(s.procs).To(HaveLen(3))
	urls := []string{s.FulcioURL + "/api/v2/configuration", s.RekorURL + "/healthz", s.TSAURL + "/certchain",
		s.RekorTilesURL + "/checkpoint", s.OIDC.URL + "/.well-known/openid-configuration"}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, u := range urls {
		// Tessera publishes the first checkpoint just after Rekor is ready.
		g.Eventually(func() error { return get(t.Context(), client, u) }).WithTimeout(10*time.Second).Should(Succeed(), u)
	}

	s.Stop()
	s.Stop() // idempotent
	for _, p := range s.procs {
		g.Expect(syscall.Kill(p.cmd.Process.Pid, 0)).To(MatchError(syscall.ESRCH), "%s still running", p.name)
	}
	for _, u := range urls {
		g.Expect(get(t.Context(), client, u)).To(MatchError(ContainSubstring("connection refused")), u)
	}
	g.Expect(s.Dir).NotTo(BeADirectory(), "Start's temporary directory is removed")
}

// TestStartFailsWithoutBinaries names the make target to run.
func TestStartFailsWithoutBinaries(t *testing.T) {
	g := NewWithT(t)
	_, err := Start(context.Background(), Options{BinDir: t.TempDir()})
	g.Expect(err).To(MatchError(ErrMissingBinary))
	g.Expect(err.Error()).To(ContainSubstring("make sigstore-stack"))
}

// referrerBundle returns the Sigstore bundle of the one referrer of image with predicateType.
func referrerBundle(t *testing.T, image name.Digest, predicateType string) []byte {
	t.Helper()
	g := NewWithT(t)
	var found []v1.Descriptor
	for _, d := range referrers(t, image) {
		if d.Annotations[bundlePredicateKey] == predicateType {
			found = append(found, d)
		}
	}
	g.Expect(found).To(HaveLen(1), "one referrer with predicate type %s", predicateType)
	img, err := remote.Image(image.Context().Digest(found[0].Digest.String()), remote.WithContext(t.Context()))
	g.Expect(err).NotTo(HaveOccurred())
	m, err := img.Manifest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m.ArtifactType).To(Equal(bundleMediaType))
	layers, err := img.Layers()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(layers).To(HaveLen(1))
	rc, err := layers[0].Compressed()
	g.Expect(err).NotTo(HaveOccurred())
	defer rc.Close()
	bundle, err := io.ReadAll(rc)
	g.Expect(err).NotTo(HaveOccurred())
	return bundle
}

// referrers lists the referrers of image through the OCI 1.1 referrers API.
func referrers(t *testing.T, image name.Digest) []v1.Descriptor {
	t.Helper()
	idx, err := remote.Referrers(image, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("listing the referrers of %s: %v", image, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatalf("reading the referrers of %s: %v", image, err)
	}
	return m.Manifests
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test against loopback
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", url, err)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: Content-Type %q", url, resp.Header.Get("Content-Type"))
	}
}
