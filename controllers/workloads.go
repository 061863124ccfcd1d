package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
)

var (
	replicaSetKind = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}
	jobKind        = schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
)

// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch

// workloadsOf returns the top-level owners of the pods that run img, with the containers that run it: a
// Deployment through its ReplicaSet, a CronJob through its Job, a StatefulSet, DaemonSet, Job or
// ReplicaSet, or the bare Pod. Owners are read as metadata only.
func workloadsOf(ctx context.Context, c client.Reader, pods []corev1.Pod, img imageref.Image) []sigwatchv1alpha1.WorkloadReference {
	byKey := map[string]*sigwatchv1alpha1.WorkloadReference{}
	for i := range pods {
		pod := &pods[i]
		kind, name := topOwner(ctx, c, pod)
		var containers []string
		for _, ri := range podImages(pod) {
			if ri.Image == img {
				containers = ri.Containers
			}
		}
		key := kind + "/" + name
		if w, ok := byKey[key]; ok {
			w.Containers = union(w.Containers, containers)
			continue
		}
		// Owner kinds and names come from pods' owner references: cut to the API's bounds.
		byKey[key] = &sigwatchv1alpha1.WorkloadReference{Kind: truncate(kind, 63), Name: truncate(name, 253), Containers: containers}
	}
	if len(byKey) == 0 {
		return nil
	}
	out := make([]sigwatchv1alpha1.WorkloadReference, 0, len(byKey))
	for _, w := range byKey {
		if len(w.Containers) > maxListedContainer {
			w.Containers = w.Containers[:maxListedContainer]
		}
		out = append(out, *w)
	}
	out = sortedWorkloads(out)
	return out[:min(len(out), maxListedWorkloads)]
}

func topOwner(ctx context.Context, c client.Reader, pod *corev1.Pod) (string, string) {
	owner := metav1.GetControllerOf(pod)
	if owner == nil {
		return "Pod", pod.Name
	}
	var parentKind schema.GroupVersionKind
	switch {
	case owner.Kind == "ReplicaSet" && owner.APIVersion == "apps/v1":
		parentKind = replicaSetKind
	case owner.Kind == "Job" && owner.APIVersion == "batch/v1":
		parentKind = jobKind
	default:
		return owner.Kind, owner.Name
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(parentKind)
	if err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: owner.Name}, meta); err != nil {
		return owner.Kind, owner.Name
	}
	if grand := metav1.GetControllerOf(meta); grand != nil {
		return grand.Kind, grand.Name
	}
	return owner.Kind, owner.Name
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(a, b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
