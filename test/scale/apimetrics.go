package scale

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/rest"
)

// writeVerbs are the verbs of apiserver_request_total that change objects. APPLY is a server-side apply
// (a PATCH with the apply content type).
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// APIWrite is how many write requests of one verb, resource, subresource and response code the API
// server answered in a phase.
type APIWrite struct {
	Verb        string // POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION
	Group       string // "" for the core group
	Resource    string // pods, signedimages, events, ...
	Subresource string // "" or status, ...
	Code        string // HTTP status code, "201"
	Count       int
}

// Key is "VERB resource" or "VERB resource/subresource".
func (w APIWrite) Key() string {
	k := w.Verb + " " + w.Resource
	if w.Subresource != "" {
		k += "/" + w.Subresource
	}
	return k
}

// APIWrites are the write requests of a phase.
type APIWrites []APIWrite

// Count is how many requests there were of verb on resource/subresource, whatever the code.
func (ws APIWrites) Count(verb, resource, subresource string) int {
	n := 0
	for _, w := range ws {
		if w.Verb == verb && w.Resource == resource && w.Subresource == subresource {
			n += w.Count
		}
	}
	return n
}

// Succeeded is Count restricted to 2xx answers.
func (ws APIWrites) Succeeded(verb, resource, subresource string) int {
	n := 0
	for _, w := range ws {
		if w.Verb == verb && w.Resource == resource && w.Subresource == subresource && strings.HasPrefix(w.Code, "2") {
			n += w.Count
		}
	}
	return n
}

// Total is the number of write requests, leaving out the resources named in except.
func (ws APIWrites) Total(except ...string) int {
	n := 0
	for _, w := range ws {
		if !slices.Contains(except, w.Resource) {
			n += w.Count
		}
	}
	return n
}

// String is "VERB resource[/subresource]=N[(code:n,...)] ...", largest first; codes are listed when
// some answer was not 2xx.
func (ws APIWrites) String() string {
	type agg struct {
		key   string
		n     int
		codes map[string]int
	}
	byKey := map[string]*agg{}
	for _, w := range ws {
		a := byKey[w.Key()]
		if a == nil {
			a = &agg{key: w.Key(), codes: map[string]int{}}
			byKey[w.Key()] = a
		}
		a.n += w.Count
		a.codes[w.Code] += w.Count
	}
	all := make([]*agg, 0, len(byKey))
	for _, a := range byKey {
		all = append(all, a)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].key < all[j].key
	})
	var parts []string
	for _, a := range all {
		s := fmt.Sprintf("%q=%d", a.key, a.n)
		failed := false
		for code := range a.codes {
			failed = failed || !strings.HasPrefix(code, "2")
		}
		if failed {
			codes := make([]string, 0, len(a.codes))
			for code, n := range a.codes {
				codes = append(codes, fmt.Sprintf("%s:%d", code, n))
			}
			sort.Strings(codes)
			s += "(" + strings.Join(codes, ",") + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// without returns ws less n successful requests of verb on resource/subresource (the harness's own).
func (ws APIWrites) without(verb, resource, subresource string, n int) APIWrites {
	out := make(APIWrites, 0, len(ws))
	for _, w := range ws {
		if n > 0 && w.Verb == verb && w.Resource == resource && w.Subresource == subresource && strings.HasPrefix(w.Code, "2") {
			d := min(n, w.Count)
			w.Count -= d
			n -= d
		}
		if w.Count > 0 {
			out = append(out, w)
		}
	}
	return out
}

// requestCounts is a scrape of apiserver_request_total, the write verbs only.
type requestCounts map[APIWrite]int // the key's Count is 0

// delta returns after - before, as APIWrites.
func (after requestCounts) delta(before requestCounts) APIWrites {
	var out APIWrites
	for k, n := range after {
		if d := n - before[k]; d > 0 {
			k.Count = d
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key()+out[i].Code < out[j].Key()+out[j].Code })
	return out
}

// apiMetrics scrapes the kube-apiserver's /metrics.
type apiMetrics struct {
	client *http.Client
	url    string
}

func newAPIMetrics(cfg *rest.Config) (*apiMetrics, error) {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("an HTTP client for the API server's metrics: %w", err)
	}
	return &apiMetrics{client: c, url: strings.TrimSuffix(cfg.Host, "/") + "/metrics"}, nil
}

// scrape reads the write counters of apiserver_request_total.
func (m *apiMetrics) scrape(ctx context.Context) (requestCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("reading the API server's metrics: %s: %s", resp.Status, b)
	}
	counts, err := parseRequestTotals(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing the API server's metrics: %w", err)
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("the API server's metrics (%s) have no apiserver_request_total write series", m.url)
	}
	return counts, nil
}

// parseRequestTotals reads the apiserver_request_total samples of write verbs from the Prometheus text
// format.
func parseRequestTotals(r io.Reader) (requestCounts, error) {
	samples, err := parseSamples(r, "apiserver_request_total")
	if err != nil {
		return nil, err
	}
	counts := requestCounts{}
	for _, s := range samples {
		if !writeVerbs[s.labels["verb"]] {
			continue
		}
		k := APIWrite{Verb: s.labels["verb"], Group: s.labels["group"], Resource: s.labels["resource"],
			Subresource: s.labels["subresource"], Code: s.labels["code"]}
		counts[k] += int(s.value)
	}
	return counts, nil
}

// sample is one sample of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseSamples reads the samples of the metrics named in names (all if none) from the Prometheus text
// format.
func parseSamples(r io.Reader, names ...string) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		name := line[:end]
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		rest := line[end:]
		labels := map[string]string{}
		if rest[0] == '{' {
			var err error
			if labels, rest, err = parseLabels(rest[1:]); err != nil {
				return nil, fmt.Errorf("%w in %q", err, line)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", line, err)
		}
		out = append(out, sample{name: name, labels: labels, value: v})
	}
	return out, sc.Err()
}

// parseLabels parses `name="value",...}` (what follows a sample's opening brace) and returns the labels
// and what follows the closing brace.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.Index(s, `="`)
		if eq < 0 {
			return nil, "", errors.New("a label without a value")
		}
		name := s[:eq]
		s = s[eq+2:]
		var b strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				if s[i] == 'n' {
					b.WriteByte('\n')
				} else {
					b.WriteByte(s[i])
				}
				continue
			}
			b.WriteByte(s[i])
		}
		if i == len(s) {
			return nil, "", errors.New("an unterminated label value")
		}
		labels[name] = b.String()
		s = s[i+1:]
	}
}
