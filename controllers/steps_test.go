package controllers

// Step tests in the Flux style: the reconcilers driven by hand over the fake client, with a fake verifier
// and a fake clock, in milliseconds. What needs a real API server (CRD validation, watches, RBAC, the
// status subresource's semantics, the wiring) is in the envtest suites.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/scheme"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/internal/verification"
)

const (
	stepNS    = "shop"
	stepRepo  = "ghcr.io/yourorg/web"
	stepGrace = 10 * time.Minute
)

// fakeVerifier answers with a scripted verdict and records the requests.
type fakeVerifier struct {
	mu       sync.Mutex
	result   sigwatchv1alpha1.PolicyResultType
	reason   string
	requests []verification.Request
	// byPolicy, when set, scripts a policy's result and reason instead.
	byPolicy map[string][2]string
	// rejected, when set, is a signature that was found and not accepted, shown with every verdict.
	rejected *verification.Signature
	// then, when set, may change each result before it is returned.
	then func(req verification.Request, res *verification.Result)
}

func (f *fakeVerifier) set(result sigwatchv1alpha1.PolicyResultType, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.result, f.reason = result, reason
}

func (f *fakeVerifier) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeVerifier) Verify(_ context.Context, req verification.Request) *verification.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	res := &verification.Result{Image: req.Image}
	for _, p := range req.Policies {
		result, reason := f.result, f.reason
		if rr, ok := f.byPolicy[p.Name]; ok {
			result, reason = sigwatchv1alpha1.PolicyResultType(rr[0]), rr[1]
		}
		res.Policies = append(res.Policies, verification.PolicyResult{Policy: p.Name, Result: result, Reason: reason, Message: "scripted " + reason, Authority: "ci"})
	}
	if f.result == sigwatchv1alpha1.PolicyVerified {
		res.Signatures = []verification.Signature{{Format: sigwatchv1alpha1.SignatureFormatBundle, KeyID: "0123456789abcdef", Authority: "ci"}}
	}
	if f.rejected != nil {
		res.Signatures = append(res.Signatures, *f.rejected)
	}
	if f.then != nil {
		f.then(req, res)
	}
	return res
}

// fakeCredentials hands out fixed credentials and records the pods they were asked for.
type fakeCredentials struct{ pods []string }

func (f *fakeCredentials) For(_ context.Context, _ string, pods []corev1.Pod) (registry.Credentials, error) {
	for _, p := range pods {
		f.pods = append(f.pods, p.Name)
	}
	return registry.Credentials{ID: "pull-secrets-of-" + strings.Join(f.pods, ",")}, nil
}

// stepEnv is a fake cluster with one namespace, the reconcilers and their fakes.
type stepEnv struct {
	t        *testing.T
	c        client.Client
	clock    *clocktesting.FakeClock
	verifier *fakeVerifier
	recorder *events.FakeRecorder
	store    *PolicyStore
	si       *SignedImageReconciler
	policies *ImageSignaturePolicyReconciler
}

func newStepEnv(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *stepEnv {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(scheme.New()).
		WithStatusSubresource(&sigwatchv1alpha1.SignedImage{}, &sigwatchv1alpha1.ImageSignaturePolicy{}).
		WithObjects(append([]client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stepNS}}}, objs...)...).
		WithInterceptorFuncs(funcs)
	for _, ix := range fieldIndexes() {
		b = b.WithIndex(ix.obj, ix.field, ix.extract)
	}
	c := b.Build()
	embedded, err := trust.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	e := &stepEnv{t: t, c: c, clock: clocktesting.NewFakeClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)),
		verifier: &fakeVerifier{result: sigwatchv1alpha1.PolicyVerified, reason: sigwatchv1alpha1.VerifiedReason},
		recorder: events.NewFakeRecorder(1000)}
	e.store = &PolicyStore{Reader: c, APIReader: c, PublicGood: func(context.Context) (*trust.Root, error) { return embedded, nil }}
	e.si = &SignedImageReconciler{Client: c, Verifier: e.verifier, Policies: e.store, Recorder: e.recorder, Clock: e.clock,
		GCGrace: stepGrace, NoMatch: NoMatchIgnore, MinRetry: 10 * time.Second}
	e.si.defaults()
	e.policies = &ImageSignaturePolicyReconciler{Client: c, Policies: e.store, tally: newPolicyTally(), Clock: e.clock}
	e.policies.defaults()
	return e
}

func publicKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func keyPolicyObj(t *testing.T, name string) *sigwatchv1alpha1.ImageSignaturePolicy {
	return &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name + "-uid"), Generation: 1},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: publicKeyPEM(t)},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}}},
		},
	}
}

func stepImage() imageref.Image { return imageref.Image{Repository: stepRepo, Digest: dig} }

// managedSI is the SignedImage the pod controller makes for stepImage.
func managedSI() *sigwatchv1alpha1.SignedImage {
	return &sigwatchv1alpha1.SignedImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: signedImageName(stepImage(), 0), Generation: 1, UID: "si-uid",
			Labels: map[string]string{sigwatchv1alpha1.ManagedByLabel: sigwatchv1alpha1.ManagedByValue}},
		Spec: sigwatchv1alpha1.SignedImageSpec{Image: stepRepo, Digest: dig},
	}
}

func runningPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: stepRepo + ":v1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Image: stepRepo + ":v1", ImageID: "docker-pullable://" + stepRepo + "@" + dig}}},
	}
}

// reconcile runs one visit of the SignedImage.
func (e *stepEnv) reconcile() (ctrl.Result, error) {
	return e.si.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: stepNS, Name: signedImageName(stepImage(), 0)}})
}

func (e *stepEnv) mustReconcile() ctrl.Result {
	e.t.Helper()
	res, err := e.reconcile()
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	return res
}

func (e *stepEnv) get() *sigwatchv1alpha1.SignedImage {
	e.t.Helper()
	si := &sigwatchv1alpha1.SignedImage{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: stepNS, Name: signedImageName(stepImage(), 0)}, si); err != nil {
		e.t.Fatalf("get: %v", err)
	}
	return si
}

func (e *stepEnv) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.recorder.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// dueNow moves the clock to the SignedImage's next verification.
func (e *stepEnv) dueNow() {
	e.clock.SetTime(e.get().Status.NextVerificationTime.Time)
}

func verifiedOf(si *sigwatchv1alpha1.SignedImage) *metav1.Condition {
	return meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
}

// TestStepOutageKeepsLastGoodAndBacksOff: an outage makes a verified image Unknown, never False, keeps
// its signatures and last verified time, announces it once, and is retried sooner and sooner apart;
// recovery is announced once.
func TestStepOutageKeepsLastGoodAndBacksOff(t *testing.T) {
	g := NewWithT(t)
	creds := &fakeCredentials{}
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.si.Credentials = creds

	e.mustReconcile()
	si := e.get()
	g.Expect(verifiedOf(si).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Normal Verified ")))
	g.Expect(e.verifier.requests[0].Credentials.ID).To(Equal("pull-secrets-of-web-1"), "the credentials of the pods travel in the request")
	verifiedAt := si.Status.LastVerifiedTime.Time
	g.Expect(si.Status.NextVerificationTime.Sub(e.clock.Now())).To(BeNumerically("~", time.Hour, 6*time.Minute), "an hour ±10 %")

	e.verifier.set(sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	var waits []time.Duration
	for i := range 6 {
		e.dueNow()
		e.mustReconcile()
		si = e.get()
		c := verifiedOf(si)
		g.Expect(c.Status).To(Equal(metav1.ConditionUnknown), "attempt %d", i)
		g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))
		g.Expect(si.Status.Signatures).To(HaveLen(1), "last good signatures kept")
		g.Expect(si.Status.LastVerifiedTime.Time).To(BeTemporally("==", verifiedAt), "last verified time kept")
		g.Expect(si.Status.LastAttemptTime.Time).To(BeTemporally("==", e.clock.Now()))
		waits = append(waits, si.Status.NextVerificationTime.Sub(e.clock.Now()))
	}
	g.Expect(waits[0]).To(Equal(10*time.Second), "the first retry after MinRetry")
	for i := 1; i < len(waits); i++ {
		g.Expect(waits[i]).To(BeNumerically(">=", waits[i-1]), "retries never come closer: %v", waits)
	}
	g.Expect(waits[len(waits)-1]).To(BeNumerically(">", waits[0]), "and spread out: %v", waits)
	evs := e.events()
	g.Expect(evs).To(HaveLen(2), "one Warning on the SignedImage and one on its pod, for the whole outage: %v", evs)
	g.Expect(evs).To(HaveEach(HavePrefix("Warning VerificationUnknown ")))

	e.verifier.set(sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason)
	e.dueNow()
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Normal Verified ")))
}

// TestStepNoVerificationBeforeDue: a visit before the next verification asks the verifier nothing and
// writes nothing.
func TestStepNoVerificationBeforeDue(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.mustReconcile()
	rv := e.get().ResourceVersion
	e.clock.Step(time.Minute)
	res := e.mustReconcile()
	g.Expect(e.verifier.calls()).To(Equal(1))
	g.Expect(e.get().ResourceVersion).To(Equal(rv), "no write")
	g.Expect(res.RequeueAfter).To(Equal(e.get().Status.NextVerificationTime.Sub(e.clock.Now())), "back at the next verification")
}

// TestStepGarbageCollection: a managed SignedImage that no pod runs is deleted after the grace; one made
// by hand never is.
func TestStepGarbageCollection(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI())
	res := e.mustReconcile()
	si := e.get()
	g.Expect(si.Status.UnusedSince).NotTo(BeNil())
	g.Expect(si.Status.UnusedSince.Time).To(BeTemporally("==", e.clock.Now()))
	g.Expect(res.RequeueAfter).To(Equal(stepGrace), "back for the garbage collection")

	e.clock.Step(stepGrace - time.Second)
	e.mustReconcile()
	g.Expect(e.get().Status.UnusedSince.Time).To(BeTemporally("==", si.Status.UnusedSince.Time), "still within the grace")

	e.clock.Step(time.Second)
	e.mustReconcile()
	err := e.c.Get(context.Background(), client.ObjectKeyFromObject(si), &sigwatchv1alpha1.SignedImage{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "deleted: %v", err)
	_, err = e.reconcile()
	g.Expect(err).NotTo(HaveOccurred(), "a visit of a deleted SignedImage is a no-op")

	handMade := managedSI()
	handMade.Labels = nil
	e = newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), handMade)
	e.mustReconcile()
	e.clock.Step(100 * stepGrace)
	e.mustReconcile()
	g.Expect(e.get().Status.UnusedSince).To(BeNil(), "a hand-made SignedImage has no garbage-collection clock")
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue), "and is verified as any other")
}

// TestStepEventOnceAfterFailedPatch: when the status patch fails, nothing is announced; the retry writes
// it and announces it exactly once.
func TestStepEventOnceAfterFailedPatch(t *testing.T) {
	g := NewWithT(t)
	failures := 1
	e := newStepEnv(t, interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if failures > 0 {
			failures--
			return apierrors.NewServiceUnavailable("etcd is busy")
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))

	_, err := e.reconcile()
	g.Expect(err).To(MatchError(ContainSubstring("patching the status of SignedImage")), "a status that cannot be written is an error, never silent")
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Warning StatusWriteFailed ")), "the failure is announced; the verdict, not written, is not")
	g.Expect(verifiedOf(e.get())).To(BeNil())

	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(e.events()).To(HaveLen(1))
	e.clock.Step(2 * time.Hour)
	e.mustReconcile()
	g.Expect(e.events()).To(BeEmpty(), "the same verdict again: no Event")
}

// hiccup fails the next Gets of one object with a server timeout: its metadata (the cached read) or its
// content (the API read).
type hiccup struct {
	kind, name string
	metadata   bool
	times      int
}

func (h *hiccup) funcs() interceptor.Funcs {
	return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		gvk, _ := c.GroupVersionKindFor(obj)
		pom, isMetadata := obj.(*metav1.PartialObjectMetadata)
		if isMetadata {
			gvk = pom.GroupVersionKind()
		}
		if gvk.Kind == h.kind && key.Name == h.name && isMetadata == h.metadata && h.times > 0 {
			h.times--
			return apierrors.NewServerTimeout(schema.GroupResource{Resource: strings.ToLower(h.kind) + "s"}, "get", 1)
		}
		return c.Get(ctx, key, obj, opts...)
	}}
}

// TestStepTransientPolicyInputIsNotTerminal: an API hiccup reading a policy's key Secret (its metadata
// or its content) is retried, not cached: the policy is never stalled for it and is Ready on the next
// try, without any edit. Its images are a transient Unknown meanwhile (never False, not stalled, the
// last good result kept, retried soon). A Secret that is really gone stalls the policy, naming the field.
func TestStepTransientPolicyInputIsNotTerminal(t *testing.T) {
	g := NewWithT(t)
	p := keyPolicyObj(t, "from-secret")
	pemKey := p.Spec.Authorities[0].Key.PublicKey
	p.Spec.Authorities[0].Key = &sigwatchv1alpha1.KeyAuthority{SecretRef: &sigwatchv1alpha1.SecretKeyReference{Namespace: "sigwatch-system", Name: "cosign", Key: "cosign.pub"}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "sigwatch-system", Name: "cosign"}, Data: map[string][]byte{"cosign.pub": []byte(pemKey)}}
	h := &hiccup{kind: "Secret", name: "cosign"}
	e := newStepEnv(t, h.funcs(), p, secret, managedSI(), runningPod("web-1"))
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: p.Name}}
	policyNow := func() *sigwatchv1alpha1.ImageSignaturePolicy {
		got := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(e.c.Get(context.Background(), req.NamespacedName, got)).To(Succeed())
		return got
	}
	_, err := e.policies.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))

	for _, metadata := range []bool{true, false} {
		what := map[bool]string{true: "metadata", false: "content"}[metadata]
		// A rotated Secret: its content is read again (after its metadata).
		secret.Labels = map[string]string{"rotated": what}
		g.Expect(e.c.Update(context.Background(), secret)).To(Succeed())
		before := e.get()
		h.metadata, h.times = metadata, 2

		_, err := e.policies.Reconcile(context.Background(), req)
		g.Expect(err).To(HaveOccurred(), "%s: the hiccup is returned, to be retried with backoff", what)
		g.Expect(IsTransient(err)).To(BeTrue(), "%s: %v", what, err)
		g.Expect(meta.IsStatusConditionTrue(policyNow().Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeFalse(), "%s: never stalled for a hiccup", what)
		g.Expect(meta.IsStatusConditionTrue(policyNow().Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue(), "%s: the last readiness stays", what)

		e.dueNow()
		e.mustReconcile()
		down := e.get()
		c := verifiedOf(down)
		g.Expect(c.Status).To(Equal(metav1.ConditionUnknown), "%s: the image could not be verified (never False)", what)
		g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.VerificationErrorReason), "%s", what)
		g.Expect(c.Message).To(ContainSubstring("could not read the policy's inputs"), "%s", what)
		g.Expect(meta.IsStatusConditionTrue(down.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeFalse(), "%s: not stalled", what)
		g.Expect(down.Status.Signatures).To(Equal(before.Status.Signatures), "%s: the last good result stays", what)
		g.Expect(down.Status.LastVerifiedTime.Time).To(BeTemporally("==", before.Status.LastVerifiedTime.Time), "%s", what)
		g.Expect(down.Status.NextVerificationTime.Sub(e.clock.Now())).To(Equal(10*time.Second), "%s: retried soon", what)
		g.Expect(h.times).To(BeZero())

		_, err = e.policies.Reconcile(context.Background(), req)
		g.Expect(err).NotTo(HaveOccurred(), "%s: the retry", what)
		ready := meta.FindStatusCondition(policyNow().Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%s: Ready on the next try, without an edit: %s", what, ready.Message)
		e.dueNow()
		e.mustReconcile()
		g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue), "%s: verified again once the inputs read", what)
	}

	g.Expect(e.c.Delete(context.Background(), secret)).To(Succeed())
	_, err = e.policies.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred(), "a missing Secret is not retried: it is the policy's problem")
	stalled := meta.FindStatusCondition(policyNow().Status.Conditions, sigwatchv1alpha1.StalledCondition)
	g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(stalled.Reason).To(Equal(sigwatchv1alpha1.KeyUnavailableReason))
	g.Expect(stalled.Message).To(ContainSubstring("spec.authorities[0].key.secretRef"))
	e.dueNow()
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Reason).To(Equal(sigwatchv1alpha1.PolicyNotReadyReason), "the controllers agree")
}

// TestStepPolicyReadinessAgrees: a policy whose trust root ConfigMap is missing is stalled, and the
// images it covers are PolicyNotReady and stalled too (not retried on a timer: the ConfigMap watch
// brings them back); both follow from one readiness decision.
func TestStepPolicyReadinessAgrees(t *testing.T) {
	g := NewWithT(t)
	p := keyPolicyObj(t, "private-root")
	p.Spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "sigwatch-system", Name: "root"}}
	e := newStepEnv(t, interceptor.Funcs{}, p, managedSI(), runningPod("web-1"))

	_, err := e.policies.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	g.Expect(err).NotTo(HaveOccurred())
	got := &sigwatchv1alpha1.ImageSignaturePolicy{}
	g.Expect(e.c.Get(context.Background(), client.ObjectKeyFromObject(p), got)).To(Succeed())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(HaveField("Reason", sigwatchv1alpha1.TrustedRootUnavailableReason))
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())

	e.mustReconcile()
	si := e.get()
	c := verifiedOf(si)
	g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.PolicyNotReadyReason))
	g.Expect(c.Message).To(ContainSubstring("TrustedRootUnavailable"))
	g.Expect(c.Message).To(ContainSubstring("spec.trustedRoot.configMapRef"))
	g.Expect(meta.IsStatusConditionTrue(si.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())
	g.Expect(si.Status.NextVerificationTime.Sub(e.clock.Now())).To(BeNumerically(">", 50*time.Minute), "not retried on a timer")
	g.Expect(e.verifier.requests).To(BeEmpty(), "the policy that is not ready is not given to the verifier, which has nothing to do")
}

// TestStepPolicyStoreForgetsDeletedPolicies: a deleted policy leaves nothing in the store's caches, and
// neither do the trust roots only it read.
func TestStepPolicyStoreForgetsDeletedPolicies(t *testing.T) {
	g := NewWithT(t)
	p := keyPolicyObj(t, "gone")
	p.Spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "sigwatch-system", Name: "root"}}
	keep := keyPolicyObj(t, "kept")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "sigwatch-system", Name: "root"}, Data: map[string]string{"trusted_root.json": embeddedRootJSON(t)}}
	e := newStepEnv(t, interceptor.Funcs{}, p, keep, cm)
	for _, name := range []string{"gone", "kept"} {
		_, err := e.policies.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: name}})
		g.Expect(err).NotTo(HaveOccurred())
	}
	names, roots := e.store.cached()
	g.Expect(names).To(ConsistOf("gone", "kept"))
	g.Expect(roots).To(Equal(1))

	g.Expect(e.c.Delete(context.Background(), p)).To(Succeed())
	_, err := e.policies.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "gone"}})
	g.Expect(err).NotTo(HaveOccurred())
	names, roots = e.store.cached()
	g.Expect(names).To(ConsistOf("kept"))
	g.Expect(roots).To(BeZero(), "the ConfigMap's root was read by the deleted policy only")
}

func embeddedRootJSON(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../internal/trust/embedded/public-good.trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestReadiness(t *testing.T) {
	embedded, err := trust.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	perr := func(reason, field, msg string) error {
		return &policy.Error{Policy: "p", Reason: reason, Field: field, Err: errors.New(msg)}
	}
	for _, tc := range []struct {
		name        string
		err         error
		wantReady   bool
		wantReason  string
		wantMessage string
	}{
		{"resolved", nil, true, sigwatchv1alpha1.PolicyReadyReason, "1 authorities, 0 attestations, trust root " + embedded.Source},
		{"a field", perr(sigwatchv1alpha1.InvalidPolicyReason, "spec.images[0]", "bad glob"), false, sigwatchv1alpha1.InvalidPolicyReason, "spec.images[0]: bad glob"},
		{"a key", perr(sigwatchv1alpha1.KeyUnavailableReason, "spec.authorities[0].key.secretRef", "not found"), false, sigwatchv1alpha1.KeyUnavailableReason, "spec.authorities[0].key.secretRef: not found"},
		{"a root", perr(sigwatchv1alpha1.TrustedRootUnavailableReason, trustedRootField, "no key"), false, sigwatchv1alpha1.TrustedRootUnavailableReason, trustedRootField + ": no key"},
		{"anything else", errors.New("surprise"), false, sigwatchv1alpha1.InvalidPolicyReason, "surprise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var rp *ResolvedPolicy
			if tc.err == nil {
				cp, err := policy.Compile(keyPolicyObj(t, "p"), policy.Inputs{})
				g.Expect(err).NotTo(HaveOccurred())
				rp = &ResolvedPolicy{Policy: cp, Root: embedded}
			}
			r := readinessOf(rp, tc.err)
			g.Expect(r.ready).To(Equal(tc.wantReady))
			g.Expect(r.reason).To(Equal(tc.wantReason))
			g.Expect(r.message).To(Equal(tc.wantMessage))
			ready, stalled := r.conditions(4)
			g.Expect(ready.Status == metav1.ConditionTrue).To(Equal(tc.wantReady))
			g.Expect(stalled.Status == metav1.ConditionTrue).To(Equal(!tc.wantReady), "not ready is stalled")
			g.Expect(ready.ObservedGeneration).To(Equal(int64(4)))
		})
	}
}

// TestStepPullSecretsThatCannotBeReadAreRetried: when the pods' pull secrets (or their service account)
// cannot be read just now, the image is not verified with fewer credentials than the pods have: it is a
// transient Unknown, retried. A pull secret that does not exist is skipped, as the kubelet skips it.
func TestStepPullSecretsThatCannotBeReadAreRetried(t *testing.T) {
	g := NewWithT(t)
	pod := runningPod("web-1")
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "gone"}}
	regcred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"}}}`)}}
	h := &hiccup{kind: "Secret", name: "regcred", times: 1}
	e := newStepEnv(t, h.funcs(), keyPolicyObj(t, "key"), managedSI(), pod, regcred)
	e.si.Credentials = &PullSecrets{Reader: e.c}

	e.mustReconcile()
	c := verifiedOf(e.get())
	g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.VerificationErrorReason))
	g.Expect(c.Message).To(ContainSubstring("reading image pull secret shop/regcred"))
	g.Expect(e.verifier.calls()).To(BeZero(), "not verified without the pods' credentials")

	e.dueNow()
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(e.verifier.requests[0].Credentials.ID).To(HaveLen(16), "the pull secret that exists, by its resource version; the missing one skipped")
}
