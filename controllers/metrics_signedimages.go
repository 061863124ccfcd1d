package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

const (
	signedImagesHelp = "Policy results of the SignedImages in use (run by pods, or made by hand), by namespace, policy and its severity and mode, " +
		"and verdict (verified: True, False, Unknown or Exempt) and reason: each SignedImage counts once per policy that covers it, " +
		"and once with policy=\"\" when it has no policy result (no policy covers it, or no verdict yet)."
	lastVerifiedHelp = "The latest time, as a Unix time, at which one of the namespace's SignedImages in use that are verified now (Verified=True) " +
		"was found verified: it moves on with every re-verification, so an old value means the verdicts shown are not being refreshed."
	lastAttemptHelp = "The latest time, as a Unix time, at which the verification of one of the namespace's SignedImages in use was attempted, whatever its outcome."
	logCheckHelp    = "The SignedImages in use whose accepted signatures were checked in their live transparency log, by namespace and " +
		"their InTransparencyLog condition (status True, False or Unknown; reason EntryInLog, EntryNotInLog, LogInconsistent, UnexpectedSigner, LogUnavailable)."
	signedImageInfoHelp = "1 for each SignedImage in use, labelled with its image, digest and Verified condition (verified: True, False, Unknown or Exempt; reason); " +
		"only with --image-metrics: one series per image digest that runs."
)

// signedImageCollector computes, at scrape time from the manager's cache, the series that describe the
// SignedImages of the shard's namespaces: one List of the cache per scrape serves them all, and a
// SignedImage that is deleted leaves no series behind.
type signedImageCollector struct {
	reader                     client.Reader
	shard                      sharding.Shard
	counts, verified, attempts *prometheus.Desc
	// logs is sigwatch_signedimages_transparency_log.
	logs *prometheus.Desc
	// info is sigwatch_signedimage_info, nil unless WithImageInfo.
	info *prometheus.Desc
	// active says whether to report (nil: always).
	active func() bool
}

func newSignedImageCollector(reader client.Reader, shard sharding.Shard) *signedImageCollector {
	return &signedImageCollector{
		reader: reader,
		shard:  shard,
		counts: prometheus.NewDesc("sigwatch_signedimages", signedImagesHelp,
			[]string{"namespace", "policy", "verified", "reason", "severity", "mode"}, nil),
		verified: prometheus.NewDesc("sigwatch_last_successful_verification_timestamp_seconds", lastVerifiedHelp, []string{"namespace"}, nil),
		attempts: prometheus.NewDesc("sigwatch_last_verification_attempt_timestamp_seconds", lastAttemptHelp, []string{"namespace"}, nil),
		logs:     prometheus.NewDesc("sigwatch_signedimages_transparency_log", logCheckHelp, []string{"namespace", "status", "reason"}, nil),
	}
}

func (c *signedImageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.counts
	ch <- c.verified
	ch <- c.attempts
	ch <- c.logs
	if c.info != nil {
		ch <- c.info
	}
}

func (c *signedImageCollector) Collect(ch chan<- prometheus.Metric) {
	if c.active != nil && !c.active() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list sigwatchv1alpha1.SignedImageList
	// Read only, never kept: no copy of every SignedImage at each scrape.
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		// Loud: without these series every image alert's `for` starts again. The scrape itself goes on
		// (the other metrics stay readable).
		logf.Log.WithName("metrics").Error(err, "listing the SignedImages for sigwatch_signedimages failed; the image metrics are left out of this scrape")
		return
	}
	s := summarizeSignedImages(list.Items, c.shard.Owns, c.info != nil)
	for k, n := range s.counts {
		ch <- prometheus.MustNewConstMetric(c.counts, prometheus.GaugeValue, n, k.namespace, k.policy, k.verified, k.reason, k.severity, k.mode)
	}
	for ns, t := range s.lastVerified {
		ch <- prometheus.MustNewConstMetric(c.verified, prometheus.GaugeValue, unixSeconds(t), ns)
	}
	for ns, t := range s.lastAttempt {
		ch <- prometheus.MustNewConstMetric(c.attempts, prometheus.GaugeValue, unixSeconds(t), ns)
	}
	for k, n := range s.logChecks {
		ch <- prometheus.MustNewConstMetric(c.logs, prometheus.GaugeValue, n, k[0], k[1], k[2])
	}
	for _, i := range s.info {
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, i.namespace, i.name, i.image, i.digest, i.verified, i.reason)
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// imageCount is one series of sigwatch_signedimages. severity and mode belong to the policy, so they
// add no series.
type imageCount struct {
	namespace, policy, verified, reason, severity, mode string
}

// imageInfo is one series of sigwatch_signedimage_info.
type imageInfo struct {
	namespace, name, image, digest, verified, reason string
}

// imageSummary is what the SignedImages in use say, by series.
type imageSummary struct {
	counts       map[imageCount]float64
	lastVerified map[string]time.Time
	lastAttempt  map[string]time.Time
	// logChecks counts the InTransparencyLog conditions by namespace, status and reason.
	logChecks map[[3]string]float64
	info      []imageInfo
}

// summarizeSignedImages computes the series of the SignedImages in use (not waiting for garbage
// collection) of the namespaces owns accepts; with info, one info series per SignedImage too.
func summarizeSignedImages(items []sigwatchv1alpha1.SignedImage, owns func(namespace string) bool, info bool) imageSummary {
	s := imageSummary{counts: map[imageCount]float64{}, lastVerified: map[string]time.Time{}, lastAttempt: map[string]time.Time{},
		logChecks: map[[3]string]float64{}}
	for i := range items {
		si := &items[i]
		if !owns(si.Namespace) {
			continue // another replica counts it
		}
		if si.Status.UnusedSince != nil {
			continue // nothing runs it any more; it waits for garbage collection
		}
		status, reason := conditionLabels(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		verdict := verdictLabel(status, reason)
		if len(si.Status.Policies) == 0 {
			s.counts[imageCount{namespace: si.Namespace, verified: verdict, reason: reason}]++
		}
		for _, p := range si.Status.Policies {
			s.counts[policyCount(si.Namespace, p)]++
		}
		if c := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition); c != nil {
			s.logChecks[[3]string{si.Namespace, string(c.Status), c.Reason}]++
		}
		latest(s.lastAttempt, si.Namespace, si.Status.LastAttemptTime)
		if status == string(metav1.ConditionTrue) {
			latest(s.lastVerified, si.Namespace, si.Status.LastVerifiedTime)
		}
		if info {
			s.info = append(s.info, imageInfo{namespace: si.Namespace, name: si.Name, image: si.Spec.Image, digest: si.Spec.Digest,
				verified: verdict, reason: reason})
		}
	}
	return s
}

// policyCount is the series a policy result counts in. A result written before severity and mode were
// recorded has the policy defaults.
func policyCount(namespace string, p sigwatchv1alpha1.PolicyResult) imageCount {
	severity, mode := p.Severity, p.Mode
	if severity == "" {
		severity = sigwatchv1alpha1.SeverityHigh
	}
	if mode == "" {
		mode = sigwatchv1alpha1.PolicyModeEnforce
	}
	verdict, reason := resultLabels(p)
	return imageCount{namespace: namespace, policy: p.Name, verified: verdict, reason: reason, severity: string(severity), mode: string(mode)}
}

// resultLabels are the verified and reason labels of a policy result: the values of the Verified
// condition it stands for (True, False, Unknown), and Exempt for an exempt one, which is not judged and
// is neither verified nor "could not verify".
func resultLabels(p sigwatchv1alpha1.PolicyResult) (string, string) {
	verdict := string(metav1.ConditionUnknown)
	switch p.Result {
	case sigwatchv1alpha1.PolicyVerified:
		verdict = string(metav1.ConditionTrue)
	case sigwatchv1alpha1.PolicyFailed:
		verdict = string(metav1.ConditionFalse)
	case sigwatchv1alpha1.PolicyExempt:
		verdict = sigwatchv1alpha1.ExemptReason
	}
	reason := p.Reason
	if reason == "" {
		switch p.Result {
		case sigwatchv1alpha1.PolicyVerified:
			reason = sigwatchv1alpha1.VerifiedReason
		case sigwatchv1alpha1.PolicyExempt:
			reason = sigwatchv1alpha1.ExemptReason
		default:
			reason = string(p.Result)
		}
	}
	return verdict, reason
}

// verdictLabel is the verified label of an image's Verified condition: its status, but Exempt when every
// policy exempts the image (Unknown, reason Exempt), so that an exemption is never read as a failure to
// verify.
func verdictLabel(status, reason string) string {
	if status == string(metav1.ConditionUnknown) && reason == sigwatchv1alpha1.ExemptReason {
		return sigwatchv1alpha1.ExemptReason
	}
	return status
}

// latest records t for namespace when it is later than what is recorded.
func latest(m map[string]time.Time, namespace string, t *metav1.Time) {
	if t == nil {
		return
	}
	if prev, ok := m[namespace]; !ok || t.After(prev) {
		m[namespace] = t.Time
	}
}
