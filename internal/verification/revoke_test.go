package verification

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/revocation"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

var (
	windowStart = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	windowEnd   = time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
)

func revocations(t *testing.T, name, reason string, entries ...sigwatchv1alpha1.RevokedSignatures) *revocation.Set {
	t.Helper()
	r, err := revocation.Compile(&sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: reason, Signatures: entries}})
	if err != nil {
		t.Fatal(err)
	}
	return revocation.NewSet(r)
}

func window(id sigwatchv1alpha1.Identity) sigwatchv1alpha1.RevokedSignatures {
	return sigwatchv1alpha1.RevokedSignatures{Keyless: &id,
		SignedAfter: &metav1.Time{Time: windowStart}, SignedBefore: &metav1.Time{Time: windowEnd}}
}

// signAt signs d as s with the log's integrated time at (certified by the log's signed entry timestamp).
func (k *keyless) signAt(t *testing.T, d name.Digest, s *sigstore.KeylessSigner, at time.Time) {
	t.Helper()
	signer := &sigstore.KeylessSigner{Stack: k.stack, Identity: s.Identity, NotBefore: at.Add(-time.Minute), NotAfter: at.Add(9 * time.Minute)}
	if _, err := k.writer.SignBundle(context.Background(), d, signer, sigstore.SignOptions{IntegratedTime: at}); err != nil {
		t.Fatal(err)
	}
}

func (k *keyless) judge(t *testing.T, d name.Digest, p *policy.Policy, set *revocation.Set) (PolicyResult, *Result) {
	t.Helper()
	res := k.engine.Verify(context.Background(), Request{Image: image(t, d), Policies: []*policy.Policy{p}, Revocations: set})
	if len(res.Policies) != 1 {
		t.Fatalf("want one policy result, got %+v", res.Policies)
	}
	return res.Policies[0], res
}

// A windowed revocation of the release workflow revokes what it signed inside the window only, by the
// log's time; an image signed by another workflow in the window, or re-signed after it, stays verified.
func TestWindowedRevocationRevokesWhatTheIdentitySignedInTheWindow(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	pr := sigstore.GitHubActions("yourorg/app", "pr.yml", "refs/heads/main")
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "ci"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "workflows", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, SubjectRegExp: "https://github.com/yourorg/app/.+"}}}}}},
	})
	inWindow, before, otherWorkflow, resigned := k.push(t, "yourorg/app"), k.push(t, "yourorg/app"), k.push(t, "yourorg/app"), k.push(t, "yourorg/app")
	k.signAt(t, inWindow, k.ci, windowStart.Add(time.Hour))
	k.signAt(t, before, k.ci, windowStart.Add(-time.Second))
	k.signAt(t, otherWorkflow, &sigstore.KeylessSigner{Identity: pr}, windowStart.Add(time.Hour))
	k.signAt(t, resigned, k.ci, windowStart.Add(2*time.Hour))
	k.signAt(t, resigned, k.ci, windowEnd.Add(time.Hour))
	set := revocations(t, "release-compromise", "CI token leaked; see INC-4711", window(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}))

	got, res := k.judge(t, inWindow, p, set)
	expectFailed(t, got, sigwatchv1alpha1.SignatureRevokedReason, "SignatureRevocation release-compromise", "CI token leaked; see INC-4711",
		"signed from 2026-12-01T10:00:00Z to 2026-12-01T14:00:00Z", release)
	g.Expect(res.Signatures[0].Revocation).To(Equal("release-compromise"))
	g.Expect(res.Signatures[0].SigningTime.UTC()).To(Equal(windowStart.Add(time.Hour)))
	g.Expect(res.Signatures[0].TimeSource).To(Equal(TimeSourceTlog))

	for _, d := range []name.Digest{before, otherWorkflow} {
		got, _ := k.judge(t, d, p, set)
		g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), got.Message)
	}
	got, res = k.judge(t, resigned, p, set)
	g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), got.Message)
	g.Expect(got.Message).To(ContainSubstring("revoked by SignatureRevocation release-compromise"), "says which signature was revoked")
	revoked := 0
	for _, s := range res.Signatures {
		if s.Revocation != "" {
			revoked++
			g.Expect(s.Reason).To(Equal(sigwatchv1alpha1.SignatureRevokedReason))
		}
	}
	g.Expect(revoked).To(Equal(1), "the signature inside the window is revoked, the one after it counts")

	got, _ = k.judge(t, inWindow, p, nil)
	g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "without the revocation the image is verified again")
}

// Applying a revocation to a digest verified before reads nothing from the registry (Reuse).
func TestRevocationIsAppliedWithoutARegistryRoundTrip(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	k.signAt(t, d, k.ci, windowStart.Add(time.Hour))
	p := releasePolicy(t)
	req := Request{Image: image(t, d), Policies: []*policy.Policy{p}}
	g.Expect(k.engine.Verify(context.Background(), req).Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
	k.reg.ResetCounts()
	req.Revocations, req.Reuse = revocations(t, "incident", "INC-1", window(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release})), true
	res := k.engine.Verify(context.Background(), req)
	expectFailed(t, res.Policies[0], sigwatchv1alpha1.SignatureRevokedReason)
	g.Expect(k.reg.Counts()).To(BeEmpty(), "no registry request")
	req.Revocations = nil
	g.Expect(k.engine.Verify(context.Background(), req).Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
	g.Expect(k.reg.Counts()).To(BeEmpty(), "no registry request to restore it either")
}

// Key and digest revocations need no trusted time; a windowed one never matches a signature without
// one, and the verdict says so.
func TestKeyAndDigestRevocations(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	key, err := sigstore.NewKeySigner(k.stack)
	g.Expect(err).NotTo(HaveOccurred())
	d, other := k.push(t, "yourorg/app"), k.push(t, "yourorg/app")
	for _, img := range []name.Digest{d, other} {
		_, err = k.writer.SignBundle(context.Background(), img, key, sigstore.SignOptions{Tlog: sigstore.TlogOff})
		g.Expect(err).NotTo(HaveOccurred())
	}
	p := keyPolicy(t, "team", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogDisabled)
	keyEntry := sigwatchv1alpha1.RevokedSignatures{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: string(key.PublicKeyPEM())}}

	got, res := k.judge(t, d, p, revocations(t, "key-leak", "the team key leaked", keyEntry))
	expectFailed(t, got, sigwatchv1alpha1.SignatureRevokedReason, "key-leak", "the team key leaked")
	g.Expect(res.Signatures[0].SigningTime).To(BeNil(), "a key signature without a log has no trusted time")

	windowed := keyEntry
	windowed.SignedAfter, windowed.SignedBefore = &metav1.Time{Time: windowStart}, &metav1.Time{Time: windowEnd}
	got, _ = k.judge(t, d, p, revocations(t, "key-window", "w", windowed))
	g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), got.Message)
	g.Expect(got.Message).To(ContainSubstring("SignatureRevocation key-window spec.signatures[0] does not apply"))
	g.Expect(got.Message).To(ContainSubstring("no trusted signing time"))

	byDigest := revocations(t, "bad-release", "malicious release", sigwatchv1alpha1.RevokedSignatures{Digests: []string{d.DigestStr()}})
	got, _ = k.judge(t, d, p, byDigest)
	expectFailed(t, got, sigwatchv1alpha1.SignatureRevokedReason, "bad-release", "malicious release")
	got, _ = k.judge(t, other, p, byDigest)
	g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "another digest signed with the same key")
}

// A revoked attestation no longer satisfies the policy, even when the image's signature still counts.
func TestRevokedAttestation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	k := newKeyless(t, true)
	scanner := &sigstore.KeylessSigner{Stack: k.stack, Identity: sigstore.GitHubActions("yourorg/scanner", "scan.yml", "refs/heads/main")}
	scannerSubject := "https://github.com/yourorg/scanner/.github/workflows/scan.yml@refs/heads/main"
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(ctx, d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = k.writer.AttestBundle(ctx, d, scanner, "https://cosign.sigstore.dev/attestation/vuln/v1", map[string]any{"critical": 0}, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "scanned"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}, {Issuer: ghIssuer, Subject: scannerSubject}}}}},
			Attestations: []sigwatchv1alpha1.Attestation{{Name: "vulns", PredicateType: "https://cosign.sigstore.dev/attestation/vuln/v1",
				Conditions: []string{"predicate.critical == 0"}}}},
	})
	got, _ := k.judge(t, d, p, nil)
	g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), got.Message)
	got, _ = k.judge(t, d, p, revocations(t, "scanner-compromise", "the scanner's token leaked",
		sigwatchv1alpha1.RevokedSignatures{Keyless: &sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: scannerSubject}}))
	expectFailed(t, got, sigwatchv1alpha1.SignatureRevokedReason, "attestation vulns", "scanner-compromise", "the scanner's token leaked")
}

// maxSignatureAge: the newest accepted signature counts until it is older than the limit, by its
// trusted time; the result says when that is, and the verdict turns at that moment.
func TestMaxSignatureAge(t *testing.T) {
	g := NewWithT(t)
	var now atomic.Pointer[time.Time]
	clock := func() time.Time { return *now.Load() }
	k := newKeyless(t, true, func(o *Options) { o.Clock = clock })
	signed := windowStart
	set := func(t time.Time) { now.Store(&t) }
	set(signed)
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "release", MaxSignatureAge: &metav1.Duration{Duration: 720 * time.Hour},
				Keyless: &sigwatchv1alpha1.KeylessAuthority{Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}}}}}},
	})
	d := k.push(t, "yourorg/app")
	k.signAt(t, d, k.ci, signed)

	set(signed.Add(720*time.Hour - time.Second))
	got, res := k.judge(t, d, p, nil)
	g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), got.Message)
	g.Expect(res.ChangesAt).NotTo(BeNil())
	g.Expect(res.ChangesAt.UTC()).To(Equal(signed.Add(720*time.Hour)), "the next visit is when the signature expires")

	set(signed.Add(720 * time.Hour))
	got, _ = k.judge(t, d, p, nil)
	expectFailed(t, got, sigwatchv1alpha1.SignatureTooOldReason, "2026-12-01T10:00:00Z", "more than 720h ago", "sign the image again")

	// Signed again a hundred hours later: the newest signature counts, until it is too old too.
	k.signAt(t, d, k.ci, signed.Add(100*time.Hour))
	got, res = k.judge(t, d, p, nil)
	g.Expect(got.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), got.Message)
	g.Expect(res.ChangesAt.UTC()).To(Equal(signed.Add(820 * time.Hour)))
	set(signed.Add(820 * time.Hour))
	got, _ = k.judge(t, d, p, nil)
	expectFailed(t, got, sigwatchv1alpha1.SignatureTooOldReason, "2 accepted signatures, none counts")
}

// Under maxSignatureAge, a signature without a trusted time never counts: its age is unknown.
func TestMaxSignatureAgeWithoutTrustedTime(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	key, err := sigstore.NewKeySigner(k.stack)
	g.Expect(err).NotTo(HaveOccurred())
	d := k.push(t, "yourorg/app")
	_, err = k.writer.SignBundle(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOff})
	g.Expect(err).NotTo(HaveOccurred())
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh-key"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "team-key", MaxSignatureAge: &metav1.Duration{Duration: time.Hour},
				Key:             &sigwatchv1alpha1.KeyAuthority{PublicKey: string(key.PublicKeyPEM())},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}}}},
	})
	got, res := k.judge(t, d, p, nil)
	expectFailed(t, got, sigwatchv1alpha1.SignatureTooOldReason, "no trusted signing time", "1h")
	g.Expect(res.ChangesAt).To(BeNil())
}
