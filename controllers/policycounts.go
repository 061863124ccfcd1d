package controllers

import (
	"context"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// policyCounts are a policy's image counts, as its status shows them.
type policyCounts struct {
	Matched, Verified, Failed, Unknown, Exempt int32
}

// policyEntry is what one SignedImage contributes to the counts: a policy and its result.
type policyEntry struct {
	policy string
	result sigwatchv1alpha1.PolicyResultType
}

// policyTally keeps every policy's image counts as SignedImages come, change and go, fed by the
// SignedImage informer's events: a change costs the size of the one SignedImage's policy list, not a
// recount of every SignedImage of the policy (which, repeated for each of n status writes, is O(n²)).
type policyTally struct {
	mu     sync.Mutex
	byItem map[types.NamespacedName][]policyEntry
	counts map[string]policyCounts
}

func newPolicyTally() *policyTally {
	return &policyTally{byItem: map[types.NamespacedName][]policyEntry{}, counts: map[string]policyCounts{}}
}

// entriesOf is what a SignedImage contributes.
func entriesOf(results []sigwatchv1alpha1.PolicyResult) []policyEntry {
	if len(results) == 0 {
		return nil
	}
	out := make([]policyEntry, 0, len(results))
	for _, r := range results {
		out = append(out, policyEntry{policy: r.Name, result: r.Result})
	}
	return out
}

// set records what the SignedImage key contributes now (nil: nothing, as when it is gone) and returns
// the policies whose counts changed.
func (t *policyTally) set(key types.NamespacedName, results []sigwatchv1alpha1.PolicyResult) []string {
	entries := entriesOf(results)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byItem[key]
	if slices.Equal(old, entries) {
		return nil
	}
	var changed []string
	note := func(name string) {
		if !slices.Contains(changed, name) {
			changed = append(changed, name)
		}
	}
	for _, e := range old {
		t.add(e, -1)
		note(e.policy)
	}
	for _, e := range entries {
		t.add(e, 1)
		note(e.policy)
	}
	if entries == nil {
		delete(t.byItem, key)
	} else {
		t.byItem[key] = entries
	}
	return changed
}

// add counts one entry in (+1) or out (-1). The caller holds t.mu.
func (t *policyTally) add(e policyEntry, n int32) {
	c := t.counts[e.policy]
	c.Matched += n
	switch e.result {
	case sigwatchv1alpha1.PolicyVerified:
		c.Verified += n
	case sigwatchv1alpha1.PolicyFailed:
		c.Failed += n
	case sigwatchv1alpha1.PolicyUnknown:
		c.Unknown += n
	case sigwatchv1alpha1.PolicyExempt:
		c.Exempt += n
	}
	if c == (policyCounts{}) {
		delete(t.counts, e.policy)
		return
	}
	t.counts[e.policy] = c
}

// of returns a policy's counts.
func (t *policyTally) of(policy string) policyCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[policy]
}

// handler keeps the tally from SignedImage events and enqueues the policies whose counts changed: a
// SignedImage status write that changes no result enqueues nothing.
func (t *policyTally) handler() handler.EventHandler {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], names []string) {
		for _, n := range names {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: n}})
		}
	}
	results := func(o client.Object) []sigwatchv1alpha1.PolicyResult {
		if si, ok := o.(*sigwatchv1alpha1.SignedImage); ok {
			return si.Status.Policies
		}
		return nil
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, t.set(client.ObjectKeyFromObject(e.Object), results(e.Object)))
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, t.set(client.ObjectKeyFromObject(e.ObjectNew), results(e.ObjectNew)))
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, t.set(client.ObjectKeyFromObject(e.Object), nil))
		},
	}
}
