//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/test/cosign"
)

// TestKeyAndDigestRevocationsThroughTheAPIServer: images signed with real cosign keys; revoking one key
// flips at once, with no registry request, exactly the images that rested on it alone, and the revocation
// reports them; one with another accepted signature stays verified and says which was revoked; deleting
// the revocation restores them. A digest revocation with an entry that does not compile applies the rest
// and is not Ready.
func TestKeyAndDigestRevocationsThroughTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	onlyA := f.signed // signed with f.key
	both := f.reg.PushRandomImage(t, "team/both")
	cosign.Sign(t, f.key, both.String(), cosign.SignOptions{NewBundleFormat: true})
	cosign.Sign(t, f.other, both.String(), cosign.SignOptions{NewBundleFormat: true})
	onlyB := f.wrongKey // signed with f.other
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("two-keys-%d", time.Now().UnixNano())},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(f.reg.Host + "/team/**")},
			Authorities: []sigwatchv1alpha1.Authority{
				{Name: "key-a", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: string(f.key.PublicKeyPEM)},
					TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}},
				{Name: "key-b", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: string(f.other.PublicKeyPEM)},
					TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}},
			},
		},
	}
	g.Expect(env.Client.Delete(ctx, f.policy)).To(Succeed()) // only the two-key policy covers the images
	g.Expect(env.Client.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
	m := startManager(t)
	ns := namespace(t, nil)
	podA := runPod(t, ns, "a-1", "a", repoOf(onlyA)+":v1", imageID(onlyA))
	runPod(t, ns, "both-1", "both", repoOf(both)+":v1", imageID(both))
	runPod(t, ns, "b-1", "b", repoOf(onlyB)+":v1", imageID(onlyB))
	siA := verified(t, signedImageFor(t, ns, repoOf(onlyA), onlyA.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	siBoth := verified(t, signedImageFor(t, ns, repoOf(both), both.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	siB := verified(t, signedImageFor(t, ns, repoOf(onlyB), onlyB.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	nextA := siA.Status.NextVerificationTime

	f.reg.ResetCounts()
	rev := &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "key-a-leak-" + ns},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "key A leaked; see INC-4711",
			Signatures: []sigwatchv1alpha1.RevokedSignatures{{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: string(f.key.PublicKeyPEM)}}}}}
	g.Expect(env.Client.Create(ctx, rev)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, rev) })

	got := verified(t, siA, metav1.ConditionFalse, sigwatchv1alpha1.SignatureRevokedReason)
	c := meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
	g.Expect(c.Message).To(And(ContainSubstring("SignatureRevocation "+rev.Name), ContainSubstring("key A leaked; see INC-4711")))
	g.Expect(got.Status.Policies[0].Revocation).To(Equal(rev.Name))
	g.Expect(got.Status.NextVerificationTime).To(Equal(nextA), "applied without changing the verification schedule")
	g.Expect(got.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.VerifiedLabel, "false"))
	eventually(t, func(g Gomega) {
		b := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(siBoth), b)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)).To(BeTrue(), "another accepted signature verifies it")
		g.Expect(b.Status.Signatures).To(ContainElement(And(HaveField("Revocation", rev.Name), HaveField("Reason", sigwatchv1alpha1.SignatureRevokedReason))))
		g.Expect(meta.FindStatusCondition(b.Status.Conditions, sigwatchv1alpha1.VerifiedCondition).Message).To(ContainSubstring("revoked by SignatureRevocation " + rev.Name))
	})
	verified(t, siB, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	g.Expect(f.reg.Counts()).To(BeEmpty(), "the revocation was applied with no registry request")

	eventually(t, func(g Gomega) {
		r := &sigwatchv1alpha1.SignatureRevocation{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(rev), r)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(r.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
		g.Expect(r.Status.ObservedGeneration).To(Equal(r.Generation))
		g.Expect(r.Status.AffectedImages).To(HaveValue(BeEquivalentTo(2)))
		g.Expect(r.Status.Images).To(ConsistOf(
			sigwatchv1alpha1.RevokedImage{Namespace: ns, Name: siA.Name, Image: repoOf(onlyA), Digest: onlyA.DigestStr()},
			sigwatchv1alpha1.RevokedImage{Namespace: ns, Name: siBoth.Name, Image: repoOf(both), Digest: both.DigestStr()}))
		g.Expect(hasSeriesWithValue(m, "sigwatch_revoked_images", map[string]string{"revocation": rev.Name, "namespace": ns, "failed": "true"}, 1)).To(BeTrue())
		g.Expect(hasSeriesWithValue(m, "sigwatch_revoked_images", map[string]string{"revocation": rev.Name, "namespace": ns, "failed": "false"}, 1)).To(BeTrue())
	})
	eventually(t, func(g Gomega) {
		g.Expect(reasonsOf(events(t, ns, "SignedImage", siA.Name))).To(ContainElement(corev1.EventTypeWarning + "/VerificationFailed"))
		g.Expect(reasonsOf(events(t, ns, "Pod", podA.Name))).To(ContainElement(corev1.EventTypeWarning + "/VerificationFailed"))
		g.Expect(reasonsOf(events(t, "default", "SignatureRevocation", rev.Name))).To(ContainElement(corev1.EventTypeNormal + "/" + sigwatchv1alpha1.RevocationAppliedReason))
	})

	// Deleted: the images rest on key A again.
	g.Expect(env.Client.Delete(ctx, rev)).To(Succeed())
	verified(t, siA, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	eventually(t, func(g Gomega) {
		b := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(siBoth), b)).To(Succeed())
		g.Expect(b.Status.Signatures).NotTo(ContainElement(HaveField("Revocation", Not(BeEmpty()))))
		g.Expect(hasSeriesWithValue(m, "sigwatch_revoked_images", map[string]string{"revocation": rev.Name, "namespace": ns, "failed": "true"}, 1)).To(BeFalse())
	})

	// A digest revocation with an entry that does not compile: the digest is revoked, the revocation is
	// not Ready and names the entry.
	bad := &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "bad-release-" + ns},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "malicious release", Signatures: []sigwatchv1alpha1.RevokedSignatures{
			{Keyless: &sigwatchv1alpha1.Identity{Issuer: "https://token.actions.githubusercontent.com", SubjectRegExp: "(unclosed"}},
			{Digests: []string{onlyB.DigestStr()}},
		}}}
	g.Expect(env.Client.Create(ctx, bad)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, bad) })
	verified(t, siB, metav1.ConditionFalse, sigwatchv1alpha1.SignatureRevokedReason)
	verified(t, siBoth, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	eventually(t, func(g Gomega) {
		r := &sigwatchv1alpha1.SignatureRevocation{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(bad), r)).To(Succeed())
		ready := meta.FindStatusCondition(r.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(sigwatchv1alpha1.InvalidRevocationReason))
		g.Expect(ready.Message).To(ContainSubstring("spec.signatures[0].keyless.subjectRegExp"))
		g.Expect(r.Status.AffectedImages).To(HaveValue(BeEquivalentTo(1)))
		g.Expect(reasonsOf(events(t, "default", "SignatureRevocation", bad.Name))).To(ContainElement(corev1.EventTypeWarning + "/" + sigwatchv1alpha1.InvalidRevocationReason))
	})
}

// hasSeriesWithValue reports whether the manager exports the series with exactly these labels and value.
func hasSeriesWithValue(m *manager, name string, labels map[string]string, value float64) bool {
	mfs, err := m.metrics.Gather()
	if err != nil {
		return false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) && s.GetGauge().GetValue() == value {
				return true
			}
		}
	}
	return false
}

// reasonsOf are the Events' type/reason.
func reasonsOf(evs []eventsv1.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Type+"/"+e.Reason)
	}
	return out
}
