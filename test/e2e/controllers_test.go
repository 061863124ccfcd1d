//go:build e2e

package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/test/envtest"
)

// TestControllersOnRealKeylessSignatures: pods run the release build, a PR build and an unsigned image;
// the policy (trust root in a ConfigMap) requires the release workflow on main through its identity and
// its GitHub workflow claims.
func TestControllersOnRealKeylessSignatures(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := s.env.Client
	g.Expect(c.Create(ctx, envtest.Namespace("sigwatch-system", nil))).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "sigwatch-system", Name: "e2e-sigstore"},
		Data: map[string]string{"trusted_root.json": string(s.stack.TrustedRootJSON())}})).To(Succeed())
	spec := releasePolicySpec(releaseIdentity())
	spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "sigwatch-system", Name: "e2e-sigstore"}}
	p := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "release-on-main"}, Spec: spec}
	g.Expect(c.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(ctx, p) })
	startManager(t)

	g.Expect(c.Create(ctx, envtest.Namespace("shop", nil))).To(Succeed())
	for name, d := range map[string]string{"web": s.release.String(), "preview": s.pr.String(), "debug": s.unsigned.String()} {
		_, err := envtest.RunDeployment(ctx, c, "shop", name, d, "docker-pullable://"+d)
		g.Expect(err).NotTo(HaveOccurred())
	}
	want := map[string][2]string{
		s.release.DigestStr():  {"True", sigwatchv1alpha1.VerifiedReason},
		s.pr.DigestStr():       {"False", sigwatchv1alpha1.UntrustedSignerReason},
		s.unsigned.DigestStr(): {"False", sigwatchv1alpha1.SignatureMissingReason},
	}
	var verified, preview sigwatchv1alpha1.SignedImage
	g.Eventually(func(g Gomega) {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace("shop"))).To(Succeed())
		got := map[string][2]string{}
		for _, si := range list.Items {
			if cond := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition); cond != nil {
				got[si.Spec.Digest] = [2]string{string(cond.Status), cond.Reason}
				if cond.Status == metav1.ConditionTrue {
					verified = si
				}
				if si.Spec.Digest == s.pr.DigestStr() {
					preview = si
				}
			}
		}
		g.Expect(got).To(Equal(want))
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// What a person sees about the real keyless signature.
	g.Expect(verified.Status.Summary.Signer).To(Equal(releaseClaims.CertificateIdentity()))
	sig := verified.Status.Signatures[0]
	g.Expect(sig.Format).To(Equal(sigwatchv1alpha1.SignatureFormatBundle))
	g.Expect(sig.Issuer).To(Equal(s.stack.OIDC.URL))
	g.Expect(sig.GitHubWorkflowRepository).To(Equal("yourorg/app"))
	g.Expect(sig.GitHubWorkflowRef).To(Equal("refs/heads/main"))
	g.Expect(sig.TransparencyLogIndex).NotTo(BeNil(), "a Rekor v2 entry")
	g.Expect(sig.IntegratedTime).To(BeNil(), "Rekor v2 entries carry no integrated time")
	g.Expect(sig.TimestampTime).NotTo(BeNil(), "the TSA certified the time")

	// A failed image shows who signed what was found, as not accepted (kubectl's SIGNER column).
	g.Expect(preview.Status.Summary.Signer).To(HaveSuffix(" (not accepted)"))
	g.Expect(preview.Status.Summary.Signer).To(ContainSubstring("refs/pull/"))
	// The verdict label is patched after the status (its own write): wait for it.
	g.Eventually(func(g Gomega) {
		var si sigwatchv1alpha1.SignedImage
		g.Expect(s.env.Client.Get(ctx, client.ObjectKeyFromObject(&preview), &si)).To(Succeed())
		g.Expect(si.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.VerifiedLabel, "false"))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func startManager(t *testing.T) { startManagerWith(t, nil) }

// startManagerWith starts the manager with the suite's configuration, changed by configure when not nil.
func startManagerWith(t *testing.T, configure func(*controllers.Config)) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(s.env.Config, ctrl.Options{
		Scheme:                 s.env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := trust.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := controllers.Config{
		PublicGood:        func(context.Context) (*trust.Root, error) { return embedded, nil },
		Registry:          registry.Options{Insecure: []string{"127.0.0.1:*"}},
		MetricsRegisterer: prometheus.NewRegistry(),
		MaxConcurrent:     4, GCGrace: time.Hour, NoMatch: controllers.NoMatchIgnore,
	}
	if configure != nil {
		configure(&cfg)
	}
	if _, err := controllers.Setup(ctx, mgr, cfg); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(stop)
	return stop
}
