//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// TestSigwatchVerifyCommand runs `sigwatch verify` on the three images with the stack's trusted_root.json.
func TestSigwatchVerifyCommand(t *testing.T) {
	g := NewWithT(t)
	bin := sigwatchBinary(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "trusted_root.json")
	g.Expect(os.WriteFile(root, s.stack.TrustedRootJSON(), 0o600)).To(Succeed())
	policy := filepath.Join(dir, "policy.yaml")
	g.Expect(os.WriteFile(policy, []byte(fmt.Sprintf(`apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata:
  name: release-on-main
spec:
  images: ["%s/yourorg/**"]
  authorities:
    - name: release-workflow
      keyless:
        identities:
          - issuer: %s
            subject: %s
            githubWorkflow:
              repository: yourorg/app
              ref: refs/heads/main
`, s.reg.Host, s.stack.OIDC.URL, releaseClaims.CertificateIdentity())), 0o600)).To(Succeed())

	for _, tc := range []struct {
		image  string
		code   int
		reason string
	}{
		{s.release.String(), 0, sigwatchv1alpha1.VerifiedReason},
		{s.pr.String(), 1, sigwatchv1alpha1.UntrustedSignerReason},
		{s.unsigned.String(), 1, sigwatchv1alpha1.SignatureMissingReason},
	} {
		cmd := exec.Command(bin, "verify", "--policy", policy, "--trusted-root", root, "--insecure-registry", s.reg.Host, tc.image)
		out, _ := cmd.CombinedOutput()
		t.Logf("sigwatch verify %s:\n%s", tc.image, out)
		g.Expect(cmd.ProcessState.ExitCode()).To(Equal(tc.code), string(out))
		g.Expect(string(out)).To(ContainSubstring(tc.reason))
	}
}

func TestRejectsSubjectRegexpThatMatchesOnlyUnanchored(t *testing.T) {
	id := releaseIdentity()
	id.Subject, id.SubjectRegExp = "", `https://github\.com/yourorg/app/\.github/workflows/release\.yaml@refs/heads/mai`
	pr := verify(t, imageOf(t, s.release.String()), compile(t, "unanchored", releasePolicySpec(id)))
	NewWithT(t).Expect(pr.Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason))
	NewWithT(t).Expect(pr.Message).To(ContainSubstring("subject must match"))
}

func TestRejectsWrongIssuer(t *testing.T) {
	id := releaseIdentity()
	id.Issuer = "https://token.actions.githubusercontent.com" // the real GitHub issuer: these certificates name the local one
	pr := verify(t, imageOf(t, s.release.String()), compile(t, "wrong-issuer", releasePolicySpec(id)))
	NewWithT(t).Expect(pr.Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason))
	NewWithT(t).Expect(pr.Message).To(ContainSubstring("issuer"))
}

func TestRejectsGitHubWorkflowRefMismatch(t *testing.T) {
	id := releaseIdentity()
	id.Subject, id.SubjectRegExp = "", `https://github\.com/yourorg/app/\.github/workflows/.+`
	pr := verify(t, imageOf(t, s.pr.String()), compile(t, "ref", releasePolicySpec(id)))
	NewWithT(t).Expect(pr.Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason))
	NewWithT(t).Expect(pr.Message).To(ContainSubstring(`githubWorkflow.ref must be "refs/heads/main", the certificate's is "refs/pull/1/merge"`))
	// The same policy accepts the release build: the subject regexp alone would have let the PR in.
	NewWithT(t).Expect(verify(t, imageOf(t, s.release.String()), compile(t, "ref", releasePolicySpec(id))).Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
}

func TestSLSAProvenanceCondition(t *testing.T) {
	withBuilder := func(builder string) sigwatchv1alpha1.ImageSignaturePolicySpec {
		spec := releasePolicySpec(releaseIdentity())
		spec.Attestations = []sigwatchv1alpha1.Attestation{{Name: "provenance", PredicateType: "https://slsa.dev/provenance/v1",
			Conditions: []string{fmt.Sprintf("predicate.runDetails.builder.id == %q", builder)}}}
		return spec
	}
	img := imageOf(t, s.release.String())
	NewWithT(t).Expect(verify(t, img, compile(t, "slsa", withBuilder("https://github.com/actions/runner/github-hosted"))).Result).
		To(Equal(sigwatchv1alpha1.PolicyVerified))
	pr := verify(t, img, compile(t, "slsa", withBuilder("https://evil.example/builder")))
	NewWithT(t).Expect(pr.Reason).To(Equal(sigwatchv1alpha1.AttestationFailedReason))
	// An image without provenance.
	pr = verify(t, imageOf(t, s.pr.String()), compile(t, "slsa-missing", func() sigwatchv1alpha1.ImageSignaturePolicySpec {
		spec := withBuilder("https://github.com/actions/runner/github-hosted")
		spec.Authorities[0].Keyless.Identities[0] = sigwatchv1alpha1.Identity{Issuer: s.stack.OIDC.URL, Subject: prClaims.CertificateIdentity()}
		return spec
	}()))
	NewWithT(t).Expect(pr.Reason).To(Equal(sigwatchv1alpha1.AttestationMissingReason))
}
