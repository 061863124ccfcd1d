package verification

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

const (
	ghIssuer = "https://token.actions.githubusercontent.com"
	release  = "https://github.com/yourorg/app/.github/workflows/release.yml@refs/heads/main"
)

// keyless is a local Sigstore (CA, log, TSA), a registry, and an engine trusting that Sigstore.
type keyless struct {
	stack  *sigstore.Stack
	reg    *testregistry.Registry
	writer *sigstore.Writer
	root   *trust.Root
	engine *Engine
	ci     *sigstore.KeylessSigner // the release workflow on main
}

func newKeyless(t *testing.T, referrers bool, mutate ...func(*Options)) *keyless {
	t.Helper()
	stack, err := sigstore.NewStack()
	if err != nil {
		t.Fatal(err)
	}
	data, err := stack.TrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trust.FromJSON(data, "test stack")
	if err != nil {
		t.Fatal(err)
	}
	k := &keyless{stack: stack, reg: testregistry.Start(t, referrers), root: tr}
	k.writer = &sigstore.Writer{Registry: k.reg.Host}
	k.engine, _ = newEngine(t, tr, mutate...)
	k.ci = &sigstore.KeylessSigner{Stack: stack, Identity: sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")}
	return k
}

func (k *keyless) push(t *testing.T, repo string) name.Digest {
	t.Helper()
	d, err := k.writer.PushRandomImage(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// verify judges img under one policy and returns its result.
func (k *keyless) verify(t *testing.T, d name.Digest, p *policy.Policy) (PolicyResult, *Result) {
	t.Helper()
	res := k.engine.Verify(context.Background(), Request{Image: image(t, d), Policies: []*policy.Policy{p}})
	if len(res.Policies) != 1 {
		t.Fatalf("want one policy result, got %+v", res.Policies)
	}
	return res.Policies[0], res
}

func identityPolicy(t *testing.T, id sigwatchv1alpha1.Identity, mode sigwatchv1alpha1.TransparencyLogMode) *policy.Policy {
	t.Helper()
	return compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "release"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{
				Name: "release-workflow", Keyless: &sigwatchv1alpha1.KeylessAuthority{Identities: []sigwatchv1alpha1.Identity{id}},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: mode},
			}},
		},
	})
}

func releasePolicy(t *testing.T) *policy.Policy {
	return identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}, sigwatchv1alpha1.TransparencyLogRequired)
}

func expectFailed(t *testing.T, pr PolicyResult, reason string, message ...string) {
	t.Helper()
	t.Logf("%s: %s", pr.Reason, pr.Message)
	g := NewWithT(t)
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyFailed), pr.Message)
	g.Expect(pr.Reason).To(Equal(reason), pr.Message)
	for _, m := range message {
		g.Expect(pr.Message).To(ContainSubstring(m))
	}
}

func TestKeylessGitHubWorkflowVerified(t *testing.T) {
	for _, format := range []string{"legacy", "bundle"} {
		t.Run(format, func(t *testing.T) {
			g := NewWithT(t)
			k := newKeyless(t, true)
			d := k.push(t, "yourorg/app")
			sign := k.writer.SignBundle
			if format == "legacy" {
				sign = k.writer.SignLegacy
			}
			_, err := sign(context.Background(), d, k.ci, sigstore.SignOptions{Timestamp: true})
			g.Expect(err).NotTo(HaveOccurred())
			p := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release,
				GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{Repository: "yourorg/app", Ref: "refs/heads/main", Trigger: "push"}},
				sigwatchv1alpha1.TransparencyLogRequired)
			pr, res := k.verify(t, d, p)
			g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
			g.Expect(pr.Authority).To(Equal("release-workflow"))
			s := res.Signatures[0]
			g.Expect(s.Subject).To(Equal(release))
			g.Expect(s.Issuer).To(Equal(ghIssuer))
			g.Expect(s.GitHubWorkflowRepository).To(Equal("yourorg/app"))
			g.Expect(s.GitHubWorkflowRef).To(Equal("refs/heads/main"))
			g.Expect(s.TransparencyLogIndex).NotTo(BeNil())
			g.Expect(s.IntegratedTime).NotTo(BeNil())
			g.Expect(s.TimestampTime).NotTo(BeNil())
			g.Expect(s.TimeSource).NotTo(BeEmpty())
			g.Expect(s.ManifestDigest).To(HavePrefix("sha256:"))
		})
	}
}

func TestRejectsPayloadForAnotherDigest(t *testing.T) {
	k := newKeyless(t, true)
	d, other := k.push(t, "yourorg/app"), k.push(t, "yourorg/app:other")
	for _, sign := range []func(context.Context, name.Digest, sigstore.Signer, sigstore.SignOptions) (*sigstore.Result, error){k.writer.SignLegacy, k.writer.SignBundle} {
		if _, err := sign(context.Background(), d, k.ci, sigstore.SignOptions{Digest: other.DigestStr()}); err != nil {
			t.Fatal(err)
		}
	}
	pr, res := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason, other.DigestStr())
	NewWithT(t).Expect(res.Signatures).To(HaveLen(2), "both formats examined, both bound to the other digest")
}

func TestRejectsSignatureCopiedFromAnotherRepository(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	signed, victim := k.push(t, "yourorg/app"), k.push(t, "yourorg/victim")
	res, err := k.writer.SignLegacy(context.Background(), signed, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	// Copy the genuine .sig manifest of the signed image under the victim's .sig tag.
	sig, err := remote.Image(res.Manifest)
	g.Expect(err).NotTo(HaveOccurred())
	tag, err := name.NewTag(k.reg.Repo("yourorg/victim")+":sha256-"+strings.TrimPrefix(victim.DigestStr(), "sha256:")+".sig", name.Insecure)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(tag, sig)).To(Succeed())

	pr, _ := k.verify(t, victim, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason, "the payload signs "+signed.DigestStr())
	pr, _ = k.verify(t, signed, releasePolicy(t))
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "the original still verifies")
}

func TestRejectsWrongSubject(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	pr := k.signAndVerify(t, d, sigstore.GitHubActions("yourorg/app", "pr.yml", "refs/pull/1/merge"), releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason, "pr.yml")
}

func TestRejectsWrongIssuer(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	id := sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")
	id.Issuer = "https://gitlab.com"
	pr := k.signAndVerify(t, d, id, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason, "issuer")
}

func TestRejectsSubjectRegexpThatMatchesOnlyUnanchored(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	evil := sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main-evil")
	p := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer,
		SubjectRegExp: `https://github\.com/yourorg/app/\.github/workflows/release\.yml@refs/heads/main`}, sigwatchv1alpha1.TransparencyLogRequired)
	pr := k.signAndVerify(t, d, evil, p)
	expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason, "main-evil")
}

func TestRejectsGitHubWorkflowRefMismatch(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	id := sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")
	id.Ref = "refs/heads/feature" // the claim disagrees with the policy's ref
	p := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release,
		GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{Ref: "refs/heads/main"}}, sigwatchv1alpha1.TransparencyLogRequired)
	pr := k.signAndVerify(t, d, id, p)
	expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason)
}

func (k *keyless) signAndVerify(t *testing.T, d name.Digest, id sigstore.Identity, p *policy.Policy) PolicyResult {
	t.Helper()
	s := &sigstore.KeylessSigner{Stack: k.stack, Identity: id}
	if _, err := k.writer.SignBundle(context.Background(), d, s, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	pr, _ := k.verify(t, d, p)
	return pr
}

func TestRejectsTamperedSET(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignLegacy(context.Background(), d, k.ci, sigstore.SignOptions{TamperSET: true}); err != nil {
		t.Fatal(err)
	}
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason, "log")
}

func TestRejectsTamperedPayload(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	tamper := func(p []byte) []byte {
		return []byte(strings.Replace(string(p), `"critical"`, `"optional":{"x":"y"},"critical"`, 1))
	}
	if _, err := k.writer.SignLegacy(context.Background(), d, k.ci, sigstore.SignOptions{Payload: tamper}); err != nil {
		t.Fatal(err)
	}
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason)
}

func TestRejectsMissingTransparencyLog(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	// Signed by the right workflow, timestamped, but never logged.
	if _, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{Tlog: sigstore.TlogOff, Timestamp: true}); err != nil {
		t.Fatal(err)
	}
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.TransparencyLogMissingReason, release)
	optional := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}, sigwatchv1alpha1.TransparencyLogOptional)
	pr, _ = k.verify(t, d, optional)
	NewWithT(t).Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "Optional accepts the TSA time alone")
}

var longAgo = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAcceptsCertificateThatExpiredLongAgo(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sigstore.SignOptions
	}{
		{"certified by the log's integrated time", sigstore.SignOptions{IntegratedTime: longAgo}},
		{"certified by the TSA", sigstore.SignOptions{IntegratedTime: longAgo, Timestamp: true, TimestampTime: longAgo.Add(time.Minute)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKeyless(t, true)
			d := k.push(t, "yourorg/app")
			s := &sigstore.KeylessSigner{Stack: k.stack, Identity: k.ci.Identity, NotBefore: longAgo.Add(-time.Minute), NotAfter: longAgo.Add(9 * time.Minute)}
			if _, err := k.writer.SignBundle(context.Background(), d, s, tc.opts); err != nil {
				t.Fatal(err)
			}
			pr, res := k.verify(t, d, releasePolicy(t))
			NewWithT(t).Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
			NewWithT(t).Expect(res.Signatures[0].IntegratedTime.UTC()).To(Equal(longAgo))
		})
	}
}

func TestRejectsCertificateOutsideValidityWithoutTrustedTime(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	s := &sigstore.KeylessSigner{Stack: k.stack, Identity: k.ci.Identity, NotBefore: longAgo, NotAfter: longAgo.Add(10 * time.Minute)}
	if _, err := k.writer.SignBundle(context.Background(), d, s, sigstore.SignOptions{Tlog: sigstore.TlogOff}); err != nil {
		t.Fatal(err)
	}
	optional := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}, sigwatchv1alpha1.TransparencyLogOptional)
	pr, _ := k.verify(t, d, optional)
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason, "timestamp")
}

func TestRejectsTimestampOutsideCertificateValidity(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sigstore.SignOptions
	}{
		{"logged after the certificate expired", sigstore.SignOptions{IntegratedTime: time.Now()}},
		{"timestamped after the certificate expired", sigstore.SignOptions{Tlog: sigstore.TlogOff, Timestamp: true, TimestampTime: time.Now()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKeyless(t, true)
			d := k.push(t, "yourorg/app")
			s := &sigstore.KeylessSigner{Stack: k.stack, Identity: k.ci.Identity, NotBefore: longAgo, NotAfter: longAgo.Add(10 * time.Minute)}
			if _, err := k.writer.SignBundle(context.Background(), d, s, tc.opts); err != nil {
				t.Fatal(err)
			}
			optional := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}, sigwatchv1alpha1.TransparencyLogOptional)
			pr, _ := k.verify(t, d, optional)
			expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason)
		})
	}
}

func TestRejectsCertificateFromAnotherCA(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	elsewhere, err := sigstore.NewStack()
	if err != nil {
		t.Fatal(err)
	}
	s := &sigstore.KeylessSigner{Stack: elsewhere, Identity: k.ci.Identity}
	if _, err := k.writer.SignBundle(context.Background(), d, s, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another Sigstore's CA and log: the policy's root lists neither (the names are the same, the keys
	// are not), and nothing else is wrong.
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.TrustRootMismatchReason, "certificate authority", "transparency log", "spec.trustedRoot",
		"which no trusted certificate authority vouches for")
}

// TestUnvouchedMismatchDoesNotHideTampering: anyone can make a signature with their own CA and log that
// claims the allowed identity (a TrustRootMismatch nobody vouches for). Attached beside a tampered
// signature, it does not hide it: the verdict is the tampered one's InvalidSignature.
func TestUnvouchedMismatchDoesNotHideTampering(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	swap := func(b []byte) []byte {
		return []byte(strings.Replace(string(b), `"critical"`, `"optional":{"x":"y"},"critical"`, 1))
	}
	if _, err := k.writer.SignLegacy(context.Background(), d, k.ci, sigstore.SignOptions{Payload: swap}); err != nil {
		t.Fatal(err)
	}
	elsewhere, err := sigstore.NewStack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.writer.SignBundle(context.Background(), d, &sigstore.KeylessSigner{Stack: elsewhere, Identity: k.ci.Identity}, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	pr, res := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason)
	reasons := map[string]int{}
	for _, s := range res.Signatures {
		reasons[s.Reason]++
	}
	// Both signatures are described, each with its own reason.
	NewWithT(t).Expect(reasons).To(Equal(map[string]int{sigwatchv1alpha1.InvalidSignatureReason: 1, sigwatchv1alpha1.TrustRootMismatchReason: 1}))
}

func TestRejectsOversizedManifest(t *testing.T) {
	k := newKeyless(t, false)
	d := k.push(t, "yourorg/app")
	res, err := k.writer.SignLegacy(context.Background(), d, k.ci, sigstore.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat(" ", 5<<20) // 5 MiB, over the 4 MiB cap
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/manifests/"+res.Manifest.DigestStr()) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			_, _ = w.Write([]byte(big))
			return true
		}
		return false
	})
	// A manifest longer than its descriptor says is a registry fault, not a bad signature: undecided,
	// and not kept, so the next verification after the registry mends is right.
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectUndecided(t, pr, "too large")
	k.reg.ClearIntercepts()
	pr, _ = k.verify(t, d, releasePolicy(t))
	NewWithT(t).Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
}

func TestRejectsSignatureManifestOverTheCap(t *testing.T) {
	k := newKeyless(t, false)
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignLegacy(context.Background(), d, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		// The registry says the .sig manifest is 5 MiB: refused before it is read.
		if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, ".sig") {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("ab", 32))
			w.Header().Set("Content-Length", strconv.Itoa(5<<20))
			return true
		}
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "sha256:"+strings.Repeat("ab", 32)) && fail(t, r)
	})
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason, "is 5242880 bytes, more than the 1048576 examined")
}

func fail(t *testing.T, r *http.Request) bool {
	t.Errorf("%s %s: read although refused", r.Method, r.URL.Path)
	return false
}

// expectUndecided checks a verdict of "could not read a signature": Unknown, never Failed.
func expectUndecided(t *testing.T, pr PolicyResult, message ...string) {
	t.Helper()
	t.Logf("%s: %s", pr.Reason, pr.Message)
	g := NewWithT(t)
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyUnknown), pr.Message)
	g.Expect(pr.Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason), pr.Message)
	g.Expect(pr.Message).To(ContainSubstring("could not be read"))
	for _, m := range message {
		g.Expect(pr.Message).To(ContainSubstring(m))
	}
}

func TestRejectsManifestThatDoesNotHashToItsDigest(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	res, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/manifests/"+res.Manifest.DigestStr()) {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", res.Manifest.DigestStr())
			_, _ = w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`))
			return true
		}
		return false
	})
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectUndecided(t, pr, "does not match")
	k.reg.ClearIntercepts()
	pr, _ = k.verify(t, d, releasePolicy(t))
	NewWithT(t).Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
}

func TestRejectsMoreSignaturesThanTheCap(t *testing.T) {
	k := newKeyless(t, true, func(o *Options) { o.MaxSignatures = 8 })
	d := k.push(t, "yourorg/app")
	key, err := sigstore.NewKeySigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if _, err := k.writer.SignLegacy(context.Background(), d, key, sigstore.SignOptions{Annotations: map[string]string{"n": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	p := keyPolicy(t, "key", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogDisabled)
	pr, _ := k.verify(t, d, p)
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason, "more than the 8 examined")
}

func TestRejectsKeySignatureWithoutLogWhenRequired(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	key, err := sigstore.NewKeySigner(k.stack)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.writer.SignLegacy(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOff}); err != nil {
		t.Fatal(err)
	}
	pr, _ := k.verify(t, d, keyPolicy(t, "key", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogRequired))
	expectFailed(t, pr, sigwatchv1alpha1.TransparencyLogMissingReason)
	if _, err := k.writer.SignLegacy(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOn}); err != nil {
		t.Fatal(err)
	}
	pr, _ = k.verify(t, d, keyPolicy(t, "key", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogRequired))
	NewWithT(t).Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "a logged signature by the same key passes")
}

func TestAttestationConditionOnBuilder(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	provenance := map[string]any{"buildDefinition": map[string]any{"buildType": "https://actions.github.io/buildtypes/workflow/v1"},
		"runDetails": map[string]any{"builder": map[string]any{"id": "https://github.com/actions/runner/github-hosted"}}}
	_, err = k.writer.AttestBundle(context.Background(), d, k.ci, "https://slsa.dev/provenance/v1", provenance, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	withCondition := func(builder string) *policy.Policy {
		p := &sigwatchv1alpha1.ImageSignaturePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "slsa"},
			Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
				Images: []sigwatchv1alpha1.ImagePattern{"**"},
				Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
					Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}}}}},
				Attestations: []sigwatchv1alpha1.Attestation{{Name: "provenance", PredicateType: "https://slsa.dev/provenance/v1",
					Conditions: []string{fmt.Sprintf("predicate.runDetails.builder.id == %q", builder)}}},
			},
		}
		return compile(t, p)
	}
	pr, _ := k.verify(t, d, withCondition("https://github.com/actions/runner/github-hosted"))
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
	pr, _ = k.verify(t, d, withCondition("https://evil.example/builder"))
	expectFailed(t, pr, sigwatchv1alpha1.AttestationFailedReason, "is false")
}

// TestKeySignatureReasons: with a key, a signature that names the authority's key but does not check out
// is invalid; one made with another key is an untrusted signer.
func TestKeySignatureReasons(t *testing.T) {
	k := newKeyless(t, true)
	key, err := sigstore.NewKeySigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sigstore.NewKeySigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := keyPolicy(t, "key", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogDisabled)

	tampered := k.push(t, "yourorg/tampered")
	swap := func(b []byte) []byte {
		return []byte(strings.Replace(string(b), `"predicate":{}`, `"predicate":{"x":1}`, 1))
	}
	if _, err := k.writer.SignBundle(context.Background(), tampered, key, sigstore.SignOptions{Payload: swap}); err != nil {
		t.Fatal(err)
	}
	pr, _ := k.verify(t, tampered, p)
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason)

	foreign := k.push(t, "yourorg/foreign")
	if _, err := k.writer.SignBundle(context.Background(), foreign, other, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	pr, _ = k.verify(t, foreign, p)
	expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason, "not signed by the key")
}

// TestKeylessClaims: sigstore-go verifies everything but the identity, which sigwatch matches with every
// claim: a certificate whose claims the identity pins verifies; one claim off, pinned exactly or by an
// expression, is UntrustedSigner naming that claim, with both values.
func TestKeylessClaims(t *testing.T) {
	k := newKeyless(t, true)
	ci := sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")
	base := sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}
	cases := []struct {
		name string
		id   func(sigwatchv1alpha1.Identity) sigwatchv1alpha1.Identity
		says string // "": verified
	}{
		{"the repository by name and ID", func(id sigwatchv1alpha1.Identity) sigwatchv1alpha1.Identity {
			id.Claims = &sigwatchv1alpha1.CertificateClaims{SourceRepositoryURI: "https://github.com/yourorg/app", SourceRepositoryIdentifier: ci.RepositoryID}
			id.ClaimsRegExp = &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/heads/(main|release-.+)"}
			return id
		}, ""},
		{"another repository ID", func(id sigwatchv1alpha1.Identity) sigwatchv1alpha1.Identity {
			id.Claims = &sigwatchv1alpha1.CertificateClaims{SourceRepositoryIdentifier: "1"}
			return id
		}, `sourceRepositoryIdentifier must be "1", the certificate's is "` + ci.RepositoryID + `"`},
		{"a ref the expression does not match", func(id sigwatchv1alpha1.Identity) sigwatchv1alpha1.Identity {
			id.ClaimsRegExp = &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/tags/v.+|refs/heads/mai"}
			return id
		}, `sourceRepositoryRef must match "refs/tags/v.+|refs/heads/mai", the certificate's is "refs/heads/main"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := k.push(t, "yourorg/app")
			pr := k.signAndVerify(t, d, ci, identityPolicy(t, tc.id(base), sigwatchv1alpha1.TransparencyLogRequired))
			if tc.says == "" {
				NewWithT(t).Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
				return
			}
			expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason, tc.says)
		})
	}
}
