package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// maxDecodeErrors bounds the problems reported for one file.
const maxDecodeErrors = 20

// A DecodeError is one problem of a policy file, where it is: the line (1-based, 0 when not known), the
// document (1-based, 0 when the file has only one) and the field path. It reads like a compiler's
// message: "policy.yaml:12: spec.authorities[0].keyless.identities[0].subjectt: unknown field".
type DecodeError struct {
	File     string
	Line     int
	Document int
	Field    string
	Message  string
}

func (e *DecodeError) Error() string {
	var parts []string
	switch {
	case e.File != "" && e.Line > 0:
		parts = append(parts, e.File+":"+strconv.Itoa(e.Line))
	case e.File != "":
		parts = append(parts, e.File)
	case e.Line > 0:
		parts = append(parts, "line "+strconv.Itoa(e.Line))
	}
	if e.Document > 0 {
		parts = append(parts, "document "+strconv.Itoa(e.Document))
	}
	if e.Field != "" {
		parts = append(parts, e.Field)
	}
	return strings.Join(append(parts, e.Message), ": ")
}

// Decode reads ImageSignaturePolicy objects from YAML or JSON documents, as they are kept in Git
// (several documents separated by "---"). Unknown fields, values of the wrong type, other kinds and
// unnamed policies are errors (*DecodeError, several joined) that name the line, the document and the
// field.
func Decode(data []byte) ([]*sigwatchv1alpha1.ImageSignaturePolicy, error) {
	return DecodeFile("", data)
}

// DecodeFile is Decode with the file's name in the errors.
func DecodeFile(file string, data []byte) ([]*sigwatchv1alpha1.ImageSignaturePolicy, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		err.File = file
		return nil, err
	}
	var out []*sigwatchv1alpha1.ImageSignaturePolicy
	var errs []error
	for _, d := range docs {
		if len(docs) > 1 {
			d.number = d.index
		}
		p, problems := d.decode()
		for _, e := range problems {
			e.File = file
			if len(errs) < maxDecodeErrors {
				errs = append(errs, e)
			}
		}
		if p != nil {
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, &DecodeError{File: file, Message: "no ImageSignaturePolicy found"}
	}
	return out, nil
}

// FieldLine is the line in data of field (a path such as "spec.authorities[0].name", as an *Error's
// Field) of the i-th policy (from 0) that Decode returns of data, or of the deepest part of the path
// found; 0 when data does not hold that many documents.
func FieldLine(data []byte, i int, field string) int {
	docs, err := splitDocuments(data)
	if err != nil || i < 0 || i >= len(docs) {
		return 0
	}
	return docs[i].lineOfField(field)
}

// document is one YAML document of a file: its text and its first line in the file.
type document struct {
	text      []byte
	firstLine int // 1-based line in the file of the document's first line
	index     int // 1-based position among the file's non-empty documents
	number    int // index, or 0 when the file has one document
	node      *yaml3.Node
	parsed    bool
}

// splitDocuments cuts data at the lines that are "---" (with only spaces or a comment after it), as
// Kubernetes' YAML reader does, and drops documents that are empty or only comments.
func splitDocuments(data []byte) ([]*document, *DecodeError) {
	var docs []*document
	var cur []byte
	first := 1
	flush := func() {
		if !isOnlyComments(cur) {
			docs = append(docs, &document{text: cur, firstLine: first, index: len(docs) + 1})
		}
	}
	line := 0
	for rest := data; len(rest) > 0; {
		line++
		l := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		if after, ok := bytes.CutPrefix(l, []byte("---")); ok {
			trimmed := bytes.TrimSpace(after)
			if len(trimmed) > 0 && trimmed[0] != '#' {
				return nil, &DecodeError{Line: line, Message: `nothing but a comment may follow "---" on its line`}
			}
			flush()
			cur, first = nil, line+1
			continue
		}
		cur = append(cur, l...)
	}
	flush()
	return docs, nil
}

func isOnlyComments(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// decode decodes one document as Kubernetes does (YAML to JSON, then strict JSON decoding) and
// locates its problems with a line-keeping YAML parse.
func (d *document) decode() (*sigwatchv1alpha1.ImageSignaturePolicy, []*DecodeError) {
	j, err := yaml.YAMLToJSONStrict(d.text)
	if err != nil {
		return nil, []*DecodeError{d.yamlError(err)}
	}
	if t := bytes.TrimSpace(j); len(t) == 0 || t[0] != '{' {
		return nil, []*DecodeError{d.errorAt(nil, false, "", "a document must be a mapping (apiVersion, kind, metadata, spec)")}
	}
	var tm metav1.TypeMeta
	_ = json.Unmarshal(j, &tm) // a type error is reported by the strict decoding below
	if tm.APIVersion != sigwatchv1alpha1.GroupVersion.String() || tm.Kind != "ImageSignaturePolicy" {
		field := "kind"
		if tm.Kind == "ImageSignaturePolicy" {
			field = "apiVersion"
		}
		e := d.errorAt([]any{field}, true, "", fmt.Sprintf("is %s %s, want %s ImageSignaturePolicy",
			orNone(tm.APIVersion), orNone(tm.Kind), sigwatchv1alpha1.GroupVersion))
		e.Field = ""
		return nil, []*DecodeError{e}
	}
	var p sigwatchv1alpha1.ImageSignaturePolicy
	strict, err := kjson.UnmarshalStrict(j, &p)
	var problems []*DecodeError
	if err != nil {
		problems = append(problems, d.typeError(j, err))
	}
	for _, s := range strict {
		problems = append(problems, d.strictError(s))
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if p.Name == "" {
		return nil, []*DecodeError{d.errorAt([]any{"metadata"}, true, "metadata.name", "is required")}
	}
	return &p, nil
}

func orNone(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// yamlLine is the "line N" of a YAML parser's message, relative to the document.
var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlError is a YAML syntax error (or a duplicate key) at its line in the file.
func (d *document) yamlError(err error) *DecodeError {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	e := &DecodeError{Line: d.firstLine, Document: d.number, Message: "YAML: " + msg}
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		n, _ := strconv.Atoi(msg[m[2]:m[3]])
		e.Line = d.firstLine + n - 1
		rest := strings.TrimLeft(msg[m[1]:], ": ")
		if i := strings.IndexByte(rest, '\n'); i >= 0 { // more than one problem: the first is enough
			rest = rest[:i]
		}
		e.Message = "YAML: " + rest
	}
	return e
}

// typeError locates a value of the wrong type (the decoder gives its offset in the JSON) and says
// what was expected in YAML's words.
func (d *document) typeError(j []byte, err error) *DecodeError {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return d.errorAt(nil, false, "", strings.TrimPrefix(err.Error(), "json: "))
	}
	path := jsonPathAt(j, te.Offset)
	// A custom UnmarshalJSON decodes on its own, with offsets of its own: the path must be the field's
	// (or a key of a map that the field is).
	if k := keysOf(path); k != te.Field && !strings.HasPrefix(k, te.Field+".") {
		path = nil
	}
	if path == nil && te.Field != "" {
		for _, f := range strings.Split(te.Field, ".") {
			path = append(path, f)
		}
	}
	msg := fmt.Sprintf("must be %s, not %s", yamlKind(te.Type), valueKind(te.Value))
	if len(path) == 0 {
		msg = fmt.Sprintf("a document must be %s, not %s", yamlKind(te.Type), valueKind(te.Value))
	}
	return d.errorAt(path, false, "", msg)
}

// strictError locates an unknown field ("unknown field \"spec.x[0].y\"").
func (d *document) strictError(err error) *DecodeError {
	msg := err.Error()
	if field, ok := strings.CutPrefix(msg, `unknown field "`); ok && strings.HasSuffix(field, `"`) {
		field = strings.TrimSuffix(field, `"`)
		line := d.lineOfField(field)
		return &DecodeError{Line: line, Document: d.number, Field: field, Message: "unknown field"}
	}
	if field, ok := strings.CutPrefix(msg, `duplicate field "`); ok && strings.HasSuffix(field, `"`) {
		field = strings.TrimSuffix(field, `"`)
		return &DecodeError{Line: d.lineOfField(field), Document: d.number, Field: field, Message: "is given twice"}
	}
	return &DecodeError{Line: d.firstLine, Document: d.number, Message: msg}
}

// errorAt is an error about the value at path (or its key, when atKey), named field (default: the
// path).
func (d *document) errorAt(path []any, atKey bool, field, msg string) *DecodeError {
	if field == "" {
		field = formatPath(path)
	}
	line := d.firstLine
	if n := d.root(); n != nil {
		key, value := lookup(n, path)
		switch {
		case atKey && key != nil:
			line = d.firstLine + key.Line - 1
		case value != nil:
			line = d.firstLine + value.Line - 1
		case key != nil:
			line = d.firstLine + key.Line - 1
		}
	}
	return &DecodeError{Line: line, Document: d.number, Field: field, Message: msg}
}

// lineOfField is the line of the key that field (a path as the JSON decoder writes it) names, or of
// the deepest part of it found.
func (d *document) lineOfField(field string) int {
	n := d.root()
	if n == nil {
		return d.firstLine
	}
	key := lookupString(n, field)
	if key == nil {
		return d.firstLine
	}
	return d.firstLine + key.Line - 1
}

// root is the document's top node, parsed with line numbers (nil if the parser disagrees).
func (d *document) root() *yaml3.Node {
	if !d.parsed {
		d.parsed = true
		var n yaml3.Node
		if yaml3.Unmarshal(d.text, &n) == nil && n.Kind == yaml3.DocumentNode && len(n.Content) == 1 {
			d.node = n.Content[0]
		}
	}
	return d.node
}

// lookup follows path (string keys, int indexes) from n and returns the key node and the value node of
// the last element found: the value is nil when the path does not reach its end.
func lookup(n *yaml3.Node, path []any) (key, value *yaml3.Node) {
	value = n
	for _, p := range path {
		value = deref(value)
		var next, k *yaml3.Node
		switch p := p.(type) {
		case string:
			k, next = mappingValue(value, p)
		case int:
			if value.Kind == yaml3.SequenceNode && p >= 0 && p < len(value.Content) {
				next = value.Content[p]
			}
		}
		if next == nil {
			if key == nil {
				key = value
			}
			return key, nil
		}
		if k != nil {
			key = k
		}
		value = next
	}
	return key, value
}

// lookupString follows a path written as "a.b[0].c" (keys may hold dots) and returns the node of its
// last key, or of the deepest key found.
func lookupString(n *yaml3.Node, path string) *yaml3.Node {
	var found *yaml3.Node
	for path != "" {
		n = deref(n)
		if strings.HasPrefix(path, "[") {
			end := strings.IndexByte(path, ']')
			i, err := strconv.Atoi(path[1:max(end, 1)])
			if end < 0 || err != nil || n.Kind != yaml3.SequenceNode || i < 0 || i >= len(n.Content) {
				return found
			}
			n, path = n.Content[i], strings.TrimPrefix(path[end+1:], ".")
			continue
		}
		if n.Kind != yaml3.MappingNode {
			return found
		}
		k, v := longestKey(n, path)
		if k == nil {
			return found
		}
		found, n = k, v
		rest := strings.TrimPrefix(path[len(k.Value):], ".")
		if len(rest) == len(path) { // an empty key: no progress
			return found
		}
		path = rest
	}
	return found
}

// longestKey is the key of mapping m that is path or path's longest prefix ending at a "." or "[".
func longestKey(m *yaml3.Node, path string) (key, value *yaml3.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if !strings.HasPrefix(path, k.Value) {
			continue
		}
		if rest := path[len(k.Value):]; rest != "" && rest[0] != '.' && rest[0] != '[' {
			continue
		}
		if key == nil || len(k.Value) > len(key.Value) {
			key, value = k, m.Content[i+1]
		}
	}
	return key, value
}

func mappingValue(m *yaml3.Node, name string) (key, value *yaml3.Node) {
	if m.Kind != yaml3.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			key, value = m.Content[i], m.Content[i+1] // the last one counts, as in the decoded object
		}
	}
	return key, value
}

func deref(n *yaml3.Node) *yaml3.Node {
	for i := 0; n.Kind == yaml3.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// jsonPathAt is the path of the innermost value of data that holds offset (as an UnmarshalTypeError
// gives it: just after a scalar, or just after the bracket that opens a list or object); nil when
// there is none.
func jsonPathAt(data []byte, offset int64) []any {
	type frame struct {
		object    bool
		key       string
		index     int
		expectKey bool
	}
	var stack []*frame
	current := func() []any {
		path := make([]any, 0, len(stack))
		for _, f := range stack {
			if f.object {
				path = append(path, f.key)
			} else {
				path = append(path, f.index)
			}
		}
		return path
	}
	advance := func() {
		if len(stack) == 0 {
			return
		}
		if f := stack[len(stack)-1]; f.object {
			f.expectKey = true
		} else {
			f.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var best []any
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return best
		}
		for start < int64(len(data)) && strings.IndexByte(" \t\r\n,:", data[start]) >= 0 {
			start++
		}
		end := dec.InputOffset()
		top := len(stack) - 1
		if s, ok := tok.(string); ok && top >= 0 && stack[top].object && stack[top].expectKey {
			stack[top].key, stack[top].expectKey = s, false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if start < offset && offset <= end {
				best = current()
			}
			stack = append(stack, &frame{object: tok == json.Delim('{'), expectKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			advance()
		default:
			if start < offset && offset <= end {
				return current()
			}
			advance()
		}
	}
}

// keysOf is path without its indexes, as an UnmarshalTypeError's Field has it.
func keysOf(path []any) string {
	var keys []string
	for _, p := range path {
		if s, ok := p.(string); ok {
			keys = append(keys, s)
		}
	}
	return strings.Join(keys, ".")
}

func formatPath(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, p)
		}
	}
	return b.String()
}

// yamlKind names what a Go type is written as in YAML.
func yamlKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a string"
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		if t == reflect.TypeFor[metav1.Duration]() || t == reflect.TypeFor[metav1.Time]() {
			return "a string"
		}
		return "a mapping (key: value)"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "another type"
	}
}

// valueKind names, in YAML's words, the JSON value kind of an UnmarshalTypeError ("array", "number 1.5").
func valueKind(v string) string {
	switch kind, rest, _ := strings.Cut(v, " "); kind {
	case "array":
		return "a list"
	case "object":
		return "a mapping"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "number":
		if rest != "" {
			return "the number " + rest
		}
		return "a number"
	default:
		return v
	}
}
