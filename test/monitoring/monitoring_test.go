//go:build integration

// Package monitoring checks the PromQL that sigwatch ships (the Grafana dashboard, the alerts, the
// queries of the docs): each parses, and names only metrics and labels that the manager exports.
//
// What the manager exports is read from the real thing: `sigwatch manager` built from this tree runs
// against envtest, verifies a pod's image, and its /metrics endpoint is scraped. A Prometheus client
// serves no series of a metric vector until one has a child, so the manager is given a policy and a pod
// first, and the scrape is held against the descriptors the metrics register: a sigwatch metric the scrape
// lacks fails the test as a gap in this fixture, not as a query error. The expressions are found by
// bin/promql-check (hack/tools/promql, its own module: the Prometheus parser stays out of go.mod).
package monitoring

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/sharding"
	"github.com/sigwatch/sigwatch/test/envtest"
)

var (
	env *envtest.Environment
	// exported is the manager's scrape, taken once by TestMain.
	exported exposition
	// metricsURL is the running manager's /metrics, for the tests that read values.
	metricsURL string
)

func TestMain(m *testing.M) { os.Exit(envtest.Run(suite{m}, &env)) }

// suite runs the manager around the package's tests, inside envtest's lifetime.
type suite struct{ m *testing.M }

func (s suite) Run() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run, err := startManager(ctx, env)
	defer run.stop()
	if err == nil {
		metricsURL = run.metrics
		exported, err = run.waitForEveryFamily(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the manager:", err)
		return 1
	}
	return s.m.Run()
}

// shipped are the files whose PromQL is checked, relative to the repository root.
func shipped(t *testing.T) []string {
	t.Helper()
	dashboards, err := filepath.Glob(filepath.Join(envtest.RepoRoot(), "config", "grafana", "*.json"))
	if err != nil || len(dashboards) == 0 {
		t.Fatalf("no dashboard in config/grafana (%v)", err)
	}
	var files []string
	for _, d := range dashboards {
		files = append(files, filepath.Join("config", "grafana", filepath.Base(d)))
	}
	return append(files, "config/prometheus/rules.yaml", "docs/monitoring.md", "README.md")
}

// TestShippedQueriesUseExportedMetrics: every expression of the dashboard, the alerts and the docs
// parses and selects only metrics (and labels) that the manager serves.
func TestShippedQueriesUseExportedMetrics(t *testing.T) {
	g := NewWithT(t)
	files := shipped(t)
	exprs, code := runCheck(t, files...)
	g.Expect(problems(exprs, exported)).To(BeEmpty())
	g.Expect(code).To(Equal(0))
	perFile := map[string]int{}
	for _, e := range exprs {
		perFile[e.File]++
	}
	for _, f := range files {
		g.Expect(perFile[f]).To(BeNumerically(">", 0), "promql-check found no expression in %s", f)
	}
	// Nothing is missed: one expression per "expr" of the dashboards (targets, variables) and rules.
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), f))
		g.Expect(err).NotTo(HaveOccurred())
		switch {
		case strings.HasSuffix(f, ".json"):
			g.Expect(perFile[f]).To(Equal(strings.Count(string(data), `"expr":`)+strings.Count(string(data), `"definition": "label_values(`)), f)
		case strings.HasSuffix(f, ".yaml"):
			g.Expect(perFile[f]).To(Equal(len(regexp.MustCompile(`(?m)^\s+expr:`).FindAll(data, -1))), f)
		}
	}
	t.Logf("%d expressions in %s checked against %d series names", len(exprs), strings.Join(files, ", "), len(exported))
}

// TestScrapeHasEveryRegisteredMetric: the scrape holds a series of each metric that controllers
// registers, so that a query is never failed (or passed) for a vector the fixture left empty.
func TestScrapeHasEveryRegisteredMetric(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	_, err := controllers.NewMetrics(reg, env.Client, sharding.Shard{}, controllers.WithImageInfo())
	g.Expect(err).NotTo(HaveOccurred())
	descs := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(descs)
		close(descs)
	}()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		g.Expect(m).NotTo(BeNil(), d.String())
		names = append(names, m[1])
	}
	g.Expect(names).To(ContainElement("sigwatch_signedimages"))
	g.Expect(names).To(ContainElements("sigwatch_signedimage_info", "sigwatch_build_info", "sigwatch_last_successful_verification_timestamp_seconds"))
	for _, name := range append(names, "sigwatch_trust_root_fallback", "sigwatch_trust_root_age_seconds", "sigwatch_trust_root_info") {
		_, plain := exported[name]
		_, histogram := exported[name+"_count"]
		g.Expect(plain || histogram).To(BeTrue(), "the manager's scrape has no series of %s: give the fixture (startManager) what makes one", name)
	}
}

// TestMisspelledMetricIsReported: a dashboard whose queries parse but name a metric or label that does
// not exist, in a collapsed row and in a variable, is reported at each place and only there.
func TestMisspelledMetricIsReported(t *testing.T) {
	g := NewWithT(t)
	exprs, code := runCheck(t, "test/monitoring/testdata/misspelled-dashboard.json")
	g.Expect(code).To(Equal(0), "every expression parses")
	g.Expect(exprs).To(HaveLen(6))
	g.Expect(problems(exprs, exported)).To(ConsistOf(
		And(ContainSubstring(`panels[0].targets[1] "Verifications"`),
			ContainSubstring("sigwatch_verificatons_total is not a metric the manager exports (did you mean sigwatch_verifications_total?)")),
		And(ContainSubstring(`panels[1].panels[0].targets[0] "Registry errors"`), ContainSubstring(`sigwatch_registry_requests_total has no label "status"`)),
		And(ContainSubstring(`panels[1].panels[1].targets[0] "By result"`), ContainSubstring(`by (outcome): no label "outcome" on sigwatch_verifications_total`)),
		And(ContainSubstring(`templating.list[1] "policy"`), ContainSubstring(`label_values (policies): no label "policies" on sigwatch_imagesignaturepolicy_ready`)),
	))
}

// TestUnparsableExpressionFailsTheTool: an expression that does not parse, in a dashboard or a promql
// block of Markdown, makes promql-check exit 1 and is reported where it is.
func TestUnparsableExpressionFailsTheTool(t *testing.T) {
	g := NewWithT(t)
	exprs, code := runCheck(t, "test/monitoring/testdata/unparsable-dashboard.json", "test/monitoring/testdata/unparsable.md")
	g.Expect(code).To(Equal(1))
	g.Expect(problems(exprs, exported)).To(ConsistOf(
		And(ContainSubstring(`unparsable-dashboard.json:`), ContainSubstring(`panels[0].targets[0] "Unclosed"`), ContainSubstring("does not parse")),
		And(ContainSubstring(`unparsable.md:9: promql block at line 7: does not parse`)),
	))
	var good int
	for _, e := range exprs {
		if e.Error == "" {
			good++
		}
	}
	g.Expect(good).To(Equal(3), "the expressions around the bad ones are read and pass")
}
