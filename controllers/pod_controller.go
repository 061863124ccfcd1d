package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// PodReconciler ensures a SignedImage exists for every digest that pods run. The SignedImage controller
// does the rest (workloads, verification, garbage collection).
type PodReconciler struct {
	Client client.Client
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// SetupWithManager registers the controller.
func (r *PodReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.Pod{}, builder.WithPredicates(podImagesChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
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
	for _, ri := range podImages(pod) {
		si := &sigwatchv1alpha1.SignedImage{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: pod.Namespace,
				Name:      signedImageName(ri.Image),
				Labels:    map[string]string{sigwatchv1alpha1.ManagedByLabel: sigwatchv1alpha1.ManagedByValue},
			},
			Spec: sigwatchv1alpha1.SignedImageSpec{Image: ri.Image.Repository, Digest: ri.Image.Digest},
		}
		err := r.Client.Create(ctx, si)
		switch {
		case err == nil:
			log.FromContext(ctx).Info("created SignedImage", "signedImage", klog.KObj(si), "image", ri.Image.String())
		case apierrors.IsAlreadyExists(err):
		default:
			return ctrl.Result{}, fmt.Errorf("creating SignedImage for %s in %s: %w", ri.Image, pod.Namespace, err)
		}
	}
	return ctrl.Result{}, nil
}
