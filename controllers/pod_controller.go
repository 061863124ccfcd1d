package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
)

const (
	// EventReasonNoSignedImage (Warning, on a pod): every name the SignedImage of a digest the pod runs
	// can have is taken by another SignedImage, so that digest is not verified.
	EventReasonNoSignedImage = "NoSignedImage"

	// nameRetry is how soon a pod is visited again when the cache has not yet seen a SignedImage that the
	// API server says exists.
	nameRetry = time.Second
)

// PodReconciler ensures a SignedImage exists for every digest that pods run, also after one is deleted
// while pods still run its digest. The SignedImage controller does the rest (workloads, verification,
// garbage collection).
type PodReconciler struct {
	Client client.Client
	// Recorder warns on a pod whose digest gets no SignedImage (default: the manager's recorder).
	Recorder events.EventRecorder

	// Workers is the number of pods handled at once (default 4): each costs an API call at most.
	Workers int
	// Owns says which namespaces are this replica's (nil: all).
	Owns func(namespace string) bool

	// names gives the names to try for the SignedImage of a digest (default signedImageName).
	names func(img imageref.Image, attempt int) string
	// ensured holds the digests (namespace and image) whose SignedImage this controller made or found
	// recently, so that the other pods of a digest cost no API call (without it, every pod of a digest
	// created before the cache shows its SignedImage is a create that fails).
	ensured ensuredDigests
}

// ensuredKey is a digest's key in PodReconciler.ensured.
func ensuredKey(namespace string, img imageref.Image) string { return namespace + " " + img.String() }

// ensuredTTL is how long a digest's SignedImage is taken to exist without looking at the cache again.
const ensuredTTL = time.Minute

// ensuredDigests remembers, for ensuredTTL, the digests whose SignedImage exists. A SignedImage's
// deletion forgets its digest (specs are immutable: a SignedImage never moves to another digest). What
// a visit learnt is remembered only if no deletion was seen since it looked (a deletion between its look
// and its note would otherwise be hidden for good), and only for ensuredTTL: past it the cache is asked
// again, which also heals a deletion the watch missed.
type ensuredDigests struct {
	mu      sync.Mutex
	at      map[string]time.Time
	forgets uint64 // deletions seen, of any digest
	now     func() time.Time
}

// look says whether the digest's SignedImage is known to exist, and the token to note it with.
func (e *ensuredDigests) look(key string) (known bool, token uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.at[key]
	if ok && e.clock().Sub(t) >= ensuredTTL {
		delete(e.at, key)
		ok = false
	}
	return ok, e.forgets
}

// note remembers that the digest's SignedImage exists, unless a deletion was seen since look.
func (e *ensuredDigests) note(key string, token uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if token != e.forgets {
		return
	}
	if e.at == nil {
		e.at = map[string]time.Time{}
	}
	e.at[key] = e.clock()
}

// forget drops the digest: its SignedImage is gone, or going.
func (e *ensuredDigests) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.at, key)
	e.forgets++
}

func (e *ensuredDigests) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// SetupWithManager registers the controller.
func (r *PodReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("sigwatch")
	}
	if r.Workers <= 0 {
		r.Workers = 4
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.Pod{}, builder.WithPredicates(inShard(r.Owns), podImagesChanged())).
		// Deletions only: a digest whose SignedImage goes while pods run it gets it back.
		Watches(&sigwatchv1alpha1.SignedImage{}, handler.EnqueueRequestsFromMapFunc(r.podOfSignedImage),
			builder.WithPredicates(inShard(r.Owns), predicate.Funcs{
				CreateFunc: func(event.CreateEvent) bool { return false },
				// One that starts being deleted (a finalizer holds it) no longer counts as the digest's.
				UpdateFunc: func(e event.UpdateEvent) bool {
					return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
				},
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Workers}).
		Named("pod").
		Complete(r)
}

// Reconcile creates the missing SignedImages of a pod's digests.
func (r *PodReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !podRunning(pod) {
		return ctrl.Result{}, nil
	}
	// Every image is looked after, whatever happens to another: one digest that cannot have its
	// SignedImage must not leave the pod's other digests without theirs.
	var result ctrl.Result
	var errs []error
	for _, ri := range podImages(pod) {
		retry, err := r.ensureSignedImage(ctx, pod, ri.Image)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if retry > 0 && (result.RequeueAfter == 0 || retry < result.RequeueAfter) {
			result.RequeueAfter = retry
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	return result, nil
}

// ensureSignedImage makes sure the digest has a SignedImage in the pod's namespace under one of its
// names. The cache is asked first whether one of them holds it already, so that an earlier name that
// became free does not get a second one. Otherwise the names are created in order, the API server saying
// which are free: a name held by a SignedImage of the same digest is its SignedImage; one held by a
// SignedImage of another digest (made by hand, or a hash collision) is passed over.
func (r *PodReconciler) ensureSignedImage(ctx context.Context, pod *corev1.Pod, img imageref.Image) (retry time.Duration, err error) {
	key := ensuredKey(pod.Namespace, img)
	known, token := r.ensured.look(key)
	if known {
		return 0, nil
	}
	names := r.namesOf(img)
	if held, err := r.heldName(ctx, pod.Namespace, img, names); err != nil || held {
		if held {
			r.ensured.note(key, token)
		}
		return 0, err
	}
	logger := log.FromContext(ctx).WithValues("image", img.String())
	var taken []string
	for _, name := range names {
		si := &sigwatchv1alpha1.SignedImage{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: pod.Namespace,
				Name:      name,
				Labels:    map[string]string{sigwatchv1alpha1.ManagedByLabel: sigwatchv1alpha1.ManagedByValue},
			},
			Spec: sigwatchv1alpha1.SignedImageSpec{Image: img.Repository, Digest: img.Digest},
		}
		err := r.Client.Create(ctx, si)
		if err == nil {
			logger.Info("created SignedImage", "signedImage", klog.KObj(si))
			r.ensured.note(key, token)
			return 0, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("creating SignedImage %s for %s: %w", klog.KObj(si), img, err)
		}
		existing := &sigwatchv1alpha1.SignedImage{}
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(si), existing); err != nil {
			if apierrors.IsNotFound(err) {
				// Created (or deleted) an instant ago: the cache has not seen it yet.
				return nameRetry, nil
			}
			return 0, fmt.Errorf("reading SignedImage %s for %s: %w", klog.KObj(si), img, err)
		}
		if isSignedImageOf(existing, img) {
			r.ensured.note(key, token)
			return 0, nil
		}
		logger.V(1).Info("the name is taken; trying the next", "signedImage", klog.KObj(existing),
			"takenBy", imageOf(existing).String(), "deleting", !existing.DeletionTimestamp.IsZero())
		taken = append(taken, si.Name)
	}
	err = fmt.Errorf("no SignedImage for %s in %s: its names %s are all taken by SignedImages of other digests (or being deleted)",
		img, pod.Namespace, strings.Join(taken, ", "))
	if r.Recorder != nil {
		r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, EventReasonNoSignedImage, "CreateSignedImage", "%s", truncate(err.Error(), 1024))
	}
	return 0, err
}

// namesOf lists the names the SignedImage of a digest may have, in the order they are tried.
func (r *PodReconciler) namesOf(img imageref.Image) []string {
	name := r.names
	if name == nil {
		name = signedImageName
	}
	names := make([]string, signedImageNameAttempts)
	for attempt := range names {
		names[attempt] = name(img, attempt)
	}
	return names
}

// heldName reports whether the cache has a SignedImage of the digest under one of its names.
func (r *PodReconciler) heldName(ctx context.Context, namespace string, img imageref.Image, names []string) (bool, error) {
	var list sigwatchv1alpha1.SignedImageList
	if err := r.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexSignedImageImage: img.String()}); err != nil {
		return false, fmt.Errorf("listing the SignedImages of %s in %s: %w", img, namespace, err)
	}
	for i := range list.Items {
		if si := &list.Items[i]; isSignedImageOf(si, img) && slices.Contains(names, si.Name) {
			return true, nil
		}
	}
	return false, nil
}

// isSignedImageOf reports whether si is the digest's SignedImage: about that digest and not being deleted
// (one being deleted is never verified again).
func isSignedImageOf(si *sigwatchv1alpha1.SignedImage, img imageref.Image) bool {
	return imageOf(si) == img && si.DeletionTimestamp.IsZero()
}
