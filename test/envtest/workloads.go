package envtest

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RunDeployment creates a Deployment, its ReplicaSet and one Running pod whose container runs image with
// the given imageID, as the controllers and the kubelet of a real cluster would (envtest runs neither).
// It returns the pod.
func RunDeployment(ctx context.Context, c client.Client, ns, name, image, imageID string) (*corev1.Pod, error) {
	labels := map[string]string{"app": name}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}
	if err := c.Create(ctx, dep); err != nil {
		return nil, fmt.Errorf("creating Deployment %s/%s: %w", ns, name, err)
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-6d5f9c7b8", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: dep.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}
	if err := c.Create(ctx, rs); err != nil {
		return nil, fmt.Errorf("creating ReplicaSet %s/%s: %w", ns, rs.Name, err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rs.Name + "-x7k2p", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
		Spec: template.Spec}
	if err := c.Create(ctx, pod); err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", ns, pod.Name, err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: name, Image: image, ImageID: imageID, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		return nil, fmt.Errorf("setting the status of pod %s/%s: %w", ns, pod.Name, err)
	}
	return pod, nil
}
