package verification

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// verifyWith judges d under p against the trust root tr (not the stack's).
func (k *keyless) verifyWith(t *testing.T, tr *trust.Root, d name.Digest, p *policy.Policy) (PolicyResult, *Result) {
	t.Helper()
	eng, _ := newEngine(t, tr)
	res := eng.Verify(context.Background(), Request{Image: image(t, d), Policies: []*policy.Policy{p}})
	if len(res.Policies) != 1 {
		t.Fatalf("want one policy result, got %+v", res.Policies)
	}
	return res.Policies[0], res
}

// stackRootWithout is the stack's trust root without some of its parts (a trusted_root.json field:
// "tlogs", "certificateAuthorities", "timestampAuthorities").
func (k *keyless) stackRootWithout(t *testing.T, fields ...string) *trust.Root {
	t.Helper()
	data, err := k.stack.TrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		m[f] = []any{}
	}
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	tr, err := trust.FromJSON(data, "ConfigMap sigwatch-system/without-"+strings.Join(fields, "-"))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

const trustedRootAdvice = "If the image was signed with a private Sigstore, set spec.trustedRoot on the policy to a ConfigMap holding that Sigstore's trusted_root.json"

// TestTrustRootMismatchAgainstPublicGood: a keyless signature of a private Sigstore (the local stack),
// judged against the public-good root, fails as TrustRootMismatch, naming what the root lacks and
// spec.trustedRoot; against the stack's own root it verifies.
func TestTrustRootMismatchAgainstPublicGood(t *testing.T) {
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

			pr, res := k.verifyWith(t, embeddedRoot(t), d, releasePolicy(t))
			expectFailed(t, pr, sigwatchv1alpha1.TrustRootMismatchReason, "signature by "+release,
				`its transparency log (keyId "`, "certificate authority (issuer ", "timestamp authority (subject ",
				"are not in the trust root public-good (embedded snapshot)", trustedRootAdvice)
			g.Expect(pr.Message).NotTo(ContainSubstring("not enough verified log entries"))
			verdict, reason, message := res.Verdict()
			g.Expect(verdict).To(Equal(sigwatchv1alpha1.PolicyFailed), "a mismatch is never an acceptance")
			g.Expect(reason).To(Equal(sigwatchv1alpha1.TrustRootMismatchReason))
			g.Expect(message).To(ContainSubstring("spec.trustedRoot"))
			g.Expect(res.Signatures).To(HaveLen(1))
			g.Expect(res.Signatures[0].Reason).To(Equal(sigwatchv1alpha1.TrustRootMismatchReason))
			g.Expect(res.Signatures[0].Subject).To(Equal(release), "shown, as the certificate's unverified claim")
			g.Expect(res.Signatures[0].TransparencyLogIndex).To(BeNil(), "the entry was not verified")

			pr, _ = k.verify(t, d, releasePolicy(t))
			g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "with the right root, the same signature verifies: %s", pr.Message)
		})
	}
}

// TestTrustRootMismatchNamesWhatIsMissing: a root that lacks only one part of the stack names only that
// part.
func TestTrustRootMismatchNamesWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		without []string
		mode    sigwatchv1alpha1.TransparencyLogMode
		opts    sigstore.SignOptions
		want    string
		not     []string
	}{
		{[]string{"tlogs"}, sigwatchv1alpha1.TransparencyLogRequired, sigstore.SignOptions{},
			"its transparency log (keyId ", []string{"certificate authority", "timestamp authority"}},
		{[]string{"certificateAuthorities"}, sigwatchv1alpha1.TransparencyLogRequired, sigstore.SignOptions{Timestamp: true},
			`its certificate authority (issuer "CN=sigwatch test intermediate,O=sigwatch.test") is not`, []string{"transparency log (", "timestamp authority"}},
		// Not logged: the timestamp is the only time there is.
		{[]string{"timestampAuthorities"}, sigwatchv1alpha1.TransparencyLogOptional, sigstore.SignOptions{Tlog: sigstore.TlogOff, Timestamp: true},
			`its timestamp authority (subject "CN=sigwatch test TSA,O=sigwatch.test") is not`, []string{"transparency log (", "certificate authority"}},
	} {
		t.Run(strings.Join(tc.without, ","), func(t *testing.T) {
			g := NewWithT(t)
			k := newKeyless(t, true)
			d := k.push(t, "yourorg/app")
			_, err := k.writer.SignBundle(context.Background(), d, k.ci, tc.opts)
			g.Expect(err).NotTo(HaveOccurred())
			p := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}, tc.mode)
			pr, _ := k.verifyWith(t, k.stackRootWithout(t, tc.without...), d, p)
			expectFailed(t, pr, sigwatchv1alpha1.TrustRootMismatchReason, tc.want, "ConfigMap sigwatch-system/without-", trustedRootAdvice)
			for _, s := range tc.not {
				g.Expect(pr.Message).NotTo(ContainSubstring(s))
			}
		})
	}
}

// TestTrustRootMismatchKeySignature: a key signature logged in a private log, under an authority that
// requires a log entry, judged against the public-good root, names the log; the signature checked out
// with the authority's key, which is shown.
func TestTrustRootMismatchKeySignature(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	key, err := sigstore.NewKeySigner(k.stack)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = k.writer.SignBundle(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOn})
	g.Expect(err).NotTo(HaveOccurred())
	p := keyPolicy(t, "key", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogRequired)
	pr, res := k.verifyWith(t, embeddedRoot(t), d, p)
	expectFailed(t, pr, sigwatchv1alpha1.TrustRootMismatchReason, "signature by key ", "its transparency log (keyId ", "is not in the trust root public-good", trustedRootAdvice)
	g.Expect(pr.Message).NotTo(ContainSubstring("certificate authority"))
	g.Expect(res.Signatures[0].KeyID).NotTo(BeEmpty(), "it checked out with this key")

	pr, _ = k.verify(t, d, p)
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
}

// TestTrustRootMismatchDoesNotHideTampering: a signature that is wrong in itself, judged against a root
// that also lacks its log and CA, fails for what is wrong with it (the missing parts are said after).
func TestTrustRootMismatchDoesNotHideTampering(t *testing.T) {
	otherKey, err := sigstore.NewKeySigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	swap := func(b []byte) []byte {
		return []byte(strings.Replace(string(b), `"critical"`, `"optional":{"x":"y"},"critical"`, 1))
	}
	swapPredicate := func(b []byte) []byte {
		return []byte(strings.Replace(string(b), `"predicate":{}`, `"predicate":{"x":1}`, 1))
	}
	for name, tc := range map[string]struct {
		sign   func(k *keyless, d name.Digest, key *sigstore.KeySigner) error
		key    bool
		reason string
		want   string
	}{
		"payload changed after signing": {func(k *keyless, d name.Digest, _ *sigstore.KeySigner) error {
			_, err := k.writer.SignLegacy(context.Background(), d, k.ci, sigstore.SignOptions{Payload: swap})
			return err
		}, false, sigwatchv1alpha1.InvalidSignatureReason, "the signature over the artifact does not verify"},
		"another workflow": {func(k *keyless, d name.Digest, _ *sigstore.KeySigner) error {
			s := &sigstore.KeylessSigner{Stack: k.stack, Identity: sigstore.GitHubActions("yourorg/app", "pr.yml", "refs/pull/1/merge")}
			_, err := k.writer.SignBundle(context.Background(), d, s, sigstore.SignOptions{})
			return err
		}, false, sigwatchv1alpha1.UntrustedSignerReason, "pr.yml"},
		"key: statement changed after signing": {func(k *keyless, d name.Digest, key *sigstore.KeySigner) error {
			_, err := k.writer.SignBundle(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOn, Payload: swapPredicate})
			return err
		}, true, sigwatchv1alpha1.InvalidSignatureReason, "does not verify"},
		"key: signed with another key": {func(k *keyless, d name.Digest, _ *sigstore.KeySigner) error {
			other, err := sigstore.KeySignerFor(otherKey.Key, k.stack)
			if err != nil {
				return err
			}
			_, err = k.writer.SignBundle(context.Background(), d, other, sigstore.SignOptions{Tlog: sigstore.TlogOn})
			return err
		}, true, sigwatchv1alpha1.UntrustedSignerReason, "not signed by the key"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			k := newKeyless(t, true)
			d := k.push(t, "yourorg/app")
			key, err := sigstore.NewKeySigner(k.stack)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tc.sign(k, d, key)).To(Succeed())
			p := releasePolicy(t)
			if tc.key {
				p = keyPolicy(t, "key", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogRequired)
			}
			pr, _ := k.verifyWith(t, embeddedRoot(t), d, p)
			expectFailed(t, pr, tc.reason, tc.want, "(besides, its transparency log")
			pr, _ = k.verify(t, d, p)
			// With the stack's own root it fails too (another key's logged signature fails the log check
			// first there: InvalidSignature).
			g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyFailed), pr.Message)
		})
	}
}

// TestTamperedSETDependsOnWhetherTheRootListsTheLog: a flipped signed entry timestamp of a log the root
// lists is tampering (InvalidSignature: TestRejectsTamperedSET); of a log it does not list, nobody can
// check it, and the signature is a mismatch like any other from that log.
func TestTamperedSETDependsOnWhetherTheRootListsTheLog(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignLegacy(context.Background(), d, k.ci, sigstore.SignOptions{TamperSET: true}); err != nil {
		t.Fatal(err)
	}
	pr, _ := k.verify(t, d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason, "log")
	pr, _ = k.verifyWith(t, k.stackRootWithout(t, "tlogs"), d, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.TrustRootMismatchReason, "its transparency log")
}

// TestTrustRootMismatchOutranksUntrustedSigner: of two authorities, the one whose identity the signature
// has explains it (TrustRootMismatch), not the one it does not match.
func TestTrustRootMismatchOutranksUntrustedSigner(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "two-workflows"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{
				{Name: "other", Keyless: &sigwatchv1alpha1.KeylessAuthority{Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: "https://github.com/else/where/.github/workflows/x.yml@refs/heads/main"}}}},
				{Name: "release", Keyless: &sigwatchv1alpha1.KeylessAuthority{Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}}}},
			},
		},
	})
	pr, _ := k.verifyWith(t, embeddedRoot(t), d, p)
	expectFailed(t, pr, sigwatchv1alpha1.TrustRootMismatchReason, trustedRootAdvice)
}

// TestMissingTSANotNeeded: a timestamp of a TSA the root lacks does not matter when the log certifies
// the time: the signature verifies; tampered, it is InvalidSignature (never a mismatch).
func TestMissingTSANotNeeded(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	withoutTSA := k.stackRootWithout(t, "timestampAuthorities")
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{Timestamp: true})
	g.Expect(err).NotTo(HaveOccurred())
	pr, _ := k.verifyWith(t, withoutTSA, d, releasePolicy(t))
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)

	tampered := k.push(t, "yourorg/tampered")
	swap := func(b []byte) []byte {
		return []byte(strings.Replace(string(b), `"predicate":{}`, `"predicate":{"x":1}`, 1))
	}
	_, err = k.writer.SignBundle(context.Background(), tampered, k.ci, sigstore.SignOptions{Timestamp: true, Payload: swap})
	g.Expect(err).NotTo(HaveOccurred())
	pr, _ = k.verifyWith(t, withoutTSA, tampered, releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.InvalidSignatureReason)
}
