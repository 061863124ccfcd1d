//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/sigstore"
	"github.com/sigwatch/sigwatch/test/tufrepo"
)

// TestPrivateSigstoreThroughTUF: a policy takes the local stack's trust root from a real TUF repository
// on loopback (spec.trustedRoot.tuf), trusted from an initial root.json in a ConfigMap. The release image
// verifies; the repository rotates its root key and publishes another Sigstore's trust root, which reaches
// the running manager without a restart (the image no longer verifies against it); then the repository
// serves an expired timestamp.json, which is refused: the last root stays in use, and the policy says it
// stands in.
func TestPrivateSigstoreThroughTUF(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := s.env.Client
	repo := tufrepo.Start(t, s.stack.TrustedRootJSON())

	g.Expect(c.Create(ctx, envtest.Namespace("tuf-trust", nil))).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "tuf-trust", Name: "private-sigstore-tuf"},
		Data: map[string]string{"root.json": string(repo.InitialRoot())}})).To(Succeed())
	spec := releasePolicySpec(releaseIdentity())
	spec.Images = []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(s.reg.Host + "/yourorg/app")}
	spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{TUF: &sigwatchv1alpha1.TUFSource{Mirror: repo.URL,
		RootRef: sigwatchv1alpha1.TUFRootReference{Namespace: "tuf-trust", Name: "private-sigstore-tuf"}}}
	p := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "private-tuf"}, Spec: spec}
	g.Expect(c.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(ctx, p) })
	startManagerWith(t, func(cfg *controllers.Config) {
		cfg.TUFRefresh = 300 * time.Millisecond
		cfg.TUFCacheDir = t.TempDir()
	})

	ns := "tuf"
	g.Expect(c.Create(ctx, envtest.Namespace(ns, nil))).To(Succeed())
	_, err := envtest.RunDeployment(ctx, c, ns, "web", s.release.String(), "docker-pullable://"+s.release.String())
	g.Expect(err).NotTo(HaveOccurred())
	verdict := func(g Gomega) *metav1.Condition {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		cond := meta.FindStatusCondition(list.Items[0].Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		g.Expect(cond).NotTo(BeNil())
		return cond
	}
	g.Eventually(func(g Gomega) {
		g.Expect(verdict(g).Reason).To(Equal(sigwatchv1alpha1.VerifiedReason))
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	policyReady := func(g Gomega) *metav1.Condition {
		var got sigwatchv1alpha1.ImageSignaturePolicy
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		cond := meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		g.Expect(cond).NotTo(BeNil())
		return cond
	}
	g.Eventually(func(g Gomega) {
		g.Expect(policyReady(g).Reason).To(Equal(sigwatchv1alpha1.PolicyReadyReason))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Rotation: a new root key, and the trust root of another Sigstore, published in the repository.
	other, err := sigstore.NewStack()
	g.Expect(err).NotTo(HaveOccurred())
	otherRoot, err := other.TrustedRootJSON()
	g.Expect(err).NotTo(HaveOccurred())
	repo.RotateRoot(t)
	repo.Publish(t, otherRoot)
	n := 0
	g.Eventually(func(g Gomega) {
		reverify(ctx, g, ns, &n) // the next verification, as reverifyInterval would bring it
		g.Expect(verdict(g).Reason).To(Equal(sigwatchv1alpha1.TrustRootMismatchReason))
	}).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())

	// An expired timestamp is refused: the root delivered last stands in, and the policy says so.
	repo.ExpireTimestamp(t)
	g.Eventually(func(g Gomega) {
		touch(ctx, g, p) // the policy's next visit
		cond := policyReady(g)
		g.Expect(cond.Reason).To(Equal(sigwatchv1alpha1.TrustRootFallbackReason))
		g.Expect(cond.Message).To(ContainSubstring("timestamp.json is expired"))
	}).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())
	reverify(ctx, g, ns, &n)
	g.Consistently(func(g Gomega) {
		g.Expect(verdict(g).Reason).To(Equal(sigwatchv1alpha1.TrustRootMismatchReason), "judged with the last root delivered, never Unknown")
	}).WithTimeout(3 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
}

// reverify asks for the SignedImages of ns to be verified again now (the reverify annotation).
func reverify(ctx context.Context, g Gomega, ns string, n *int) {
	var list sigwatchv1alpha1.SignedImageList
	g.Expect(s.env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	*n++
	for i := range list.Items {
		si := &list.Items[i]
		patch := client.MergeFrom(si.DeepCopy())
		if si.Annotations == nil {
			si.Annotations = map[string]string{}
		}
		si.Annotations[sigwatchv1alpha1.ReverifyAnnotation] = fmt.Sprint(*n)
		g.Expect(s.env.Client.Patch(ctx, si, patch)).To(Succeed())
	}
}

// touch changes an annotation of the policy, so that its controller visits it.
func touch(ctx context.Context, g Gomega, p *sigwatchv1alpha1.ImageSignaturePolicy) {
	var got sigwatchv1alpha1.ImageSignaturePolicy
	g.Expect(s.env.Client.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
	patch := client.MergeFrom(got.DeepCopy())
	if got.Annotations == nil {
		got.Annotations = map[string]string{}
	}
	got.Annotations["e2e.sigwatch.dev/touched"] = time.Now().Format(time.RFC3339Nano)
	g.Expect(s.env.Client.Patch(ctx, &got, patch)).To(Succeed())
}
