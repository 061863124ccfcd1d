//go:build integration

package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// TestTriageThroughTheAPIServer: with the real API server, the verdict label filters on the server, a
// failed image shows who signed what was found, and an exemption exempts until the moment it expires.
func TestTriageThroughTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	startManager(t)
	ns := namespace(t, nil)

	// The unsigned image is exempt for a few seconds.
	expires := metav1.NewTime(time.Now().Add(8 * time.Second).Truncate(time.Second))
	x := &sigwatchv1alpha1.ImageSignatureExemption{ObjectMeta: metav1.ObjectMeta{Name: "unsigned-" + ns},
		Spec: sigwatchv1alpha1.ImageSignatureExemptionSpec{Reason: "INC-7: signed from next release",
			Namespaces: []string{ns}, Digests: []string{f.unsigned.DigestStr()}, ExpiresAt: &expires}}
	g.Expect(env.Client.Create(ctx, x)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, x) })

	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	runPod(t, ns, "rogue-1", "rogue", f.wrongKey.Context().Name()+":v1", imageID(f.wrongKey))
	runPod(t, ns, "job-1", "", f.unsigned.String(), "")

	verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	bad := verified(t, signedImageFor(t, ns, repoOf(f.wrongKey), f.wrongKey.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
	exempt := verified(t, signedImageFor(t, ns, repoOf(f.unsigned), f.unsigned.DigestStr()), metav1.ConditionUnknown, sigwatchv1alpha1.ExemptReason)

	g.Expect(bad.Status.Summary.Signer).To(BeEmpty(), "a signature by an unknown key names no signer (keyless ones do: test/e2e)")
	g.Expect(meta.IsStatusConditionTrue(exempt.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
	g.Expect(meta.FindStatusCondition(exempt.Status.Conditions, sigwatchv1alpha1.VerifiedCondition).Message).To(ContainSubstring("INC-7"))

	// The label filters on the server: one unverified image, one exempt.
	byLabel := func(g Gomega, value string) []string {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{sigwatchv1alpha1.VerifiedLabel: value})).To(Succeed())
		var names []string
		for _, si := range list.Items {
			names = append(names, si.Name)
		}
		return names
	}
	eventually(t, func(g Gomega) {
		g.Expect(byLabel(g, "false")).To(ConsistOf(bad.Name))
		g.Expect(byLabel(g, "exempt")).To(ConsistOf(exempt.Name))
		g.Expect(byLabel(g, "true")).To(HaveLen(1))
	})
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.ImageSignatureExemption{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(x), got)).To(Succeed())
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(
			And(Not(BeNil()), HaveField("Reason", sigwatchv1alpha1.ExemptionActiveReason)))
		p := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(f.policy), p)).To(Succeed())
		g.Expect(p.Status.ExemptImages).To(BeEquivalentTo(1), "the policy counts its exempt image")
	})

	// At its expiry the image is judged, with no other event to bring it back, and the exemption says so.
	verified(t, exempt, metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)
	g.Expect(time.Now()).To(BeTemporally(">=", expires.Time), "not before the exemption expired")
	eventually(t, func(g Gomega) {
		g.Expect(byLabel(g, "false")).To(ConsistOf(bad.Name, exempt.Name))
		got := &sigwatchv1alpha1.ImageSignatureExemption{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(x), got)).To(Succeed())
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(
			And(HaveField("Status", metav1.ConditionFalse), HaveField("Reason", sigwatchv1alpha1.ExemptionExpiredReason)))
	})
}

// TestAuditPolicyThroughTheAPIServer: an image that fails only an Audit policy is reported, stays Ready,
// and its Event is Normal; no Warning reaches its pod.
func TestAuditPolicyThroughTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	// The fixture's policy trusts f.key; an Audit policy that trusts only the other key covers the same
	// images.
	audit := keyPolicy(t, f.reg.Host, f.other.PublicKeyPEM)
	audit.Spec.Mode = sigwatchv1alpha1.PolicyModeAudit
	audit.Spec.Severity = sigwatchv1alpha1.SeverityLow
	g.Expect(env.Client.Update(ctx, audit)).To(Succeed())
	startManager(t)
	ns := namespace(t, nil)
	pod := runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))

	si := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
	ready := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(ready.Reason).To(Equal(sigwatchv1alpha1.AuditOnlyReason))
	g.Expect(si.Status.Policies).To(ContainElement(And(HaveField("Name", audit.Name), HaveField("Mode", sigwatchv1alpha1.PolicyModeAudit),
		HaveField("Severity", sigwatchv1alpha1.SeverityLow), HaveField("Result", sigwatchv1alpha1.PolicyFailed))))
	eventually(t, func(g Gomega) {
		g.Expect(events(t, ns, "SignedImage", si.Name)).To(ConsistOf(And(HaveField("Type", "Normal"), HaveField("Reason", "AuditFailed"))))
	})
	g.Consistently(func() int { return len(events(t, ns, "Pod", pod.Name)) }).WithTimeout(2 * time.Second).Should(BeZero())
}
