package verification

import (
	"testing"

	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// TestCloserOutcome: the reason reported for a signature comes from an authority of its own kind first,
// then from the outcome closest to passing.
func TestCloserOutcome(t *testing.T) {
	g := NewWithT(t)
	invalid := outcome{reason: sigwatchv1alpha1.InvalidSignatureReason}
	untrusted := outcome{reason: sigwatchv1alpha1.UntrustedSignerReason}
	otherKind := outcome{reason: sigwatchv1alpha1.UntrustedSignerReason, otherKind: true}
	noLog := outcome{reason: sigwatchv1alpha1.TransparencyLogMissingReason}
	mismatch := outcome{reason: sigwatchv1alpha1.TrustRootMismatchReason}
	g.Expect(closer(invalid, otherKind)).To(BeTrue(), "a tampered keyless signature is invalid, even if a key authority also exists")
	g.Expect(closer(otherKind, invalid)).To(BeFalse())
	g.Expect(closer(untrusted, invalid)).To(BeTrue())
	g.Expect(closer(noLog, untrusted)).To(BeTrue())
	g.Expect(closer(invalid, noLog)).To(BeFalse())
	g.Expect(closer(mismatch, untrusted)).To(BeTrue(), "a signature that only its trust root fails is closest after a missing log entry")
	g.Expect(closer(mismatch, invalid)).To(BeTrue())
	g.Expect(closer(noLog, mismatch)).To(BeTrue())
	g.Expect(closer(untrusted, mismatch)).To(BeFalse())
}

func TestSigner(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Signer("https://github.com/o/r/.github/workflows/release.yml@refs/heads/main", "0123456789abcdef")).
		To(Equal("https://github.com/o/r/.github/workflows/release.yml@refs/heads/main"), "keyless: the certificate's subject")
	g.Expect(Signer("", "0123456789abcdef0123")).To(Equal("key 0123456789ab"))
	g.Expect(Signer("", "abc")).To(Equal("key abc"))
	g.Expect(Signer("", "")).To(BeEmpty())
}
