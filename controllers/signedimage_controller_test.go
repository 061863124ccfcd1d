//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/test/cosign"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// fixture is a registry with images signed by the real cosign, and a policy trusting one key for it.
type fixture struct {
	reg                        *testregistry.Registry
	key, other                 cosign.KeyPair
	policy                     *sigwatchv1alpha1.ImageSignaturePolicy
	signed, wrongKey, unsigned name.Digest
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reg: testregistry.Start(t, true)}
	f.key = cosign.GenerateKeyPair(t, t.TempDir())
	f.other = cosign.GenerateKeyPair(t, t.TempDir())
	f.signed = f.reg.PushRandomImage(t, "team/signed")
	cosign.Sign(t, f.key, f.signed.String(), cosign.SignOptions{NewBundleFormat: false})
	f.wrongKey = f.reg.PushRandomImage(t, "team/wrongkey")
	cosign.Sign(t, f.other, f.wrongKey.String(), cosign.SignOptions{NewBundleFormat: true})
	f.unsigned = f.reg.PushRandomImage(t, "team/unsigned")
	f.policy = keyPolicy(t, f.reg.Host, f.key.PublicKeyPEM)
	return f
}

// keyPolicy creates a cluster policy that requires images of the registry to be signed with the key.
func keyPolicy(t *testing.T, host string, pem []byte) *sigwatchv1alpha1.ImageSignaturePolicy {
	t.Helper()
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("key-%d", time.Now().UnixNano())},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(host + "/**")},
			Authorities: []sigwatchv1alpha1.Authority{{
				Name:            "team-key",
				Key:             &sigwatchv1alpha1.KeyAuthority{PublicKey: string(pem)},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled},
			}},
		},
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("creating policy: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	return p
}

func imageID(d name.Digest) string { return "docker-pullable://" + d.String() }

func repoOf(d name.Digest) string { return d.Context().Name() }

func TestVerdictsForRunningPods(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	startManager(t)
	ns := namespace(t, nil)

	goodPod := runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	badPod := runPod(t, ns, "rogue-1", "rogue", f.wrongKey.Context().Name()+":v1", imageID(f.wrongKey))
	unsignedPod := runPod(t, ns, "job-1", "", f.unsigned.String(), "")

	good := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	bad := verified(t, signedImageFor(t, ns, repoOf(f.wrongKey), f.wrongKey.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
	unsigned := verified(t, signedImageFor(t, ns, repoOf(f.unsigned), f.unsigned.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)

	// The verified image's status is complete.
	g.Expect(good.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.ManagedByLabel, sigwatchv1alpha1.ManagedByValue))
	g.Expect(len(good.Name)).To(BeNumerically("<=", 63))
	g.Expect(good.Name).To(HavePrefix("signed-"))
	g.Expect(meta.IsStatusConditionTrue(good.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
	g.Expect(good.Status.ObservedGeneration).To(Equal(good.Generation))
	g.Expect(good.Status.Policies).To(ConsistOf(HaveField("Name", f.policy.Name)))
	g.Expect(good.Status.Policies[0].Authority).To(Equal("team-key"))
	g.Expect(good.Status.Signatures).To(HaveLen(1))
	g.Expect(good.Status.Signatures[0].Format).To(Equal(sigwatchv1alpha1.SignatureFormatLegacy))
	g.Expect(good.Status.Signatures[0].KeyID).To(HaveLen(64))
	g.Expect(good.Status.Summary.Signer).To(MatchRegexp(`^key [0-9a-f]{12}$`))
	g.Expect(good.Status.LastVerifiedTime).NotTo(BeNil())
	g.Expect(good.Status.NextVerificationTime.Time).To(BeTemporally(">", time.Now().Add(50*time.Minute)), "1h ± 10 %")
	g.Expect(good.Status.Workloads).To(Equal([]sigwatchv1alpha1.WorkloadReference{{Kind: "Deployment", Name: "web", Containers: []string{"app"}}}))
	g.Expect(unsigned.Status.Workloads).To(Equal([]sigwatchv1alpha1.WorkloadReference{{Kind: "Pod", Name: "job-1", Containers: []string{"app"}}}))
	g.Expect(meta.IsStatusConditionTrue(bad.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeFalse())

	// One Event per SignedImage, and a Warning on each pod that runs an unverified digest.
	eventually(t, func(g Gomega) {
		g.Expect(events(t, ns, "SignedImage", good.Name)).To(ConsistOf(And(HaveField("Type", "Normal"), HaveField("Reason", "Verified"))))
		g.Expect(events(t, ns, "SignedImage", bad.Name)).To(ConsistOf(And(HaveField("Type", "Warning"), HaveField("Reason", "VerificationFailed"))))
		g.Expect(events(t, ns, "SignedImage", unsigned.Name)).To(ConsistOf(HaveField("Reason", "VerificationFailed")))
		g.Expect(events(t, ns, "Pod", badPod.Name)).To(ConsistOf(And(HaveField("Type", "Warning"), HaveField("Note", ContainSubstring("UntrustedSigner")))))
		g.Expect(events(t, ns, "Pod", unsignedPod.Name)).To(ConsistOf(HaveField("Note", ContainSubstring("SignatureMissing"))))
		g.Expect(events(t, ns, "Pod", goodPod.Name)).To(BeEmpty())
	})

	// The policy counts its images.
	eventually(t, func(g Gomega) {
		p := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(f.policy), p)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
		g.Expect(p.Status.MatchedImages).To(BeEquivalentTo(3))
		g.Expect(p.Status.VerifiedImages).To(BeEquivalentTo(1))
		g.Expect(p.Status.FailedImages).To(BeEquivalentTo(2))
	})

	// A forced re-verification with the same verdict: it is written (lastHandledReverify), and no new
	// Event comes.
	annotate(t, good, sigwatchv1alpha1.ReverifyAnnotation, "same-verdict")
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(good), got)).To(Succeed())
		g.Expect(got.Status.LastHandledReverify).To(Equal("same-verdict"))
	})
	g.Consistently(func() []eventsv1.Event { return events(t, ns, "SignedImage", good.Name) }).
		WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(HaveLen(1))
}

func annotate(t *testing.T, si *sigwatchv1alpha1.SignedImage, key, value string) {
	t.Helper()
	patch := client.MergeFrom(si.DeepCopy())
	cp := si.DeepCopy()
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[key] = value
	if err := env.Client.Patch(context.Background(), cp, patch); err != nil {
		t.Fatalf("annotating: %v", err)
	}
}

func TestSignatureRemovedAndRestored(t *testing.T) {
	f := newFixture(t)
	startManager(t, func(c *controllers.Config) { c.IntervalOverride = 2 * time.Second; c.StateTTL = -1 })
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	si := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)

	sigTag, err := name.NewTag(f.reg.Repo("team/signed")+":"+"sha256-"+f.signed.DigestStr()[7:]+".sig", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(sigTag); err != nil {
		t.Fatalf("deleting the signature: %v", err)
	}
	verified(t, si, metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)

	cosign.Sign(t, f.key, f.signed.String(), cosign.SignOptions{NewBundleFormat: true})
	got := verified(t, si, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	NewWithT(t).Expect(got.Status.Signatures[0].Format).To(Equal(sigwatchv1alpha1.SignatureFormatBundle))
	eventually(t, func(g Gomega) {
		g.Expect(events(t, ns, "SignedImage", si.Name)).To(HaveLen(3), "Verified, VerificationFailed, Verified")
	})
}

func TestRegistryOutageKeepsLastGood(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	startManager(t, func(c *controllers.Config) { c.IntervalOverride = 2 * time.Second; c.StateTTL = -1 })
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	si := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	lastVerified := si.Status.LastVerifiedTime

	// Record every Verified status the object goes through from now on.
	seen := watchVerified(t, si)

	f.reg.Stop()
	down := verified(t, si, metav1.ConditionUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	g.Expect(down.Status.Summary.Signer).To(Equal(si.Status.Summary.Signer), "the last good signer is kept")
	g.Expect(down.Status.Signatures).To(Equal(si.Status.Signatures))
	g.Expect(down.Status.LastVerifiedTime.Time).To(BeTemporally(">=", lastVerified.Time))
	g.Expect(meta.IsStatusConditionTrue(down.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeFalse())
	g.Expect(kstatus(t, down.DeepCopy())).To(Equal(status.InProgressStatus), "a transient failure is being retried")

	f.reg.Restart(t)
	verified(t, si, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	eventually(t, func(g Gomega) {
		g.Expect(seen()).To(ContainElement(string(metav1.ConditionTrue)), "the watch saw the recovery")
	})
	g.Expect(seen()).To(ContainElement(string(metav1.ConditionUnknown)))
	g.Expect(seen()).NotTo(ContainElement(string(metav1.ConditionFalse)), "never False during the outage, in any version written: %v", seen())
}

// watchVerified watches the object from its current resource version and returns every Verified status
// it went through since: a real watch sees every version written, where polling could miss a short one.
func watchVerified(t *testing.T, si *sigwatchv1alpha1.SignedImage) func() []string {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &sigwatchv1alpha1.SignedImageList{}, client.InNamespace(si.Namespace),
		client.MatchingFields{"metadata.name": si.Name}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: si.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var (
		mu  sync.Mutex
		all []string
	)
	go func() {
		for ev := range w.ResultChan() {
			got, ok := ev.Object.(*sigwatchv1alpha1.SignedImage)
			if !ok {
				continue
			}
			if c := meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.VerifiedCondition); c != nil {
				mu.Lock()
				all = append(all, string(c.Status))
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), all...)
	}
}

func TestPolicyEditReverifiesAtOnce(t *testing.T) {
	f := newFixture(t)
	startManager(t)
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	si := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)

	p := &sigwatchv1alpha1.ImageSignaturePolicy{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(f.policy), p); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Authorities[0].Key.PublicKey = string(f.other.PublicKeyPEM)
	if err := env.Client.Patch(context.Background(), p, patch); err != nil { // the controller writes the status meanwhile
		t.Fatal(err)
	}
	// The interval is an hour: only the policy watch can make this happen within the test's timeout.
	verified(t, si, metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
}

func TestReverifyAnnotation(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	startManager(t)
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.unsigned.String(), "")
	si := verified(t, signedImageFor(t, ns, repoOf(f.unsigned), f.unsigned.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)
	cosign.Sign(t, f.key, f.unsigned.String(), cosign.SignOptions{NewBundleFormat: true})
	annotate(t, si, sigwatchv1alpha1.ReverifyAnnotation, "1")
	got := verified(t, si, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	g.Expect(got.Status.LastHandledReverify).To(Equal("1"))
}

func TestSameImageInTwoNamespacesVerifiedOnce(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	startManager(t)
	a, b := namespace(t, nil), namespace(t, nil)
	f.reg.ResetCounts()
	runPod(t, a, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	runPod(t, b, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	siA := verified(t, signedImageFor(t, a, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	siB := verified(t, signedImageFor(t, b, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	g.Expect(siA.Name).To(Equal(siB.Name), "the name depends on image and digest only")
	g.Expect(f.reg.Requests("GET manifests")).To(Equal(1), "the .sig manifest is read once for both namespaces")
	g.Expect(f.reg.Requests("GET blobs")).To(Equal(1))
	g.Expect(f.reg.Requests("GET referrers")).To(Equal(1))
}

func TestGarbageCollection(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	startManager(t, func(c *controllers.Config) { c.GCGrace = 2 * time.Second })
	ns := namespace(t, nil)
	pod := runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	managed := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	handMade := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "before-rollout"},
		Spec: sigwatchv1alpha1.SignedImageSpec{Image: repoOf(f.unsigned), Digest: f.unsigned.DigestStr()}}
	g.Expect(env.Client.Create(context.Background(), handMade)).To(Succeed())
	verified(t, handMade, metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)

	g.Expect(env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0))).To(Succeed())
	eventually(t, func(g Gomega) {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(managed), &sigwatchv1alpha1.SignedImage{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the managed SignedImage is deleted after the grace period")
	})
	// The hand-made one has been unused for longer than the grace too: a visit (forced by the annotation,
	// written as lastHandledReverify) runs the garbage collector on it, and it stays.
	annotate(t, handMade, sigwatchv1alpha1.ReverifyAnnotation, "after-grace")
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(handMade), got)).To(Succeed(), "hand-made SignedImages are never deleted")
		g.Expect(got.Status.LastHandledReverify).To(Equal("after-grace"))
		g.Expect(got.Status.UnusedSince).To(BeNil())
	})
	g.Consistently(func() error {
		return env.Client.Get(context.Background(), client.ObjectKeyFromObject(handMade), &sigwatchv1alpha1.SignedImage{})
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

func TestInvalidPolicyIsStalled(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, true)
	img := reg.PushRandomImage(t, "team/app")
	startManager(t)
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bad-regexp"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(reg.Host + "/**")},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: "https://token.actions.githubusercontent.com", SubjectRegExp: "https://github.com/(unclosed"}},
			}}},
		},
	}
	g.Expect(env.Client.Create(context.Background(), p)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), got)).To(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(sigwatchv1alpha1.InvalidPolicyReason))
		g.Expect(ready.Message).To(ContainSubstring("spec.authorities[0].keyless.identities[0].subjectRegExp"))
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())
	})
	// A Warning Event on the policy says what is wrong (cluster-scoped objects' Events are in default).
	eventually(t, func(g Gomega) {
		g.Expect(events(t, "default", "ImageSignaturePolicy", p.Name)).To(ConsistOf(And(HaveField("Type", "Warning"),
			HaveField("Reason", controllers.EventReasonPolicyNotReady), HaveField("Note", ContainSubstring("subjectRegExp")))))
	})
	// An image the broken policy covers is "could not verify", not silently unchecked.
	ns := namespace(t, nil)
	runPod(t, ns, "app-1", "", img.String(), "")
	si := verified(t, signedImageFor(t, ns, repoOf(img), img.DigestStr()), metav1.ConditionUnknown, sigwatchv1alpha1.PolicyNotReadyReason)
	g.Expect(si.Status.Policies[0].Message).To(ContainSubstring("not ready"))
}
