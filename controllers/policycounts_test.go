package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

func results(pairs ...string) []sigwatchv1alpha1.PolicyResult {
	var out []sigwatchv1alpha1.PolicyResult
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, sigwatchv1alpha1.PolicyResult{Name: pairs[i], Result: sigwatchv1alpha1.PolicyResultType(pairs[i+1])})
	}
	return out
}

func TestPolicyTally(t *testing.T) {
	a := types.NamespacedName{Namespace: "team-a", Name: "web"}
	b := types.NamespacedName{Namespace: "team-b", Name: "web"}
	for _, tc := range []struct {
		name    string
		steps   func(tl *policyTally) []string // the last step's changed policies
		changed []string
		want    map[string]policyCounts
	}{
		{"a new image counts", func(tl *policyTally) []string {
			return tl.set(a, results("p", "Verified"))
		}, []string{"p"}, map[string]policyCounts{"p": {Matched: 1, Verified: 1}}},
		{"the same result again changes nothing", func(tl *policyTally) []string {
			tl.set(a, results("p", "Verified"))
			return tl.set(a, results("p", "Verified"))
		}, nil, map[string]policyCounts{"p": {Matched: 1, Verified: 1}}},
		{"a verdict that flips moves the image between counts", func(tl *policyTally) []string {
			tl.set(a, results("p", "Verified"))
			tl.set(b, results("p", "Verified"))
			return tl.set(a, results("p", "Failed"))
		}, []string{"p"}, map[string]policyCounts{"p": {Matched: 2, Verified: 1, Failed: 1}}},
		{"an image another policy now covers leaves the first", func(tl *policyTally) []string {
			tl.set(a, results("p", "Unknown"))
			return tl.set(a, results("q", "Verified"))
		}, []string{"p", "q"}, map[string]policyCounts{"q": {Matched: 1, Verified: 1}}},
		{"an image under two policies counts for each", func(tl *policyTally) []string {
			return tl.set(a, results("p", "Verified", "q", "Failed"))
		}, []string{"p", "q"}, map[string]policyCounts{"p": {Matched: 1, Verified: 1}, "q": {Matched: 1, Failed: 1}}},
		{"a deleted image is counted out", func(tl *policyTally) []string {
			tl.set(a, results("p", "Verified"))
			tl.set(b, results("p", "Failed"))
			return tl.set(b, nil)
		}, []string{"p"}, map[string]policyCounts{"p": {Matched: 1, Verified: 1}}},
		{"deleting what was never counted changes nothing", func(tl *policyTally) []string {
			return tl.set(a, nil)
		}, nil, map[string]policyCounts{}},
		{"an exempt image counts as matched and exempt, then moves when the exemption ends", func(tl *policyTally) []string {
			tl.set(a, results("p", "Exempt"))
			tl.set(b, results("p", "Exempt"))
			return tl.set(b, results("p", "Failed"))
		}, []string{"p"}, map[string]policyCounts{"p": {Matched: 2, Exempt: 1, Failed: 1}}},
		{"an image without results yet counts nowhere", func(tl *policyTally) []string {
			return tl.set(a, results())
		}, nil, map[string]policyCounts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tl := newPolicyTally()
			changed := tc.steps(tl)
			slices.Sort(changed)
			g.Expect(changed).To(Equal(tc.changed))
			g.Expect(tl.counts).To(Equal(tc.want))
			for name, want := range tc.want {
				g.Expect(tl.of(name)).To(Equal(want))
			}
			g.Expect(tl.of("absent")).To(Equal(policyCounts{}))
		})
	}
}

// After any sequence of changes the tally equals a recount of what the images hold now.
func TestPolicyTallyMatchesRecount(t *testing.T) {
	g := NewWithT(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	tl := newPolicyTally()
	now := map[types.NamespacedName][]sigwatchv1alpha1.PolicyResult{}
	verdicts := []string{"Verified", "Failed", "Unknown"}
	for range 5000 {
		key := types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(rnd.IntN(50))}
		var rs []sigwatchv1alpha1.PolicyResult
		if rnd.IntN(5) > 0 { // else deleted
			for _, p := range []string{"p", "q", "r"} {
				if rnd.IntN(2) == 0 {
					rs = append(rs, results(p, verdicts[rnd.IntN(3)])...)
				}
			}
		}
		tl.set(key, rs)
		if rs == nil {
			delete(now, key)
		} else {
			now[key] = rs
		}
	}
	recount := map[string]policyCounts{}
	for _, rs := range now {
		for _, r := range rs {
			c := recount[r.Name]
			c.Matched++
			switch r.Result {
			case sigwatchv1alpha1.PolicyVerified:
				c.Verified++
			case sigwatchv1alpha1.PolicyFailed:
				c.Failed++
			case sigwatchv1alpha1.PolicyUnknown:
				c.Unknown++
			}
			recount[r.Name] = c
		}
	}
	g.Expect(tl.counts).To(Equal(recount))
}

// While images are verified one after another, their policy's status is written at most once per
// CountsInterval for counts alone, and the last counts always reach it; a change of condition is
// written at once.
func TestStepPolicyCountsAreCoalesced(t *testing.T) {
	g := NewWithT(t)
	p := keyPolicyObj(t, "key")
	patches := 0
	e := newStepEnv(t, interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if _, ok := obj.(*sigwatchv1alpha1.ImageSignaturePolicy); ok {
			patches++
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}, p)
	ctx := context.Background()
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: p.Name}}
	status := func() sigwatchv1alpha1.ImageSignaturePolicyStatus {
		got := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(e.c.Get(ctx, req.NamespacedName, got)).To(Succeed())
		return got.Status
	}
	reconcile := func() time.Duration {
		res, err := e.policies.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		return res.RequeueAfter
	}

	g.Expect(reconcile()).To(BeZero())
	g.Expect(patches).To(Equal(1), "conditions: written at once")
	for i := range 50 {
		e.policies.tally.set(types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(i)}, results(p.Name, "Verified"))
		wait := reconcile()
		g.Expect(wait).To(BeNumerically(">", 0), "counts only, within the interval: put off")
		g.Expect(wait).To(BeNumerically("<=", 2*time.Second))
		e.clock.Step(10 * time.Millisecond)
	}
	g.Expect(patches).To(Equal(1), "50 images, no write yet")
	g.Expect(status().MatchedImages).To(BeZero())

	e.clock.Step(2 * time.Second)
	g.Expect(reconcile()).To(BeZero())
	g.Expect(patches).To(Equal(2), "one write for the 50")
	g.Expect(status().MatchedImages).To(BeEquivalentTo(50))
	g.Expect(status().VerifiedImages).To(BeEquivalentTo(50))

	// A condition that changes is not held back by the interval.
	p2 := &sigwatchv1alpha1.ImageSignaturePolicy{}
	g.Expect(e.c.Get(ctx, req.NamespacedName, p2)).To(Succeed())
	p2.Spec.Authorities[0].Key.PublicKey = "not a key"
	p2.Generation++
	g.Expect(e.c.Update(ctx, p2)).To(Succeed())
	e.policies.tally.set(types.NamespacedName{Namespace: "ns", Name: "late"}, results(p.Name, "Failed"))
	reconcile()
	g.Expect(patches).To(Equal(3))
	g.Expect(status().MatchedImages).To(BeEquivalentTo(51), "the counts go with it")
	g.Expect(countsWriteDelay(time.Time{}, e.clock.Now(), time.Second)).To(BeZero(), "never written: at once")
}

// The tally's event handler counts SignedImages in on creation, moves them on update and out on
// deletion, and enqueues only the policies whose counts changed.
func TestPolicyTallyHandler(t *testing.T) {
	g := NewWithT(t)
	tl := newPolicyTally()
	h := tl.handler()
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	drain := func() []string {
		var names []string
		for q.Len() > 0 {
			req, _ := q.Get()
			names = append(names, req.Name)
			q.Done(req)
			q.Forget(req)
		}
		slices.Sort(names)
		return names
	}
	si := func(pairs ...string) *sigwatchv1alpha1.SignedImage {
		return &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"},
			Status: sigwatchv1alpha1.SignedImageStatus{Policies: results(pairs...)}}
	}
	ctx := context.Background()

	h.Create(ctx, event.CreateEvent{Object: si("p", "Verified")}, q)
	g.Expect(drain()).To(Equal([]string{"p"}))
	h.Update(ctx, event.UpdateEvent{ObjectOld: si("p", "Verified"), ObjectNew: si("p", "Verified")}, q)
	g.Expect(drain()).To(BeEmpty(), "a status write that changes no result enqueues nothing")
	h.Update(ctx, event.UpdateEvent{ObjectOld: si("p", "Verified"), ObjectNew: si("p", "Failed", "q", "Verified")}, q)
	g.Expect(drain()).To(Equal([]string{"p", "q"}))
	g.Expect(tl.of("p")).To(Equal(policyCounts{Matched: 1, Failed: 1}))
	// A deletion the informer saw late (its last state unknown) still counts the image out.
	h.Delete(ctx, event.DeleteEvent{Object: si(), DeleteStateUnknown: true}, q)
	g.Expect(drain()).To(Equal([]string{"p", "q"}))
	g.Expect(tl.counts).To(BeEmpty())
}
