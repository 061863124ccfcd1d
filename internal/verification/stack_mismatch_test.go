//go:build e2e

package verification

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
	"github.com/sigwatch/sigwatch/test/stack"
)

// TestTrustRootMismatchRealStack: an image signed by the real cosign with a real private Sigstore
// (Fulcio, Rekor v2, TSA on loopback), judged by a policy without trustedRoot (the public-good root),
// fails as TrustRootMismatch naming the log, the CA, the TSA and spec.trustedRoot; with the stack's
// trusted_root.json it verifies. Skipped without the binaries (make sigstore-stack cosign).
func TestTrustRootMismatchRealStack(t *testing.T) {
	g := NewWithT(t)
	s := stack.StartT(t)
	reg := testregistry.Start(t, true)
	w := &sigstore.Writer{Registry: reg.Host}
	d, err := w.PushRandomImage(context.Background(), "yourorg/app")
	g.Expect(err).NotTo(HaveOccurred())
	claims := stack.GitHubWorkflow("yourorg/app", "release.yaml", "refs/heads/main")
	out, err := s.Sign(t.Context(), d.String(), claims, stack.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)

	p := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: s.OIDC.URL, Subject: claims.CertificateIdentity()}, sigwatchv1alpha1.TransparencyLogRequired)
	judge := func(tr *trust.Root) PolicyResult {
		eng, _ := newEngine(t, tr)
		res := eng.Verify(context.Background(), Request{Image: image(t, d), Policies: []*policy.Policy{p}})
		g.Expect(res.Policies).To(HaveLen(1))
		return res.Policies[0]
	}

	pr := judge(embeddedRoot(t))
	expectFailed(t, pr, sigwatchv1alpha1.TrustRootMismatchReason, "signature by "+claims.CertificateIdentity(),
		"its transparency log (keyId ", "certificate authority (issuer ", "timestamp authority (",
		"not in the trust root public-good (embedded snapshot)", trustedRootAdvice)

	own, err := trust.FromJSON(s.TrustedRootJSON(), "ConfigMap sigwatch-system/stack")
	g.Expect(err).NotTo(HaveOccurred())
	pr = judge(own)
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
}
