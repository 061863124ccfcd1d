package controllers

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// Metrics are sigwatch's Prometheus metrics, registered with controller-runtime's registry so that they
// appear on the manager's metrics endpoint.
type Metrics struct {
	verifications    *prometheus.CounterVec
	duration         prometheus.Histogram
	registryRequests *prometheus.CounterVec
	cacheHits        prometheus.Counter
	signedImages     *signedImagesCollector
	policies         *policiesCollector
}

// NewMetrics creates the metrics and registers them with reg. reader lists SignedImages for the
// sigwatch_signedimages gauge, computed at scrape time from the cache.
func NewMetrics(reg prometheus.Registerer, reader client.Reader) (*Metrics, error) {
	m := &Metrics{
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigwatch_verifications_total",
			Help: "Verifications of image digests, by verdict (Verified, Failed, Unknown) and reason.",
		}, []string{"result", "reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sigwatch_verification_duration_seconds",
			Help:    "Time to verify one image digest, cache hits included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		registryRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigwatch_registry_requests_total",
			Help: "HTTP requests to registries, by method and status code (0: no response).",
		}, []string{"method", "code"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sigwatch_cache_hits_total",
			Help: "Verifications answered from the verdict cache: unchanged signatures, policies and trust roots.",
		}),
		signedImages: &signedImagesCollector{reader: reader, desc: prometheus.NewDesc("sigwatch_signedimages",
			"SignedImages in use (run by pods, or made by hand) by namespace and Verified condition status and reason.", []string{"namespace", "verified", "reason"}, nil)},
		policies: &policiesCollector{reader: reader, desc: prometheus.NewDesc("sigwatch_imagesignaturepolicy_ready",
			"1 for each ImageSignaturePolicy, labelled with its Ready condition status and reason.", []string{"policy", "ready", "reason"}, nil)},
	}
	for _, c := range []prometheus.Collector{m.verifications, m.duration, m.registryRequests, m.cacheHits, m.signedImages, m.policies} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveRequest counts one registry request; it is the registry client's Observer.
func (m *Metrics) ObserveRequest(method string, code int) {
	if m == nil {
		return
	}
	m.registryRequests.WithLabelValues(method, codeLabel(code)).Inc()
}

func codeLabel(code int) string {
	if code == 0 {
		return "0"
	}
	return prometheusCode(code)
}

func (m *Metrics) observeVerification(res *verification.Result, d time.Duration) {
	if m == nil {
		return
	}
	result, reason, _ := res.Verdict()
	m.verifications.WithLabelValues(string(result), reason).Inc()
	m.duration.Observe(d.Seconds())
	if res.Cached {
		m.cacheHits.Inc()
	}
}

type signedImagesCollector struct {
	reader client.Reader
	desc   *prometheus.Desc
}

func (c *signedImagesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *signedImagesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list sigwatchv1alpha1.SignedImageList
	if err := c.reader.List(ctx, &list); err != nil {
		return
	}
	type key struct{ ns, verified, reason string }
	counts := map[key]float64{}
	for _, si := range list.Items {
		if si.Status.UnusedSince != nil {
			continue // nothing runs it any more; it waits for garbage collection
		}
		k := key{ns: si.Namespace, verified: "Unknown", reason: sigwatchv1alpha1.PendingReason}
		if c := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition); c != nil {
			k.verified, k.reason = string(c.Status), c.Reason
		}
		counts[k]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, k.ns, k.verified, k.reason)
	}
}

func prometheusCode(code int) string { return strconv.Itoa(code) }

type policiesCollector struct {
	reader client.Reader
	desc   *prometheus.Desc
}

func (c *policiesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *policiesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list sigwatchv1alpha1.ImageSignaturePolicyList
	if err := c.reader.List(ctx, &list); err != nil {
		return
	}
	for _, p := range list.Items {
		ready, reason := "Unknown", sigwatchv1alpha1.PendingReason
		if cond := meta.FindStatusCondition(p.Status.Conditions, sigwatchv1alpha1.ReadyCondition); cond != nil {
			ready, reason = string(cond.Status), cond.Reason
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, p.Name, ready, reason)
	}
}
