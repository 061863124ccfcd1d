package registry

import (
	"regexp"
	"strings"
)

// hostMatcher matches registry hosts ("host" or "host:port") against Options.Insecure patterns.
type hostMatcher []*regexp.Regexp

// newHostMatcher compiles patterns in which '*' matches any run of characters other than '.' and ':'
// (so one DNS label or the port) and everything else is literal; case is ignored. Empty patterns are
// skipped.
func newHostMatcher(patterns []string) hostMatcher {
	var m hostMatcher
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		parts := strings.Split(strings.ToLower(p), "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re, err := regexp.Compile("^" + strings.Join(parts, "[^.:]*") + "$")
		if err != nil { // cannot happen: every part is quoted
			continue
		}
		m = append(m, re)
	}
	return m
}

// match reports whether host matches one of the patterns. A host that is not ASCII never matches: the
// HTTP client dials its IDNA form, which is another name than the one matched (Unicode case folding
// turns "İ" into "i", punycode does not).
func (m hostMatcher) match(host string) bool {
	if !isASCII(host) {
		return false
	}
	host = strings.ToLower(host)
	for _, re := range m {
		if re.MatchString(host) {
			return true
		}
	}
	return false
}

// HostPatterns are host patterns as Options.Insecure takes them: '*' matches one DNS label or a port,
// everything else is literal, case is ignored.
type HostPatterns struct{ m hostMatcher }

// NewHostPatterns compiles patterns (empty ones are skipped).
func NewHostPatterns(patterns ...string) HostPatterns { return HostPatterns{newHostMatcher(patterns)} }

// Match reports whether host ("host" or "host:port") matches one of the patterns.
func (p HostPatterns) Match(host string) bool { return p.m.match(host) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
