package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

// CacheOptions are the manager's cache options for a shard: every object without its managed fields,
// and the objects cached for every one of the cluster's pods cut to what the controllers read. Pods,
// SignedImages and service accounts of the namespaces of other shards are kept as names only (and
// SignedImages with their policy results, which shard 0 counts).
func CacheOptions(shard sharding.Shard) cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                   {Transform: func(o any) (any, error) { return slimPod(shard, o), nil }},
			&sigwatchv1alpha1.SignedImage{}: {Transform: func(o any) (any, error) { return slimSignedImage(shard, o), nil }},
			&corev1.ServiceAccount{}:        {Transform: func(o any) (any, error) { return slimServiceAccount(shard, o), nil }},
		},
	}
}

// nameOnly is the metadata of an object of another shard: enough for the cache to key, update and
// delete it.
func nameOnly(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
}

// slimMeta is the metadata the controllers read of a pod or service account: identity (for Events too),
// owners and deletion.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
		OwnerReferences: m.OwnerReferences}
}

// slimPod keeps of a pod what podImages, podRunning, workloadsOf and PullSecrets read: container names
// and images, image IDs, phase, owners, pull secrets and service account. The rest of a pod (env,
// volumes, probes, resources, conditions, labels, annotations) is most of its size and never read.
func slimPod(shard sharding.Shard, o any) any {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return o
	}
	if !shard.Owns(pod.Namespace) {
		return &corev1.Pod{TypeMeta: pod.TypeMeta, ObjectMeta: nameOnly(pod.ObjectMeta)}
	}
	containers := func(cs []corev1.Container) []corev1.Container {
		if cs == nil {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Image: c.Image}
		}
		return out
	}
	var ephemeral []corev1.EphemeralContainer
	for _, c := range pod.Spec.EphemeralContainers {
		ephemeral = append(ephemeral, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name, Image: c.Image}})
	}
	statuses := func(ss []corev1.ContainerStatus) []corev1.ContainerStatus {
		if ss == nil {
			return nil
		}
		out := make([]corev1.ContainerStatus, len(ss))
		for i, s := range ss {
			out[i] = corev1.ContainerStatus{Name: s.Name, Image: s.Image, ImageID: s.ImageID}
		}
		return out
	}
	return &corev1.Pod{
		TypeMeta:   pod.TypeMeta,
		ObjectMeta: slimMeta(pod.ObjectMeta),
		Spec: corev1.PodSpec{
			InitContainers:      containers(pod.Spec.InitContainers),
			Containers:          containers(pod.Spec.Containers),
			EphemeralContainers: ephemeral,
			ImagePullSecrets:    pod.Spec.ImagePullSecrets,
			ServiceAccountName:  pod.Spec.ServiceAccountName,
		},
		Status: corev1.PodStatus{
			Phase:                      pod.Status.Phase,
			InitContainerStatuses:      statuses(pod.Status.InitContainerStatuses),
			ContainerStatuses:          statuses(pod.Status.ContainerStatuses),
			EphemeralContainerStatuses: statuses(pod.Status.EphemeralContainerStatuses),
		},
	}
}

// slimSignedImage keeps a SignedImage of another shard as its name and spec, and for shard 0, which
// counts them for the policies' and the revocations' status, its policy results and revoked signatures;
// this shard's are kept whole, without managed fields.
func slimSignedImage(shard sharding.Shard, o any) any {
	si, ok := o.(*sigwatchv1alpha1.SignedImage)
	if !ok {
		return o
	}
	if shard.Owns(si.Namespace) {
		si.ManagedFields = nil
		return si
	}
	meta := nameOnly(si.ObjectMeta)
	meta.DeletionTimestamp = si.DeletionTimestamp
	out := &sigwatchv1alpha1.SignedImage{TypeMeta: si.TypeMeta, ObjectMeta: meta, Spec: si.Spec}
	if !shard.Counts() {
		return out // only shard 0 counts them
	}
	for _, p := range si.Status.Policies {
		out.Status.Policies = append(out.Status.Policies, sigwatchv1alpha1.PolicyResult{Name: p.Name, Result: p.Result, Revocation: p.Revocation})
	}
	// And which revocations revoked its signatures, which it counts for the revocations' status.
	for _, s := range si.Status.Signatures {
		if s.Revocation != "" {
			out.Status.Signatures = append(out.Status.Signatures, sigwatchv1alpha1.SignatureInfo{Format: s.Format, Verdict: s.Verdict,
				Reason: s.Reason, Revocation: s.Revocation})
		}
	}
	for _, s := range si.Status.Attestations {
		if s.Revocation != "" {
			out.Status.Attestations = append(out.Status.Attestations, sigwatchv1alpha1.SignatureInfo{Format: s.Format, Verdict: s.Verdict,
				Reason: s.Reason, Revocation: s.Revocation, PredicateType: s.PredicateType})
		}
	}
	return out
}

// slimServiceAccount keeps of a service account its image pull secrets, the only field PullSecrets reads.
func slimServiceAccount(shard sharding.Shard, o any) any {
	sa, ok := o.(*corev1.ServiceAccount)
	if !ok {
		return o
	}
	if !shard.Owns(sa.Namespace) {
		return &corev1.ServiceAccount{TypeMeta: sa.TypeMeta, ObjectMeta: nameOnly(sa.ObjectMeta)}
	}
	return &corev1.ServiceAccount{TypeMeta: sa.TypeMeta, ObjectMeta: slimMeta(sa.ObjectMeta), ImagePullSecrets: sa.ImagePullSecrets}
}

// inShard lets through the events of objects in the namespaces owns accepts (nil: all). Namespaces
// themselves are judged by their name.
func inShard(owns func(namespace string) bool) predicate.Predicate {
	ok := func(o client.Object) bool {
		if owns == nil {
			return true
		}
		if _, isNS := o.(*corev1.Namespace); isNS {
			return owns(o.GetName())
		}
		return owns(o.GetNamespace())
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return ok(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return ok(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return ok(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return ok(e.Object) },
	}
}

// FieldOwner is the field manager of the writes of a shard's replica, so that managedFields show which
// replica wrote an object: "sigwatch", or "sigwatch-shard-<index>" when sharded.
func FieldOwner(shard sharding.Shard) string {
	if !shard.Sharded() {
		return "sigwatch"
	}
	return fmt.Sprintf("sigwatch-shard-%d", shard.Index)
}
