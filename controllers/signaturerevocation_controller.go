package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/revocation"
)

// maxListedRevokedImages is how many affected SignedImages a revocation's status lists.
const maxListedRevokedImages = 100

// SignatureRevocationReconciler reports what each SignatureRevocation does: Ready (every entry
// compiled), and the SignedImages whose status says it revoked a signature or attestation of them. The
// SignedImage controller applies revocations itself, from their spec: this status is for people, tools
// and `kubectl get sigrev`. It runs in the counting shard, whose cache holds every SignedImage's
// revocations.
type SignatureRevocationReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Metrics  *Metrics
	Clock    clock.PassiveClock
	// CountsInterval is how long a status write that changes only the affected images waits after the
	// last one (default 2s): a revocation applied to thousands of images is written every 2 s, not once
	// per image.
	CountsInterval time.Duration

	// written is when each revocation's status was last written.
	written writeTimes[string]
}

// +kubebuilder:rbac:groups=sigwatch.dev,resources=signaturerevocations/status,verbs=get;update;patch

// SetupWithManager registers the controller: a revocation is reconciled when it changes, and when a
// SignedImage starts or stops naming it.
func (r *SignatureRevocationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("sigwatch")
	}
	r.defaults()
	return ctrl.NewControllerManagedBy(mgr).
		For(&sigwatchv1alpha1.SignatureRevocation{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&sigwatchv1alpha1.SignedImage{}, revocationsOfSignedImage()).
		Named("signaturerevocation").
		Complete(r)
}

// revocationsOfSignedImage enqueues the revocations a SignedImage names, before and after a change.
func revocationsOfSignedImage() handler.TypedEventHandler[client.Object, reconcile.Request] {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		seen := map[string]bool{}
		for _, o := range objs {
			si, ok := o.(*sigwatchv1alpha1.SignedImage)
			if !ok {
				continue
			}
			for _, name := range revocationsOf(si) {
				if !seen[name] {
					seen[name] = true
					q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
				}
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if !slices.Equal(revocationsOf(asSignedImage(e.ObjectOld)), revocationsOf(asSignedImage(e.ObjectNew))) {
				enqueue(q, e.ObjectOld, e.ObjectNew)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
	}
}

func asSignedImage(o client.Object) *sigwatchv1alpha1.SignedImage {
	if si, ok := o.(*sigwatchv1alpha1.SignedImage); ok {
		return si
	}
	return &sigwatchv1alpha1.SignedImage{}
}

func (r *SignatureRevocationReconciler) defaults() {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.CountsInterval <= 0 {
		r.CountsInterval = 2 * time.Second
	}
}

// Reconcile writes the revocation's status, and announces a new generation with a Normal Event (a
// Warning when an entry does not compile).
func (r *SignatureRevocationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	x := &sigwatchv1alpha1.SignatureRevocation{}
	if err := r.Client.Get(ctx, req.NamespacedName, x); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.wrote(req.Name, time.Time{})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !x.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	if wait := countsWriteDelay(r.written.last(x.Name), now, r.CountsInterval); wait > 0 && x.Status.ObservedGeneration == x.Generation {
		// Written less than CountsInterval ago, for this generation: the counts are looked at again then,
		// not on every change of one of thousands of images.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var affected sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &affected, client.MatchingFields{indexSignedImageRevocations: x.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing the SignedImages of SignatureRevocation %s: %w", x.Name, err)
	}
	before := x.DeepCopy()
	_, compileErr := revocation.Compile(x)
	x.Status = revocationStatus(x, compileErr, affected.Items)
	if equality.Semantic.DeepEqual(before.Status, x.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.Client.Status().Patch(ctx, x, client.MergeFrom(before)); err != nil {
		retry, err := statusPatchFailed(ctx, r.Recorder, r.Metrics, "SignatureRevocation", x, err)
		return ctrl.Result{RequeueAfter: retry}, err
	}
	r.written.wrote(x.Name, now)
	if before.Status.ObservedGeneration != x.Generation {
		ready := meta.FindStatusCondition(x.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		eventType := corev1.EventTypeNormal
		if ready.Status != metav1.ConditionTrue {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(x, nil, eventType, ready.Reason, "Revoke", "%s", truncate(ready.Message, 1024))
	}
	return ctrl.Result{}, nil
}

// revocationStatus is a revocation's status: Ready, and the SignedImages it affects.
func revocationStatus(x *sigwatchv1alpha1.SignatureRevocation, compileErr error, affected []sigwatchv1alpha1.SignedImage) sigwatchv1alpha1.SignatureRevocationStatus {
	st := *x.Status.DeepCopy()
	c := metav1.Condition{Type: sigwatchv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: sigwatchv1alpha1.RevocationAppliedReason,
		ObservedGeneration: x.Generation, Message: truncate(fmt.Sprintf("%d %s applied: %s", len(x.Spec.Signatures), plural(len(x.Spec.Signatures), "entry", "entries"), x.Spec.Reason), 4096)}
	if compileErr != nil {
		c.Status, c.Reason = metav1.ConditionFalse, sigwatchv1alpha1.InvalidRevocationReason
		c.Message = truncate("some entries cannot be applied, the others are: "+strings.ReplaceAll(compileErr.Error(), "\n", "; "), 4096)
	}
	meta.SetStatusCondition(&st.Conditions, c)
	st.ObservedGeneration = x.Generation
	images := make([]sigwatchv1alpha1.RevokedImage, 0, len(affected))
	for _, si := range affected {
		if si.DeletionTimestamp.IsZero() {
			images = append(images, sigwatchv1alpha1.RevokedImage{Namespace: si.Namespace, Name: si.Name, Image: si.Spec.Image, Digest: si.Spec.Digest})
		}
	}
	slices.SortFunc(images, func(a, b sigwatchv1alpha1.RevokedImage) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	n := int32(len(images))
	st.AffectedImages = &n
	st.Images = nil
	if len(images) > 0 {
		st.Images = images[:min(len(images), maxListedRevokedImages)]
	}
	return st
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
