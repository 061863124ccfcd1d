// Package identity reads who a Fulcio certificate was issued to and matches it against the identities of
// a policy: the OIDC issuer, the subject (SAN), and the claims Fulcio copies from the CI's token into
// certificate extensions (OIDs 1.3.6.1.4.1.57264.1.x), each exactly or as an anchored regular expression.
//
// Certificates from before Fulcio's current extensions carry only the deprecated GitHub ones (1.2 to 1.6)
// and the deprecated issuer (1.1): Read lets those stand in for their current counterparts, and refuses a
// certificate in which a claim present in both forms disagrees, since nothing tells which one is true.
package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// GitHubIssuer is the OIDC issuer of GitHub Actions' tokens.
const GitHubIssuer = "https://token.actions.githubusercontent.com"

// Claims are what a certificate says about its signer.
type Claims struct {
	// Subject is the subject alternative name (a URI, an email address, or Fulcio's other name).
	Subject string
	// Extensions are the issuer and the extension claims, current ones filled in from deprecated ones
	// where only those are present.
	certificate.Extensions
}

// ConflictError is a certificate whose deprecated and current form of one claim disagree.
type ConflictError struct {
	Claim, Value                     string
	DeprecatedClaim, DeprecatedValue string
	OID, DeprecatedOID               string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the certificate's claims disagree: %s (OID %s) is %q but the deprecated %s (OID %s) is %q",
		e.Claim, e.OID, e.Value, e.DeprecatedClaim, e.DeprecatedOID, e.DeprecatedValue)
}

// Read returns the claims of a Fulcio certificate. The certificate is parsed only as far as its SAN and
// the Fulcio extensions; an error is a malformed extension or a *ConflictError.
func Read(cert *x509.Certificate) (Claims, error) {
	if cert == nil {
		return Claims{}, errors.New("no certificate")
	}
	sum, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return Claims{}, fmt.Errorf("reading the certificate's claims: %w", err)
	}
	c := Claims{Subject: sum.SubjectAlternativeName, Extensions: sum.Extensions}
	if err := issuerAgrees(cert, &c); err != nil {
		return Claims{}, err
	}
	for _, d := range deprecated {
		old, cur := d.old(&c.Extensions), d.current(&c.Extensions)
		want := d.derive(&c, *old)
		switch {
		case *old == "" || want == "":
		case *cur == "":
			*cur = want
		case *cur != want:
			return Claims{}, &ConflictError{Claim: d.name, OID: d.oid, Value: *cur,
				DeprecatedClaim: d.oldName, DeprecatedOID: d.oldOID, DeprecatedValue: *old}
		}
	}
	return c, nil
}

// issuerAgrees checks the deprecated issuer (1.1, raw bytes) against the current one (1.8, a DER
// UTF8String): sigstore-go keeps whichever comes last.
func issuerAgrees(cert *x509.Certificate, c *Claims) error {
	var v1, v2 []byte
	var has1, has2 bool
	for _, e := range cert.Extensions {
		switch {
		case e.Id.Equal(certificate.OIDIssuer):
			v1, has1 = e.Value, true
		case e.Id.Equal(certificate.OIDIssuerV2):
			var s string
			if rest, err := asn1.Unmarshal(e.Value, &s); err != nil || len(rest) > 0 {
				return fmt.Errorf("reading the certificate's issuer (OID %s): not a DER string", certificate.OIDIssuerV2)
			}
			v2, has2 = []byte(s), true
		}
	}
	if has1 && has2 && !bytes.Equal(v1, v2) {
		return &ConflictError{Claim: "issuer", OID: certificate.OIDIssuerV2.String(), Value: string(v2),
			DeprecatedClaim: "issuer", DeprecatedOID: certificate.OIDIssuer.String(), DeprecatedValue: string(v1)}
	}
	return nil
}

// deprecated pairs each deprecated GitHub claim with the current claim it stands in for.
var deprecated = []struct {
	name, oid, oldName, oldOID string
	current, old               func(*certificate.Extensions) *string
	// derive is the current claim's value for the deprecated value v ("" when it cannot be told).
	derive func(c *Claims, v string) string
}{
	{"buildTrigger", "1.3.6.1.4.1.57264.1.20", "githubWorkflowTrigger", "1.3.6.1.4.1.57264.1.2",
		func(e *certificate.Extensions) *string { return &e.BuildTrigger },
		func(e *certificate.Extensions) *string { return &e.GithubWorkflowTrigger }, same},
	{"sourceRepositoryDigest", "1.3.6.1.4.1.57264.1.13", "githubWorkflowSHA", "1.3.6.1.4.1.57264.1.3",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryDigest },
		func(e *certificate.Extensions) *string { return &e.GithubWorkflowSHA }, same},
	{"sourceRepositoryRef", "1.3.6.1.4.1.57264.1.14", "githubWorkflowRef", "1.3.6.1.4.1.57264.1.6",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryRef },
		func(e *certificate.Extensions) *string { return &e.GithubWorkflowRef }, same},
	{"sourceRepositoryURI", "1.3.6.1.4.1.57264.1.12", "githubWorkflowRepository", "1.3.6.1.4.1.57264.1.5",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryURI },
		func(e *certificate.Extensions) *string { return &e.GithubWorkflowRepository }, repositoryURI},
}

func same(_ *Claims, v string) string { return v }

// repositoryURI is the repository URI of the deprecated "owner/name": github.com's when the issuer is
// GitHub's. Another issuer (GitHub Enterprise Server, a test) has its own host, which only the current
// claim tells; there the current claim must end in "/owner/name".
func repositoryURI(c *Claims, v string) string {
	if c.Issuer == GitHubIssuer {
		return "https://github.com/" + v
	}
	if cur := c.SourceRepositoryURI; cur != "" && !strings.HasSuffix(cur, "/"+v) {
		return "/" + v // disagrees, reported as such
	}
	return ""
}

// Matcher is one identity of a policy.
type Matcher struct {
	issuer, subject     string
	issuerRE, subjectRE *regexp.Regexp
	claims              []claimMatcher
}

type claimMatcher struct {
	claim *Claim
	exact string
	re    *regexp.Regexp
}

// FieldError is a matcher that cannot be compiled: Field is the JSON path below the identity.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Compile compiles an identity of a policy. Regular expressions are anchored.
func Compile(id sigwatchv1alpha1.Identity) (*Matcher, error) {
	if (id.Issuer == "") == (id.IssuerRegExp == "") {
		return nil, &FieldError{"", errors.New("exactly one of issuer or issuerRegExp must be set")}
	}
	if (id.Subject == "") == (id.SubjectRegExp == "") {
		return nil, &FieldError{"", errors.New("exactly one of subject or subjectRegExp must be set")}
	}
	m := &Matcher{issuer: id.Issuer, subject: id.Subject}
	var err error
	if m.issuerRE, err = anchor(id.IssuerRegExp); err != nil {
		return nil, &FieldError{"issuerRegExp", err}
	}
	if m.subjectRE, err = anchor(id.SubjectRegExp); err != nil {
		return nil, &FieldError{"subjectRegExp", err}
	}
	if gh := id.GitHubWorkflow; gh != nil {
		for _, c := range []struct {
			claim *Claim
			v     string
		}{{&githubTrigger, gh.Trigger}, {&githubSHA, gh.SHA}, {&githubName, gh.Name}, {&githubRepository, gh.Repository}, {&githubRef, gh.Ref}} {
			if c.v != "" {
				m.claims = append(m.claims, claimMatcher{claim: c.claim, exact: c.v})
			}
		}
	}
	for _, c := range All {
		if id.Claims != nil {
			if v := *c.api(id.Claims); v != "" {
				m.claims = append(m.claims, claimMatcher{claim: c, exact: v})
			}
		}
		if id.ClaimsRegExp != nil {
			if v := *c.api(id.ClaimsRegExp); v != "" {
				re, err := anchor(v)
				if err != nil {
					return nil, &FieldError{"claimsRegExp." + c.Name, err}
				}
				m.claims = append(m.claims, claimMatcher{claim: c, re: re})
			}
		}
	}
	return m, nil
}

func anchor(re string) (*regexp.Regexp, error) {
	if re == "" {
		return nil, nil
	}
	if _, err := regexp.Compile(re); err != nil {
		return nil, err
	}
	return regexp.Compile(`^(?:` + re + `)$`)
}

// MismatchError says which part of an identity a certificate does not match.
type MismatchError struct {
	// Claim is "issuer", "subject" or a claim's name.
	Claim, Want, Got string
	RegExp           bool
}

func (e *MismatchError) Error() string {
	got := fmt.Sprintf("%q", e.Got)
	if e.Got == "" {
		got = "absent"
	}
	if e.RegExp {
		return fmt.Sprintf("%s must match %q, the certificate's is %s", e.Claim, e.Want, got)
	}
	return fmt.Sprintf("%s must be %q, the certificate's is %s", e.Claim, e.Want, got)
}

// Match reports whether the claims satisfy the identity: nil, or the first *MismatchError.
func (m *Matcher) Match(c Claims) error {
	if err := matchOne("issuer", m.issuer, m.issuerRE, c.Issuer); err != nil {
		return err
	}
	if err := matchOne("subject", m.subject, m.subjectRE, c.Subject); err != nil {
		return err
	}
	for _, cm := range m.claims {
		if err := matchOne(cm.claim.Name, cm.exact, cm.re, *cm.claim.ext(&c.Extensions)); err != nil {
			return err
		}
	}
	return nil
}

func matchOne(name, exact string, re *regexp.Regexp, got string) error {
	switch {
	case exact != "" && got != exact:
		return &MismatchError{Claim: name, Want: exact, Got: got}
	case re != nil && (got == "" || !re.MatchString(got)):
		// An absent claim never matches, even an expression that matches "".
		return &MismatchError{Claim: name, Want: strings.TrimSuffix(strings.TrimPrefix(re.String(), "^(?:"), ")$"), Got: got, RegExp: true}
	}
	return nil
}

// Matchers are the identities of an authority: any one suffices.
type Matchers []*Matcher

// NoMatchError is a certificate that none of an authority's identities accepts; Errs are each identity's
// reason, in order (or the certificate's own problem, alone).
type NoMatchError struct {
	Errs []error
}

func (e *NoMatchError) Error() string {
	if len(e.Errs) == 1 {
		return e.Errs[0].Error()
	}
	const shown = 3
	parts := make([]string, 0, shown)
	for i, err := range e.Errs {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", len(e.Errs)-shown))
			break
		}
		parts = append(parts, fmt.Sprintf("identities[%d]: %v", i, err))
	}
	return fmt.Sprintf("none of the %d identities matches: %s", len(e.Errs), strings.Join(parts, "; "))
}

func (e *NoMatchError) Unwrap() []error { return e.Errs }

// MatchCertificate reads cert's claims and returns the index of the first identity they satisfy, or a
// *NoMatchError.
func (ms Matchers) MatchCertificate(cert *x509.Certificate) (int, error) {
	c, err := Read(cert)
	if err != nil {
		return -1, &NoMatchError{Errs: []error{err}}
	}
	return ms.Match(c)
}

// Match returns the index of the first identity c satisfies, or a *NoMatchError.
func (ms Matchers) Match(c Claims) (int, error) {
	if len(ms) == 0 {
		return -1, &NoMatchError{Errs: []error{errors.New("no identity to match")}}
	}
	errs := make([]error, 0, len(ms))
	for i, m := range ms {
		err := m.Match(c)
		if err == nil {
			return i, nil
		}
		errs = append(errs, err)
	}
	return -1, &NoMatchError{Errs: errs}
}

// UsesGitHubWorkflow reports whether the identity matches deprecated GitHub claims, which only a
// certificate holds (not the claims a status shows).
func UsesGitHubWorkflow(id sigwatchv1alpha1.Identity) bool { return id.GitHubWorkflow != nil }
