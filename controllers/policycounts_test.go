package controllers

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

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
