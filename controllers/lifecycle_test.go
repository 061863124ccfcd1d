//go:build integration

package controllers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/test/cosign"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

func kstatus(t *testing.T, obj client.Object) status.Status {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

func TestKstatus(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	startManager(t)
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	runPod(t, ns, "bad-1", "bad", f.wrongKey.Context().Name()+":v1", imageID(f.wrongKey))
	good := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	bad := verified(t, signedImageFor(t, ns, repoOf(f.wrongKey), f.wrongKey.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
	g.Expect(kstatus(t, good)).To(Equal(status.CurrentStatus))
	g.Expect(kstatus(t, bad)).To(Equal(status.FailedStatus), "a settled failing verdict is Stalled: Failed, not InProgress")
	g.Expect(meta.IsStatusConditionTrue(bad.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())
	g.Expect(meta.IsStatusConditionFalse(good.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())
	eventually(t, func(g Gomega) {
		p := f.policy.DeepCopy()
		g.Expect(kstatus(t, p)).To(Equal(status.CurrentStatus))
		g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
	})
}

func TestManagerRestartLosesNothing(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	m := startManager(t)
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	badPod := runPod(t, ns, "bad-1", "bad", f.wrongKey.Context().Name()+":v1", imageID(f.wrongKey))
	good := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	bad := verified(t, signedImageFor(t, ns, repoOf(f.wrongKey), f.wrongKey.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
	eventually(t, func(g Gomega) {
		g.Expect(events(t, ns, "Pod", badPod.Name)).To(HaveLen(1))
	})
	m.stop(t)

	// While no manager runs, each digest gets a second workload: the new manager must write it, which
	// proves it reconciled both SignedImages before anything below is checked.
	runPod(t, ns, "web-canary-1", "web-canary", f.signed.Context().Name()+":v1", imageID(f.signed))
	runPod(t, ns, "bad-canary-1", "bad-canary", f.wrongKey.Context().Name()+":v1", imageID(f.wrongKey))
	startManager(t)
	for _, si := range []*sigwatchv1alpha1.SignedImage{good, bad} {
		eventually(t, func(g Gomega) {
			got := &sigwatchv1alpha1.SignedImage{}
			g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(si), got)).To(Succeed())
			g.Expect(got.Status.Workloads).To(HaveLen(2), "the new manager reconciled %s", si.Name)
		})
	}
	again := verified(t, good, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	g.Expect(again.Status.LastVerifiedTime).To(Equal(good.Status.LastVerifiedTime), "not due: not verified again")
	g.Expect(again.Status.Signatures).To(Equal(good.Status.Signatures))
	g.Expect(again.Status.NextVerificationTime).To(Equal(good.Status.NextVerificationTime))
	verified(t, bad, metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
	g.Expect(events(t, ns, "SignedImage", good.Name)).To(HaveLen(1), "no duplicate Event")
	g.Expect(events(t, ns, "SignedImage", bad.Name)).To(HaveLen(1))
	g.Expect(events(t, ns, "Pod", badPod.Name)).To(HaveLen(1))
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	m := startManager(t)
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	runPod(t, ns, "bad-1", "bad", f.unsigned.String(), "")
	verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	verified(t, signedImageFor(t, ns, repoOf(f.unsigned), f.unsigned.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)

	eventually(t, func(g Gomega) {
		families, err := m.metrics.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		byName := map[string]*dto.MetricFamily{}
		for _, f := range families {
			byName[f.GetName()] = f
		}
		g.Expect(byName).To(HaveKey("sigwatch_signedimages"))
		g.Expect(value(byName["sigwatch_signedimages"], map[string]string{"namespace": ns, "verified": "True", "reason": "Verified"})).To(Equal(1.0))
		g.Expect(value(byName["sigwatch_signedimages"], map[string]string{"namespace": ns, "verified": "False", "reason": "SignatureMissing"})).To(Equal(1.0))
		g.Expect(value(byName["sigwatch_verifications_total"], map[string]string{"result": "Verified", "reason": "Verified"})).To(BeNumerically(">=", 1))
		g.Expect(value(byName["sigwatch_verifications_total"], map[string]string{"result": "Failed", "reason": "SignatureMissing"})).To(BeNumerically(">=", 1))
		g.Expect(byName["sigwatch_verification_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount()).To(BeNumerically(">=", 2))
		g.Expect(value(byName["sigwatch_registry_requests_total"], map[string]string{"method": "GET", "code": "200"})).To(BeNumerically(">=", 1))
		g.Expect(value(byName["sigwatch_registry_requests_total"], map[string]string{"method": "HEAD", "code": "404"})).To(BeNumerically(">=", 1))
		g.Expect(byName).To(HaveKey("sigwatch_cache_hits_total"))
		g.Expect(value(byName["sigwatch_imagesignaturepolicy_ready"], map[string]string{"policy": f.policy.Name, "ready": "True"})).To(Equal(1.0))
	})
}

// value returns the value of the metric of a family whose labels include want (counter or gauge).
func value(f *dto.MetricFamily, want map[string]string) float64 {
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && labels[k] == v
		}
		if !ok {
			continue
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return 0
}

// TestPullSecrets: a registry that requires credentials is read with the image pull secrets of the
// pods' service account; without them the verdict is "could not verify", never "unverified".
func TestPullSecrets(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, true)
	key := cosign.GenerateKeyPair(t, t.TempDir())
	img := reg.PushRandomImage(t, "private/app")
	cosign.Sign(t, key, img.String(), cosign.SignOptions{NewBundleFormat: true})
	keyPolicy(t, reg.Host, key.PublicKeyPEM)
	const user, pass = "robot", "s3cret"
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == want {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="sigwatch-test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		return true
	})
	startManager(t)

	without := namespace(t, nil)
	runPod(t, without, "app-1", "app", img.Context().Name()+":v1", imageID(img))
	si := verified(t, signedImageFor(t, without, repoOf(img), img.DigestStr()), metav1.ConditionUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	g.Expect(si.Status.Policies[0].Message).To(ContainSubstring("credentials"))

	with := namespace(t, nil)
	auths, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: with, Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: auths}}
	g.Expect(env.Client.Create(context.Background(), secret)).To(Succeed())
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: with, Name: "default"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}
	g.Expect(env.Client.Create(context.Background(), sa)).To(Succeed())
	runPod(t, with, "app-1", "app", img.Context().Name()+":v1", imageID(img))
	verified(t, signedImageFor(t, with, repoOf(img), img.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
}

func TestNoMatchPolicy(t *testing.T) {
	for _, mode := range []controllers.NoMatchPolicy{controllers.NoMatchIgnore, controllers.NoMatchWarn} {
		t.Run(string(mode), func(t *testing.T) {
			g := NewWithT(t)
			reg := testregistry.Start(t, true)
			img := reg.PushRandomImage(t, "uncovered/app")
			startManager(t, func(c *controllers.Config) { c.NoMatch = mode })
			ns := namespace(t, nil)
			pod := runPod(t, ns, "app-1", "app", img.Context().Name()+":v1", imageID(img))
			si := verified(t, signedImageFor(t, ns, repoOf(img), img.DigestStr()), metav1.ConditionUnknown, sigwatchv1alpha1.NoMatchingPolicyReason)
			g.Expect(meta.IsStatusConditionTrue(si.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(Equal(mode == controllers.NoMatchIgnore))
			if mode == controllers.NoMatchWarn {
				eventually(t, func(g Gomega) {
					g.Expect(events(t, ns, "SignedImage", si.Name)).To(ConsistOf(HaveField("Reason", "VerificationUnknown")))
					g.Expect(events(t, ns, "Pod", pod.Name)).To(HaveLen(1))
				})
				return
			}
			// The verdict is written (above); Events are sent asynchronously: none may come.
			g.Consistently(func() []eventsv1.Event { return events(t, ns, "SignedImage", si.Name) }).
				WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(BeEmpty())
		})
	}
}

// TestKeySecretRotationReverifiesAtOnce: a policy's key comes from a Secret; replacing the key in the
// Secret re-verifies the images at once (the interval is an hour).
func TestKeySecretRotationReverifiesAtOnce(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	secretNS := namespace(t, nil)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretNS, Name: "cosign-pub"},
		Data: map[string][]byte{"cosign.pub": f.key.PublicKeyPEM}}
	g.Expect(env.Client.Create(context.Background(), secret)).To(Succeed())
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "key-from-secret"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(f.reg.Host + "/team/signed")},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "team", Key: &sigwatchv1alpha1.KeyAuthority{
				SecretRef: &sigwatchv1alpha1.SecretKeyReference{Namespace: secretNS, Name: "cosign-pub", Key: "cosign.pub"}},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}}},
		},
	}
	g.Expect(env.Client.Create(context.Background(), p)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	startManager(t)
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	si := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	g.Expect(si.Status.Policies).To(HaveLen(2), "the fixture's policy and the Secret one")

	secret.Data["cosign.pub"] = f.other.PublicKeyPEM
	g.Expect(env.Client.Update(context.Background(), secret)).To(Succeed())
	verified(t, si, metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)

	// A missing Secret stalls the policy, naming the field.
	g.Expect(env.Client.Delete(context.Background(), secret)).To(Succeed())
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), got)).To(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(sigwatchv1alpha1.KeyUnavailableReason))
		g.Expect(ready.Message).To(ContainSubstring("spec.authorities[0].key.secretRef"))
	})
}

// TestTrustedRootConfigMap: a policy whose trust root ConfigMap is missing stalls (TrustedRootUnavailable)
// and so do its images (Unknown, PolicyNotReady); creating the ConfigMap re-verifies them at once.
func TestTrustedRootConfigMap(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	reg := testregistry.Start(t, true)
	st, err := sigstore.NewStack()
	g.Expect(err).NotTo(HaveOccurred())
	w := &sigstore.Writer{Registry: reg.Host}
	img, err := w.PushRandomImage(ctx, "private-sigstore/app:v1")
	g.Expect(err).NotTo(HaveOccurred())
	signer := &sigstore.KeylessSigner{Stack: st, Identity: sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")}
	_, err = w.SignBundle(ctx, img, signer, sigstore.SignOptions{Timestamp: true})
	g.Expect(err).NotTo(HaveOccurred())

	rootNS := namespace(t, nil)
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "private-sigstore"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(reg.Host + "/private-sigstore/**")},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: signer.Identity.Issuer, Subject: signer.Identity.Subject}}}}},
			TrustedRoot: &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: rootNS, Name: "sigstore-root"}},
		},
	}
	g.Expect(env.Client.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
	startManager(t, func(c *controllers.Config) { c.MinRetry = time.Hour }) // no retry would come in time
	ns := namespace(t, nil)
	runPod(t, ns, "app-1", "app", img.Context().Name()+":v1", imageID(img))
	si := verified(t, signedImageFor(t, ns, repoOf(img), img.DigestStr()), metav1.ConditionUnknown, sigwatchv1alpha1.PolicyNotReadyReason)
	g.Expect(si.Status.Policies[0].Message).To(ContainSubstring("sigstore-root"))
	g.Expect(si.Status.Policies[0].Message).To(ContainSubstring(sigwatchv1alpha1.TrustedRootUnavailableReason))
	g.Expect(meta.IsStatusConditionTrue(si.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue(), "stalled with its policy")
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(HaveField("Reason", sigwatchv1alpha1.TrustedRootUnavailableReason))
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())
	})

	root, err := st.TrustedRootJSON()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: rootNS, Name: "sigstore-root"},
		Data: map[string]string{"trusted_root.json": string(root)}})).To(Succeed())
	// Retries are an hour apart here: the ConfigMap watch is what makes this immediate.
	verified(t, si, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
	})
}

// TestNamespaceRelabelReevaluates: relabelling a namespace re-evaluates its SignedImages at once (the
// policies that select it by label change), not at the next re-verification an hour later.
func TestNamespaceRelabelReevaluates(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t)
	g.Expect(env.Client.Delete(ctx, f.policy)).To(Succeed())
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a-only"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images:            []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(f.reg.Host + "/**")},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "team-key", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: string(f.key.PublicKeyPEM)},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}}},
		},
	}
	g.Expect(env.Client.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
	startManager(t, func(c *controllers.Config) { c.MinRetry = time.Hour })
	ns := namespace(t, nil)
	runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
	si := verified(t, signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionUnknown, sigwatchv1alpha1.NoMatchingPolicyReason)

	relabel := func(labels map[string]string) {
		nsObj := &corev1.Namespace{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		nsObj.Labels = labels
		g.Expect(env.Client.Update(ctx, nsObj)).To(Succeed())
	}
	relabel(map[string]string{"team": "a"})
	got := verified(t, si, metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	g.Expect(got.Status.Policies).To(ConsistOf(HaveField("Name", p.Name)))

	relabel(map[string]string{"team": "b"})
	verified(t, si, metav1.ConditionUnknown, sigwatchv1alpha1.NoMatchingPolicyReason)
}
