package main

import (
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// promql parses as Prometheus does by default: no experimental functions.
var promql = parser.NewParser(parser.Options{})

// analyze parses expr (after replacing Grafana variables if grafana is set) into e.
func analyze(e Expression, grafana bool) Expression {
	input := e.Expr
	if grafana {
		if s := substituteGrafanaVariables(input); s != input {
			e.Parsed, input = s, s
		}
	}
	expr, err := promql.ParseExpr(input)
	if err != nil {
		e.Error = strings.ReplaceAll(err.Error(), "\n", "; ")
		return e
	}
	e.Selectors, e.Groupings = inspect(expr)
	return e
}

// inspect lists the vector selectors of expr, and the labels it groups and matches on with the metrics
// beneath each. Clauses above a function that makes labels (label_replace, label_join, count_values)
// are not listed: the labels they name need not exist on any metric.
func inspect(expr parser.Expr) ([]Selector, []Grouping) {
	var selectors []Selector
	var groupings []Grouping
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			selectors = append(selectors, selectorOf(n))
		case *parser.AggregateExpr:
			if !n.Without && len(n.Grouping) > 0 && !makesLabels(n.Expr) {
				groupings = append(groupings, Grouping{Clause: "by", Labels: sorted(n.Grouping), Metrics: metricsOf(n.Expr)})
			}
		case *parser.BinaryExpr:
			if m := n.VectorMatching; m != nil && !makesLabels(n) {
				if m.On && len(m.MatchingLabels) > 0 {
					groupings = append(groupings, Grouping{Clause: "on", Labels: sorted(m.MatchingLabels), Metrics: metricsOf(n)})
				}
				if len(m.Include) > 0 {
					groupings = append(groupings, Grouping{Clause: "group", Labels: sorted(m.Include), Metrics: metricsOf(n)})
				}
			}
		}
		return nil
	})
	return selectors, groupings
}

func selectorOf(vs *parser.VectorSelector) Selector {
	s := Selector{Metric: vs.Name}
	var names []string
	for _, m := range vs.LabelMatchers {
		if m.Name != labels.MetricName {
			names = append(names, m.Name)
			continue
		}
		switch {
		case m.Type == labels.MatchEqual:
			s.Metric = m.Value
		case s.Metric == "":
			s.NameMatcher = m.Type.String() + `"` + m.Value + `"`
		}
	}
	s.Labels = sorted(names)
	return s
}

// metricsOf lists the metric names that expr selects.
func metricsOf(expr parser.Node) []string {
	var names []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			if s := selectorOf(vs); s.Metric != "" {
				names = append(names, s.Metric)
			}
		}
		return nil
	})
	return sorted(names)
}

// makesLabels says whether a function beneath node can give series labels that no metric has.
func makesLabels(node parser.Node) bool {
	found := false
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.Call:
			if n.Func.Name == "label_replace" || n.Func.Name == "label_join" {
				found = true
			}
		case *parser.AggregateExpr:
			if n.Op == parser.COUNT_VALUES {
				found = true
			}
		}
		return nil
	})
	return found
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// grafanaVariable matches the forms of a Grafana variable: $name, ${name}, ${name:format}, [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]`)

// substituteGrafanaVariables replaces each Grafana variable with something valid where it stands: its
// name inside a string, a duration in a range or subquery, else a number.
func substituteGrafanaVariables(expr string) string {
	var b strings.Builder
	var quote byte // the quote of the string being read, 0 outside strings
	for i := 0; i < len(expr); {
		c := expr[i]
		if quote != 0 {
			switch {
			case c == '\\' && quote != '`' && i+1 < len(expr):
				b.WriteString(expr[i : i+2])
				i += 2
				continue
			case c == quote:
				quote = 0
			}
		} else if c == '"' || c == '\'' || c == '`' {
			quote = c
		}
		if c == '$' || (c == '[' && strings.HasPrefix(expr[i:], "[[")) {
			if loc := grafanaVariable.FindStringSubmatchIndex(expr[i:]); loc != nil && loc[0] == 0 {
				name := submatch(expr[i:], loc)
				b.WriteString(standIn(name, quote != 0, inRange(b.String())))
				i += loc[1]
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

func submatch(s string, loc []int) string {
	for g := 1; g < len(loc)/2; g++ {
		if loc[2*g] >= 0 {
			return s[loc[2*g]:loc[2*g+1]]
		}
	}
	return ""
}

// inRange says whether the text before a variable leaves it inside [...] (a range or a subquery).
func inRange(before string) bool {
	open := strings.LastIndexByte(before, '[')
	return open >= 0 && open > strings.LastIndexByte(before, ']')
}

func standIn(name string, inString, inRange bool) string {
	switch {
	case inString:
		return name
	case strings.HasSuffix(name, "_ms") || strings.HasSuffix(name, "_s"):
		return "300"
	case inRange || strings.Contains(name, "interval") || strings.HasPrefix(name, "__range"):
		return "5m"
	}
	return "1"
}
