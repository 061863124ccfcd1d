//go:build integration

package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/sigwatch/sigwatch/test/envtest"
)

// runbookBase is where every alert's runbook_url points: a section of docs/troubleshooting.md.
const runbookBase = "https://github.com/sigwatch/sigwatch/blob/main/docs/troubleshooting.md#"

// rule is an alerting rule of config/prometheus/rules.yaml.
type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// shippedRules reads the PrometheusRule of config/prometheus: its groups as they are, and its rules.
func shippedRules(t *testing.T) ([]any, []rule) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	var typed struct {
		Spec struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatalf("config/prometheus/rules.yaml: %v", err)
	}
	if err := yaml.Unmarshal(data, &typed); err != nil {
		t.Fatalf("config/prometheus/rules.yaml: %v", err)
	}
	var rules []rule
	for _, g := range typed.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("config/prometheus/rules.yaml has no rules")
	}
	return raw.Spec.Groups, rules
}

var promtoolBuild struct {
	once sync.Once
	bin  string
	err  error
}

// promtoolTest builds hack/tools/promtool (promtool's rule unit tests, a module of its own) once.
func promtoolTest(t *testing.T) string {
	t.Helper()
	promtoolBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "sigwatch-promtool-")
		if err != nil {
			promtoolBuild.err = err
			return
		}
		promtoolBuild.bin = filepath.Join(dir, "promtool-test")
		cmd := exec.Command("go", "build", "-trimpath", "-o", promtoolBuild.bin, ".")
		cmd.Dir = filepath.Join(envtest.RepoRoot(), "hack", "tools", "promtool")
		if out, err := cmd.CombinedOutput(); err != nil {
			promtoolBuild.err = fmt.Errorf("go build hack/tools/promtool: %w\n%s", err, out)
		}
	})
	if promtoolBuild.err != nil {
		t.Fatal(promtoolBuild.err)
	}
	return promtoolBuild.bin
}

// runRuleTests writes the shipped rule groups (without their descriptions: prose for a person) to
// rules.yaml beside tests, runs promtool's unit tests on them and returns the exit code and output.
func runRuleTests(t *testing.T, tests []byte) (int, string) {
	t.Helper()
	bin := promtoolTest(t)
	groups, _ := shippedRules(t)
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			if a, ok := r.(map[string]any)["annotations"].(map[string]any); ok {
				delete(a, "description")
			}
		}
	}
	rules, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "alerts_test.yaml")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("running promtool-test: %v", err)
	}
	return 0, out.String()
}

func alertTests(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "test", "monitoring", "testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestAlertRules: promtool's rule unit tests of testdata/alerts_test.yaml pass against the shipped rules,
// evaluated by Prometheus' own rule engine: each alert fires when it should, with its severity and
// runbook, and stays silent when it should.
func TestAlertRules(t *testing.T) {
	code, out := runRuleTests(t, alertTests(t))
	if code != 0 || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules (exit %d):\n%s", code, out)
	}
}

// TestAlertRuleTestsCanFail: the harness reports a wrong expectation, here an exempt image that would
// page as unverified.
func TestAlertRuleTestsCanFail(t *testing.T) {
	g := NewWithT(t)
	wrong := []byte(`rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'sigwatch_signedimages{namespace="shop", policy="release", verified="Exempt", reason="Exempt", severity="critical", mode="Enforce"}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: SigwatchImageUnverified
        exp_alerts:
          - exp_labels: {namespace: shop, policy: release, reason: Exempt, severity: critical, mode: Enforce}
`)
	code, out := runRuleTests(t, wrong)
	g.Expect(code).To(Equal(1), out)
	g.Expect(out).To(And(ContainSubstring("FAILED"), ContainSubstring("alertname: SigwatchImageUnverified")))
}

// TestEveryAlertIsTested: testdata/alerts_test.yaml shows each shipped alert firing and not firing.
func TestEveryAlertIsTested(t *testing.T) {
	g := NewWithT(t)
	var file struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	g.Expect(yaml.Unmarshal(alertTests(t), &file)).To(Succeed())
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range file.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	_, rules := shippedRules(t)
	for _, r := range rules {
		g.Expect(fires).To(HaveKey(r.Alert), "no test shows %s firing", r.Alert)
		g.Expect(silent).To(HaveKey(r.Alert), "no test shows %s not firing", r.Alert)
	}
}

// githubAnchors are the anchors GitHub gives the headings of a Markdown file.
func githubAnchors(markdown string) map[string]bool {
	heading := regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil && !inFence {
			anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")] = true
		}
	}
	return anchors
}

// TestAlertsHaveRunbooks: every alert has a summary and a runbook_url at a section of
// docs/troubleshooting.md that exists, and says at least what the alert means and what to do.
func TestAlertsHaveRunbooks(t *testing.T) {
	g := NewWithT(t)
	doc, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "docs", "troubleshooting.md"))
	g.Expect(err).NotTo(HaveOccurred())
	anchors := githubAnchors(string(doc))
	g.Expect(anchors).To(HaveKey("statuswritefailed"), "the anchor function reads GitHub's headings")
	_, rules := shippedRules(t)
	for _, r := range rules {
		g.Expect(r.Annotations).To(HaveKey("summary"), r.Alert)
		url := r.Annotations["runbook_url"]
		g.Expect(url).To(HavePrefix(runbookBase), r.Alert)
		anchor := strings.TrimPrefix(url, runbookBase)
		g.Expect(anchor).To(Equal(strings.ToLower(r.Alert)), "%s: the runbook section is named after the alert", r.Alert)
		g.Expect(anchors).To(HaveKey(anchor), "%s: docs/troubleshooting.md has no section #%s", r.Alert, anchor)
		section := sectionOf(string(doc), r.Alert)
		g.Expect(section).To(And(ContainSubstring("**What it means**"), ContainSubstring("**What to do**")),
			"%s: the runbook says what the alert means and what to do", r.Alert)
	}
}

// sectionOf is the text of the "### name" section of a Markdown file, up to the next heading.
func sectionOf(markdown, name string) string {
	_, rest, ok := strings.Cut(markdown, "\n### "+name+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n#"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// TestImageAlertsRouteBySeverity: the alerts on sigwatch_signedimages state how they are routed: an
// Enforce rule without a severity of its own takes the policy's (it keeps the severity label), and
// every other rule sets one of the severities docs/monitoring.md lists.
func TestImageAlertsRouteBySeverity(t *testing.T) {
	g := NewWithT(t)
	_, rules := shippedRules(t)
	allowed := []string{"warning", "info"}
	for _, r := range rules {
		sev, has := r.Labels["severity"]
		if has && r.Alert == "SigwatchTransparencyLogInconsistent" {
			// Not an image's alert: a log that forked is an incident for every image it holds, and pages.
			g.Expect(sev).To(Equal("critical"), r.Alert)
			continue
		}
		if has {
			g.Expect(allowed).To(ContainElement(sev), "%s: severity %q", r.Alert, sev)
			continue
		}
		g.Expect(r.Expr).To(And(ContainSubstring("sigwatch_signedimages{"), ContainSubstring(`mode!="Audit"`), ContainSubstring("severity")),
			"%s: a rule without a severity label must keep the policy's, for Enforce policies only", r.Alert)
	}
	g.Expect(slices.ContainsFunc(rules, func(r rule) bool { _, has := r.Labels["severity"]; return !has })).To(BeTrue(),
		"one rule takes the policy's severity")
}
