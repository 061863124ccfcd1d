package controllers

import (
	"context"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/scheme"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

var metricsEpoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// si is a SignedImage of namespace with its Verified condition (status "": none yet) and policy results.
func imageFor(namespace, name, status, reason string, policies ...sigwatchv1alpha1.PolicyResult) sigwatchv1alpha1.SignedImage {
	s := sigwatchv1alpha1.SignedImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       sigwatchv1alpha1.SignedImageSpec{Image: "ghcr.io/acme/" + name, Digest: "sha256:" + name},
		Status:     sigwatchv1alpha1.SignedImageStatus{Policies: policies},
	}
	if status != "" {
		s.Status.Conditions = []metav1.Condition{{Type: sigwatchv1alpha1.VerifiedCondition, Status: metav1.ConditionStatus(status), Reason: reason}}
	}
	return s
}

func resultFor(policy string, r sigwatchv1alpha1.PolicyResultType, reason string, sev sigwatchv1alpha1.PolicySeverity, mode sigwatchv1alpha1.PolicyMode) sigwatchv1alpha1.PolicyResult {
	return sigwatchv1alpha1.PolicyResult{Name: policy, Result: r, Reason: reason, Severity: sev, Mode: mode}
}

func minutesIn(minutes int) *metav1.Time {
	return &metav1.Time{Time: metricsEpoch.Add(time.Duration(minutes) * time.Minute)}
}

func imageWithTimes(s sigwatchv1alpha1.SignedImage, verified, attempted *metav1.Time) sigwatchv1alpha1.SignedImage {
	s.Status.LastVerifiedTime, s.Status.LastAttemptTime = verified, attempted
	return s
}

func TestSummarizeSignedImagesCountsEachImageOncePerPolicy(t *testing.T) {
	unused := imageFor("shop", "old", "False", sigwatchv1alpha1.SignatureMissingReason,
		resultFor("release", sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason, "critical", "Enforce"))
	unused.Status.UnusedSince = minutesIn(0)
	cases := []struct {
		name   string
		images []sigwatchv1alpha1.SignedImage
		want   map[imageCount]float64
	}{
		{
			name: "one series per policy, with the policy's severity and mode",
			images: []sigwatchv1alpha1.SignedImage{imageFor("shop", "a", "False", sigwatchv1alpha1.SignatureMissingReason,
				resultFor("release", sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason, "critical", "Enforce"),
				resultFor("sbom", sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, "low", "Audit"))},
			want: map[imageCount]float64{
				{"shop", "release", "False", "SignatureMissing", "critical", "Enforce"}: 1,
				{"shop", "sbom", "True", "Verified", "low", "Audit"}:                    1,
			},
		},
		{
			name: "images with the same result add up",
			images: []sigwatchv1alpha1.SignedImage{
				imageFor("shop", "a", "True", "Verified", resultFor("release", sigwatchv1alpha1.PolicyVerified, "Verified", "high", "Enforce")),
				imageFor("shop", "b", "True", "Verified", resultFor("release", sigwatchv1alpha1.PolicyVerified, "Verified", "high", "Enforce")),
				imageFor("bank", "c", "True", "Verified", resultFor("release", sigwatchv1alpha1.PolicyVerified, "Verified", "high", "Enforce")),
			},
			want: map[imageCount]float64{
				{"shop", "release", "True", "Verified", "high", "Enforce"}: 2,
				{"bank", "release", "True", "Verified", "high", "Enforce"}: 1,
			},
		},
		{
			name: "no policy result: policy \"\", from the Verified condition",
			images: []sigwatchv1alpha1.SignedImage{
				imageFor("shop", "new", "", ""),
				imageFor("shop", "stray", "Unknown", sigwatchv1alpha1.NoMatchingPolicyReason),
			},
			want: map[imageCount]float64{
				{namespace: "shop", verified: "Unknown", reason: "Pending"}:          1,
				{namespace: "shop", verified: "Unknown", reason: "NoMatchingPolicy"}: 1,
			},
		},
		{
			name: "an exempt result is its own verdict, never Unknown",
			images: []sigwatchv1alpha1.SignedImage{imageFor("shop", "vendor", "Unknown", sigwatchv1alpha1.ExemptReason,
				resultFor("release", sigwatchv1alpha1.PolicyExempt, sigwatchv1alpha1.ExemptReason, "critical", "Enforce"))},
			want: map[imageCount]float64{{"shop", "release", "Exempt", "Exempt", "critical", "Enforce"}: 1},
		},
		{
			name: "a result without severity or mode has the policy defaults",
			images: []sigwatchv1alpha1.SignedImage{imageFor("shop", "a", "Unknown", sigwatchv1alpha1.RegistryUnavailableReason,
				resultFor("release", sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.RegistryUnavailableReason, "", ""))},
			want: map[imageCount]float64{{"shop", "release", "Unknown", "RegistryUnavailable", "high", "Enforce"}: 1},
		},
		{
			name: "unused images and other shards' namespaces are not counted",
			images: []sigwatchv1alpha1.SignedImage{unused,
				imageFor("elsewhere", "x", "True", "Verified", resultFor("release", sigwatchv1alpha1.PolicyVerified, "Verified", "high", "Enforce"))},
			want: map[imageCount]float64{},
		},
	}
	owns := func(ns string) bool { return ns != "elsewhere" }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(summarizeSignedImages(tc.images, owns, false).counts).To(Equal(tc.want))
		})
	}
}

// TestSummarizeSignedImagesTimestamps: the last successful verification is that of an image verified
// now; an image that failed since keeps its old lastVerifiedTime and must not make the namespace look
// fresh (nor, alone, stale). Attempts count whatever their outcome.
func TestSummarizeSignedImagesTimestamps(t *testing.T) {
	g := NewWithT(t)
	images := []sigwatchv1alpha1.SignedImage{
		imageWithTimes(imageFor("shop", "a", "True", "Verified"), minutesIn(10), minutesIn(10)),
		imageWithTimes(imageFor("shop", "b", "True", "Verified"), minutesIn(30), minutesIn(30)),
		imageWithTimes(imageFor("shop", "c", "False", "SignatureMissing"), minutesIn(50), minutesIn(55)),
		imageWithTimes(imageFor("bank", "d", "False", "SignatureMissing"), minutesIn(5), minutesIn(60)),
		imageWithTimes(imageFor("bank", "e", "Unknown", "RegistryUnavailable"), minutesIn(8), nil),
	}
	s := summarizeSignedImages(images, func(string) bool { return true }, false)
	g.Expect(s.lastVerified).To(Equal(map[string]time.Time{"shop": minutesIn(30).Time}), "bank has no image verified now")
	g.Expect(s.lastAttempt).To(Equal(map[string]time.Time{"shop": minutesIn(55).Time, "bank": minutesIn(60).Time}))
	g.Expect(s.info).To(BeNil(), "no info series without --image-metrics")
}

func gatherFamily(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestImageInfoFollowsTheCache: with WithImageInfo, each SignedImage in use has an info series, computed
// at scrape time, so that a deleted SignedImage leaves none behind; without it there is no such family.
func TestImageInfoFollowsTheCache(t *testing.T) {
	g := NewWithT(t)
	exempt := imageFor("shop", "vendor", "Unknown", sigwatchv1alpha1.ExemptReason,
		resultFor("release", sigwatchv1alpha1.PolicyExempt, sigwatchv1alpha1.ExemptReason, "critical", "Enforce"))
	failed := imageWithTimes(imageFor("shop", "app", "False", sigwatchv1alpha1.UntrustedSignerReason,
		resultFor("release", sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.UntrustedSignerReason, "critical", "Enforce")), nil, minutesIn(3))
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(&exempt, &failed).Build()

	plain := prometheus.NewRegistry()
	_, err := NewMetrics(plain, c, sharding.Whole)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gatherFamily(t, plain, "sigwatch_signedimage_info")).To(BeNil())

	reg := prometheus.NewRegistry()
	_, err = NewMetrics(reg, c, sharding.Whole, WithImageInfo())
	g.Expect(err).NotTo(HaveOccurred())
	info := gatherFamily(t, reg, "sigwatch_signedimage_info")
	g.Expect(info).NotTo(BeNil())
	var got []map[string]string
	for _, m := range info.GetMetric() {
		g.Expect(m.GetGauge().GetValue()).To(Equal(1.0))
		got = append(got, labelsOf(m))
	}
	g.Expect(got).To(ConsistOf(
		map[string]string{"namespace": "shop", "name": "vendor", "image": "ghcr.io/acme/vendor", "digest": "sha256:vendor", "verified": "Exempt", "reason": "Exempt"},
		map[string]string{"namespace": "shop", "name": "app", "image": "ghcr.io/acme/app", "digest": "sha256:app", "verified": "False", "reason": "UntrustedSigner"},
	))
	attempt := gatherFamily(t, reg, "sigwatch_last_verification_attempt_timestamp_seconds")
	g.Expect(attempt.GetMetric()).To(HaveLen(1))
	g.Expect(attempt.GetMetric()[0].GetGauge().GetValue()).To(Equal(float64(minutesIn(3).Unix())))

	g.Expect(c.Delete(context.Background(), &failed)).To(Succeed())
	g.Expect(testutil.GatherAndCount(reg, "sigwatch_signedimage_info")).To(Equal(1))
	g.Expect(testutil.GatherAndCount(reg, "sigwatch_last_verification_attempt_timestamp_seconds")).To(Equal(0), "no image of shop was attempted any more")
}

// TestCountersStartAtZero: the series whose labels are known up front exist from the start, so that
// rate() and increase() count the first verification of a kind; sigwatch_build_info names the build.
func TestCountersStartAtZero(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	_, err := NewMetrics(reg, fake.NewClientBuilder().WithScheme(scheme.New()).Build(), sharding.Whole)
	g.Expect(err).NotTo(HaveOccurred())
	for _, want := range []map[string]string{
		{"result": "Verified", "reason": "Verified"},
		{"result": "Failed", "reason": "SignatureMissing"},
		{"result": "Failed", "reason": "TrustRootMismatch"},
		{"result": "Unknown", "reason": "RegistryUnavailable"},
	} {
		g.Expect(counter(t, reg, "sigwatch_verifications_total", want)).To(BeZero())
		g.Expect(hasSeries(t, reg, "sigwatch_verifications_total", want)).To(BeTrue(), "%v", want)
	}
	for _, want := range []map[string]string{{"method": "GET", "code": "0"}, {"method": "HEAD", "code": "200"}} {
		g.Expect(hasSeries(t, reg, "sigwatch_registry_requests_total", want)).To(BeTrue(), "%v", want)
	}
	build := gatherFamily(t, reg, "sigwatch_build_info")
	g.Expect(build.GetMetric()).To(HaveLen(1))
	g.Expect(build.GetMetric()[0].GetGauge().GetValue()).To(Equal(1.0))
	g.Expect(labelsOf(build.GetMetric()[0])).To(And(HaveKeyWithValue("goversion", runtime.Version()), HaveKey("version"), HaveKey("revision")))
}

func hasSeries(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) bool {
	t.Helper()
	f := gatherFamily(t, reg, name)
	for _, m := range f.GetMetric() {
		got := labelsOf(m)
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if match {
			return true
		}
	}
	return false
}
