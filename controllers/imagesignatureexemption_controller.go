package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// ImageSignatureExemptionReconciler reports whether each exemption applies (Ready: Active) or has
// expired (Ready=False: Expired), and comes back at the moment it expires. The SignedImage controller
// applies exemptions itself, from their spec: this status is for people and tools.
type ImageSignatureExemptionReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Metrics  *Metrics
	Clock    clock.PassiveClock
}

// +kubebuilder:rbac:groups=sigwatch.dev,resources=imagesignatureexemptions/status,verbs=get;update;patch

// SetupWithManager registers the controller.
func (r *ImageSignatureExemptionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("sigwatch")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&sigwatchv1alpha1.ImageSignatureExemption{}).
		Named("imagesignatureexemption").
		Complete(r)
}

// Reconcile writes the exemption's Ready condition and schedules a visit at its expiry.
func (r *ImageSignatureExemptionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	x := &sigwatchv1alpha1.ImageSignatureExemption{}
	if err := r.Client.Get(ctx, req.NamespacedName, x); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !x.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	before := x.DeepCopy()
	cond, again := exemptionReadiness(x, now)
	meta.SetStatusCondition(&x.Status.Conditions, cond)
	x.Status.ObservedGeneration = x.Generation
	if !equality.Semantic.DeepEqual(before.Status, x.Status) {
		if err := r.Client.Status().Patch(ctx, x, client.MergeFrom(before)); err != nil {
			retry, err := statusPatchFailed(ctx, r.Recorder, r.Metrics, "ImageSignatureExemption", x, err)
			return ctrl.Result{RequeueAfter: retry}, err
		}
	}
	return ctrl.Result{RequeueAfter: again}, nil
}

// exemptionReadiness is an exemption's Ready condition at now, and how long until it changes by itself
// (0: never).
func exemptionReadiness(x *sigwatchv1alpha1.ImageSignatureExemption, now time.Time) (metav1.Condition, time.Duration) {
	c := metav1.Condition{Type: sigwatchv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
		Reason: sigwatchv1alpha1.ExemptionActiveReason, ObservedGeneration: x.Generation, LastTransitionTime: metav1.Time{Time: now}}
	exp := x.Spec.ExpiresAt
	switch {
	case exp == nil:
		c.Message = "applies until deleted"
		return c, 0
	case now.Before(exp.Time):
		c.Message = "applies until " + exp.UTC().Format(time.RFC3339)
		return c, max(exp.Sub(now), time.Second)
	default:
		c.Status, c.Reason = metav1.ConditionFalse, sigwatchv1alpha1.ExemptionExpiredReason
		c.Message = fmt.Sprintf("expired at %s: the images it exempted are judged again", exp.UTC().Format(time.RFC3339))
		return c, 0
	}
}
