// Command promql-check parses every PromQL expression in the files it is given and lists, for each, the
// metrics it selects and the labels it names, so that a test can hold them against what the manager
// exports.
//
//	promql-check [-json] FILE...
//
// A file is read by its extension:
//
//   - .json: a Grafana dashboard: every `expr` of a panel target (rows and nested panels included) and of
//     an annotation, and the query of each query variable (label_values(metric, label) and
//     query_result(expr) are unwrapped; label_names() and metrics(regex) select no series). Targets and
//     variables of a datasource whose type is not prometheus are skipped.
//   - .yaml, .yml: Prometheus rules: a PrometheusRule (spec.groups[].rules[].expr) or a rule file
//     (groups[].rules[].expr), one or more YAML documents.
//   - .md, .markdown: the ```promql fenced blocks, and the ```yaml blocks that hold rule groups. In a
//     promql block, blank lines separate expressions; a paragraph that does not parse as one expression
//     but whose every line (comment lines aside) parses alone is taken as one expression per line.
//
// Grafana variables ($__rate_interval, ${datasource}, $namespace, [[var]]) are replaced with valid
// stand-ins before parsing, in dashboards and Markdown: inside a string by the variable's name, in a
// range or subquery by 5m, elsewhere by 1 (the _s and _ms interval variables by 300).
//
// It prints one line per expression, or with -json one JSON array of expressions, and exits 1 if an
// expression does not parse, 2 if a file cannot be read.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Expression is one PromQL expression found in a file, with what it selects.
type Expression struct {
	File string `json:"file"`
	// Line is the 1-based line of the expression in File (0: not known).
	Line int `json:"line,omitempty"`
	// Location says where in the file: the panel and target, the alert, the Markdown block.
	Location string `json:"location"`
	// Expr is the expression as written.
	Expr string `json:"expr"`
	// Parsed is what was parsed, when Grafana variables were replaced.
	Parsed string `json:"parsed,omitempty"`
	// Error is the parse error ("" if it parsed).
	Error string `json:"error,omitempty"`
	// Selectors are the vector selectors of the expression.
	Selectors []Selector `json:"selectors,omitempty"`
	// Groupings are the labels that the expression groups or matches on.
	Groupings []Grouping `json:"groupings,omitempty"`
}

// Selector is one vector selector.
type Selector struct {
	// Metric is the metric name: the selector's name or its __name__="..." matcher ("" if neither).
	Metric string `json:"metric,omitempty"`
	// NameMatcher is a __name__ matcher that is not an equality (__name__=~"sigwatch_.*").
	NameMatcher string `json:"nameMatcher,omitempty"`
	// Labels are the label names of the other matchers.
	Labels []string `json:"labels,omitempty"`
}

// Grouping is a list of labels that must exist on the metrics beneath it: the by (...) of an aggregation,
// the on (...) and group_left/group_right (...) of a binary operation, the label of label_values().
type Grouping struct {
	Clause  string   `json:"clause"`
	Labels  []string `json:"labels"`
	Metrics []string `json:"metrics"`
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("promql-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the expressions as one JSON array")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: promql-check [-json] FILE... (Grafana dashboard .json, rules .yaml, Markdown .md)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var all []Expression
	for _, file := range fs.Args() {
		exprs, err := readFile(file)
		if err != nil {
			fmt.Fprintf(stderr, "promql-check: %v\n", err)
			return 2
		}
		all = append(all, exprs...)
	}
	failed := 0
	for _, e := range all {
		if e.Error != "" {
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if all == nil {
			all = []Expression{}
		}
		if err := enc.Encode(all); err != nil {
			fmt.Fprintf(stderr, "promql-check: %v\n", err)
			return 2
		}
	} else {
		for _, e := range all {
			fmt.Fprintln(stdout, e.line())
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "promql-check: %d of %d expressions do not parse\n", failed, len(all))
		return 1
	}
	return 0
}

// line is the expression as one line of text: where, and what it selects or why it does not parse.
func (e Expression) line() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Error != "" {
		return fmt.Sprintf("%s: %s: parse error: %s", where, e.Location, e.Error)
	}
	var sel []string
	for _, s := range e.Selectors {
		name := s.Metric
		if name == "" {
			name = "{__name__" + s.NameMatcher + "}"
		}
		if len(s.Labels) > 0 {
			name += "{" + strings.Join(s.Labels, ",") + "}"
		}
		sel = append(sel, name)
	}
	return fmt.Sprintf("%s: %s: ok: %s", where, e.Location, strings.Join(sel, " "))
}

func readFile(file string) ([]Expression, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	lower := strings.ToLower(file)
	switch {
	case strings.HasSuffix(lower, ".json"):
		return dashboardExprs(file, data)
	case strings.HasSuffix(lower, ".yaml"), strings.HasSuffix(lower, ".yml"):
		return ruleFileExprs(file, data)
	case strings.HasSuffix(lower, ".md"), strings.HasSuffix(lower, ".markdown"):
		return markdownExprs(file, data)
	}
	return nil, fmt.Errorf("%s: not a dashboard (.json), rules (.yaml) or Markdown (.md) file", file)
}
