package controllers

import (
	"testing"

	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// TestSignatureInfosTellAcceptedFromRejected: status.signatures marks each signature Accepted (with the
// authority) or Rejected (with the reason); a rejected signature's claims are shown but never carry an
// authority.
func TestSignatureInfosTellAcceptedFromRejected(t *testing.T) {
	g := NewWithT(t)
	idx := int64(42)
	infos := signatureInfos([]verification.Signature{
		{Format: sigwatchv1alpha1.SignatureFormatBundle, Subject: "https://github.com/yourorg/app/.github/workflows/release.yml@refs/heads/main",
			Authority: "release", TransparencyLogIndex: &idx},
		{Format: sigwatchv1alpha1.SignatureFormatLegacy, Subject: "mallory@example.com", Issuer: "https://evil.example",
			Authority: "release", Reason: sigwatchv1alpha1.UntrustedSignerReason, Message: "certificate not issued by a trusted CA"},
		{Format: sigwatchv1alpha1.SignatureFormatBundle, PredicateType: "https://slsa.dev/provenance/v1"},
	})
	g.Expect(infos).To(HaveLen(2), "attestations are not listed")
	g.Expect(infos[0].Verdict).To(Equal(sigwatchv1alpha1.SignatureAccepted))
	g.Expect(infos[0].Authority).To(Equal("release"))
	g.Expect(infos[0].Reason).To(BeEmpty())
	g.Expect(infos[0].TransparencyLogIndex).To(HaveValue(BeEquivalentTo(42)))
	g.Expect(infos[1].Verdict).To(Equal(sigwatchv1alpha1.SignatureRejected))
	g.Expect(infos[1].Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason))
	g.Expect(infos[1].Authority).To(BeEmpty())
	g.Expect(infos[1].Subject).To(Equal("mallory@example.com"), "shown as the certificate's (unverified) claim")
}

// TestStatusTextIsPrintable: what reaches a status or an Event from a registry or a certificate cannot
// carry terminal escapes, bidirectional overrides or line breaks.
func TestStatusTextIsPrintable(t *testing.T) {
	g := NewWithT(t)
	for in, want := range map[string]string{
		"plain text":                       "plain text",
		"signed by \x1b[32mtrusted\x1b[0m": "signed by  [32mtrusted [0m",
		"admin\u202egpj.exe":               "admin gpj.exe",
		"line\nbreak\r\n":                  "line break  ",
		"bad \xff utf8":                    "bad   utf8",
		"naïve ünïcode":                    "naïve ünïcode",
	} {
		g.Expect(truncate(in, 1024)).To(Equal(want), "%q", in)
	}
	g.Expect(oneLine("Verified", "signed by x\x1b]8;;https://evil.example\x07")).NotTo(ContainSubstring("\x1b"))
}
