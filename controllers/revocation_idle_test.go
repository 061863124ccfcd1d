package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// An unrelated revocation created during a visit that verifies nothing (not due): the map function does
// not mark the image, yet the visit re-marks itself and the next one judges it again (Reuse), 100ms later.
func TestStepARevocationDuringAVisitThatJudgedNothingChangesNothing(t *testing.T) {
	g := NewWithT(t)
	var e *stepEnv
	armed := false
	e = newStepEnv(t, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		err := c.List(ctx, list, opts...)
		if _, ok := list.(*sigwatchv1alpha1.SignatureRevocationList); ok && armed {
			armed = false
			rev := digestRevocation("unrelated", "sha256:"+stringOf('9', 64))
			if err := c.Create(ctx, rev); err == nil {
				reqs := e.si.signedImagesOfRevocation(ctx, rev)
				t.Logf("map function enqueued %d", len(reqs))
			}
		}
		return err
	}}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.mustReconcile()
	e.clock.Step(time.Minute)
	calls := e.verifier.calls()
	armed = true
	res := e.mustReconcile()
	t.Logf("idle visit: RequeueAfter=%v, verifications=%d", res.RequeueAfter, e.verifier.calls()-calls)
	e.mustReconcile()
	t.Logf("next visit: verifications=%d (Reuse=%v)", e.verifier.calls()-calls, e.verifier.calls() > calls && e.verifier.requests[len(e.verifier.requests)-1].Reuse)
	g.Expect(e.verifier.calls()).To(Equal(calls), "an image that the revocation cannot change, whose visit judged nothing, is judged again")
}
