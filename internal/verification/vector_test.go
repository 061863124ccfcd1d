package verification

import (
	"context"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/root"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/signatures"
	"github.com/sigwatch/sigwatch/internal/trust"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

const vectorDir = "../bundleverify/testdata/cosign-new-bundle/"

// TestCosignReferrerVector pushes cosign's own referrer-flow test bundle (a real public-good attestation
// of go-containerregistry's empty.Image, by cody@soyland.com) as an OCI 1.1 referrer, with and without
// the referrers API, and checks that discovery finds it and the judge accepts it for its identity and
// refuses it for another.
func TestCosignReferrerVector(t *testing.T) {
	for _, referrers := range []bool{true, false} {
		t.Run(map[bool]string{true: "referrers API", false: "fallback tag"}[referrers], func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			reg := testregistry.Start(t, referrers)
			d := reg.Push(t, "repo", empty.Image)
			g.Expect(d.DigestStr()).To(Equal("sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"))
			pushBundleReferrer(t, d, vectorDir+"oci-attestation.sigstore.json")

			rootJSON, err := os.ReadFile(vectorDir + "trusted_root_pgi.json")
			g.Expect(err).NotTo(HaveOccurred())
			tr, err := trust.FromJSON(rootJSON, "cosign testdata")
			g.Expect(err).NotTo(HaveOccurred())
			eng, _ := newEngine(t, tr)

			where := signatures.Where{Image: image(t, d)}
			st, err := eng.discoverer(registry.Credentials{}).State(ctx, where, true)
			g.Expect(err).NotTo(HaveOccurred())
			cands, err := eng.discoverer(registry.Credentials{}).Fetch(ctx, st)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cands).To(HaveLen(1))
			c := &cands[0]
			g.Expect(c.Kind).To(Equal(signatures.KindAttestation))
			g.Expect(c.Format).To(Equal(sigwatchv1alpha1.SignatureFormatBundle))
			g.Expect(c.CheckBinding(d.DigestStr())).To(Succeed())

			right := keylessPolicy(t, "https://github.com/login/oauth", "cody@soyland.com")
			o := eng.judgeCandidate(c, d.DigestStr(), right, tr)
			g.Expect(o.reason).To(BeEmpty(), o.message)
			s := describe(c, o, "", tr, nil)
			g.Expect(s.Subject).To(Equal("cody@soyland.com"))
			g.Expect(s.TransparencyLogIndex).To(HaveValue(BeEquivalentTo(175508996)))
			g.Expect(s.TimeSource).To(Equal(TimeSourceTlog))

			wrong := keylessPolicy(t, "https://github.com/login/oauth", "someone@else.example")
			o = eng.judgeCandidate(c, d.DigestStr(), wrong, tr)
			g.Expect(o.reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason))
			rejected := describe(c, o, "", tr, nil)
			g.Expect(rejected.Subject).To(Equal("cody@soyland.com"), "shown, as the certificate's unverified claim")
			g.Expect(rejected.TransparencyLogIndex).To(BeNil(), "a rejected signature's log entry was not verified")
			g.Expect(rejected.IntegratedTime).To(BeNil())
			entries, err := c.Bundle.TlogEntries()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(acceptedEntry(entries, tr)).NotTo(BeNil())
			g.Expect(acceptedEntry(entries, &trust.Root{Material: &root.TrustedRoot{}})).To(BeNil(), "an entry of a log the root does not list is not the verified one")

			// Through the whole engine: an attestation is not an image signature.
			res := eng.Verify(ctx, Request{Image: image(t, d), Policies: []*policyT{right}})
			g.Expect(res.Policies[0].Reason).To(Equal(sigwatchv1alpha1.SignatureMissingReason))
		})
	}
}

// pushBundleReferrer pushes a Sigstore bundle file as cosign v3 does.
func pushBundleReferrer(t *testing.T, subject name.Digest, bundlePath string) {
	t.Helper()
	data, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	w := &sigstore.Writer{}
	if _, err := w.PushBundleReferrer(context.Background(), subject, subject.Context(), data, "https://cosign.sigstore.dev/attestation/v1"); err != nil {
		t.Fatal(err)
	}
}

func keylessPolicy(t *testing.T, issuer, subject string) *policyT {
	t.Helper()
	return compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "keyless"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: issuer, Subject: subject}},
			}}},
		},
	})
}
