package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// dashboardExprs finds the PromQL of a Grafana dashboard (or of the API's {"dashboard": {...}} wrapper).
func dashboardExprs(file string, data []byte) ([]Expression, error) {
	var dashboard map[string]any
	if err := json.Unmarshal(data, &dashboard); err != nil {
		return nil, fmt.Errorf("%s: not a JSON dashboard: %w", file, err)
	}
	if inner, ok := dashboard["dashboard"].(map[string]any); ok {
		dashboard = inner
	}
	if _, ok := dashboard["panels"]; !ok {
		return nil, fmt.Errorf("%s: not a Grafana dashboard: no panels", file)
	}
	d := dashboardReader{file: file, data: data}
	d.panels("panels", dashboard["panels"], nil)
	if templating, ok := dashboard["templating"].(map[string]any); ok {
		d.variables(templating["list"])
	}
	if annotations, ok := dashboard["annotations"].(map[string]any); ok {
		for i, a := range list(annotations["list"]) {
			if expr, ok := a["expr"].(string); ok && isPrometheus(a["datasource"], nil) {
				d.add(fmt.Sprintf("annotations.list[%d] %q", i, a["name"]), expr)
			}
		}
	}
	return d.exprs, nil
}

type dashboardReader struct {
	file  string
	data  []byte
	exprs []Expression
}

// panels reads the targets of each panel at path, and of the panels within (rows, collapsed or not).
func (d *dashboardReader) panels(path string, panels any, parentDatasource any) {
	for i, p := range list(panels) {
		at := fmt.Sprintf("%s[%d]", path, i)
		datasource := p["datasource"]
		if datasource == nil {
			datasource = parentDatasource
		}
		for j, t := range list(p["targets"]) {
			expr, ok := t["expr"].(string)
			if !ok || !isPrometheus(t["datasource"], datasource) {
				continue
			}
			d.add(fmt.Sprintf("%s.targets[%d] %q", at, j, p["title"]), expr)
		}
		d.panels(at+".panels", p["panels"], datasource)
	}
}

// variables reads the query variables: label_values(metric, label), query_result(expr), or PromQL.
func (d *dashboardReader) variables(vars any) {
	for i, v := range list(vars) {
		if v["type"] != "query" || !isPrometheus(v["datasource"], nil) {
			continue
		}
		query, _ := v["query"].(string)
		if q, ok := v["query"].(map[string]any); ok {
			query, _ = q["query"].(string)
		}
		if query == "" {
			query, _ = v["definition"].(string)
		}
		if query == "" {
			continue
		}
		at := fmt.Sprintf("templating.list[%d] %q", i, v["name"])
		e := Expression{File: d.file, Line: lineOf(d.data, query), Location: at, Expr: query}
		switch fn, args := variableQuery(query); fn {
		case "label_names", "metrics":
			continue // they select no series
		case "label_values":
			if len(args) < 2 {
				continue // label_values(label): any series
			}
			selector, label := strings.Join(args[:len(args)-1], ","), strings.TrimSpace(args[len(args)-1])
			e.Expr = selector
			e = analyze(e, true)
			e.Expr = query
			if e.Error == "" {
				var metrics []string
				for _, s := range e.Selectors {
					if s.Metric != "" {
						metrics = append(metrics, s.Metric)
					}
				}
				e.Groupings = append(e.Groupings, Grouping{Clause: "label_values", Labels: []string{label}, Metrics: sorted(metrics)})
			}
		case "query_result":
			e.Expr = strings.Join(args, ",")
			e = analyze(e, true)
			e.Expr = query
		default:
			e = analyze(e, true)
		}
		d.exprs = append(d.exprs, e)
	}
}

func (d *dashboardReader) add(location, expr string) {
	d.exprs = append(d.exprs, analyze(Expression{File: d.file, Line: lineOf(d.data, expr), Location: location, Expr: expr}, true))
}

// variableFunction is a query variable of the form fn(args).
var variableFunction = regexp.MustCompile(`^\s*(label_values|label_names|metrics|query_result)\s*\(([\s\S]*)\)\s*$`)

// variableQuery splits a variable query of the form fn(args) into fn and its top-level arguments.
func variableQuery(q string) (string, []string) {
	m := variableFunction.FindStringSubmatch(q)
	if m == nil {
		return "", nil
	}
	var args []string
	depth, start := 0, 0
	var quote rune
	for i, c := range m[2] {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '{' || c == '[':
			depth++
		case c == ')' || c == '}' || c == ']':
			depth--
		case c == ',' && depth == 0:
			args = append(args, m[2][start:i])
			start = i + 1
		}
	}
	return m[1], append(args, m[2][start:])
}

// isPrometheus says whether a datasource (a target's, else the panel's) is Prometheus: one given by a
// variable (${datasource}), by type, or not given.
func isPrometheus(datasource, fallback any) bool {
	if datasource == nil {
		datasource = fallback
	}
	switch ds := datasource.(type) {
	case map[string]any:
		t, _ := ds["type"].(string)
		return t == "" || t == "prometheus" || t == "datasource" // datasource: Mixed or Dashboard, by target
	case string:
		return true // a name or a variable: taken to be Prometheus
	}
	return true
}

func list(v any) []map[string]any {
	items, _ := v.([]any)
	var out []map[string]any
	for _, item := range items {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// lineOf is the line where a JSON string with this value first appears (0 if it is not found as such).
func lineOf(data []byte, s string) int {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return 0
	}
	i := bytes.Index(data, bytes.TrimSpace(b.Bytes()))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// ruleFileExprs reads the YAML documents of a file as PrometheusRules or rule files.
func ruleFileExprs(file string, data []byte) ([]Expression, error) {
	exprs, _, err := ruleExprs(file, data, 0)
	return exprs, err
}

// ruleExprs reads the expressions of the rule groups in data, whose first line is line 1+lineOffset of
// file. found says whether data held rule groups at all.
func ruleExprs(file string, data []byte, lineOffset int) (exprs []Expression, found bool, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return exprs, found, nil
		} else if err != nil {
			return nil, false, fmt.Errorf("%s: not YAML: %w", file, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		groups := child(root, "groups")
		if groups == nil {
			groups = child(child(root, "spec"), "groups")
		}
		if groups == nil || groups.Kind != yaml.SequenceNode {
			continue
		}
		found = true
		for _, g := range groups.Content {
			for _, r := range seq(child(g, "rules")) {
				expr := child(r, "expr")
				if expr == nil {
					continue
				}
				name := value(child(r, "alert"))
				if name == "" {
					name = "record " + value(child(r, "record"))
				}
				line := expr.Line
				if expr.Style == yaml.LiteralStyle || expr.Style == yaml.FoldedStyle {
					line++
				}
				exprs = append(exprs, analyze(Expression{File: file, Line: line + lineOffset,
					Location: fmt.Sprintf("group %s, %s", value(child(g, "name")), name), Expr: expr.Value}, false))
			}
		}
	}
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func seq(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func value(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

// fence opens or closes a fenced code block: its marker and info string.
var fence = regexp.MustCompile("^ {0,3}(```+|~~~+)\\s*([^`\\s]*)")

// markdownExprs reads the ```promql blocks, and the ```yaml blocks that hold rule groups.
func markdownExprs(file string, data []byte) ([]Expression, error) {
	lines := strings.Split(string(data), "\n")
	var exprs []Expression
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		marker, lang := m[1], strings.ToLower(m[2])
		start := i + 1
		end := start
		for end < len(lines) && !closes(lines[end], marker) {
			end++
		}
		block := lines[start:min(end, len(lines))]
		switch lang {
		case "promql":
			exprs = append(exprs, promqlBlockExprs(file, start, block)...)
		case "yaml", "yml":
			rules, found, err := ruleExprs(file, []byte(strings.Join(block, "\n")), start)
			if err == nil && found {
				exprs = append(exprs, rules...)
			}
		}
		i = end
	}
	return exprs, nil
}

func closes(line, marker string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, marker[:3]) && strings.Trim(t, marker[:1]) == "" && len(t) >= len(marker)
}

// promqlBlockExprs splits a promql block, whose first line is line first+1 (0-based first), into
// paragraphs, and a paragraph that is not one expression into its lines, if each parses.
func promqlBlockExprs(file string, first int, block []string) []Expression {
	var exprs []Expression
	location := fmt.Sprintf("promql block at line %d", first)
	for i := 0; i < len(block); {
		if strings.TrimSpace(block[i]) == "" {
			i++
			continue
		}
		j := i
		for j < len(block) && strings.TrimSpace(block[j]) != "" {
			j++
		}
		line := i // the paragraph's first line that is not a comment
		for line < j-1 && strings.HasPrefix(strings.TrimSpace(block[line]), "#") {
			line++
		}
		whole := analyze(Expression{File: file, Line: first + line + 1, Location: location, Expr: strings.Join(block[i:j], "\n")}, true)
		if whole.Error == "" || j-i == 1 {
			exprs = append(exprs, whole)
		} else if each, ok := eachLine(file, first, location, block, i, j); ok {
			exprs = append(exprs, each...)
		} else {
			exprs = append(exprs, whole)
		}
		i = j
	}
	return exprs
}

func eachLine(file string, first int, location string, block []string, from, to int) ([]Expression, bool) {
	var exprs []Expression
	for k := from; k < to; k++ {
		if strings.HasPrefix(strings.TrimSpace(block[k]), "#") {
			continue
		}
		e := analyze(Expression{File: file, Line: first + k + 1, Location: location, Expr: block[k]}, true)
		if e.Error != "" {
			return nil, false
		}
		exprs = append(exprs, e)
	}
	return exprs, len(exprs) > 0
}
