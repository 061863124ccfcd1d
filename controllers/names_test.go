package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/verification"
)

const rogueDig = "sha256:badc0ffee0ddf00dbadc0ffee0ddf00dbadc0ffee0ddf00dbadc0ffee0ddf00d"

// verdictsByDigest answers Verified or SignatureMissing by digest, for every policy.
type verdictsByDigest map[string]sigwatchv1alpha1.PolicyResultType

func (v verdictsByDigest) Verify(_ context.Context, req verification.Request) *verification.Result {
	res := &verification.Result{Image: req.Image}
	result, reason := sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason
	if v[req.Image.Digest] == sigwatchv1alpha1.PolicyVerified {
		result, reason = sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason
		res.Signatures = []verification.Signature{{Format: sigwatchv1alpha1.SignatureFormatBundle, KeyID: "0123456789abcdef", Authority: "ci"}}
	}
	for _, p := range req.Policies {
		res.Policies = append(res.Policies, verification.PolicyResult{Policy: p.Name, Result: result, Reason: reason, Message: "scripted " + reason, Authority: "ci"})
	}
	return res
}

// podOf is a running pod whose one container runs img.
func podOf(name string, img imageref.Image) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: img.Repository + ":v1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Image: img.Repository + ":v1", ImageID: "docker-pullable://" + img.String()}}},
	}
}

// settle runs the pod controller over the pods, then one visit of every SignedImage of the namespace, and
// returns the SignedImages by the image of their spec.
func (e *stepEnv) settle(pr *PodReconciler, pods ...*corev1.Pod) map[imageref.Image][]sigwatchv1alpha1.SignedImage {
	e.t.Helper()
	ctx := context.Background()
	for _, p := range pods {
		if _, err := pr.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)}); err != nil {
			e.t.Fatalf("pod %s: %v", p.Name, err)
		}
	}
	var list sigwatchv1alpha1.SignedImageList
	if err := e.c.List(ctx, &list, client.InNamespace(stepNS)); err != nil {
		e.t.Fatal(err)
	}
	for _, si := range list.Items {
		if _, err := e.si.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&si)}); err != nil {
			e.t.Fatalf("SignedImage %s: %v", si.Name, err)
		}
	}
	if err := e.c.List(ctx, &list, client.InNamespace(stepNS)); err != nil {
		e.t.Fatal(err)
	}
	out := map[imageref.Image][]sigwatchv1alpha1.SignedImage{}
	for _, si := range list.Items {
		out[imageOf(&si)] = append(out[imageOf(&si)], si)
	}
	return out
}

// mapPod is what the pod watch enqueues for a pod.
func (e *stepEnv) mapPod(p *corev1.Pod) []string {
	var names []string
	for _, req := range e.si.signedImagesOfPod(context.Background(), p) {
		names = append(names, req.Name)
	}
	return names
}

func podWorkload(name string) []sigwatchv1alpha1.WorkloadReference {
	return []sigwatchv1alpha1.WorkloadReference{{Kind: "Pod", Name: name, Containers: []string{"app"}}}
}

// expectOwnSignedImage: img has exactly one SignedImage, managed, with the verdict and the pods that run
// img and no other; the watch maps each of those pods to it.
func expectOwnSignedImage(g Gomega, e *stepEnv, byImage map[imageref.Image][]sigwatchv1alpha1.SignedImage, img imageref.Image, status metav1.ConditionStatus, pod *corev1.Pod) *sigwatchv1alpha1.SignedImage {
	g.Expect(byImage[img]).To(HaveLen(1), "%s has a SignedImage of its own", img)
	si := &byImage[img][0]
	g.Expect(si.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.ManagedByLabel, sigwatchv1alpha1.ManagedByValue))
	g.Expect(verifiedOf(si)).To(HaveField("Status", status), "%s", img)
	g.Expect(si.Status.Workloads).To(Equal(podWorkload(pod.Name)), "%s lists the pods that run it, and only those", img)
	g.Expect(e.mapPod(pod)).To(ConsistOf(si.Name), "a change of %s reaches the SignedImage of its digest", pod.Name)
	return si
}

// TestStepHandMadeSignedImageCannotHideADigest: a SignedImage made by hand under the name that a rogue
// digest's SignedImage will get, with a signed digest in its spec, neither keeps the rogue digest from
// getting a SignedImage (and its own verdict) nor lists the rogue pod.
func TestStepHandMadeSignedImageCannotHideADigest(t *testing.T) {
	g := NewWithT(t)
	signed, rogue := stepImage(), imageref.Image{Repository: stepRepo, Digest: rogueDig}
	decoy := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: signedImageName(rogue, 0), Generation: 1},
		Spec: sigwatchv1alpha1.SignedImageSpec{Image: signed.Repository, Digest: signed.Digest}}
	webPod, roguePod := podOf("web-1", signed), podOf("rogue-1", rogue)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), decoy, webPod, roguePod)
	e.si.Verifier = verdictsByDigest{signed.Digest: sigwatchv1alpha1.PolicyVerified}

	byImage := e.settle(&PodReconciler{Client: e.c}, webPod, roguePod)

	own := expectOwnSignedImage(g, e, byImage, rogue, metav1.ConditionFalse, roguePod)
	g.Expect(own.Name).NotTo(Equal(decoy.Name))
	g.Expect(verifiedOf(own).Reason).To(Equal(sigwatchv1alpha1.SignatureMissingReason))
	g.Expect(byImage[signed]).To(HaveLen(2), "the decoy and the signed digest's own SignedImage")
	for _, si := range byImage[signed] {
		g.Expect(verifiedOf(&si).Status).To(Equal(metav1.ConditionTrue), si.Name)
		g.Expect(si.Status.Workloads).To(Equal(podWorkload(webPod.Name)), "%s lists the pod of its digest, never the rogue one", si.Name)
	}
	g.Expect(e.mapPod(webPod)).To(ConsistOf(byImage[signed][0].Name, byImage[signed][1].Name))
}

// TestStepNameCollision: two digests whose SignedImages would get the same name both get a SignedImage,
// under distinct names, and each lists only its own pods and has its own verdict.
func TestStepNameCollision(t *testing.T) {
	g := NewWithT(t)
	a, b := stepImage(), imageref.Image{Repository: stepRepo, Digest: rogueDig}
	podA, podB := podOf("a-1", a), podOf("b-1", b)
	p := keyPolicyObj(t, "key")
	p.Spec.Images = []sigwatchv1alpha1.ImagePattern{"ghcr.io/**"}
	e := newStepEnv(t, interceptor.Funcs{}, p, podA, podB)
	pr := &PodReconciler{Client: e.c, names: func(img imageref.Image, attempt int) string {
		return fmt.Sprintf("collide-%d", attempt) // the same names for every digest
	}}
	e.si.Verifier = verdictsByDigest{a.Digest: sigwatchv1alpha1.PolicyVerified}

	byImage := e.settle(pr, podA, podB)

	siA := expectOwnSignedImage(g, e, byImage, a, metav1.ConditionTrue, podA)
	siB := expectOwnSignedImage(g, e, byImage, b, metav1.ConditionFalse, podB)
	g.Expect(siA.Name).NotTo(Equal(siB.Name))

	// The pod of the first one goes: only its SignedImage loses its workload.
	g.Expect(e.c.Delete(context.Background(), podA)).To(Succeed())
	byImage = e.settle(pr)
	g.Expect(byImage[a][0].Status.Workloads).To(BeEmpty())
	g.Expect(byImage[b][0].Status.Workloads).To(Equal(podWorkload(podB.Name)))
}

// TestStepNoFreeName: when every name of a digest's SignedImage is held by a SignedImage of another
// digest, or by one of the same digest that is being deleted (it would never be verified), the pod
// controller fails loudly (an error, retried with backoff, and a Warning on the pod) rather than pass the
// digest over.
func TestStepNoFreeName(t *testing.T) {
	g := NewWithT(t)
	img, other := stepImage(), imageref.Image{Repository: stepRepo, Digest: rogueDig}
	names := func(_ imageref.Image, attempt int) string { return fmt.Sprintf("held-%d", attempt) }
	objs := []client.Object{keyPolicyObj(t, "key")}
	for attempt := range signedImageNameAttempts - 1 {
		objs = append(objs, &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: names(other, attempt)},
			Spec: sigwatchv1alpha1.SignedImageSpec{Image: other.Repository, Digest: other.Digest}})
	}
	now := metav1.Now()
	objs = append(objs, &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: names(img, signedImageNameAttempts-1),
		DeletionTimestamp: &now, Finalizers: []string{"example.com/hold"}},
		Spec: sigwatchv1alpha1.SignedImageSpec{Image: img.Repository, Digest: img.Digest}})
	pod := podOf("web-1", img)
	e := newStepEnv(t, interceptor.Funcs{}, append(objs, pod)...)
	pr := &PodReconciler{Client: e.c, Recorder: e.recorder, names: names}

	_, err := pr.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pod)})
	g.Expect(err).To(MatchError(ContainSubstring("no SignedImage for " + img.String())))
	g.Expect(err.Error()).To(ContainSubstring("held-0"))
	g.Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("held-%d", signedImageNameAttempts-1)))
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Warning NoSignedImage ")))

	// A second container's digest, whose names are free, gets its SignedImage all the same.
	second := imageref.Image{Repository: stepRepo + "sidecar", Digest: rogueDig} // sorts after img: looked after last
	pod2 := podOf("web-2", img)
	pod2.Spec.Containers = append(pod2.Spec.Containers, corev1.Container{Name: "sidecar", Image: second.Repository + ":v1"})
	pod2.Status.ContainerStatuses = append(pod2.Status.ContainerStatuses,
		corev1.ContainerStatus{Name: "sidecar", Image: second.Repository + ":v1", ImageID: "docker-pullable://" + second.String()})
	g.Expect(e.c.Create(context.Background(), pod2)).To(Succeed())
	g.Expect(e.c.Status().Update(context.Background(), pod2)).To(Succeed())
	pr.names = func(i imageref.Image, attempt int) string {
		if i == second {
			return fmt.Sprintf("sidecar-%d", attempt)
		}
		return names(i, attempt)
	}
	_, err = pr.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pod2)})
	g.Expect(err).To(MatchError(ContainSubstring("no SignedImage for " + img.String())))
	si := &sigwatchv1alpha1.SignedImage{}
	g.Expect(e.c.Get(context.Background(), client.ObjectKey{Namespace: stepNS, Name: "sidecar-0"}, si)).To(Succeed(),
		"one digest without a SignedImage does not leave the pod's others without theirs")
	g.Expect(si.Spec.Digest).To(Equal(second.Digest))
}

// TestStepSignedImageNotYetCached: a SignedImage that the API server has (AlreadyExists) and the cache
// does not yet have is neither taken for another digest's nor created under the next name: the pod is
// visited again soon.
func TestStepSignedImageNotYetCached(t *testing.T) {
	g := NewWithT(t)
	pod := runningPod("web-1")
	racing := 1
	e := newStepEnv(t, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*sigwatchv1alpha1.SignedImage); ok && racing > 0 {
			racing--
			return apierrors.NewAlreadyExists(schema.GroupResource{Group: sigwatchv1alpha1.GroupVersion.Group, Resource: "signedimages"}, obj.GetName())
		}
		return c.Create(ctx, obj, opts...)
	}}, keyPolicyObj(t, "key"), pod)
	pr := &PodReconciler{Client: e.c}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pod)}

	res, err := pr.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(nameRetry))
	var list sigwatchv1alpha1.SignedImageList
	g.Expect(e.c.List(context.Background(), &list)).To(Succeed())
	g.Expect(list.Items).To(BeEmpty(), "not created under another name")

	res, err = pr.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeZero())
	g.Expect(e.get().Spec).To(Equal(sigwatchv1alpha1.SignedImageSpec{Image: stepRepo, Digest: dig}), "under its first name")
}

// TestStepDigestKeepsOneSignedImage: the digest that had to take a later name keeps that one SignedImage
// when the earlier name becomes free; and a SignedImage deleted while pods run its digest (by hand, say)
// comes back at once: its deletion brings one of those pods to the pod controller.
func TestStepDigestKeepsOneSignedImage(t *testing.T) {
	g := NewWithT(t)
	signed, rogue := stepImage(), imageref.Image{Repository: stepRepo, Digest: rogueDig}
	decoy := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: signedImageName(rogue, 0), Generation: 1},
		Spec: sigwatchv1alpha1.SignedImageSpec{Image: signed.Repository, Digest: signed.Digest}}
	webPod, roguePod := podOf("web-1", signed), podOf("rogue-1", rogue)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), decoy, webPod, roguePod)
	pr := &PodReconciler{Client: e.c}
	ctx := context.Background()
	first := e.settle(pr, webPod, roguePod)[rogue][0]
	g.Expect(first.Name).To(Equal(signedImageName(rogue, 1)))

	g.Expect(e.c.Delete(ctx, decoy)).To(Succeed())
	g.Expect(pr.podOfSignedImage(ctx, decoy)).To(ConsistOf(HaveField("NamespacedName", client.ObjectKeyFromObject(webPod))))
	byImage := e.settle(pr, webPod, roguePod)
	g.Expect(byImage[rogue]).To(ConsistOf(HaveField("UID", first.UID)), "no second SignedImage under the name that became free")

	g.Expect(e.c.Delete(ctx, &first)).To(Succeed())
	reqs := pr.podOfSignedImage(ctx, &first)
	g.Expect(reqs).To(ConsistOf(HaveField("NamespacedName", client.ObjectKeyFromObject(roguePod))))
	byImage = e.settle(pr, roguePod)
	g.Expect(byImage[rogue]).To(HaveLen(1), "back")
	g.Expect(byImage[rogue][0].Status.Workloads).To(Equal(podWorkload(roguePod.Name)))

	g.Expect(e.c.Delete(ctx, roguePod)).To(Succeed())
	g.Expect(pr.podOfSignedImage(ctx, &byImage[rogue][0])).To(BeEmpty(), "nothing runs it: nothing to bring back")
}

// TestStepPodsOfOneDigestCostOneCreate: the pods of a digest cost one API write between them, even while
// the cache has not yet shown the SignedImage the first one made; a deletion makes the next pod look
// again.
func TestStepPodsOfOneDigestCostOneCreate(t *testing.T) {
	g := NewWithT(t)
	creates, reads := 0, 0
	var pods []client.Object
	for i := range 20 {
		pods = append(pods, podOf(fmt.Sprintf("web-%d", i), stepImage()))
	}
	e := newStepEnv(t, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*sigwatchv1alpha1.SignedImage); ok {
				creates++
			}
			return c.Create(ctx, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*sigwatchv1alpha1.SignedImageList); ok {
				reads++
				// The cache lags: it has not seen the SignedImage yet.
				return nil
			}
			return c.List(ctx, list, opts...)
		},
	}, append([]client.Object{keyPolicyObj(t, "key")}, pods...)...)
	pr := &PodReconciler{Client: e.c}
	ctx := context.Background()
	for _, p := range pods {
		res, err := pr.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.RequeueAfter).To(BeZero(), "%s: not retried", p.GetName())
	}
	g.Expect(creates).To(Equal(1), "one create for 20 pods")
	g.Expect(reads).To(Equal(1), "the cache is asked once")

	si := e.get()
	g.Expect(e.c.Delete(ctx, si)).To(Succeed())
	pr.podOfSignedImage(ctx, si)
	_, err := pr.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(pods[3])})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(creates).To(Equal(2), "after the deletion, made again")
	g.Expect(e.get().Spec).To(Equal(si.Spec))
}

// A deletion seen between a visit's look and its note is not hidden by the note; what is noted is taken
// as known for ensuredTTL only.
func TestEnsuredDigests(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	e := ensuredDigests{now: func() time.Time { return now }}

	known, token := e.look("ns app@sha256:1")
	g.Expect(known).To(BeFalse())
	e.note("ns app@sha256:1", token)
	known, _ = e.look("ns app@sha256:1")
	g.Expect(known).To(BeTrue())

	// The race: a visit looks (the cache still shows the SignedImage), the SignedImage is deleted and
	// forgotten, then the visit notes what it saw.
	e.forget("ns app@sha256:1")
	known, token = e.look("ns app@sha256:1")
	g.Expect(known).To(BeFalse())
	e.forget("ns app@sha256:1")
	e.note("ns app@sha256:1", token)
	known, _ = e.look("ns app@sha256:1")
	g.Expect(known).To(BeFalse(), "the deletion wins: the next pod of the digest makes it again")

	// Known for ensuredTTL, then asked again.
	_, token = e.look("ns app@sha256:2")
	e.note("ns app@sha256:2", token)
	now = now.Add(ensuredTTL - time.Second)
	known, _ = e.look("ns app@sha256:2")
	g.Expect(known).To(BeTrue())
	now = now.Add(time.Second)
	known, _ = e.look("ns app@sha256:2")
	g.Expect(known).To(BeFalse(), "past the TTL the cache is asked")
}
