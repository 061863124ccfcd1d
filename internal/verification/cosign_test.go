//go:build integration

package verification

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/test/cosign"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// TestRealCosign signs images with the real cosign v3.1.3 binary, in both storage formats, into registries
// with and without the referrers API, and checks that the engine judges each right.
func TestRealCosign(t *testing.T) {
	if _, err := cosign.Binary(); err != nil {
		t.Fatalf("%v", err)
	}
	for _, referrers := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers=%t", referrers), func(t *testing.T) {
			testRealCosign(t, referrers)
		})
	}
}

func testRealCosign(t *testing.T, referrers bool) {
	ctx := context.Background()
	reg := testregistry.Start(t, referrers)
	key := cosign.GenerateKeyPair(t, t.TempDir())
	other := cosign.GenerateKeyPair(t, t.TempDir())

	bundleSigned := reg.PushRandomImage(t, "team/bundle")
	cosign.Sign(t, key, bundleSigned.String(), cosign.SignOptions{NewBundleFormat: true})
	legacySigned := reg.PushRandomImage(t, "team/legacy")
	cosign.Sign(t, key, legacySigned.String(), cosign.SignOptions{NewBundleFormat: false})
	unsigned := reg.PushRandomImage(t, "team/unsigned")
	wrongKey := reg.PushRandomImage(t, "team/wrongkey")
	cosign.Sign(t, other, wrongKey.String(), cosign.SignOptions{NewBundleFormat: true})
	elsewhere := reg.PushRandomImage(t, "team/elsewhere")
	cosign.Sign(t, key, elsewhere.String(), cosign.SignOptions{NewBundleFormat: false, SignatureRepository: reg.Repo("signatures")})

	provenance := []byte(`{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1"},"runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}`)
	attestedBundle := reg.PushRandomImage(t, "team/attested-bundle")
	cosign.Sign(t, key, attestedBundle.String(), cosign.SignOptions{NewBundleFormat: true})
	cosign.Attest(t, key, attestedBundle.String(), "slsaprovenance1", provenance, cosign.SignOptions{NewBundleFormat: true})
	attestedLegacy := reg.PushRandomImage(t, "team/attested-legacy")
	cosign.Sign(t, key, attestedLegacy.String(), cosign.SignOptions{NewBundleFormat: false})
	cosign.Attest(t, key, attestedLegacy.String(), "slsaprovenance1", provenance, cosign.SignOptions{NewBundleFormat: false})

	noLog := keyPolicy(t, "key-no-log", key.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogDisabled)
	optionalLog := keyPolicy(t, "key-optional-log", key.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogOptional)
	requiredLog := keyPolicy(t, "key-required-log", key.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogRequired)
	slsa := func(builder string) sigwatchv1alpha1.Attestation {
		return sigwatchv1alpha1.Attestation{Name: "slsa", PredicateType: "https://slsa.dev/provenance/v1",
			Conditions: []string{fmt.Sprintf("predicate.runDetails.builder.id == %q", builder)}}
	}
	withSLSA := keyPolicy(t, "key-slsa", key.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogDisabled, slsa("https://github.com/actions/runner"))
	wrongBuilder := keyPolicy(t, "key-slsa-wrong-builder", key.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogDisabled, slsa("https://evil.example/builder"))
	elsewherePolicy := keyPolicy(t, "key-elsewhere", key.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogDisabled)
	elsewherePolicy.SignatureRepository = reg.Repo("signatures")

	cases := []struct {
		name   string
		image  string
		policy *policy.Policy
		result sigwatchv1alpha1.PolicyResultType
		reason string
		format sigwatchv1alpha1.SignatureFormat
	}{
		{"bundle format", bundleSigned.String(), noLog, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.SignatureFormatBundle},
		{"legacy format", legacySigned.String(), noLog, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.SignatureFormatLegacy},
		{"bundle, log optional", bundleSigned.String(), optionalLog, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.SignatureFormatBundle},
		{"legacy, log optional", legacySigned.String(), optionalLog, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.SignatureFormatLegacy},
		{"bundle, log required", bundleSigned.String(), requiredLog, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.TransparencyLogMissingReason, sigwatchv1alpha1.SignatureFormatBundle},
		{"legacy, log required", legacySigned.String(), requiredLog, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.TransparencyLogMissingReason, sigwatchv1alpha1.SignatureFormatLegacy},
		{"unsigned", unsigned.String(), noLog, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason, ""},
		{"signed with another key", wrongKey.String(), noLog, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.UntrustedSignerReason, sigwatchv1alpha1.SignatureFormatBundle},
		{"signature repository", elsewhere.String(), elsewherePolicy, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.SignatureFormatLegacy},
		{"signature repository not configured", elsewhere.String(), noLog, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason, ""},
		{"bundle attestation", attestedBundle.String(), withSLSA, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.SignatureFormatBundle},
		{"legacy attestation", attestedLegacy.String(), withSLSA, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.SignatureFormatLegacy},
		{"bundle attestation, condition false", attestedBundle.String(), wrongBuilder, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.AttestationFailedReason, sigwatchv1alpha1.SignatureFormatBundle},
		{"legacy attestation, condition false", attestedLegacy.String(), wrongBuilder, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.AttestationFailedReason, sigwatchv1alpha1.SignatureFormatLegacy},
		{"attestation missing", bundleSigned.String(), withSLSA, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.AttestationMissingReason, sigwatchv1alpha1.SignatureFormatBundle},
	}
	eng, _ := newEngine(t, embeddedRoot(t))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			img, err := parseImage(tc.image)
			g.Expect(err).NotTo(HaveOccurred())
			res := eng.Verify(ctx, Request{Image: img, Policies: []*policy.Policy{tc.policy}})
			g.Expect(res.Policies).To(HaveLen(1))
			pr := res.Policies[0]
			g.Expect(pr.Reason).To(Equal(tc.reason), pr.Message)
			g.Expect(pr.Result).To(Equal(tc.result), pr.Message)
			if tc.format != "" {
				g.Expect(res.Signatures).NotTo(BeEmpty())
				g.Expect(res.Signatures[0].Format).To(Equal(tc.format))
			}
			if tc.result == sigwatchv1alpha1.PolicyVerified {
				g.Expect(pr.Authority).To(Equal("team-key"))
				g.Expect(res.Signatures[0].KeyID).To(HaveLen(64))
				g.Expect(res.Signatures[0].ManifestDigest).To(HavePrefix("sha256:"))
			}
		})
	}
}
