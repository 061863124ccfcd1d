//go:build integration

package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/policyreport"
	"github.com/sigwatch/sigwatch/internal/sharding"
	"github.com/sigwatch/sigwatch/test/envtest"
)

const reportDigest = "sha256:c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

// policyReportCRD installs the vendored upstream CRDs (config/crd/policyreport) once, and remembers
// whether the API server served PolicyReports before.
var policyReportCRD struct {
	once         sync.Once
	servedBefore bool
	err          error
}

func installPolicyReportCRD(t *testing.T) {
	t.Helper()
	policyReportCRD.once.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
		if err != nil {
			policyReportCRD.err = err
			return
		}
		if policyReportCRD.servedBefore, err = policyreport.Served(dc); err != nil {
			policyReportCRD.err = err
			return
		}
		_, policyReportCRD.err = crenvtest.InstallCRDs(env.Config, crenvtest.CRDInstallOptions{
			Paths:              []string{filepath.Join(envtest.RepoRoot(), "config", "crd", "policyreport")},
			ErrorIfPathMissing: true,
		})
	})
	if policyReportCRD.err != nil {
		t.Fatalf("installing the PolicyReport CRD: %v", policyReportCRD.err)
	}
}

// Without the CRD, discovery says PolicyReports are not served and auto writes none; with it, they are.
func TestPolicyReportDiscovery(t *testing.T) {
	g := NewWithT(t)
	installPolicyReportCRD(t)
	g.Expect(policyReportCRD.servedBefore).To(BeFalse(), "the test API server serves PolicyReports before the CRD is installed")
	enabled, why, err := policyreport.ModeAuto.Enabled(policyReportCRD.servedBefore)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(enabled).To(BeFalse(), "--policy-reports=auto without the CRD registers no controller")
	g.Expect(why).To(ContainSubstring("does not serve"))
	_, _, err = policyreport.ModeOn.Enabled(policyReportCRD.servedBefore)
	g.Expect(err).To(HaveOccurred(), "--policy-reports=true without the CRD does not start")

	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	served, err := policyreport.Served(dc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served).To(BeTrue(), "the vendored CRD serves wgpolicyk8s.io/v1alpha2 policyreports")
	enabled, _, err = policyreport.ModeAuto.Enabled(served)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(enabled).To(BeTrue())
}

// startReports runs a manager with only the PolicyReport controller, as the given shard (the test
// writes the SignedImages' statuses itself: no verification runs). The returned function stops it.
func startReports(t *testing.T, shard sharding.Shard) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Client:                 client.Options{FieldOwner: controllers.FieldOwner(shard)},
		Cache:                  controllers.CacheOptions(shard),
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	r := &controllers.PolicyReportReconciler{Client: mgr.GetClient(), Reader: mgr.GetCache(), APIReader: mgr.GetAPIReader(),
		Owns: shard.Owns, Delay: 200 * time.Millisecond}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatalf("setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("manager: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("manager did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// namespaceOf creates a namespace that the shard owns, or does not.
func namespaceOf(t *testing.T, shard sharding.Shard, owned bool) string {
	t.Helper()
	for range 64 {
		if ns := namespace(t, nil); shard.Owns(ns) == owned {
			return ns
		}
	}
	t.Fatal("no namespace name fell in the shard")
	return ""
}

// judgedImage creates a SignedImage run by a Deployment of its name, with the policies' verdicts as its
// status.
func judgedImage(ctx context.Context, ns, name string, policies ...sigwatchv1alpha1.PolicyResult) error {
	si := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: sigwatchv1alpha1.SignedImageSpec{Image: "ghcr.io/org/" + name, Digest: reportDigest}}
	if err := env.Client.Create(ctx, si); err != nil {
		return fmt.Errorf("creating SignedImage %s/%s: %w", ns, name, err)
	}
	return judge(ctx, si, time.Now(), policies...)
}

// judge writes the verdicts as the SignedImage's status.
func judge(ctx context.Context, si *sigwatchv1alpha1.SignedImage, at time.Time, policies ...sigwatchv1alpha1.PolicyResult) error {
	if si.Status.Workloads == nil {
		si.Status.Workloads = []sigwatchv1alpha1.WorkloadReference{{Kind: "Deployment", Name: si.Name}}
	}
	si.Status.Policies = policies
	si.Status.LastAttemptTime = ptr.To(metav1.NewTime(at))
	if err := env.Client.Status().Update(ctx, si); err != nil {
		return fmt.Errorf("writing the status of SignedImage %s/%s: %w", si.Namespace, si.Name, err)
	}
	return nil
}

// rejudge sets the verdicts of an existing SignedImage.
func rejudge(t *testing.T, ns, name string, at time.Time, policies ...sigwatchv1alpha1.PolicyResult) {
	t.Helper()
	si := &sigwatchv1alpha1.SignedImage{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, si); err != nil {
		t.Fatal(err)
	}
	if err := judge(context.Background(), si, at, policies...); err != nil {
		t.Fatal(err)
	}
}

// inParallel runs f for 0..n-1 on 16 goroutines and fails the test on the first error.
func inParallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func passing(policy string) sigwatchv1alpha1.PolicyResult {
	return sigwatchv1alpha1.PolicyResult{Name: policy, Result: sigwatchv1alpha1.PolicyVerified, Reason: sigwatchv1alpha1.VerifiedReason,
		Message: "signed by the release workflow", Severity: sigwatchv1alpha1.SeverityHigh, Mode: sigwatchv1alpha1.PolicyModeEnforce}
}

func failing(policy string) sigwatchv1alpha1.PolicyResult {
	return sigwatchv1alpha1.PolicyResult{Name: policy, Result: sigwatchv1alpha1.PolicyFailed, Reason: sigwatchv1alpha1.UntrustedSignerReason,
		Message: "signed, but not by an accepted identity", Severity: sigwatchv1alpha1.SeverityCritical, Mode: sigwatchv1alpha1.PolicyModeEnforce}
}

// reportsIn are the PolicyReports of a namespace, by name, as the API server returns them.
func reportsIn(g Gomega, ns string) map[string]*unstructured.Unstructured {
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion("wgpolicyk8s.io/v1alpha2")
	list.SetKind("PolicyReportList")
	g.Expect(env.Client.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
	out := map[string]*unstructured.Unstructured{}
	for i := range list.Items {
		out[list.Items[i].GetName()] = &list.Items[i]
	}
	return out
}

// read is a report's content.
func read(g Gomega, u *unstructured.Unstructured) policyreport.Report {
	r, err := policyreport.FromUnstructured(u)
	g.Expect(err).NotTo(HaveOccurred())
	return r
}

// handMade is a PolicyReport that another tool wrote (no managed-by label).
func handMade(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
		"metadata": map[string]any{"namespace": ns, "name": name, "labels": map[string]any{"app.kubernetes.io/managed-by": "kyverno"}},
		"summary":  map[string]any{"pass": int64(1)},
		"results":  []any{map[string]any{"policy": "require-labels", "result": "pass", "source": "kyverno"}},
	}}
	if err := env.Client.Create(context.Background(), u); err != nil {
		t.Fatalf("creating PolicyReport %s/%s: %v", ns, name, err)
	}
	return u
}

// resourceVersions are the reports' resourceVersions by name.
func resourceVersions(reports map[string]*unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	for name, u := range reports {
		out[name] = u.GetResourceVersion()
	}
	return out
}

// PolicyReports against the real API server and the upstream CRD: the mapping, 1,200 images in three
// reports, writes only of what changed, shrinking, large results split by bytes, other tools' reports
// and other shards' namespaces left alone.
func TestPolicyReports(t *testing.T) {
	installPolicyReportCRD(t)
	ctx := context.Background()
	shard := sharding.Shard{Index: 0, Total: 2}
	small, many, large := namespaceOf(t, shard, true), namespaceOf(t, shard, true), namespaceOf(t, shard, true)
	taken, elsewhere := namespaceOf(t, shard, true), namespaceOf(t, shard, false)

	// Other tools' reports: one with a name sigwatch would give its second chunk, one with sigwatch's
	// first name in a namespace sigwatch reports on.
	otherChunk, kyverno, takenName := handMade(t, small, "sigwatch-2"), handMade(t, small, "kyverno-pod-web"), handMade(t, taken, "sigwatch")
	g := NewWithT(t)
	g.Expect(judgedImage(ctx, taken, "app", passing("prod"))).To(Succeed())
	g.Expect(judgedImage(ctx, elsewhere, "app", failing("prod"))).To(Succeed())

	g.Expect(judgedImage(ctx, small, "good", sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyVerified,
		Reason: sigwatchv1alpha1.VerifiedReason, Message: "signed by the release workflow", Authority: "release",
		Severity: sigwatchv1alpha1.SeverityCritical, Mode: sigwatchv1alpha1.PolicyModeEnforce})).To(Succeed())
	g.Expect(judgedImage(ctx, small, "audited", sigwatchv1alpha1.PolicyResult{Name: "provenance", Result: sigwatchv1alpha1.PolicyFailed,
		Reason: sigwatchv1alpha1.AttestationMissingReason, Message: "no SLSA provenance attestation", Severity: sigwatchv1alpha1.SeverityMedium,
		Mode: sigwatchv1alpha1.PolicyModeAudit})).To(Succeed())
	g.Expect(judgedImage(ctx, small, "legacy", sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyExempt,
		Reason: sigwatchv1alpha1.ExemptReason, Message: "exempted by legacy-batch until 2031-01-01", Exemption: "legacy-batch",
		Severity: sigwatchv1alpha1.SeverityHigh, Mode: sigwatchv1alpha1.PolicyModeEnforce})).To(Succeed())
	g.Expect(judgedImage(ctx, small, "flaky", sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyUnknown,
		Reason: sigwatchv1alpha1.RegistryUnavailableReason, Message: "registry answered 503", Severity: sigwatchv1alpha1.SeverityHigh,
		Mode: sigwatchv1alpha1.PolicyModeEnforce})).To(Succeed())

	stop := startReports(t, shard)

	t.Run("each verdict is a result", func(t *testing.T) {
		var report policyreport.Report
		eventually(t, func(g Gomega) {
			reports := reportsIn(g, small)
			g.Expect(reports).To(HaveKey("sigwatch"))
			g.Expect(reports["sigwatch"].GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "sigwatch"))
			report = read(g, reports["sigwatch"])
			g.Expect(report.Results).To(HaveLen(4))
		})
		g := NewWithT(t)
		g.Expect(report.Summary).To(Equal(policyreport.Summary{Pass: 1, Fail: 1, Error: 1, Skip: 1}))
		byImage := map[string]policyreport.Result{}
		for _, r := range report.Results {
			g.Expect(r.Source).To(Equal("sigwatch"))
			g.Expect(r.Timestamp).NotTo(BeNil())
			byImage[r.Properties["signedImage"]] = r
		}
		g.Expect(byImage["good"]).To(resultIs("good", "prod", "pass", "critical", "Verified", "signed by the release workflow"))
		g.Expect(byImage["good"].Properties).To(HaveKeyWithValue("authority", "release"))
		g.Expect(byImage["good"].Resources).To(Equal([]policyreport.ObjectReference{{APIVersion: "apps/v1", Kind: "Deployment", Namespace: small, Name: "good"}}))
		g.Expect(byImage["good"].Properties).To(HaveKeyWithValue("image", "ghcr.io/org/good@"+reportDigest))
		g.Expect(byImage["audited"]).To(resultIs("audited", "provenance", "fail", "info", "AttestationMissing", "no SLSA provenance attestation"))
		g.Expect(byImage["audited"].Properties).To(And(HaveKeyWithValue("mode", "Audit"), HaveKeyWithValue("policySeverity", "medium")))
		g.Expect(byImage["legacy"]).To(resultIs("legacy", "prod", "skip", "high", "Exempt", "exempted by legacy-batch until 2031-01-01"))
		g.Expect(byImage["legacy"].Properties).To(HaveKeyWithValue("exemption", "legacy-batch"))
		g.Expect(byImage["flaky"]).To(resultIs("flaky", "prod", "error", "high", "RegistryUnavailable", "registry answered 503"))
	})

	t.Run("1,200 images are three reports the API server accepts", func(t *testing.T) {
		inParallel(t, 1200, func(i int) error { return judgedImage(ctx, many, fmt.Sprintf("app-%04d", i), passing("prod")) })
		eventually(t, func(g Gomega) {
			reports := reportsIn(g, many)
			g.Expect(reports).To(HaveLen(3))
			for name, want := range map[string]int{"sigwatch": 500, "sigwatch-2": 500, "sigwatch-3": 200} {
				g.Expect(reports).To(HaveKey(name))
				r := read(g, reports[name])
				g.Expect(r.Results).To(HaveLen(want), name)
				g.Expect(r.Summary).To(Equal(policyreport.Summary{Pass: want}), name)
			}
		})
		g := NewWithT(t)
		for name, u := range reportsIn(g, many) {
			b, err := json.Marshal(u.Object["results"])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(len(b)).To(BeNumerically("<=", policyreport.MaxBytes), name)
		}
		g.Expect(read(g, reportsIn(g, many)["sigwatch-2"]).Results[0].Properties).To(HaveKeyWithValue("signedImage", "app-0500"))
	})

	t.Run("one changed verdict rewrites only its report", func(t *testing.T) {
		g := NewWithT(t)
		before := resourceVersions(reportsIn(g, many))
		rejudge(t, many, "app-0700", time.Now(), failing("prod"))
		eventually(t, func(g Gomega) {
			g.Expect(read(g, reportsIn(g, many)["sigwatch-2"]).Summary).To(Equal(policyreport.Summary{Pass: 499, Fail: 1}))
		})
		after := resourceVersions(reportsIn(g, many))
		g.Expect(after["sigwatch"]).To(Equal(before["sigwatch"]))
		g.Expect(after["sigwatch-3"]).To(Equal(before["sigwatch-3"]))
		g.Expect(after["sigwatch-2"]).NotTo(Equal(before["sigwatch-2"]))
	})

	// A new manager: every SignedImage is an event again.
	before := reportsIn(g, many)
	stop()
	stop = startReports(t, shard)
	t.Run("an unchanged state writes nothing, across a restart and a reverification", func(t *testing.T) {
		g := NewWithT(t)
		firstSeen := read(g, before["sigwatch"]).Results[100]
		g.Expect(firstSeen.Properties).To(HaveKeyWithValue("signedImage", "app-0100"))
		// app-0100 is verified again with the same verdict, an hour later; app-1100 changes, so that the
		// namespace is reconciled with both.
		rejudge(t, many, "app-0100", time.Now().Add(time.Hour), passing("prod"))
		rejudge(t, many, "app-1100", time.Now(), failing("prod"))
		eventually(t, func(g Gomega) {
			g.Expect(read(g, reportsIn(g, many)["sigwatch-3"]).Summary).To(Equal(policyreport.Summary{Pass: 199, Fail: 1}))
		})
		after := reportsIn(g, many)
		g.Expect(after["sigwatch"].GetResourceVersion()).To(Equal(before["sigwatch"].GetResourceVersion()))
		g.Expect(after["sigwatch-2"].GetResourceVersion()).To(Equal(before["sigwatch-2"].GetResourceVersion()))
		g.Expect(read(g, after["sigwatch"]).Results[100].Timestamp).To(Equal(firstSeen.Timestamp), "the time the verdict was found")
	})

	t.Run("results as large as the API allows are split by bytes", func(t *testing.T) {
		long := func(c string, n int) string { return strings.Repeat(c, n) }
		inParallel(t, 60, func(i int) error {
			name := fmt.Sprintf("%s-%02d", long("n", 200), i)
			si := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: large, Name: name},
				Spec: sigwatchv1alpha1.SignedImageSpec{Image: "registry.example.com/" + long("r", 230), Digest: reportDigest}}
			if err := env.Client.Create(ctx, si); err != nil {
				return err
			}
			for w := range 20 {
				si.Status.Workloads = append(si.Status.Workloads, sigwatchv1alpha1.WorkloadReference{Kind: long("K", 63), Name: fmt.Sprintf("%s-%02d", long("w", 250), w)})
			}
			var policies []sigwatchv1alpha1.PolicyResult
			for p := range 20 {
				policies = append(policies, sigwatchv1alpha1.PolicyResult{Name: fmt.Sprintf("%s-%02d", long("p", 250), p),
					Result: sigwatchv1alpha1.PolicyExempt, Reason: long("R", 128), Message: "é" + long("m", 1022), Exemption: long("x", 253),
					Authority: long("a", 63), Severity: sigwatchv1alpha1.SeverityLow, Mode: sigwatchv1alpha1.PolicyModeAudit})
			}
			return judge(ctx, si, time.Now(), policies...)
		})
		var reports map[string]*unstructured.Unstructured
		eventually(t, func(g Gomega) {
			reports = reportsIn(g, large)
			total := 0
			for _, u := range reports {
				total += len(read(g, u).Results)
			}
			g.Expect(total).To(Equal(1200))
		})
		g := NewWithT(t)
		g.Expect(len(reports)).To(BeNumerically(">", 3), "more reports than the count bound alone makes")
		largest := 0
		for i := range len(reports) {
			name := policyreport.ChunkName(i)
			g.Expect(reports).To(HaveKey(name))
			g.Expect(len(read(g, reports[name]).Results)).To(BeNumerically("<", policyreport.MaxResults))
			b, err := json.Marshal(reports[name].Object)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(len(b)).To(BeNumerically("<", policyreport.MaxBytes+16<<10), "%s is %d bytes", name, len(b))
			largest = max(largest, len(b))
		}
		t.Logf("1,200 large results: %d reports, the largest %d bytes", len(reports), largest)
	})

	t.Run("deleting images shrinks the reports and deletes the surplus ones", func(t *testing.T) {
		inParallel(t, 800, func(i int) error {
			si := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: many, Name: fmt.Sprintf("app-%04d", 400+i)}}
			return client.IgnoreNotFound(env.Client.Delete(ctx, si))
		})
		eventually(t, func(g Gomega) {
			reports := reportsIn(g, many)
			g.Expect(reports).To(HaveLen(1))
			g.Expect(reports).To(HaveKey("sigwatch"))
			g.Expect(read(g, reports["sigwatch"]).Summary).To(Equal(policyreport.Summary{Pass: 400}))
		})
	})

	// A namespace emptied while no manager ran: no SignedImage of it is left to cause an event.
	stop()
	g.Expect(env.Client.DeleteAllOf(ctx, &sigwatchv1alpha1.SignedImage{}, client.InNamespace(many))).To(Succeed())
	eventually(t, func(g Gomega) {
		var left sigwatchv1alpha1.SignedImageList
		g.Expect(env.Client.List(ctx, &left, client.InNamespace(many))).To(Succeed())
		g.Expect(left.Items).To(BeEmpty())
	})
	g.Expect(reportsIn(g, many)).To(HaveKey("sigwatch"), "nothing removed it while no manager ran")
	startReports(t, shard)
	t.Run("a namespace emptied while the manager was away loses its reports at start", func(t *testing.T) {
		eventually(t, func(g Gomega) { g.Expect(reportsIn(g, many)).To(BeEmpty()) })
	})

	t.Run("other tools' reports and other shards' namespaces are left alone", func(t *testing.T) {
		g := NewWithT(t)
		for _, name := range []string{"good", "audited", "legacy", "flaky"} {
			si := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: small, Name: name}}
			g.Expect(env.Client.Delete(ctx, si)).To(Succeed())
		}
		eventually(t, func(g Gomega) { g.Expect(reportsIn(g, small)).NotTo(HaveKey("sigwatch")) })
		reports := reportsIn(g, small)
		g.Expect(reports).To(HaveLen(2))
		g.Expect(reports["sigwatch-2"].GetResourceVersion()).To(Equal(otherChunk.GetResourceVersion()), "an unlabelled sigwatch-2 is not sigwatch's")
		g.Expect(reports["kyverno-pod-web"].GetResourceVersion()).To(Equal(kyverno.GetResourceVersion()))

		// The namespace whose "sigwatch" is someone else's: not taken over (and not labelled).
		reports = reportsIn(g, taken)
		g.Expect(reports).To(HaveLen(1))
		g.Expect(reports["sigwatch"].GetResourceVersion()).To(Equal(takenName.GetResourceVersion()))
		g.Expect(reports["sigwatch"].GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "kyverno"))

		// The other shard's namespace, whose image was judged before everything above: no report.
		g.Expect(reportsIn(g, elsewhere)).To(BeEmpty())
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: elsewhere, Name: "sigwatch"}, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport"}})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	})
}

// resultIs matches a result's image, policy, status, severity, rule and message.
func resultIs(image, policy, status, severity, rule, message string) OmegaMatcher {
	return And(
		WithTransform(func(r policyreport.Result) string { return r.Properties["signedImage"] }, Equal(image)),
		WithTransform(func(r policyreport.Result) string { return r.Policy }, Equal(policy)),
		WithTransform(func(r policyreport.Result) string { return r.Result }, Equal(status)),
		WithTransform(func(r policyreport.Result) string { return r.Severity }, Equal(severity)),
		WithTransform(func(r policyreport.Result) string { return r.Rule }, Equal(rule)),
		WithTransform(func(r policyreport.Result) string { return r.Message }, Equal(message)),
	)
}
