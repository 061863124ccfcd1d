package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/revocation"
)

// +kubebuilder:rbac:groups=sigwatch.dev,resources=signaturerevocations,verbs=get;list;watch

// revocationCache keeps the compiled SignatureRevocations, by UID and generation: the regular
// expressions and keys of a revocation are compiled once, not on every visit of every image.
type revocationCache struct {
	mu       sync.Mutex
	compiled map[types.UID]*revocation.Revocation
}

// set returns the revocations of list, compiled (what compiles of each: see revocation.Compile).
func (c *revocationCache) set(list []sigwatchv1alpha1.SignatureRevocation) *revocation.Set {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.compiled == nil {
		c.compiled = map[types.UID]*revocation.Revocation{}
	}
	seen := make(map[types.UID]bool, len(list))
	revs := make([]*revocation.Revocation, 0, len(list))
	for i := range list {
		x := &list[i]
		if !x.DeletionTimestamp.IsZero() {
			continue
		}
		seen[x.UID] = true
		r, ok := c.compiled[x.UID]
		if !ok || r.Generation != x.Generation || r.Name != x.Name {
			r, _ = revocation.Compile(x) // what does not compile is reported by the revocation's status
			c.compiled[x.UID] = r
		}
		revs = append(revs, r)
	}
	for uid := range c.compiled {
		if !seen[uid] {
			delete(c.compiled, uid)
		}
	}
	return revocation.NewSet(revs...)
}

// revocations are the SignatureRevocations in force.
func (r *SignedImageReconciler) revocations(ctx context.Context) (*revocation.Set, error) {
	var list sigwatchv1alpha1.SignatureRevocationList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing SignatureRevocations: %w", err)
	}
	return r.compiledRevocations.set(list.Items), nil
}

// markRejudge notes that the SignedImage is to be judged again at its next visit, from the registry
// state last read (a revocation changed, not the registry).
func (r *SignedImageReconciler) markRejudge(nn types.NamespacedName) {
	r.rejudgeMu.Lock()
	defer r.rejudgeMu.Unlock()
	if r.rejudge == nil {
		r.rejudge = map[types.NamespacedName]bool{}
	}
	r.rejudge[nn] = true
}

// takeRejudge reports whether the SignedImage was marked, and forgets it.
func (r *SignedImageReconciler) takeRejudge(nn types.NamespacedName) bool {
	r.rejudgeMu.Lock()
	defer r.rejudgeMu.Unlock()
	marked := r.rejudge[nn]
	delete(r.rejudge, nn)
	return marked
}

// signedImagesOfRevocation maps a SignatureRevocation that was created, edited or deleted to the
// SignedImages it may change, marked to be judged again from the registry state last read: those it
// revoked a signature or attestation of (status), and those with a signature whose signer or digest an
// entry matches whatever the time, or a policy with attestations, or more signatures than the status
// lists (any of those may now be revoked).
func (r *SignedImageReconciler) signedImagesOfRevocation(ctx context.Context, o client.Object) []reconcile.Request {
	x, ok := o.(*sigwatchv1alpha1.SignatureRevocation)
	if !ok {
		return nil
	}
	// First: a visit in flight that listed the revocations before this change judges again when it ends.
	r.revocationEpoch.Add(1)
	compiled, _ := revocation.Compile(x)
	set := revocation.NewSet(compiled)
	logger := log.FromContext(ctx).WithValues("signatureRevocation", klog.KObj(x))
	attesting, err := policiesWithAttestations(ctx, r.Client)
	if err != nil {
		logger.Error(err, "listing ImageSignaturePolicies: every image that a policy covers is judged again")
		attesting = nil
	}
	all, err := r.ownedSignedImages(ctx)
	if err != nil {
		logger.Error(err, "listing SignedImages: those a revocation changed are judged again at their next verification")
		return nil
	}
	recent := r.written.since(r.Clock.Now(), recentWrite)
	var reqs []reconcile.Request
	for i := range all {
		si := &all[i]
		if recent[types.NamespacedName{Namespace: si.Namespace, Name: si.Name}] || mayRevoke(si, x.Name, set, attesting) {
			nn := types.NamespacedName{Namespace: si.Namespace, Name: si.Name}
			r.markRejudge(nn)
			reqs = append(reqs, reconcile.Request{NamespacedName: nn})
		}
	}
	return reqs
}

// mayRevoke reports whether the revocation name (compiled as set) may change the verdict on si. One with
// no verdict yet may: its status (in the cache, perhaps behind what was written) says nothing of its
// signatures.
func mayRevoke(si *sigwatchv1alpha1.SignedImage, name string, set *revocation.Set, attesting map[string]bool) bool {
	if slices.Contains(revocationsOf(si), name) || len(si.Status.Signatures) >= maxListedSignatures || len(si.Status.Attestations) >= maxListedSignatures ||
		meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition) == nil {
		return true
	}
	for _, s := range append(slices.Clone(si.Status.Signatures), si.Status.Attestations...) {
		if set.MaySigner(revocation.FromStatus(si.Spec.Digest, s)) {
			return true
		}
	}
	if attesting == nil { // not known: any policy may require attestations
		return len(si.Status.Policies) > 0
	}
	return slices.ContainsFunc(si.Status.Policies, func(p sigwatchv1alpha1.PolicyResult) bool { return attesting[p.Name] })
}

// revocationsOf are the SignatureRevocations a SignedImage's status says revoked something of it.
func revocationsOf(si *sigwatchv1alpha1.SignedImage) []string {
	var out []string
	add := func(name string) {
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, s := range si.Status.Signatures {
		add(s.Revocation)
	}
	for _, s := range si.Status.Attestations {
		add(s.Revocation)
	}
	for _, p := range si.Status.Policies {
		add(p.Revocation)
	}
	return out
}

// policiesWithAttestations are the names of the policies that require attestations.
func policiesWithAttestations(ctx context.Context, c client.Reader) (map[string]bool, error) {
	var list sigwatchv1alpha1.ImageSignaturePolicyList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range list.Items {
		if len(p.Spec.Attestations) > 0 {
			out[p.Name] = true
		}
	}
	return out, nil
}

// keepSchedule undoes, after a judgment again from the last registry state (a revocation changed), what
// a verification would change of the schedule: when it was last attempted and when it is next due, and,
// when the image was verified before and still is, when it was last verified (the next verification
// comes sooner only when a signature expires before it, changesAt). An image the revocation
// does not change then has nothing to write.
func keepSchedule(st *sigwatchv1alpha1.SignedImageStatus, before sigwatchv1alpha1.SignedImageStatus, now metav1.ConditionStatus, changesAt *time.Time) {
	st.LastAttemptTime = before.LastAttemptTime
	if before.NextVerificationTime != nil && (changesAt == nil || !changesAt.Before(before.NextVerificationTime.Time)) {
		st.NextVerificationTime = before.NextVerificationTime
	}
	prev := meta.FindStatusCondition(before.Conditions, sigwatchv1alpha1.VerifiedCondition)
	if prev != nil && prev.Status == metav1.ConditionTrue && now == metav1.ConditionTrue {
		st.LastVerifiedTime = before.LastVerifiedTime
	}
}
