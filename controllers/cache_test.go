package controllers

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

// fullPod is a pod as the API server has it, with the fields sigwatch reads and many it does not.
func fullPod(ns string) *corev1.Pod {
	now := metav1.Now()
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1", UID: "uid-1", ResourceVersion: "42", Generation: 3,
			CreationTimestamp: now, DeletionTimestamp: &now,
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"big": string(make([]byte, 4096))},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d4f", UID: "rs", Controller: ptr.To(true)}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "ghcr.io/a/init@sha256:1111111111111111111111111111111111111111111111111111111111111111"}},
			Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/a/app:v1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox", Command: []string{"sh"}}}},
			ImagePullSecrets:    []corev1.LocalObjectReference{{Name: "regcred"}},
			ServiceAccountName:  "builder",
			Volumes:             []corev1.Volume{{Name: "data"}},
			NodeName:            "node-1",
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: "ghcr.io/a/app:v1", Ready: true,
				ImageID: "ghcr.io/a/app@sha256:2222222222222222222222222222222222222222222222222222222222222222",
				State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}},
			EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debug", Image: "busybox",
				ImageID: "docker.io/library/busybox@sha256:3333333333333333333333333333333333333333333333333333333333333333"}},
			PodIP: "10.0.0.1",
		},
	}
}

// A slim pod reads the same to every function of the controllers that reads pods.
func TestSlimPodKeepsWhatIsRead(t *testing.T) {
	g := NewWithT(t)
	full := fullPod("team-a")
	slim := slimPod(sharding.Whole, full.DeepCopy()).(*corev1.Pod)

	g.Expect(podImages(slim)).To(Equal(podImages(full)))
	g.Expect(podImages(slim)).To(HaveLen(3), "init (pinned spec), app and debug (imageIDs)")
	g.Expect(podFingerprint(slim)).To(Equal(podFingerprint(full)))
	g.Expect(podRunning(slim)).To(Equal(podRunning(full)))
	g.Expect(metav1.GetControllerOf(slim)).To(Equal(metav1.GetControllerOf(full)))
	g.Expect(slim.Spec.ImagePullSecrets).To(Equal(full.Spec.ImagePullSecrets))
	g.Expect(slim.Spec.ServiceAccountName).To(Equal("builder"))
	g.Expect(slim.UID).To(Equal(full.UID), "Events refer to the pod")
	g.Expect(slim.ResourceVersion).To(Equal("42"))

	// What is never read is gone.
	g.Expect(slim.Annotations).To(BeNil())
	g.Expect(slim.Labels).To(BeNil())
	g.Expect(slim.ManagedFields).To(BeNil())
	g.Expect(slim.Spec.Containers[0].Env).To(BeNil())
	g.Expect(slim.Spec.Containers[0].Resources).To(Equal(corev1.ResourceRequirements{}))
	g.Expect(slim.Spec.Volumes).To(BeNil())
	g.Expect(slim.Status.Conditions).To(BeNil())
	g.Expect(slim.Status.ContainerStatuses[0].State).To(Equal(corev1.ContainerState{}))

	// Idempotent: the informer may transform an object twice.
	g.Expect(slimPod(sharding.Whole, slim.DeepCopy())).To(Equal(slim))
}

// Another shard's objects are kept as names only (pods, service accounts) or names, specs and policy
// results (SignedImages, for shard 0's counts).
func TestOtherShardsObjectsAreNamesOnly(t *testing.T) {
	g := NewWithT(t)
	// A namespace of shard 1, so that the other shard is 0, which counts.
	ns := "team-a"
	for i := 0; sharding.Of(ns, 2) != 1; i++ {
		ns = fmt.Sprintf("team-%d", i)
	}
	mine := sharding.Shard{Index: 1, Total: 2}
	other := sharding.Shard{Index: 0, Total: 2}

	pod := slimPod(other, fullPod(ns)).(*corev1.Pod)
	g.Expect(pod.ObjectMeta).To(Equal(metav1.ObjectMeta{Namespace: ns, Name: "web-1", UID: "uid-1", ResourceVersion: "42"}))
	g.Expect(pod.Spec).To(Equal(corev1.PodSpec{}))
	g.Expect(podImages(pod)).To(BeEmpty(), "not indexed: no SignedImage of this shard finds it")
	g.Expect(podImages(slimPod(mine, fullPod(ns)).(*corev1.Pod))).To(HaveLen(3))

	now := metav1.Now()
	si := &sigwatchv1alpha1.SignedImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-1", UID: "si", ResourceVersion: "7", DeletionTimestamp: &now,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "sigwatch"}}, Labels: map[string]string{"a": "b"}},
		Spec: sigwatchv1alpha1.SignedImageSpec{Image: "ghcr.io/a/app", Digest: "sha256:2222"},
		Status: sigwatchv1alpha1.SignedImageStatus{
			Policies:   []sigwatchv1alpha1.PolicyResult{{Name: "p", Result: sigwatchv1alpha1.PolicyVerified, Message: "long"}},
			Conditions: []metav1.Condition{{Type: "Verified", Status: metav1.ConditionTrue}},
			Signatures: []sigwatchv1alpha1.SignatureInfo{{KeyID: "k"}},
		},
	}
	theirs := slimSignedImage(other, si.DeepCopy()).(*sigwatchv1alpha1.SignedImage)
	g.Expect(theirs.Spec).To(Equal(si.Spec))
	g.Expect(theirs.DeletionTimestamp).To(Equal(si.DeletionTimestamp))
	g.Expect(theirs.Status).To(Equal(sigwatchv1alpha1.SignedImageStatus{
		Policies: []sigwatchv1alpha1.PolicyResult{{Name: "p", Result: sigwatchv1alpha1.PolicyVerified}}}))
	g.Expect(entriesOf(theirs.Status.Policies)).To(Equal(entriesOf(si.Status.Policies)), "shard 0 counts it the same")
	ours := slimSignedImage(mine, si.DeepCopy()).(*sigwatchv1alpha1.SignedImage)
	want := si.DeepCopy()
	want.ManagedFields = nil
	g.Expect(ours).To(Equal(want), "this shard's are whole")

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builder", Annotations: map[string]string{"x": "y"}},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}, Secrets: []corev1.ObjectReference{{Name: "token"}}}
	g.Expect(slimServiceAccount(mine, sa.DeepCopy()).(*corev1.ServiceAccount).ImagePullSecrets).To(Equal(sa.ImagePullSecrets))
	g.Expect(slimServiceAccount(mine, sa.DeepCopy()).(*corev1.ServiceAccount).Secrets).To(BeNil())
	g.Expect(slimServiceAccount(other, sa.DeepCopy()).(*corev1.ServiceAccount).ImagePullSecrets).To(BeNil())

	// Anything else (a tombstone) passes through unchanged.
	g.Expect(slimPod(mine, "tombstone")).To(Equal("tombstone"))
}

// Shards other than 0 do not count: they keep other shards' SignedImages without results.
func TestOtherShardsResultsOnlyOnShardZero(t *testing.T) {
	g := NewWithT(t)
	si := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app-1"},
		Status: sigwatchv1alpha1.SignedImageStatus{Policies: []sigwatchv1alpha1.PolicyResult{{Name: "p", Result: sigwatchv1alpha1.PolicyVerified}}}}
	for index := range 3 {
		s := sharding.Shard{Index: index, Total: 3}
		if s.Owns(si.Namespace) {
			continue
		}
		got := slimSignedImage(s, si.DeepCopy()).(*sigwatchv1alpha1.SignedImage)
		g.Expect(got.Status.Policies != nil).To(Equal(index == 0), "shard %d", index)
	}
}
