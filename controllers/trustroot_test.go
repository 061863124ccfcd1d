package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// TestTrustRootFallbackIsVisible: a public-good root standing in for a current one keeps the policy
// Ready (verification works) but says so in its reason and message, and in the metrics.
func TestTrustRootFallbackIsVisible(t *testing.T) {
	g := NewWithT(t)
	rp := &ResolvedPolicy{Policy: &policy.Policy{Name: "p"}, Root: &trust.Root{Source: trust.SourceEmbedded}}
	r := readinessOf(rp, nil)
	g.Expect(r.ready).To(BeTrue())
	g.Expect(r.reason).To(Equal(sigwatchv1alpha1.PolicyReadyReason))

	rp.Root.Fallback = "TUF update failed, using the embedded snapshot: " + strings.Repeat("x", 2000)
	r = readinessOf(rp, nil)
	g.Expect(r.ready).To(BeTrue())
	g.Expect(r.reason).To(Equal(sigwatchv1alpha1.TrustRootFallbackReason))
	g.Expect(r.message).To(ContainSubstring("TUF update failed"))
	g.Expect(len(r.message)).To(BeNumerically("<", 1024))

	st := trust.PublicGoodStatus{Source: trust.SourceEmbedded, Fallback: true, Age: 90 * 24 * time.Hour}
	reg := prometheus.NewPedanticRegistry()
	g.Expect(registerTrustMetrics(reg, func() trust.PublicGoodStatus { return st })).To(Succeed())
	g.Expect(gauge(t, reg, "sigwatch_trust_root_fallback")).To(BeNumerically("==", 1))
	g.Expect(gauge(t, reg, "sigwatch_trust_root_age_seconds")).To(BeNumerically("==", 90*24*3600))
	g.Expect(testutil.GatherAndCompare(reg, strings.NewReader(`# HELP sigwatch_trust_root_info `+trustSourceHelp+`
# TYPE sigwatch_trust_root_info gauge
sigwatch_trust_root_info{source="embedded"} 1
`), "sigwatch_trust_root_info")).To(Succeed())
	st.Fallback = false
	g.Expect(gauge(t, reg, "sigwatch_trust_root_fallback")).To(BeNumerically("==", 0))
	for source, want := range map[string]string{trust.SourceTUF: "tuf", "": "none"} {
		st.Source = source
		g.Expect(testutil.GatherAndCompare(reg, strings.NewReader(`# HELP sigwatch_trust_root_info `+trustSourceHelp+`
# TYPE sigwatch_trust_root_info gauge
sigwatch_trust_root_info{source="`+want+`"} 1
`), "sigwatch_trust_root_info")).To(Succeed(), "source %q", source)
	}
}

// gauge is the value of a registered gauge without labels.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestPublicGoodRootUnavailableIsSaid: a public-good root that cannot be had (too old a stand-in) is
// retried like any transient failure, but said on the policy and on its images as a trust root problem.
func TestPublicGoodRootUnavailableIsSaid(t *testing.T) {
	g := NewWithT(t)
	err := &transientError{err: errors.New("policy p: the public-good trust root: 2000h old, more than allowed"),
		reason: sigwatchv1alpha1.TrustedRootUnavailableReason}
	r := readinessOf(nil, err)
	g.Expect(r.ready).To(BeFalse())
	g.Expect(r.reason).To(Equal(sigwatchv1alpha1.TrustedRootUnavailableReason))
	g.Expect(r.message).To(ContainSubstring("more than allowed"))
	ready, stalled := r.conditions(3)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(stalled.Status).To(Equal(metav1.ConditionFalse), "it may pass by itself: not stalled")
	g.Expect(transientReason(err)).To(Equal(sigwatchv1alpha1.TrustedRootUnavailableReason))
	g.Expect(transientReason(&transientError{err: errors.New("etcd is busy")})).To(Equal(sigwatchv1alpha1.VerificationErrorReason))
}
