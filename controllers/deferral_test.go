package controllers

import (
	"context"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/verification"
)

const busy = "deferred: registry ghcr.io has 6 verifications in flight, the most one registry may have"

// deferringVerifier defers every verification, as the engine does when the image's registry host is
// busy; with ask it also answers Deferral, as the engine does.
type deferringVerifier struct {
	mu       sync.Mutex
	ask      bool
	verifies int
}

func (d *deferringVerifier) Verify(_ context.Context, req verification.Request) *verification.Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.verifies++
	return &verification.Result{Image: req.Image, Deferred: busy}
}

// deferringAsker is a deferringVerifier that is also asked first.
type deferringAsker struct{ *deferringVerifier }

func (d deferringAsker) Deferral(verification.Request) string { return busy }

// TestStepDeferredVerificationChangesNothing: a verification the engine defers (its registry host has
// all the verifications in flight it may have) is not a verdict: the status keeps the last verdict as it
// was (not Unknown, nothing written), no Event goes out, the deferral is counted, and the SignedImage
// comes back within a few seconds, not at its next verification. A verifier that can say so in advance
// is asked before the pull secrets are read, and then not asked to verify.
func TestStepDeferredVerificationChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		ask  bool
	}{{"deferred by Verify", false}, {"deferred when asked first", true}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			creds := &fakeCredentials{}
			e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
			e.si.Credentials = creds
			reg := e.withMetrics()
			e.mustReconcile()
			g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(e.events()).To(HaveLen(1))
			e.dueNow()
			before := e.get()
			creds.pods = nil

			dv := &deferringVerifier{}
			e.si.Verifier = dv
			if tc.ask {
				e.si.Verifier = deferringAsker{dv}
			}
			for i := range 3 {
				res := e.mustReconcile()
				g.Expect(res.RequeueAfter).To(BeNumerically(">=", minDeferral), "visit %d", i)
				g.Expect(res.RequeueAfter).To(BeNumerically("<=", maxDeferral), "visit %d", i)
				after := e.get()
				g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "nothing written")
				g.Expect(after.Status).To(Equal(before.Status), "the last verdict stands as it was")
				g.Expect(e.events()).To(BeEmpty(), "no Event")
			}
			g.Expect(counter(t, reg, "sigwatch_verifications_deferred_total", nil)).To(Equal(3.0))
			g.Expect(counter(t, reg, "sigwatch_verifications_total", map[string]string{
				"result": string(sigwatchv1alpha1.PolicyUnknown), "reason": sigwatchv1alpha1.VerificationErrorReason})).To(BeZero(), "a deferral is not a verdict")
			if tc.ask {
				g.Expect(dv.verifies).To(BeZero(), "asked first, not verified")
				g.Expect(creds.pods).To(BeEmpty(), "no pull secrets read for a visit that is deferred")
			} else {
				g.Expect(dv.verifies).To(Equal(3))
			}

			e.si.Verifier = e.verifier
			e.mustReconcile()
			after := e.get()
			g.Expect(verifiedOf(after).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(after.Status.LastAttemptTime.Time).To(BeTemporally("==", e.clock.Now()), "verified once the registry has room")
			g.Expect(e.events()).To(BeEmpty(), "the same verdict: no Event")
		})
	}
}

// TestStepDeferredFirstVerificationStaysPending: a SignedImage never verified yet stays without a verdict
// while it is deferred (neither Unknown nor announced), and is verified when the registry has room.
func TestStepDeferredFirstVerificationStaysPending(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.si.Verifier = &deferringVerifier{}
	res := e.mustReconcile()
	g.Expect(res.RequeueAfter).To(BeNumerically("<=", maxDeferral))
	si := e.get()
	g.Expect(verifiedOf(si)).To(BeNil(), "no verdict yet")
	g.Expect(si.Status.NextVerificationTime).To(BeNil())
	g.Expect(e.events()).To(BeEmpty())

	e.si.Verifier = e.verifier
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))
}

// TestPerRegistryLimit: three quarters of the workers, at least 1, unless configured.
func TestPerRegistryLimit(t *testing.T) {
	g := NewWithT(t)
	for workers, want := range map[int]int{0: 1, 1: 1, 2: 1, 3: 2, 4: 3, 8: 6, 16: 12} {
		g.Expect(PerRegistryLimit(workers, 0)).To(Equal(want), "%d workers", workers)
	}
	g.Expect(PerRegistryLimit(8, 8)).To(Equal(8), "configured")
}
