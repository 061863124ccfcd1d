package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/revocation"
	"github.com/sigwatch/sigwatch/internal/verification"
)

func digestRevocation(name string, digests ...string) *sigwatchv1alpha1.SignatureRevocation {
	return &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "rev-uid-" + "x", Generation: 1},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "INC-4711", Signatures: []sigwatchv1alpha1.RevokedSignatures{{Digests: digests}}}}
}

// revokeAll scripts the verifier as the engine would answer: every signature is revoked by the first
// revocation of the request.
func revokeAll(req verification.Request, res *verification.Result) {
	revs := req.Revocations.Revocations()
	if len(revs) == 0 {
		return
	}
	for i := range res.Policies {
		res.Policies[i] = verification.PolicyResult{Policy: res.Policies[i].Policy, Result: sigwatchv1alpha1.PolicyFailed,
			Reason: sigwatchv1alpha1.SignatureRevokedReason, Message: "revoked by " + revs[0].Name, Revocation: revs[0].Name}
	}
	for i := range res.Signatures {
		res.Signatures[i].Reason, res.Signatures[i].Revocation = sigwatchv1alpha1.SignatureRevokedReason, revs[0].Name
	}
}

// TestStepRevocationIsAppliedAtOnceFromTheLastState: a revocation marks the images it may change; their
// next visit judges them again at once, from the last registry state (Reuse), and leaves the
// verification schedule as it was; one it does not change writes nothing.
func TestStepRevocationIsAppliedAtOnceFromTheLastState(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.verifier.then = revokeAll
	e.mustReconcile()
	before := e.get()
	g.Expect(verifiedOf(before).Status).To(Equal(metav1.ConditionTrue))
	e.events()
	e.clock.Step(time.Minute)

	other := digestRevocation("other", "sha256:"+stringOf('b', 64))
	g.Expect(e.si.signedImagesOfRevocation(ctx, other)).To(BeEmpty(), "a revocation of another digest changes nothing here")

	rev := digestRevocation("bad-release", dig)
	g.Expect(e.c.Create(ctx, rev)).To(Succeed())
	reqs := e.si.signedImagesOfRevocation(ctx, rev)
	g.Expect(reqs).To(HaveLen(1))
	e.mustReconcile()
	g.Expect(e.verifier.calls()).To(Equal(2), "judged again although not due")
	last := e.verifier.requests[1]
	g.Expect(last.Reuse).To(BeTrue(), "from the registry state last read")
	g.Expect(last.Revocations.Len()).To(Equal(1))
	si := e.get()
	c := verifiedOf(si)
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.SignatureRevokedReason))
	g.Expect(si.Status.Policies[0].Revocation).To(Equal("bad-release"))
	g.Expect(si.Status.Signatures[0].Revocation).To(Equal("bad-release"))
	g.Expect(si.Status.Signatures[0].Verdict).To(Equal(sigwatchv1alpha1.SignatureRejected))
	g.Expect(si.Status.Signatures[0].Authority).To(Equal("ci"), "who accepted it is kept")
	g.Expect(si.Status.NextVerificationTime).To(Equal(before.Status.NextVerificationTime), "the schedule is kept")
	g.Expect(si.Status.LastAttemptTime).To(Equal(before.Status.LastAttemptTime))
	g.Expect(revocationsOf(si)).To(ConsistOf("bad-release"))
	evs := e.events()
	g.Expect(evs).To(ContainElement(HavePrefix(corev1.EventTypeWarning+" VerificationFailed ")), "%v", evs)

	// Deleted: the image is marked from its status, and verified again.
	g.Expect(e.c.Delete(ctx, rev)).To(Succeed())
	g.Expect(e.si.signedImagesOfRevocation(ctx, rev)).To(HaveLen(1))
	e.mustReconcile()
	g.Expect(e.verifier.requests[2].Reuse).To(BeTrue())
	si = e.get()
	g.Expect(verifiedOf(si).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(revocationsOf(si)).To(BeEmpty())

	// Marked again with nothing to change: nothing is written.
	rv := si.ResourceVersion
	e.si.markRejudge(types.NamespacedName{Namespace: si.Namespace, Name: si.Name})
	e.mustReconcile()
	g.Expect(e.verifier.calls()).To(Equal(4))
	g.Expect(e.get().ResourceVersion).To(Equal(rv), "no write for an image the revocation does not change")
}

// TestStepNextVisitWhenTheNewestSignatureExpires: the verification is scheduled for the moment the
// verdict changes by itself (maxSignatureAge), not at the next interval.
func TestStepNextVisitWhenTheNewestSignatureExpires(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	expires := e.clock.Now().Add(10 * time.Minute)
	e.verifier.then = func(_ verification.Request, res *verification.Result) { res.ChangesAt = &expires }
	res := e.mustReconcile()
	g.Expect(e.get().Status.NextVerificationTime.Time).To(BeTemporally("==", expires))
	g.Expect(res.RequeueAfter).To(Equal(10 * time.Minute))
}

func stringOf(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// TestStepARevocationDuringAVisitIsNotMissed: a revocation created while a visit verifies (after it
// listed the revocations, before it wrote) marks the image again, and the visit comes back at once.
func TestStepARevocationDuringAVisitIsNotMissed(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	rev := digestRevocation("late", dig)
	e.verifier.then = func(verification.Request, *verification.Result) {
		if err := e.c.Create(ctx, rev); err == nil {
			e.si.signedImagesOfRevocation(ctx, rev) // the watch's map function, meanwhile
		}
	}
	res := e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue), "the visit listed no revocation")
	g.Expect(res.RequeueAfter).To(Equal(rejudgeSoon), "back at once")
	e.verifier.then = revokeAll
	e.mustReconcile()
	g.Expect(e.verifier.requests[1].Reuse).To(BeTrue())
	g.Expect(verifiedOf(e.get()).Reason).To(Equal(sigwatchv1alpha1.SignatureRevokedReason))
}

// TestStepARejudgeThatCannotVerifyIsRetriedSoon: a judgment again that ends Unknown (the registry state
// had to be read, and the registry is down) keeps the short retry, not the old schedule; one whose status
// patch fails keeps its mark.
func TestStepARejudgeThatCannotVerifyIsRetriedSoon(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	conflicts := 0
	e := newStepEnv(t, interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
		if conflicts > 0 {
			conflicts--
			return apierrors.NewConflict(schema.GroupResource{Group: "sigwatch.dev", Resource: "signedimages"}, o.GetName(), errors.New("changed"))
		}
		return c.SubResource(sub).Patch(ctx, o, p, opts...)
	}}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.mustReconcile()
	before := e.get().Status.NextVerificationTime
	rev := digestRevocation("bad-release", dig)
	g.Expect(e.c.Create(ctx, rev)).To(Succeed())

	conflicts = 1
	e.verifier.then = revokeAll
	g.Expect(e.si.signedImagesOfRevocation(ctx, rev)).To(HaveLen(1))
	_, _ = e.reconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue), "the patch conflicted")
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Reason).To(Equal(sigwatchv1alpha1.SignatureRevokedReason), "the mark was kept for the next visit")

	g.Expect(e.c.Delete(ctx, rev)).To(Succeed())
	g.Expect(e.si.signedImagesOfRevocation(ctx, rev)).To(HaveLen(1))
	e.verifier.then = nil
	e.verifier.set(sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	e.mustReconcile()
	si := e.get()
	g.Expect(verifiedOf(si).Status).To(Equal(metav1.ConditionUnknown))
	g.Expect(si.Status.NextVerificationTime.Time).To(BeTemporally("<", before.Time), "retried soon, not at the old schedule")
	g.Expect(si.Status.NextVerificationTime.Sub(e.clock.Now())).To(Equal(10 * time.Second))
}

// TestRevocationStatus: Ready says whether every entry compiled (the message names the one that did not),
// the affected images are counted whole and listed sorted, at most maxListedRevokedImages, deleted ones
// left out.
func TestRevocationStatus(t *testing.T) {
	g := NewWithT(t)
	x := digestRevocation("r", dig)
	x.Generation = 3
	var affected []sigwatchv1alpha1.SignedImage
	for i := range maxListedRevokedImages + 5 {
		affected = append(affected, sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("si-%03d", maxListedRevokedImages+5-i)},
			Spec: sigwatchv1alpha1.SignedImageSpec{Image: stepRepo, Digest: dig}})
	}
	gone := metav1.Now()
	affected[0].DeletionTimestamp = &gone
	st := revocationStatus(x, nil, affected)
	g.Expect(st.ObservedGeneration).To(BeEquivalentTo(3))
	g.Expect(*st.AffectedImages).To(BeEquivalentTo(maxListedRevokedImages + 4))
	g.Expect(st.Images).To(HaveLen(maxListedRevokedImages))
	g.Expect(st.Images[0].Name).To(Equal("si-001"))
	ready := meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.ReadyCondition)
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(ready.Message).To(Equal("1 entry applied: INC-4711"))

	x.Spec.Signatures = append(x.Spec.Signatures, sigwatchv1alpha1.RevokedSignatures{Keyless: &sigwatchv1alpha1.Identity{
		Issuer: "https://x", SubjectRegExp: "(" + strings.Repeat("a", 1000)}})
	_, err := revocation.Compile(x)
	st = revocationStatus(x, err, nil)
	ready = meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.ReadyCondition)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Reason).To(Equal(sigwatchv1alpha1.InvalidRevocationReason))
	g.Expect(ready.Message).To(ContainSubstring("spec.signatures[1].keyless.subjectRegExp"))
	g.Expect(len(ready.Message)).To(BeNumerically("<=", 4096))
	g.Expect(*st.AffectedImages).To(BeZero())
	g.Expect(st.Images).To(BeNil())
}
