//go:build integration

package monitoring

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// sample is one line of a text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeSamples reads the manager's /metrics with the values.
func scrapeSamples(ctx context.Context, url string) ([]sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSampleValue(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseSampleValue reads `name{a="x",b="y\"z"} 1`.
func parseSampleValue(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return s, fmt.Errorf("not a sample: %q", line)
	}
	s.name = line[:end]
	rest := line[end:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("not a sample: %q", line)
			}
			name := rest[:eq]
			rest = rest[eq+1:]
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' {
					i++
				}
			}
			if i >= len(rest) {
				return s, fmt.Errorf("not a sample: %q", line)
			}
			v, err := strconv.Unquote(rest[:i+1])
			if err != nil {
				return s, fmt.Errorf("label %s of %q: %w", name, line, err)
			}
			s.labels[name] = v
			rest = rest[i+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value: %q", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value of %q: %w", line, err)
	}
	s.value = v
	return s, nil
}

// find returns the samples of name whose labels include want.
func find(samples []sample, name string, want map[string]string) []sample {
	var out []sample
	for _, s := range samples {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && s.labels[k] == v
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// TestManagerServesRoutableMetrics reads the running manager's /metrics: the SignedImages by policy
// with its severity and mode, one info series per image (--image-metrics), the build, the last
// verification times as the SignedImages record them, counters that exist at 0 from the start, and no
// request without a response to the healthy plain-HTTP registry of the fixture (the HTTPS half of the
// scheme probe of an --insecure-registry host is not a failure).
func TestManagerServesRoutableMetrics(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var images sigwatchv1alpha1.SignedImageList
	g.Expect(env.Client.List(ctx, &images)).To(Succeed())
	var lastVerified time.Time
	digests := map[string]string{}
	for _, si := range images.Items {
		digests[si.Spec.Image] = si.Spec.Digest
		if si.Status.LastVerifiedTime != nil && si.Status.LastVerifiedTime.After(lastVerified) {
			lastVerified = si.Status.LastVerifiedTime.Time
		}
	}
	g.Expect(digests).To(HaveLen(3), "the fixture's three images (one logged in Rekor v1)")
	g.Expect(lastVerified.IsZero()).To(BeFalse(), "the signed image was verified")

	var samples []sample
	g.Eventually(func(g Gomega) {
		var err error
		samples, err = scrapeSamples(ctx, metricsURL)
		g.Expect(err).NotTo(HaveOccurred())
		got := find(samples, "sigwatch_last_successful_verification_timestamp_seconds", map[string]string{"namespace": "shop"})
		g.Expect(got).To(HaveLen(1))
		g.Expect(got[0].value).To(BeNumerically("~", float64(lastVerified.Unix()), 1), "the SignedImage's lastVerifiedTime")
	}).WithTimeout(time.Minute).Should(Succeed())

	policy := map[string]string{"namespace": "shop", "policy": "app", "severity": "high", "mode": "Enforce"}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range policy {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	failed := find(samples, "sigwatch_signedimages", with(map[string]string{"verified": "False", "reason": "SignatureMissing"}))
	g.Expect(failed).To(HaveLen(1))
	g.Expect(failed[0].value).To(Equal(1.0))
	verified := find(samples, "sigwatch_signedimages", with(map[string]string{"verified": "True", "reason": "Verified"}))
	g.Expect(verified).To(HaveLen(1))
	g.Expect(verified[0].value).To(Equal(1.0))
	for _, s := range find(samples, "sigwatch_signedimages", nil) {
		g.Expect(s.labels).To(HaveLen(6), "namespace, policy, verified, reason, severity, mode: no image or digest")
	}

	info := find(samples, "sigwatch_signedimage_info", map[string]string{"namespace": "shop"})
	g.Expect(info).To(HaveLen(3))
	for _, s := range info {
		g.Expect(s.value).To(Equal(1.0))
		g.Expect(s.labels).To(HaveKeyWithValue("digest", digests[s.labels["image"]]), "%v", s.labels)
		g.Expect(s.labels).To(And(HaveKey("name"), HaveKey("verified"), HaveKey("reason")))
	}

	build := find(samples, "sigwatch_build_info", nil)
	g.Expect(build).To(HaveLen(1))
	g.Expect(build[0].value).To(Equal(1.0))
	g.Expect(build[0].labels).To(And(HaveKey("version"), HaveKey("revision"), HaveKey("goversion")))
	g.Expect(build[0].labels["goversion"]).To(HavePrefix("go"))

	attempts := find(samples, "sigwatch_last_verification_attempt_timestamp_seconds", map[string]string{"namespace": "shop"})
	g.Expect(attempts).To(HaveLen(1))
	g.Expect(attempts[0].value).To(BeNumerically(">=", float64(lastVerified.Unix())))

	never := find(samples, "sigwatch_verifications_total", map[string]string{"result": "Failed", "reason": "TrustRootMismatch"})
	g.Expect(never).To(HaveLen(1), "known verdicts exist from the start")
	g.Expect(never[0].value).To(BeZero())

	requests := find(samples, "sigwatch_registry_requests_total", nil)
	g.Expect(find(requests, "sigwatch_registry_requests_total", map[string]string{"code": "200"})).NotTo(BeEmpty())
	for _, s := range find(requests, "sigwatch_registry_requests_total", map[string]string{"code": "0"}) {
		g.Expect(s.value).To(BeZero(), "%v: a healthy plain-HTTP registry has no request without a response", s.labels)
	}
}
