package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// SignedImageReconciler verifies the digest of each SignedImage against the policies that cover it, keeps
// the verdict current, records the workloads that run it, and deletes managed SignedImages that nothing
// runs any more.
type SignedImageReconciler struct {
	Client   client.Client
	Engine   *verification.Engine
	Policies *PolicyStore
	Recorder events.EventRecorder
	Metrics  *Metrics
	Clock    clock.PassiveClock
	// Keychains returns the registry credentials of the pods that run an image (nil: anonymous).
	Keychains *PullSecrets

	// GCGrace is how long a managed SignedImage may stay unused before it is deleted.
	GCGrace time.Duration
	// NoMatch says what an image that no policy covers gets.
	NoMatch NoMatchPolicy
	// MaxConcurrent bounds the verifications in flight.
	MaxConcurrent int
	// IntervalOverride, when set, replaces the policies' reverifyInterval (tests only).
	IntervalOverride time.Duration
	// MinRetry is the first delay after a transient failure (default 10s).
	MinRetry time.Duration

	rndMu sync.Mutex
	rnd   *rand.Rand
}

// SetupWithManager registers the controller and its watches.
func (r *SignedImageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.MinRetry <= 0 {
		r.MinRetry = 10 * time.Second
	}
	r.rnd = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5157))
	return ctrl.NewControllerManagedBy(mgr).
		For(&sigwatchv1alpha1.SignedImage{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(signedImagesOfPod), builder.WithPredicates(podImagesChanged())).
		Watches(&sigwatchv1alpha1.ImageSignaturePolicy{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfPolicy),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfReference("ConfigMap"))).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfReference("Secret"))).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrent)}).
		Named("signedimage").
		Complete(r)
}

// +kubebuilder:rbac:groups=sigwatch.dev,resources=signedimages,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=sigwatch.dev,resources=signedimages/status,verbs=get;update;patch

// Reconcile gathers the pods, namespace and policies of a SignedImage, verifies it when due, and writes
// the status in one patch.
func (r *SignedImageReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)
	si := &sigwatchv1alpha1.SignedImage{}
	if err := r.Client.Get(ctx, req.NamespacedName, si); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !si.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	before := si.DeepCopy()
	var pods []corev1.Pod
	defer func() {
		if equalStatus(before.Status, si.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, si, client.MergeFrom(before)); err != nil {
			if !apierrors.IsNotFound(err) {
				retErr = fmt.Errorf("patching the status of SignedImage %s: %w", klog.KObj(si), err)
			}
			return
		}
		// Events follow the status that was written: a failed patch is retried, and announced then, once.
		r.emitEvents(ctx, si, meta.FindStatusCondition(before.Status.Conditions, sigwatchv1alpha1.VerifiedCondition), pods)
	}()

	img := imageref.Image{Repository: si.Spec.Image, Digest: si.Spec.Digest}
	si.Status.Summary.ShortDigest = strings.TrimPrefix(si.Spec.Digest, "sha256:")[:12]

	// 1. Who runs it.
	var err error
	pods, err = r.runningPods(ctx, si)
	if err != nil {
		return ctrl.Result{}, err
	}
	si.Status.Workloads = workloadsOf(ctx, r.Client, pods, img)
	si.Status.Summary.Workloads = workloadSummary(si.Status.Workloads)
	managed := si.Labels[sigwatchv1alpha1.ManagedByLabel] == sigwatchv1alpha1.ManagedByValue
	switch {
	case len(pods) > 0:
		si.Status.UnusedSince = nil
	case !managed:
	case si.Status.UnusedSince == nil:
		si.Status.UnusedSince = &metav1.Time{Time: now}
	case now.Sub(si.Status.UnusedSince.Time) >= r.GCGrace:
		logger.Info("deleting SignedImage that no pod runs any more", "unusedSince", si.Status.UnusedSince.Time)
		before.Status = si.Status // nothing to patch
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, si, client.Preconditions{UID: &si.UID}))
	}

	// 2. Which policies cover it.
	matched, compiled, err := r.matchingPolicies(ctx, si)
	if err != nil {
		return ctrl.Result{}, err
	}
	interval := policy.DefaultReverifyInterval
	if r.IntervalOverride > 0 {
		interval = r.IntervalOverride
		for i := range matched {
			matched[i].interval = r.IntervalOverride
		}
	}

	// 3. Verify when due.
	if verificationDue(si, matched, now) {
		vctx := ctx
		if r.Keychains != nil {
			kc, id := r.Keychains.For(ctx, si.Namespace, pods)
			vctx = registry.WithKeychain(ctx, kc, id)
		}
		fresh := si.Annotations[sigwatchv1alpha1.ReverifyAnnotation] != si.Status.LastHandledReverify
		start := time.Now()
		res := r.Engine.Verify(vctx, verification.Request{Image: img, Policies: compiled, Fresh: fresh})
		r.Metrics.observeVerification(res, time.Since(start))
		prevVerified := meta.FindStatusCondition(before.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		v := applyResult(&si.Status, res, matched, now)
		setConditions(&si.Status, v, si.Generation, r.NoMatch)
		si.Status.ObservedGeneration = si.Generation
		si.Status.LastHandledReverify = si.Annotations[sigwatchv1alpha1.ReverifyAnnotation]
		si.Status.Summary.Policies = policySummary(si.Status.Policies)

		wait := nextInterval(matched, interval, r.random())
		if v.status == metav1.ConditionUnknown && transientReasons[v.reason] {
			since := now
			if prevVerified != nil && prevVerified.Status == metav1.ConditionUnknown && transientReasons[prevVerified.Reason] {
				since = prevVerified.LastTransitionTime.Time
			}
			wait = retryAfter(since, now, r.MinRetry, interval)
		}
		si.Status.NextVerificationTime = &metav1.Time{Time: now.Add(wait)}
		logger.V(1).Info("verified", "image", img.String(), "verified", v.status, "reason", v.reason, "cached", res.Cached, "next", wait)
	}

	// 4. Come back for the next verification or the garbage collection.
	next := si.Status.NextVerificationTime.Time.Sub(now)
	if si.Status.UnusedSince != nil {
		next = min(next, si.Status.UnusedSince.Add(r.GCGrace).Sub(now))
	}
	return ctrl.Result{RequeueAfter: max(next, time.Second)}, nil
}

func (r *SignedImageReconciler) random() *rand.Rand {
	r.rndMu.Lock()
	defer r.rndMu.Unlock()
	return rand.New(rand.NewPCG(r.rnd.Uint64(), r.rnd.Uint64()))
}

// runningPods lists the pods of the namespace that run the digest now.
func (r *SignedImageReconciler) runningPods(ctx context.Context, si *sigwatchv1alpha1.SignedImage) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(si.Namespace), client.MatchingFields{indexPodSignedImages: si.Name}); err != nil {
		return nil, fmt.Errorf("listing the pods of SignedImage %s: %w", klog.KObj(si), err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if podRunning(&p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// matchingPolicies returns the policies that cover the image in its namespace: their fingerprints for
// every one, and the compiled ones for the engine. A policy that does not compile, or whose trust root
// cannot be loaded, is reported Unknown rather than dropped.
func (r *SignedImageReconciler) matchingPolicies(ctx context.Context, si *sigwatchv1alpha1.SignedImage) ([]matchedPolicy, []*policy.Policy, error) {
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, types.NamespacedName{Name: si.Namespace}, &ns); err != nil {
		return nil, nil, fmt.Errorf("reading namespace %s: %w", si.Namespace, err)
	}
	var list sigwatchv1alpha1.ImageSignaturePolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, nil, fmt.Errorf("listing ImageSignaturePolicies: %w", err)
	}
	var matched []matchedPolicy
	var compiled []*policy.Policy
	for i := range list.Items {
		p := &list.Items[i]
		if !p.DeletionTimestamp.IsZero() || !specMatches(p, si.Spec.Image, labels.Set(ns.Labels)) {
			continue
		}
		cp, err := r.Policies.Compile(ctx, p)
		if err != nil {
			matched = append(matched, matchedPolicy{name: p.Name, fingerprint: fingerprint("error", fmt.Sprint(p.Generation), err.Error()),
				errReason: sigwatchv1alpha1.VerificationErrorReason, errMessage: "the policy is not ready: " + policyErrorMessage(err)})
			continue
		}
		root, err := r.Policies.Root(ctx, cp)
		if err != nil {
			matched = append(matched, matchedPolicy{name: p.Name, fingerprint: fingerprint("root-error", cp.Hash, err.Error()),
				errReason: sigwatchv1alpha1.TrustedRootUnavailableReason, errMessage: err.Error()})
			continue
		}
		matched = append(matched, matchedPolicy{name: p.Name, fingerprint: fingerprint(cp.Hash, root.Version), interval: cp.ReverifyInterval})
		compiled = append(compiled, cp)
	}
	return matched, compiled, nil
}

// emitEvents records a transition of Verified: one Event on the SignedImage, and a Warning on every pod
// that runs the digest when it is no longer verified.
func (r *SignedImageReconciler) emitEvents(ctx context.Context, si *sigwatchv1alpha1.SignedImage, before *metav1.Condition, pods []corev1.Pod) {
	after := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
	if !transition(before, after) {
		return
	}
	if after.Reason == sigwatchv1alpha1.NoMatchingPolicyReason && r.NoMatch == NoMatchIgnore {
		return
	}
	eventType, reason := eventReasonFor(after)
	note := oneLine(after.Reason, after.Message)
	r.Recorder.Eventf(si, nil, eventType, reason, "Verify", "%s", note)
	if eventType != corev1.EventTypeWarning {
		return
	}
	for i := range pods {
		r.Recorder.Eventf(&pods[i], si, eventType, reason, "Verify", "image %s@%s: %s", si.Spec.Image, si.Status.Summary.ShortDigest, note)
	}
	log.FromContext(ctx).Info("verification changed", "verified", after.Status, "reason", after.Reason)
}

// signedImagesOfPolicy maps a policy to the SignedImages it covered (status) or covers now (globs).
func (r *SignedImageReconciler) signedImagesOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	p, ok := o.(*sigwatchv1alpha1.ImageSignaturePolicy)
	if !ok {
		return nil
	}
	seen := map[types.NamespacedName]bool{}
	var reqs []reconcile.Request
	add := func(si *sigwatchv1alpha1.SignedImage) {
		nn := types.NamespacedName{Namespace: si.Namespace, Name: si.Name}
		if !seen[nn] {
			seen[nn] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: nn})
		}
	}
	var covered sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &covered, client.MatchingFields{indexSignedImagePolicies: p.Name}); err == nil {
		for i := range covered.Items {
			add(&covered.Items[i])
		}
	}
	var all sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &all); err == nil {
		for i := range all.Items {
			si := &all.Items[i]
			if specMatches(&sigwatchv1alpha1.ImageSignaturePolicy{Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: p.Spec.Images}}, si.Spec.Image, nil) {
				add(si)
			}
		}
	}
	return reqs
}

// signedImagesOfReference maps a ConfigMap or Secret to the SignedImages of the policies that read it.
func (r *SignedImageReconciler) signedImagesOfReference(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		policies := policiesReferencing(ctx, r.Client, kind, o)
		for i := range policies {
			reqs = append(reqs, r.signedImagesOfPolicy(ctx, &policies[i])...)
		}
		return reqs
	}
}

// podImagesChanged lets through pod creations and deletions, and updates that change what runs (image,
// imageID), where it runs from (owners) or whether it runs (phase, deletion).
func podImagesChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldPod, ok1 := e.ObjectOld.(*corev1.Pod)
			newPod, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 {
				return true
			}
			return podFingerprint(oldPod) != podFingerprint(newPod)
		},
	}
}

func podFingerprint(p *corev1.Pod) string {
	var b strings.Builder
	for _, ri := range podImages(p) {
		fmt.Fprintf(&b, "%s=%s;", ri.Image, strings.Join(ri.Containers, ","))
	}
	for _, o := range p.OwnerReferences {
		fmt.Fprintf(&b, "o:%s/%s;", o.Kind, o.Name)
	}
	fmt.Fprintf(&b, "running:%t", podRunning(p))
	return b.String()
}

func policySummary(ps []sigwatchv1alpha1.PolicyResult) string {
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

func workloadSummary(ws []sigwatchv1alpha1.WorkloadReference) string {
	names := make([]string, 0, len(ws))
	for _, w := range ws {
		names = append(names, w.Kind+"/"+w.Name)
	}
	return truncate(strings.Join(names, ","), 256)
}

func equalStatus(a, b sigwatchv1alpha1.SignedImageStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// sortedWorkloads orders workloads by kind and name.
func sortedWorkloads(ws []sigwatchv1alpha1.WorkloadReference) []sigwatchv1alpha1.WorkloadReference {
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].Kind != ws[j].Kind {
			return ws[i].Kind < ws[j].Kind
		}
		return ws[i].Name < ws[j].Name
	})
	return ws
}

// policyErrorMessage says what is wrong with a policy without repeating its name.
func policyErrorMessage(err error) string {
	var perr *policy.Error
	if errors.As(err, &perr) {
		return fmt.Sprintf("%s: %v", perr.Field, perr.Err)
	}
	return err.Error()
}
