package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// ImageSignaturePolicyReconciler checks what the CRD schema cannot (regular expressions, keys, CEL
// conditions, the trust root), reports it as Ready and Stalled, and keeps the policy's image counts.
type ImageSignaturePolicyReconciler struct {
	Client   client.Client
	Policies PolicyResolver
	// Recorder announces status writes that fail (default: the manager's recorder).
	Recorder events.EventRecorder
	// Metrics counts status writes that fail (nil: not counted).
	Metrics *Metrics
	// ReadOnly: another replica (shard 0 of a sharded manager) writes the policies' status; this one only
	// keeps the policy store current.
	ReadOnly bool
	// CountsInterval is the least time between two status writes of a policy that change only its
	// counts (default 2s): while thousands of images are verified, their policy is written once per
	// interval, not once per image. Conditions are written at once.
	CountsInterval time.Duration
	Clock          clock.PassiveClock
	// SecretAccess is the manager's Secret access: with none, Secrets are not watched.
	SecretAccess SecretAccess

	tally *policyTally
	// written is when each policy's status was last written.
	written writeTimes[string]
}

// countsWriteDelay is how long a status write that changes only counts waits: until interval has
// passed since the last write.
func countsWriteDelay(last, now time.Time, interval time.Duration) time.Duration {
	if last.IsZero() {
		return 0
	}
	return max(0, last.Add(interval).Sub(now))
}

func (r *ImageSignaturePolicyReconciler) forget(name string) {
	r.Policies.Forget(name)
	r.written.wrote(name, time.Time{})
}

// +kubebuilder:rbac:groups=sigwatch.dev,resources=imagesignaturepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=sigwatch.dev,resources=imagesignaturepolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch

// SetupWithManager registers the controller and its watches.
func (r *ImageSignaturePolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("sigwatch")
	}
	if r.tally == nil {
		r.tally = newPolicyTally()
	}
	r.defaults()
	b := ctrl.NewControllerManagedBy(mgr).
		For(&sigwatchv1alpha1.ImageSignaturePolicy{})
	if !r.ReadOnly {
		// Every SignedImage of the cluster, whichever shard verifies it, counts (see CacheOptions: the
		// other shards' SignedImages are cached with their results only).
		b = b.Watches(&sigwatchv1alpha1.SignedImage{}, r.tally.handler())
	}
	return b.
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.policiesOf("ConfigMap"))).
		WatchesRawSource(secretMetadataSource(mgr.GetCache(), r.SecretAccess, handler.EnqueueRequestsFromMapFunc(r.policiesOf("Secret")))).
		Named("imagesignaturepolicy").
		Complete(r)
}

func (r *ImageSignaturePolicyReconciler) defaults() {
	if r.CountsInterval <= 0 {
		r.CountsInterval = 2 * time.Second
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
}

// Reconcile compiles the policy, loads its trust root, counts its images, and patches the status only
// when something changed. A transient failure to read its inputs is returned (retried with backoff) and
// leaves the status as it was; so is a status patch that fails (see statusPatchFailed).
func (r *ImageSignaturePolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &sigwatchv1alpha1.ImageSignaturePolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		r.forget(p.Name)
		return ctrl.Result{}, nil
	}
	before := p.DeepCopy()
	rp, err := r.Policies.Resolve(ctx, p)
	transient := IsTransient(err)
	if reason := transientReason(err); transient && reason != sigwatchv1alpha1.TrustedRootUnavailableReason &&
		reason != sigwatchv1alpha1.CredentialsForbiddenReason {
		return ctrl.Result{}, err
	}
	// A trust root that cannot be had, or a key Secret RBAC does not let the manager read, is said on the
	// policy (and looked at again below), though it may pass by itself.
	ready, stalled := readinessOf(rp, err).conditions(p.Generation)
	meta.SetStatusCondition(&p.Status.Conditions, ready)
	meta.SetStatusCondition(&p.Status.Conditions, stalled)
	p.Status.ObservedGeneration = p.Generation

	if r.ReadOnly {
		return ctrl.Result{}, nil
	}
	counts := r.tally.of(p.Name)
	p.Status.MatchedImages, p.Status.VerifiedImages, p.Status.FailedImages, p.Status.UnknownImages, p.Status.ExemptImages =
		counts.Matched, counts.Verified, counts.Failed, counts.Unknown, counts.Exempt

	// A trust root standing in for a current one is looked at again: the condition must clear by
	// itself once TUF delivers.
	var again time.Duration
	switch {
	case ready.Reason == sigwatchv1alpha1.TrustRootFallbackReason:
		again = trust.DefaultFallbackRetry
	case transient:
		again = time.Minute
	}
	if equality.Semantic.DeepEqual(before.Status, p.Status) {
		return ctrl.Result{RequeueAfter: again}, nil
	}
	now := r.Clock.Now()
	countsOnly := equality.Semantic.DeepEqual(before.Status.Conditions, p.Status.Conditions) &&
		before.Status.ObservedGeneration == p.Status.ObservedGeneration
	if wait := countsWriteDelay(r.written.last(p.Name), now, r.CountsInterval); countsOnly && wait > 0 {
		if again == 0 || wait < again {
			again = wait
		}
		return ctrl.Result{RequeueAfter: again}, nil
	}
	if err := r.Client.Status().Patch(ctx, p, client.MergeFrom(before)); err != nil {
		retry, err := statusPatchFailed(ctx, r.Recorder, r.Metrics, "ImageSignaturePolicy", p, err)
		return ctrl.Result{RequeueAfter: retry}, err
	}
	r.written.wrote(p.Name, now)
	r.announce(p, meta.FindStatusCondition(before.Status.Conditions, sigwatchv1alpha1.ReadyCondition))
	return ctrl.Result{RequeueAfter: again}, nil
}

// Reasons of the Events on ImageSignaturePolicies.
const (
	// EventReasonPolicyNotReady (Warning): the policy cannot be used as written; its images are Unknown
	// (PolicyNotReady).
	EventReasonPolicyNotReady = "PolicyNotReady"
	// EventReasonPolicyReady (Normal): the policy became usable again.
	EventReasonPolicyReady = "PolicyReady"
)

// announce records a change of the policy's Ready condition that was written: a Warning when it is not
// ready (a field, a key or a trust root, named in the message), a Normal when it recovers. A policy that
// is ready from the start gets no Event.
func (r *ImageSignaturePolicyReconciler) announce(p *sigwatchv1alpha1.ImageSignaturePolicy, before *metav1.Condition) {
	after := meta.FindStatusCondition(p.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
	if r.Recorder == nil || after == nil || (before != nil && before.Status == after.Status && before.Reason == after.Reason) {
		return
	}
	switch {
	case after.Status != metav1.ConditionTrue:
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, EventReasonPolicyNotReady, "Compile", "%s", oneLine(after.Reason, after.Message))
	case before != nil && before.Status != metav1.ConditionTrue:
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, EventReasonPolicyReady, "Compile", "%s", oneLine(after.Reason, after.Message))
	}
}

func (r *ImageSignaturePolicyReconciler) policiesOf(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		for _, p := range policiesReferencing(ctx, r.Client, kind, o) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
		}
		return reqs
	}
}
