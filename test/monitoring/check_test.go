//go:build integration

package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sigwatch/sigwatch/test/envtest"
)

// expression is one expression as promql-check -json prints it (hack/tools/promql/main.go).
type expression struct {
	File      string     `json:"file"`
	Line      int        `json:"line"`
	Location  string     `json:"location"`
	Expr      string     `json:"expr"`
	Error     string     `json:"error"`
	Selectors []selector `json:"selectors"`
	Groupings []grouping `json:"groupings"`
}

type selector struct {
	Metric      string   `json:"metric"`
	NameMatcher string   `json:"nameMatcher"`
	Labels      []string `json:"labels"`
}

type grouping struct {
	Clause  string   `json:"clause"`
	Labels  []string `json:"labels"`
	Metrics []string `json:"metrics"`
}

func (e expression) where() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Location)
}

// notFromTheManager are the series that queries may use although the manager does not export them.
var notFromTheManager = map[string]string{
	"up": "Prometheus writes it for every target it scrapes (SigwatchAbsent)",
}

// targetLabels are the labels Prometheus gives every series it scrapes, whatever the scrape config.
var targetLabels = []string{"job", "instance"}

// checkTool is bin/promql-check, built by `make bin/promql-check`.
func checkTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(envtest.RepoRoot(), "bin", "promql-check")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make promql-check`: %v", bin, err)
	}
	return bin
}

// runCheck runs promql-check -json on files (relative to the repository root) and returns what it found
// and its exit code.
func runCheck(t *testing.T, files ...string) ([]expression, int) {
	t.Helper()
	cmd := exec.Command(checkTool(t), append([]string{"-json"}, files...)...)
	cmd.Dir = envtest.RepoRoot()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("running promql-check: %v", err)
		}
		code = exit.ExitCode()
	}
	if code == 2 {
		t.Fatalf("promql-check %s could not read its files:\n%s", strings.Join(files, " "), stderr.String())
	}
	var exprs []expression
	if err := json.Unmarshal(stdout.Bytes(), &exprs); err != nil {
		t.Fatalf("promql-check printed no JSON (%v):\n%s\n%s", err, stdout.String(), stderr.String())
	}
	return exprs, code
}

// problems lists what is wrong with the expressions against what the manager exports: parse errors,
// metrics it does not export, and labels (in matchers, by, on, group_left/right, label_values) that the
// metrics do not have.
func problems(exprs []expression, exported exposition) []string {
	var out []string
	for _, e := range exprs {
		if e.Error != "" {
			out = append(out, fmt.Sprintf("%s: does not parse: %s", e.where(), e.Error))
			continue
		}
		for _, s := range e.Selectors {
			out = append(out, selectorProblems(e, s, exported)...)
		}
		for _, g := range e.Groupings {
			var have []string
			for _, m := range g.Metrics {
				have = append(have, exported[m]...)
			}
			if len(have) == 0 && !slices.ContainsFunc(g.Metrics, func(m string) bool { _, ok := notFromTheManager[m]; return ok }) {
				continue // the metrics themselves are reported
			}
			for _, l := range g.Labels {
				if !slices.Contains(have, l) && !slices.Contains(targetLabels, l) {
					out = append(out, fmt.Sprintf("%s: %s (%s): no label %q on %s", e.where(), g.Clause, strings.Join(g.Labels, ", "),
						l, strings.Join(g.Metrics, ", ")))
				}
			}
		}
	}
	return out
}

func selectorProblems(e expression, s selector, exported exposition) []string {
	if s.Metric == "" {
		if !namePatternMatches(s.NameMatcher, exported) {
			return []string{fmt.Sprintf("%s: {__name__%s} selects no metric the manager exports", e.where(), s.NameMatcher)}
		}
		return nil
	}
	labels, ok := exported[s.Metric]
	if !ok {
		if _, ok := notFromTheManager[s.Metric]; !ok {
			return []string{fmt.Sprintf("%s: %s is not a metric the manager exports%s", e.where(), s.Metric, suggestion(s.Metric, exported))}
		}
	}
	var out []string
	for _, l := range s.Labels {
		if !slices.Contains(labels, l) && !slices.Contains(targetLabels, l) {
			out = append(out, fmt.Sprintf("%s: %s has no label %q (it has %s)", e.where(), s.Metric, l, strings.Join(labels, ", ")))
		}
	}
	return out
}

// namePatternMatches says whether a __name__ matcher (=~"...") selects at least one exported metric.
// Negative matchers cannot be checked and pass.
func namePatternMatches(matcher string, exported exposition) bool {
	op, quoted, ok := strings.Cut(matcher, `"`)
	if !ok || op != "=~" {
		return op == "!=" || op == "!~"
	}
	pattern, err := strconv.Unquote(`"` + quoted)
	if err != nil {
		return false
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return false
	}
	for name := range exported {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// suggestion names the exported metric nearest to name, to make a misspelling obvious.
func suggestion(name string, exported exposition) string {
	best, bestDistance := "", 4 // more edits than 3 is not a misspelling
	for _, candidate := range slices.Sorted(maps.Keys(exported)) {
		if d := editDistance(name, candidate); d < bestDistance {
			best, bestDistance = candidate, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
