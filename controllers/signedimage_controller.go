package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
	"github.com/sigwatch/sigwatch/internal/revocation"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// SignedImageReconciler verifies the digest of each SignedImage against the policies that cover it, keeps
// the verdict current, records the workloads that run it, and deletes managed SignedImages that nothing
// runs any more.
type SignedImageReconciler struct {
	Client client.Client
	// Verifier decides verdicts (the verification engine).
	Verifier Verifier
	// Policies compiles the policies and loads their trust roots (PolicyStore).
	Policies PolicyResolver
	// Credentials returns the registry credentials of the pods that run an image (nil: the registry
	// client's own keychain).
	Credentials CredentialSource
	Recorder    events.EventRecorder
	Metrics     *Metrics
	Clock       clock.PassiveClock

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
	// Owns says which namespaces are this replica's (nil: all).
	Owns func(namespace string) bool
	// SecretAccess is the manager's Secret access: with none, Secrets are not watched.
	SecretAccess SecretAccess

	rndMu sync.Mutex
	rnd   *rand.Rand

	compiledRevocations revocationCache
	// rejudge are the SignedImages to judge again from the registry state last read (signedImagesOfRevocation).
	rejudgeMu sync.Mutex
	rejudge   map[types.NamespacedName]bool
	// revocationEpoch counts the revocation changes seen: a visit that listed the revocations before the
	// last change judges again.
	revocationEpoch atomic.Uint64
	// written are the SignedImages whose status was written in the last recentWrite: the cache may not
	// show that status yet, so a revocation change judges them again whatever it shows.
	written writeTimes[types.NamespacedName]
}

// recentWrite is how long after a status write the cache may still show the status before it.
const recentWrite = 10 * time.Second

// rejudgeSoon is how soon a visit that missed a revocation change comes back.
const rejudgeSoon = 100 * time.Millisecond

// SetupWithManager registers the controller and its watches.
func (r *SignedImageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.defaults()
	return ctrl.NewControllerManagedBy(mgr).
		For(&sigwatchv1alpha1.SignedImage{}, builder.WithPredicates(inShard(r.Owns), predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfPod), builder.WithPredicates(inShard(r.Owns), podImagesChanged())).
		Watches(&sigwatchv1alpha1.ImageSignaturePolicy{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfPolicy),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&sigwatchv1alpha1.ImageSignatureExemption{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfExemption),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&sigwatchv1alpha1.SignatureRevocation{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfRevocation),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfNamespace),
			builder.WithPredicates(inShard(r.Owns), predicate.LabelChangedPredicate{})).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfReference("ConfigMap"))).
		WatchesRawSource(secretMetadataSource(mgr.GetCache(), r.SecretAccess, handler.EnqueueRequestsFromMapFunc(r.signedImagesOfReference("Secret")))).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrent)}).
		Named("signedimage").
		Complete(r)
}

func (r *SignedImageReconciler) defaults() {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.MinRetry <= 0 {
		r.MinRetry = 10 * time.Second
	}
}

// +kubebuilder:rbac:groups=sigwatch.dev,resources=signedimages,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=sigwatch.dev,resources=signedimages/status,verbs=get;update;patch

// visit is what one reconcile of a SignedImage gathers and decides.
type visit struct {
	si, before *sigwatchv1alpha1.SignedImage
	now        time.Time
	pods       []corev1.Pod
	// matched are the policies that cover the image; ready the compiled ones among them, for the verifier.
	matched []matchedPolicy
	ready   []*policy.Policy
	// deleted: the garbage collector deleted the SignedImage; nothing is written.
	deleted bool
	// deferred: the verification was put off (a registry host had all it may have in flight); the visit
	// comes back after this delay instead of at the next verification.
	deferred time.Duration
	// exemptUntil is when the first exemption that applies to the image expires (zero: none expires).
	exemptUntil time.Time
	// indexes are the image indexes the pods' specs pin (pinnedIndexes).
	indexes []string
	// revocations are the SignatureRevocations in force, listed when revocationEpoch was epoch; rejudged:
	// the visit took a rejudge mark.
	revocations *revocation.Set
	epoch       uint64
	rejudged    bool
	// judged: the visit judged the image (with revocations).
	judged bool
}

// step is one stage of a visit; done ends the visit early.
type step func(ctx context.Context, v *visit) (done bool, err error)

// Reconcile runs the steps of a visit in order (who runs the image, garbage collection, which policies
// cover it, verification when due) and writes the status in one patch; the result schedules the next
// visit.
func (r *SignedImageReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	si := &sigwatchv1alpha1.SignedImage{}
	if err := r.Client.Get(ctx, req.NamespacedName, si); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !si.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	v := &visit{si: si, before: si.DeepCopy(), now: r.Clock.Now()}
	defer func() {
		retry, err := r.writeStatus(ctx, v)
		retErr = errors.Join(retErr, err)
		if retErr == nil && retry > 0 && (result.RequeueAfter == 0 || retry < result.RequeueAfter) {
			result.RequeueAfter = retry
		}
		// A revocation that changed while the visit ran (after it listed them), or a judgment again
		// whose status was not written, is judged again at once: a change is never left for the next
		// verification.
		missed := v.judged && r.revocationEpoch.Load() != v.epoch
		if !v.deleted && (missed || (v.rejudged && (retErr != nil || retry > 0))) {
			r.markRejudge(req.NamespacedName)
			if retErr == nil && (result.RequeueAfter == 0 || result.RequeueAfter > rejudgeSoon) {
				result.RequeueAfter = rejudgeSoon
			}
		}
	}()
	for _, s := range []step{r.gatherWorkloads, r.collectGarbage, r.matchPolicies, r.verifyWhenDue} {
		done, err := s(ctx, v)
		if err != nil {
			return ctrl.Result{}, err
		}
		if done {
			return ctrl.Result{}, nil
		}
	}
	if v.deferred > 0 {
		return ctrl.Result{RequeueAfter: v.deferred}, nil
	}
	return ctrl.Result{RequeueAfter: nextVisit(si.Status, v.now, r.GCGrace)}, nil
}

// writeStatus patches the status when the visit changed it, then announces a change of Verified. Events
// follow the status that was written: a failed patch is retried (soon after a conflict), and announced
// then, once; a patch the API server refuses is loud (see statusPatchFailed).
func (r *SignedImageReconciler) writeStatus(ctx context.Context, v *visit) (retry time.Duration, err error) {
	if v.deleted {
		return 0, nil
	}
	if equalStatus(v.before.Status, v.si.Status) {
		return 0, r.writeVerifiedLabel(ctx, v.si)
	}
	// Against the resourceVersion the visit read: if the cache lags behind what the API server holds
	// (a patch committed whose answer was lost), the patch conflicts and the next visit starts from what
	// was written, so a transition is never announced twice.
	if err := r.Client.Status().Patch(ctx, v.si, client.MergeFromWithOptions(v.before, client.MergeFromWithOptimisticLock{})); err != nil {
		return statusPatchFailed(ctx, r.Recorder, r.Metrics, "SignedImage", v.si, err)
	}
	r.written.wrote(types.NamespacedName{Namespace: v.si.Namespace, Name: v.si.Name}, r.Clock.Now())
	r.emitEvents(ctx, v.si, v.before.Status.Conditions, v.pods)
	r.emitLogEvents(v.si, v.before.Status.Conditions)
	return 0, r.writeVerifiedLabel(ctx, v.si)
}

// writeVerifiedLabel makes the sigwatch.dev/verified label repeat the Verified condition that was
// written, so that `kubectl get si -l sigwatch.dev/verified=false` filters on the server. It is patched
// only when it differs: once per transition (and once for a SignedImage written before the label
// existed). A failure is returned, so the visit is retried.
func (r *SignedImageReconciler) writeVerifiedLabel(ctx context.Context, si *sigwatchv1alpha1.SignedImage) error {
	want := verifiedLabelValue(meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition))
	if want == "" || si.Labels[sigwatchv1alpha1.VerifiedLabel] == want {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, sigwatchv1alpha1.VerifiedLabel, want)
	if err := r.Client.Patch(ctx, si, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("labelling SignedImage %s %s=%s: %w", klog.KObj(si), sigwatchv1alpha1.VerifiedLabel, want, err))
	}
	return nil
}

// gatherWorkloads finds the pods that run the digest and their workloads.
func (r *SignedImageReconciler) gatherWorkloads(ctx context.Context, v *visit) (bool, error) {
	si := v.si
	si.Status.Summary.ShortDigest = strings.TrimPrefix(si.Spec.Digest, "sha256:")[:12]
	pods, err := r.runningPods(ctx, si)
	if err != nil {
		return false, err
	}
	v.pods = pods
	v.indexes = pinnedIndexes(pods, imageOf(si))
	si.Status.Workloads = workloadsOf(ctx, r.Client, pods, imageOf(si))
	si.Status.Summary.Workloads = workloadSummary(si.Status.Workloads)
	return false, nil
}

// collectGarbage deletes a managed SignedImage that no pod has run for GCGrace.
func (r *SignedImageReconciler) collectGarbage(ctx context.Context, v *visit) (bool, error) {
	si := v.si
	managed := si.Labels[sigwatchv1alpha1.ManagedByLabel] == sigwatchv1alpha1.ManagedByValue
	unusedSince, del := gcDecision(managed, len(v.pods) > 0, si.Status.UnusedSince, v.now, r.GCGrace)
	si.Status.UnusedSince = unusedSince
	if !del {
		return false, nil
	}
	log.FromContext(ctx).Info("deleting SignedImage that no pod runs any more", "unusedSince", unusedSince.Time)
	v.deleted = true
	return true, client.IgnoreNotFound(r.Client.Delete(ctx, si, client.Preconditions{UID: &si.UID}))
}

// matchPolicies finds the policies that cover the image in its namespace, with their fingerprints, and
// the ready ones for the verifier. A policy that is not ready is reported (PolicyNotReady), never dropped;
// one whose inputs could not be read just now is a transient Unknown (VerificationError), retried.
func (r *SignedImageReconciler) matchPolicies(ctx context.Context, v *visit) (bool, error) {
	si := v.si
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, types.NamespacedName{Name: si.Namespace}, &ns); err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", si.Namespace, err)
	}
	var list sigwatchv1alpha1.ImageSignaturePolicyList
	if err := r.Client.List(ctx, &list); err != nil {
		return false, fmt.Errorf("listing ImageSignaturePolicies: %w", err)
	}
	exemptions, err := r.exemptions(ctx)
	if err != nil {
		return false, err
	}
	var covering []string
	for i := range list.Items {
		p := &list.Items[i]
		if !p.DeletionTimestamp.IsZero() || !policy.Covers(p, si.Spec.Image, labels.Set(ns.Labels)) {
			continue
		}
		rp, err := r.Policies.Resolve(ctx, p)
		if IsTransient(err) {
			log.FromContext(ctx).Info("could not read a policy's inputs; retrying", "imageSignaturePolicy", p.Name, "error", err.Error())
		}
		m := matchPolicy(p, rp, err, r.IntervalOverride)
		covering = append(covering, p.Name)
		if e, ok := policy.Exempting(exemptions, si.Namespace, imageOf(si), p.Name, v.now); ok {
			m = m.exempt(e)
		}
		v.matched = append(v.matched, m)
		if m.errReason == "" && m.exemption == nil {
			v.ready = append(v.ready, rp.Policy)
		}
	}
	v.exemptUntil = policy.NextExpiry(exemptions, si.Namespace, imageOf(si), covering, v.now)
	v.epoch = r.revocationEpoch.Load()
	if v.revocations, err = r.revocations(ctx); err != nil {
		return false, err
	}
	return false, nil
}

// +kubebuilder:rbac:groups=sigwatch.dev,resources=imagesignatureexemptions,verbs=get;list;watch

// exemptions are the ImageSignatureExemptions of the cluster, expired ones included (they are skipped
// when applied, at the moment they expire).
func (r *SignedImageReconciler) exemptions(ctx context.Context) ([]policy.Exemption, error) {
	var list sigwatchv1alpha1.ImageSignatureExemptionList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing ImageSignatureExemptions: %w", err)
	}
	out := make([]policy.Exemption, 0, len(list.Items))
	for i := range list.Items {
		if x := &list.Items[i]; x.DeletionTimestamp.IsZero() {
			out = append(out, policy.ExemptionOf(x))
		}
	}
	return out, nil
}

// verifyWhenDue asks the verifier for a verdict when one is due, writes it, and schedules the next one.
// A verification the verifier defers (a registry host it reads is busy) changes nothing in the status:
// the last verdict stands, and the visit comes back in a few seconds.
func (r *SignedImageReconciler) verifyWhenDue(ctx context.Context, v *visit) (bool, error) {
	si := v.si
	// A revocation that changed is applied at once, from the registry state last read (rejudge): the
	// verification schedule stays as it was. The pinned indexes can change the verdict of an unsigned
	// platform digest: a new one is looked at now.
	rejudge := r.takeRejudge(types.NamespacedName{Namespace: si.Namespace, Name: si.Name})
	v.rejudged = rejudge
	due := verificationDue(si, v.matched, v.now) || !slices.Equal(v.indexes, si.Status.IndexDigests)
	if !due && !rejudge {
		return false, nil
	}
	v.judged = true
	req := verification.Request{Image: imageOf(si), Policies: v.ready, Indexes: v.indexes,
		Fresh: reverifyToken(si) != si.Status.LastHandledReverify, Revocations: v.revocations, Reuse: !due}
	var res *verification.Result
	if len(req.Policies) == 0 && len(v.matched) > 0 {
		// Every policy that covers the image is exempt or not ready: nothing to read from the registry.
		res = &verification.Result{Image: req.Image, Time: v.now}
	}
	// A judgment again (Reuse) reads the pull secrets first: with them, the engine knows whether it needs
	// the registry at all, and takes a host slot (or defers) only then.
	if d, ok := r.Verifier.(deferrer); ok && res == nil && !req.Reuse {
		// Asked first, so that a visit that would be deferred reads no pull secrets.
		if why := d.Deferral(req); why != "" {
			res = &verification.Result{Image: req.Image, Deferred: why}
		}
	}
	if res == nil && r.Credentials != nil {
		creds, err := r.Credentials.For(ctx, si.Namespace, v.pods)
		if err != nil {
			// Without the pods' pull secrets the registry would say 401: could not verify, retried.
			// One the manager may not read is said as such (CredentialsForbidden), not as the registry's.
			reason, message := credentialsFailure(err)
			res = unknownFor(req, reason, message)
		}
		req.Credentials = creds
	}
	if res == nil {
		start := time.Now()
		res = r.Verifier.Verify(ctx, req)
		if res.Deferred == "" {
			r.Metrics.observeVerification(res, time.Since(start))
		}
	}
	if res.Deferred != "" {
		if rejudge {
			r.markRejudge(types.NamespacedName{Namespace: si.Namespace, Name: si.Name})
		}
		v.deferred = deferralDelay(r.random())
		r.Metrics.observeDeferred()
		log.FromContext(ctx).V(1).Info("verification deferred", "image", req.Image.String(), "why", res.Deferred, "retry", v.deferred)
		return false, nil
	}

	out := applyResult(&si.Status, res, v.matched, v.now)
	setConditions(&si.Status, out, si.Generation, r.NoMatch, v.now)
	setInclusionCondition(&si.Status, res, out, si.Generation, v.now)
	si.Status.ObservedGeneration = si.Generation
	si.Status.LastHandledReverify = reverifyToken(si)
	si.Status.IndexDigests = v.indexes
	si.Status.Summary.Policies = policySummary(si.Status.Policies)

	fallback := policy.DefaultReverifyInterval
	if r.IntervalOverride > 0 {
		fallback = r.IntervalOverride
	}
	interval := reverifyInterval(v.matched, fallback)
	wait := verificationDelay(v.before.Status, anyTransient(si.Status.Policies), jitter(interval, r.random()), r.MinRetry, interval)
	next := v.now.Add(wait)
	if !v.exemptUntil.IsZero() && v.exemptUntil.Before(next) {
		next = v.exemptUntil // the verdict changes the moment the exemption expires
	}
	if res.ChangesAt != nil && res.ChangesAt.Before(next) {
		next = *res.ChangesAt // the newest signature grows older than maxSignatureAge then
	}
	si.Status.NextVerificationTime = &metav1.Time{Time: next}
	if !due && !anyTransient(si.Status.Policies) {
		// A transient Unknown keeps the retry verificationDelay gave it.
		keepSchedule(&si.Status, v.before.Status, out.status, res.ChangesAt)
	}
	log.FromContext(ctx).V(1).Info("verified", "image", req.Image.String(), "verified", out.status, "reason", out.reason, "cached", res.Cached, "next", wait)
	return false, nil
}

// deferrer is a Verifier that may defer verifications (the engine), asked before a request is prepared.
type deferrer interface {
	// Deferral says why a verification of req would be deferred now, or "".
	Deferral(req verification.Request) string
}

var _ deferrer = (*verification.Engine)(nil)

// observeDeferred counts a deferred verification (not a verification: it has no verdict).
func (m *Metrics) observeDeferred() {
	if m == nil {
		return
	}
	m.deferred.Inc()
}

func imageOf(si *sigwatchv1alpha1.SignedImage) imageref.Image {
	return imageref.Image{Repository: si.Spec.Image, Digest: si.Spec.Digest}
}

func (r *SignedImageReconciler) random() *rand.Rand {
	r.rndMu.Lock()
	defer r.rndMu.Unlock()
	if r.rnd == nil {
		r.rnd = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5157))
	}
	return rand.New(rand.NewPCG(r.rnd.Uint64(), r.rnd.Uint64()))
}

// runningPods lists the pods of the namespace that run the digest of the spec now, found by that digest
// (never by the SignedImage's name, which says nothing about what it is about).
func (r *SignedImageReconciler) runningPods(ctx context.Context, si *sigwatchv1alpha1.SignedImage) ([]corev1.Pod, error) {
	img := imageOf(si)
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(si.Namespace), client.MatchingFields{indexPodImages: img.String()}); err != nil {
		return nil, fmt.Errorf("listing the pods of SignedImage %s: %w", klog.KObj(si), err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if podRunning(&p) && runsImage(&p, img) {
			out = append(out, p)
		}
	}
	return out, nil
}

// emitEvents records a transition of Verified (or of whether its failure is enforced: an Audit policy
// switched to Enforce): one Event on the SignedImage, and a Warning on every pod that runs the digest when
// it is no longer verified by an Enforce policy. beforeConditions are the conditions the visit started
// from.
func (r *SignedImageReconciler) emitEvents(ctx context.Context, si *sigwatchv1alpha1.SignedImage, beforeConditions []metav1.Condition, pods []corev1.Pod) {
	before := meta.FindStatusCondition(beforeConditions, sigwatchv1alpha1.VerifiedCondition)
	after := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
	if !transition(before, after) && auditOnly(beforeConditions) == auditOnly(si.Status.Conditions) {
		return
	}
	if after == nil {
		return
	}
	if after.Reason == sigwatchv1alpha1.NoMatchingPolicyReason && r.NoMatch == NoMatchIgnore {
		return
	}
	eventType, reason := eventReasonFor(after, meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.ReadyCondition))
	note := oneLine(after.Reason, after.Message)
	if sev := verdictSeverity(si.Status.Policies); sev != "" && after.Status != metav1.ConditionTrue && after.Reason != sigwatchv1alpha1.ExemptReason {
		note = oneLine(fmt.Sprintf("%s (severity %s)", after.Reason, sev), after.Message)
	}
	r.Recorder.Eventf(si, nil, eventType, reason, "Verify", "%s", note)
	if eventType != corev1.EventTypeWarning {
		return
	}
	for i := range pods {
		// The Events API takes notes of at most 1024 bytes.
		r.Recorder.Eventf(&pods[i], si, eventType, reason, "Verify", "%s",
			truncate(fmt.Sprintf("image %s@%s: %s", si.Spec.Image, si.Status.Summary.ShortDigest, note), 1024))
	}
	log.FromContext(ctx).Info("verification changed", "verified", after.Status, "reason", after.Reason)
}

// emitLogEvents records a transition of InTransparencyLog: a Warning when an accepted signature's entry
// is no longer proven in its live log (whatever the verdict, which only online: Require changes), a
// Normal when it is again.
func (r *SignedImageReconciler) emitLogEvents(si *sigwatchv1alpha1.SignedImage, beforeConditions []metav1.Condition) {
	before := meta.FindStatusCondition(beforeConditions, sigwatchv1alpha1.InTransparencyLogCondition)
	after := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)
	if after == nil || (before != nil && before.Status == after.Status && before.Reason == after.Reason) {
		return
	}
	switch {
	case after.Status != metav1.ConditionTrue:
		r.Recorder.Eventf(si, nil, corev1.EventTypeWarning, after.Reason, "CheckTransparencyLog", "%s", truncate(after.Message, 1024))
	case before != nil:
		r.Recorder.Eventf(si, nil, corev1.EventTypeNormal, after.Reason, "CheckTransparencyLog", "%s", truncate(after.Message, 1024))
	}
}

// signedImagesOfPolicy maps a policy to the SignedImages it covered (status) or covers now (globs).
func (r *SignedImageReconciler) signedImagesOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	p, ok := o.(*sigwatchv1alpha1.ImageSignaturePolicy)
	if !ok {
		return nil
	}
	logger := log.FromContext(ctx).WithValues("imageSignaturePolicy", klog.KObj(p))
	seen := map[types.NamespacedName]bool{}
	var reqs []reconcile.Request
	add := func(si *sigwatchv1alpha1.SignedImage) {
		nn := types.NamespacedName{Namespace: si.Namespace, Name: si.Name}
		if r.Owns != nil && !r.Owns(si.Namespace) {
			return // another shard's
		}
		if !seen[nn] {
			seen[nn] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: nn})
		}
	}
	var covered sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &covered, client.MatchingFields{indexSignedImagePolicies: p.Name}, client.UnsafeDisableDeepCopy); err != nil {
		logger.Error(err, "listing the SignedImages a policy covered: they are not re-verified for this change")
	}
	for i := range covered.Items {
		add(&covered.Items[i])
	}
	var all sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		logger.Error(err, "listing SignedImages: those the policy now covers are not re-verified for this change")
	}
	for i := range all.Items {
		if si := &all.Items[i]; (r.Owns == nil || r.Owns(si.Namespace)) && policy.Covers(p, si.Spec.Image, nil) {
			add(si)
		}
	}
	return reqs
}

// signedImagesOfExemption maps an exemption to the SignedImages it exempted (status) or may exempt now
// (its selectors, whatever the policies and the expiry): both may change verdict.
func (r *SignedImageReconciler) signedImagesOfExemption(ctx context.Context, o client.Object) []reconcile.Request {
	x, ok := o.(*sigwatchv1alpha1.ImageSignatureExemption)
	if !ok {
		return nil
	}
	e := policy.ExemptionOf(x)
	e.Policies, e.Expires = nil, time.Time{}
	all, err := r.ownedSignedImages(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "listing SignedImages: those an exemption changed are not re-judged for this change",
			"imageSignatureExemption", klog.KObj(x))
		return nil
	}
	var reqs []reconcile.Request
	for i := range all {
		si := &all[i]
		exempted := slices.ContainsFunc(si.Status.Policies, func(p sigwatchv1alpha1.PolicyResult) bool { return p.Exemption == x.Name })
		if exempted || e.Exempts(si.Namespace, imageOf(si), "", time.Time{}) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: si.Namespace, Name: si.Name}})
		}
	}
	return reqs
}

// ownedSignedImages are the cached SignedImages of this replica's namespaces, not deep-copied: read only.
func (r *SignedImageReconciler) ownedSignedImages(ctx context.Context) ([]sigwatchv1alpha1.SignedImage, error) {
	var all sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	if r.Owns == nil {
		return all.Items, nil
	}
	return slices.DeleteFunc(all.Items, func(si sigwatchv1alpha1.SignedImage) bool { return !r.Owns(si.Namespace) }), nil
}

// verifiedLabelValue is the sigwatch.dev/verified label of a Verified condition ("" before the first
// verdict).
func verifiedLabelValue(c *metav1.Condition) string {
	switch {
	case c == nil:
		return ""
	case c.Reason == sigwatchv1alpha1.ExemptReason:
		return "exempt"
	default:
		return strings.ToLower(string(c.Status))
	}
}

// signedImagesOfNamespace maps a namespace whose labels changed to its SignedImages: the policies that
// select it by label may have changed.
func (r *SignedImageReconciler) signedImagesOfNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
		log.FromContext(ctx).Error(err, "listing the SignedImages of a relabelled namespace: they are not re-evaluated for this change",
			"namespace", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, si := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: si.Namespace, Name: si.Name}})
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
	return truncate(strings.Join(names, ","), 1024)
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
