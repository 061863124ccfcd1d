package controllers

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/sharding"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/internal/verification"
	"github.com/sigwatch/sigwatch/internal/version"
)

// Metrics are sigwatch's Prometheus metrics, registered with controller-runtime's registry so that they
// appear on the manager's metrics endpoint.
type Metrics struct {
	verifications    *prometheus.CounterVec
	duration         prometheus.Histogram
	registryRequests *prometheus.CounterVec
	cacheHits        prometheus.Counter
	deferred         prometheus.Counter
	statusWrites     *prometheus.CounterVec
	signedImages     *signedImageCollector
	policies         *cacheGauge
	revoked          *cacheGauge
	logs             *logMetrics
}

// MetricsOption changes what NewMetrics registers.
type MetricsOption func(*signedImageCollector)

// WithImageInfo adds sigwatch_signedimage_info, one series per SignedImage in use (--image-metrics).
func WithImageInfo() MetricsOption {
	return func(c *signedImageCollector) {
		c.info = prometheus.NewDesc("sigwatch_signedimage_info", signedImageInfoHelp, []string{"namespace", "name", "image", "digest", "verified", "reason"}, nil)
	}
}

// NewMetrics creates the metrics and registers them with reg. reader lists SignedImages for the
// sigwatch_signedimages gauge and the verification timestamps, computed at scrape time from the cache:
// those of the shard's namespaces (summed over the shards, each SignedImage counts once; only the
// elected replica of a shard reports, see ReportWhenElected). Only the counting shard (0) reports the
// policies.
func NewMetrics(reg prometheus.Registerer, reader client.Reader, shard sharding.Shard, opts ...MetricsOption) (*Metrics, error) {
	images := newSignedImageCollector(reader, shard)
	for _, o := range opts {
		o(images)
	}
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
			Help: "HTTP requests to registries, by method and status code (0: no response). The HTTPS probe of a --insecure-registry host that answers in plain HTTP is not a request that failed, and is not counted.",
		}, []string{"method", "code"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sigwatch_cache_hits_total",
			Help: "Verifications answered from the verdict cache: unchanged signatures, policies and trust roots.",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sigwatch_verifications_deferred_total",
			Help: "Verifications put off for a few seconds because a registry host they read had all the verifications in flight it may have (slow registries cannot hold every worker); the last verdict stands meanwhile.",
		}),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigwatch_status_write_errors_total",
			Help: "Status patches that failed (conflicts and deleted objects aside), by kind and API reason (Invalid: the API server rejected the status); the statuses they carried are not shown.",
		}, []string{"kind", "reason"}),
		signedImages: images,
		logs:         newLogMetrics(),
		policies: &cacheGauge{count: countPolicies(reader), desc: prometheus.NewDesc("sigwatch_imagesignaturepolicy_ready",
			"1 for each ImageSignaturePolicy, labelled with its Ready condition status and reason.", []string{"policy", "ready", "reason"}, nil)},
		revoked: &cacheGauge{count: countRevoked(reader), desc: prometheus.NewDesc("sigwatch_revoked_images",
			"SignedImages with a signature or attestation a SignatureRevocation revoked, by revocation and namespace; failed=\"true\": a policy failed because of it (nothing else it accepted counts), \"false\": another signature still verifies the image.",
			[]string{"revocation", "namespace", "failed"}, nil)},
	}
	shards := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sigwatch_shards",
		Help: "The number of shards (--total-shards), labelled with this replica's shard: the shards that report, counted by shard, should be as many.",
	}, []string{"shard"})
	shards.WithLabelValues(strconv.Itoa(shard.Index)).Set(float64(max(1, shard.Total)))
	collectors := []prometheus.Collector{m.verifications, m.duration, m.registryRequests, m.cacheHits, m.deferred, m.statusWrites,
		m.signedImages, shards, buildInfo(version.Get())}
	collectors = append(collectors, m.logs.collectors()...)
	if shard.Counts() {
		collectors = append(collectors, m.policies, m.revoked)
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.initCounters()
	return m, nil
}

// knownVerdicts are the results and reasons a verification can report (verification.Result.Verdict).
var knownVerdicts = map[sigwatchv1alpha1.PolicyResultType][]string{
	sigwatchv1alpha1.PolicyVerified: {sigwatchv1alpha1.VerifiedReason},
	sigwatchv1alpha1.PolicyFailed: {sigwatchv1alpha1.SignatureMissingReason, sigwatchv1alpha1.UntrustedSignerReason,
		sigwatchv1alpha1.InvalidSignatureReason, sigwatchv1alpha1.TransparencyLogMissingReason,
		sigwatchv1alpha1.AttestationMissingReason, sigwatchv1alpha1.AttestationFailedReason, sigwatchv1alpha1.TrustRootMismatchReason,
		sigwatchv1alpha1.EntryNotInLogReason, sigwatchv1alpha1.LogInconsistentReason, sigwatchv1alpha1.SignatureRevokedReason,
		sigwatchv1alpha1.SignatureTooOldReason},
	sigwatchv1alpha1.PolicyUnknown: {sigwatchv1alpha1.RegistryUnavailableReason, sigwatchv1alpha1.TrustedRootUnavailableReason,
		sigwatchv1alpha1.VerificationErrorReason, sigwatchv1alpha1.NoMatchingPolicyReason, sigwatchv1alpha1.LogUnavailableReason},
}

// initCounters makes the series whose labels are known up front exist at 0 from the start, so that
// rate() and increase() see the first verification, request or rejection: Prometheus needs two samples
// of a series, and a series born at 1 has only one that counts.
func (m *Metrics) initCounters() {
	for result, reasons := range knownVerdicts {
		for _, reason := range reasons {
			m.verifications.WithLabelValues(string(result), reason)
		}
	}
	// The methods discovery reads with, answered or not; other codes appear as registries send them.
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, code := range []int{0, http.StatusOK} {
			m.registryRequests.WithLabelValues(method, codeLabel(code))
		}
	}
	for _, kind := range []string{"SignedImage", "ImageSignaturePolicy"} {
		m.statusWrites.WithLabelValues(kind, string(metav1.StatusReasonInvalid))
	}
}

// buildInfo is sigwatch_build_info: always 1, labelled with the build.
func buildInfo(v version.Info) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sigwatch_build_info",
		Help: "Always 1, labelled with the version, VCS revision and Go version of the running manager.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(v.Version, v.Revision, v.GoVersion).Set(1)
	return g
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

func (m *Metrics) observeStatusWriteError(kind, reason string) {
	if m == nil {
		return
	}
	m.statusWrites.WithLabelValues(kind, reason).Inc()
}

// ReportWhenElected makes the gauges computed from the cache (SignedImages, policies) report only once
// elected is closed: every replica has the cache, and the standbys' series would count each object again.
func (m *Metrics) ReportWhenElected(elected <-chan struct{}) {
	active := func() bool {
		select {
		case <-elected:
			return true
		default:
			return false
		}
	}
	m.signedImages.active, m.policies.active, m.revoked.active = active, active, active
}

// cacheGauge is a gauge with three labels, computed at scrape time from the manager's cache.
type cacheGauge struct {
	desc  *prometheus.Desc
	count func(ctx context.Context) (map[[3]string]float64, error)
	// active says whether to report (nil: always).
	active func() bool
}

func (c *cacheGauge) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *cacheGauge) Collect(ch chan<- prometheus.Metric) {
	if c.active != nil && !c.active() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		return
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, k[0], k[1], k[2])
	}
}

// countPolicies gives 1 per policy, labelled with its Ready status and reason.
func countPolicies(reader client.Reader) func(context.Context) (map[[3]string]float64, error) {
	return func(ctx context.Context) (map[[3]string]float64, error) {
		var list sigwatchv1alpha1.ImageSignaturePolicyList
		if err := reader.List(ctx, &list); err != nil {
			return nil, err
		}
		counts := map[[3]string]float64{}
		for _, p := range list.Items {
			status, reason := conditionLabels(p.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
			counts[[3]string{p.Name, status, reason}] = 1
		}
		return counts, nil
	}
}

// countRevoked counts, for sigwatch_revoked_images, the SignedImages each revocation revoked something of.
func countRevoked(reader client.Reader) func(context.Context) (map[[3]string]float64, error) {
	return func(ctx context.Context) (map[[3]string]float64, error) {
		var list sigwatchv1alpha1.SignedImageList
		if err := reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		counts := map[[3]string]float64{}
		for i := range list.Items {
			si := &list.Items[i]
			for _, name := range revocationsOf(si) {
				failed := slices.ContainsFunc(si.Status.Policies, func(p sigwatchv1alpha1.PolicyResult) bool {
					return p.Revocation == name && p.Result == sigwatchv1alpha1.PolicyFailed
				})
				counts[[3]string{name, si.Namespace, strconv.FormatBool(failed)}]++
			}
		}
		return counts, nil
	}
}

func conditionLabels(conditions []metav1.Condition, conditionType string) (string, string) {
	if c := meta.FindStatusCondition(conditions, conditionType); c != nil {
		return string(c.Status), c.Reason
	}
	return "Unknown", sigwatchv1alpha1.PendingReason
}

func prometheusCode(code int) string { return strconv.Itoa(code) }

// registerTrustMetrics exports the state of the public-good trust root: whether a fallback stands in for
// a current root (an alert: rotated keys would not be known), and its age.
func registerTrustMetrics(reg prometheus.Registerer, status func() trust.PublicGoodStatus) error {
	fallback := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sigwatch_trust_root_fallback",
		Help: "1 while the public-good trust root could not be updated through TUF and an older one (the embedded snapshot, or the last root TUF delivered) is used; 0 otherwise.",
	}, func() float64 {
		if status().Fallback {
			return 1
		}
		return 0
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sigwatch_trust_root_age_seconds",
		Help: "Age of the public-good trust root in use: since TUF last delivered it, or since the date of the embedded snapshot's newest material.",
	}, func() float64 { return status().Age.Seconds() })
	source := &trustSource{status: status, desc: prometheus.NewDesc("sigwatch_trust_root_info", trustSourceHelp, []string{"source"}, nil)}
	for _, c := range []prometheus.Collector{fallback, age, source} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

const trustSourceHelp = "Where the public-good trust root in use comes from, as the label source: tuf (delivered by TUF), embedded (the snapshot compiled in) or none (not loaded yet: no policy has needed it); always 1."

// trustSource exports the source of the public-good trust root as an info metric.
type trustSource struct {
	status func() trust.PublicGoodStatus
	desc   *prometheus.Desc
}

func (t *trustSource) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

func (t *trustSource) Collect(ch chan<- prometheus.Metric) {
	source := "none"
	switch t.status().Source {
	case trust.SourceTUF:
		source = "tuf"
	case trust.SourceEmbedded:
		source = "embedded"
	}
	ch <- prometheus.MustNewConstMetric(t.desc, prometheus.GaugeValue, 1, source)
}
