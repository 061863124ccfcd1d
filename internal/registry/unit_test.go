package registry

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestInsecureMatcher(t *testing.T) {
	patterns := []string{"127.0.0.1:*", "registry.local:5000", "*.svc.cluster.local:5000", "plain", " ", "[::1]:*"}
	cases := []struct {
		host string
		want bool
	}{
		{host: "127.0.0.1:5000", want: true},
		{host: "127.0.0.1:1", want: true},
		{host: "127.0.0.1", want: false},
		{host: "127.0.0.10:5000", want: false},
		{host: "registry.local:5000", want: true},
		{host: "REGISTRY.local:5000", want: true},
		{host: "registry.local", want: false},
		{host: "registry.local:5001", want: false},
		{host: "registry.localx:5000", want: false},
		{host: "zot.svc.cluster.local:5000", want: true},
		{host: "zot.ns.svc.cluster.local:5000", want: false},
		{host: "svc.cluster.local:5000", want: false},
		{host: "plain", want: true},
		{host: "plain:80", want: false},
		{host: "[::1]:5000", want: true},
		{host: "ghcr.io", want: false},
		{host: "", want: false},
	}
	m := newHostMatcher(patterns)
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(m.match(tc.host)).To(Equal(tc.want))
		})
	}
}

func TestInsecureMatcherEmpty(t *testing.T) {
	g := NewWithT(t)
	g.Expect(newHostMatcher(nil).match("127.0.0.1:5000")).To(BeFalse())
	g.Expect(newHostMatcher([]string{"*"}).match("a.b")).To(BeFalse(), "'*' does not cross a dot")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name   string
		header string
		want   time.Duration
		wantOK bool
	}{
		{name: "seconds", header: "1", want: time.Second, wantOK: true},
		{name: "zero", header: "0", want: 0, wantOK: true},
		{name: "spaces", header: " 7 ", want: 7 * time.Second, wantOK: true},
		{name: "HTTP date", header: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second, wantOK: true},
		{name: "HTTP date in the past", header: now.Add(-time.Minute).Format(http.TimeFormat), want: 0, wantOK: true},
		{name: "empty", header: ""},
		{name: "negative", header: "-3"},
		{name: "garbage", header: "soon"},
		{name: "absurdly far", header: "99999999999"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, ok := parseRetryAfter(tc.header, now)
			g.Expect(ok).To(Equal(tc.wantOK))
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// TestHostPatternsRefuseNonASCII: a host that is not ASCII matches no pattern, even one it equals after
// Unicode case folding ("İ" folds to "i"): the HTTP client dials its punycode form, another name.
func TestHostPatternsRefuseNonASCII(t *testing.T) {
	p := NewHostPatterns("registry.corp.example", "*.corp.example")
	for host, want := range map[string]bool{
		"registry.corp.example":      true,
		"REGISTRY.corp.example":      true,
		"reg\u0130stry.corp.example": false,
		"registry.corp.exampl\u0130": false,
		"x.corp.example:5000":        false,
	} {
		if got := p.Match(host); got != want {
			t.Errorf("%q: match %t, want %t", host, got, want)
		}
	}
}
