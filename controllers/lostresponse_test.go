package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// TestStepNoDuplicateEventAfterALostResponse: the API server commits a status patch but the answer is
// lost (it was stopped mid-request), and the cache still shows the old status. The next visit must not
// announce the transition a second time: the patch is made against the resourceVersion it was computed
// from, so it conflicts, and the visit after that sees the verdict already written.
func TestStepNoDuplicateEventAfterALostResponse(t *testing.T) {
	g := NewWithT(t)
	var stale *sigwatchv1alpha1.SignedImage // what a lagging cache still shows
	lose := 1
	e := newStepEnv(t, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if err := c.SubResource(sub).Patch(ctx, obj, patch, opts...); err != nil {
				return err
			}
			if lose > 0 {
				lose--
				return apierrors.NewServerTimeout(sigwatchv1alpha1.GroupVersion.WithResource("signedimages").GroupResource(), "patch", 1)
			}
			return nil
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if si, ok := obj.(*sigwatchv1alpha1.SignedImage); ok && stale != nil {
				stale.DeepCopyInto(si)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	stale = e.get().DeepCopy() // the cache stops here: before the verdict

	_, err := e.reconcile()
	g.Expect(err).To(HaveOccurred(), "the answer was lost")
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Warning StatusWriteFailed ")))

	_, _ = e.reconcile() // from the stale cache: the same transition again
	g.Expect(e.events()).NotTo(ContainElement(HavePrefix("Normal Verified ")), "the transition was not seen to happen by this visit")

	stale = nil // the cache catches up
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(e.events()).NotTo(ContainElement(HavePrefix("Normal Verified ")), "and it is already written: no Event")
}
