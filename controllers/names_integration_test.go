//go:build integration

package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
)

// TestHandMadeSignedImageCannotHideADigest: a namespace owner makes a SignedImage by hand under the name
// that the SignedImage of an unsigned digest will get, with a signed digest in its spec, and then runs the
// unsigned digest. The unsigned digest still gets a SignedImage of its own, which fails and warns on the
// pod; the hand-made one stays verified and lists only the pods that run the signed digest. Deleting the
// unsigned digest's SignedImage does not hide it either.
func TestHandMadeSignedImageCannotHideADigest(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	startManager(t)
	ns := namespace(t, nil)
	decoy := &sigwatchv1alpha1.SignedImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.SignedImageName(repoOf(f.unsigned), f.unsigned.DigestStr())},
		Spec:       sigwatchv1alpha1.SignedImageSpec{Image: repoOf(f.signed), Digest: f.signed.DigestStr()},
	}
	g.Expect(env.Client.Create(context.Background(), decoy)).To(Succeed())
	verified(t, decoy, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)

	roguePod := runPod(t, ns, "rogue-1", "", f.unsigned.String(), "")
	own := verified(t, signedImageFor(t, ns, repoOf(f.unsigned), f.unsigned.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)
	g.Expect(own.Name).NotTo(Equal(decoy.Name))
	g.Expect(own.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.ManagedByLabel, sigwatchv1alpha1.ManagedByValue))
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(own), got)).To(Succeed())
		g.Expect(got.Status.Workloads).To(Equal([]sigwatchv1alpha1.WorkloadReference{{Kind: "Pod", Name: roguePod.Name, Containers: []string{"app"}}}))
		g.Expect(events(t, ns, "Pod", roguePod.Name)).To(ConsistOf(HaveField("Note", ContainSubstring("SignatureMissing"))))
	})

	// A pod of the signed digest: once the decoy lists it, it has seen both pods, and lists only that one.
	runPod(t, ns, "web-1", "web", repoOf(f.signed)+":v1", imageID(f.signed))
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(decoy), got)).To(Succeed())
		g.Expect(got.Status.Workloads).To(Equal([]sigwatchv1alpha1.WorkloadReference{{Kind: "Deployment", Name: "web", Containers: []string{"app"}}}))
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)).To(BeTrue())
	})

	// The unsigned digest's SignedImage deleted by hand while its pod runs: it comes back at once.
	g.Expect(env.Client.Delete(context.Background(), own)).To(Succeed())
	eventually(t, func(g Gomega) {
		back := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(own), back)).To(Succeed())
		g.Expect(back.UID).NotTo(Equal(own.UID))
		g.Expect(back.Spec).To(Equal(own.Spec))
	})
	verified(t, own, metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)
}
