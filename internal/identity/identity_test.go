package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

const (
	subject = "https://github.com/yourorg/app/.github/workflows/release.yaml@refs/heads/main"
	sha     = "0123456789abcdef0123456789abcdef01234567"
)

func raw(oid asn1.ObjectIdentifier, v string) pkix.Extension {
	return pkix.Extension{Id: oid, Value: []byte(v)}
}

func der(t *testing.T, oid asn1.ObjectIdentifier, v string) pkix.Extension {
	b, err := asn1.MarshalWithParams(v, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oid, Value: b}
}

// cert is a certificate with the SAN subject and exts, parsed back as a verifier would.
func cert(t *testing.T, exts ...pkix.Extension) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(subject)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Minute),
		URIs: []*url.URL{u}, ExtraExtensions: exts}
	b, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// current are the extensions of a GitHub Actions certificate of today's Fulcio, without the deprecated ones.
func current(t *testing.T) []pkix.Extension {
	return []pkix.Extension{
		der(t, certificate.OIDIssuerV2, GitHubIssuer),
		der(t, certificate.OIDBuildSignerURI, "https://github.com/yourorg/workflows/.github/workflows/build.yaml@refs/tags/v1"),
		der(t, certificate.OIDSourceRepositoryURI, "https://github.com/yourorg/app"),
		der(t, certificate.OIDSourceRepositoryDigest, sha),
		der(t, certificate.OIDSourceRepositoryRef, "refs/heads/main"),
		der(t, certificate.OIDSourceRepositoryIdentifier, "123456"),
		der(t, certificate.OIDSourceRepositoryOwnerIdentifier, "42"),
		der(t, certificate.OIDBuildTrigger, "push"),
	}
}

// deprecatedExts are the deprecated GitHub extensions that agree with current.
func deprecatedExts() []pkix.Extension {
	return []pkix.Extension{
		raw(certificate.OIDIssuer, GitHubIssuer),
		raw(certificate.OIDGitHubWorkflowTrigger, "push"),
		raw(certificate.OIDGitHubWorkflowSHA, sha),
		raw(certificate.OIDGitHubWorkflowName, "release"),
		raw(certificate.OIDGitHubWorkflowRepository, "yourorg/app"),
		raw(certificate.OIDGitHubWorkflowRef, "refs/heads/main"),
	}
}

// replace returns exts with the extension of oid replaced by e.
func replace(exts []pkix.Extension, e pkix.Extension) []pkix.Extension {
	out := make([]pkix.Extension, 0, len(exts))
	for _, x := range exts {
		if x.Id.Equal(e.Id) {
			x = e
		}
		out = append(out, x)
	}
	return out
}

func TestReadCurrentAndDeprecatedClaims(t *testing.T) {
	g := NewWithT(t)
	c, err := Read(cert(t, append(current(t), deprecatedExts()...)...))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Subject).To(Equal(subject))
	g.Expect(c.Issuer).To(Equal(GitHubIssuer))
	g.Expect(c.SourceRepositoryIdentifier).To(Equal("123456"))
	g.Expect(c.GithubWorkflowName).To(Equal("release"))
	g.Expect(c.API(func(v string) string { return v })).To(Equal(&sigwatchv1alpha1.CertificateClaims{
		BuildSignerURI:      "https://github.com/yourorg/workflows/.github/workflows/build.yaml@refs/tags/v1",
		SourceRepositoryURI: "https://github.com/yourorg/app", SourceRepositoryDigest: sha, SourceRepositoryRef: "refs/heads/main",
		SourceRepositoryIdentifier: "123456", SourceRepositoryOwnerIdentifier: "42", BuildTrigger: "push",
	}))
}

// TestReadOldCertificate: a certificate from before Fulcio's current extensions has only the deprecated
// GitHub ones, which stand in for their current counterparts.
func TestReadOldCertificate(t *testing.T) {
	g := NewWithT(t)
	c, err := Read(cert(t, deprecatedExts()...))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Issuer).To(Equal(GitHubIssuer))
	g.Expect(c.SourceRepositoryURI).To(Equal("https://github.com/yourorg/app"))
	g.Expect(c.SourceRepositoryRef).To(Equal("refs/heads/main"))
	g.Expect(c.SourceRepositoryDigest).To(Equal(sha))
	g.Expect(c.BuildTrigger).To(Equal("push"))
	g.Expect(c.SourceRepositoryIdentifier).To(BeEmpty(), "no deprecated claim tells the repository's ID")

	t.Run("another issuer's repository URI is not guessed", func(t *testing.T) {
		g := NewWithT(t)
		c, err := Read(cert(t, replace(deprecatedExts(), raw(certificate.OIDIssuer, "https://ghes.example.com/_services/token"))...))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.SourceRepositoryURI).To(BeEmpty())
		g.Expect(c.SourceRepositoryRef).To(Equal("refs/heads/main"))
	})
}

func TestReadRefusesClaimsThatDisagree(t *testing.T) {
	cases := []struct {
		name       string
		ext        pkix.Extension
		claim, old string
	}{
		{"ref", raw(certificate.OIDGitHubWorkflowRef, "refs/heads/dev"), "sourceRepositoryRef", "githubWorkflowRef"},
		{"sha", raw(certificate.OIDGitHubWorkflowSHA, strings.Repeat("f", 40)), "sourceRepositoryDigest", "githubWorkflowSHA"},
		{"trigger", raw(certificate.OIDGitHubWorkflowTrigger, "workflow_dispatch"), "buildTrigger", "githubWorkflowTrigger"},
		{"repository", raw(certificate.OIDGitHubWorkflowRepository, "evil/app"), "sourceRepositoryURI", "githubWorkflowRepository"},
		{"issuer", raw(certificate.OIDIssuer, "https://evil.example.com"), "issuer", "issuer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Read(cert(t, append(current(t), replace(deprecatedExts(), tc.ext)...)...))
			var conflict *ConflictError
			g.Expect(errors.As(err, &conflict)).To(BeTrue(), "%v", err)
			g.Expect(conflict.Claim).To(Equal(tc.claim))
			g.Expect(conflict.DeprecatedClaim).To(Equal(tc.old))
			g.Expect(err.Error()).To(ContainSubstring(tc.ext.Id.String()))

			// A certificate that contradicts itself matches no identity, even one that pins nothing.
			m, cerr := Compile(sigwatchv1alpha1.Identity{IssuerRegExp: ".*", SubjectRegExp: ".*"})
			g.Expect(cerr).NotTo(HaveOccurred())
			_, err = Matchers{m}.MatchCertificate(cert(t, append(current(t), replace(deprecatedExts(), tc.ext)...)...))
			g.Expect(errors.As(err, &conflict)).To(BeTrue(), "%v", err)
		})
	}

	t.Run("another issuer's repository URI must end in the repository", func(t *testing.T) {
		g := NewWithT(t)
		exts := replace(append(current(t), deprecatedExts()...), raw(certificate.OIDIssuer, "https://ghes.example.com"))
		exts = replace(exts, der(t, certificate.OIDIssuerV2, "https://ghes.example.com"))
		_, err := Read(cert(t, exts...))
		g.Expect(err).NotTo(HaveOccurred(), "https://github.com/yourorg/app ends in yourorg/app")
		_, err = Read(cert(t, replace(exts, raw(certificate.OIDGitHubWorkflowRepository, "other/app"))...))
		g.Expect(err).To(BeAssignableToTypeOf(&ConflictError{}))
	})
}

func TestReadRefusesMalformedExtensions(t *testing.T) {
	for name, ext := range map[string]pkix.Extension{
		"issuer v2 not DER":          raw(certificate.OIDIssuerV2, GitHubIssuer),
		"a current claim not DER":    raw(certificate.OIDSourceRepositoryRef, "refs/heads/main"),
		"trailing bytes after a DER": {Id: certificate.OIDSourceRepositoryIdentifier, Value: append(der(t, certificate.OIDSourceRepositoryIdentifier, "1").Value, 0)},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Read(cert(t, replace(current(t), ext)...))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err).NotTo(BeAssignableToTypeOf(&ConflictError{}))
		})
	}
}

func compile(t *testing.T, id sigwatchv1alpha1.Identity) *Matcher {
	t.Helper()
	if id.Issuer == "" && id.IssuerRegExp == "" {
		id.Issuer = GitHubIssuer
	}
	if id.Subject == "" && id.SubjectRegExp == "" {
		id.Subject = subject
	}
	m, err := Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMatchClaims(t *testing.T) {
	good := func(t *testing.T) Claims {
		c, err := Read(cert(t, append(current(t), deprecatedExts()...)...))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := func(t *testing.T) Claims {
		c, err := Read(cert(t, deprecatedExts()...))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name    string
		id      sigwatchv1alpha1.Identity
		claims  func(*testing.T) Claims
		wantErr string // "" : matches
	}{
		{"issuer and subject only", sigwatchv1alpha1.Identity{}, good, ""},
		{"exact claims", sigwatchv1alpha1.Identity{Claims: &sigwatchv1alpha1.CertificateClaims{
			SourceRepositoryURI: "https://github.com/yourorg/app", SourceRepositoryIdentifier: "123456", SourceRepositoryOwnerIdentifier: "42"}}, good, ""},
		{"repository re-created under its name: another ID", sigwatchv1alpha1.Identity{Claims: &sigwatchv1alpha1.CertificateClaims{
			SourceRepositoryURI: "https://github.com/yourorg/app", SourceRepositoryIdentifier: "999"}}, good,
			`sourceRepositoryIdentifier must be "999", the certificate's is "123456"`},
		{"organisation re-created under its name", sigwatchv1alpha1.Identity{Claims: &sigwatchv1alpha1.CertificateClaims{
			SourceRepositoryOwnerIdentifier: "43"}}, good, `sourceRepositoryOwnerIdentifier must be "43"`},
		{"a claim the certificate lacks", sigwatchv1alpha1.Identity{Claims: &sigwatchv1alpha1.CertificateClaims{
			RunnerEnvironment: "github-hosted"}}, good, "runnerEnvironment must be \"github-hosted\", the certificate's is absent"},
		{"regular expression", sigwatchv1alpha1.Identity{ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{
			BuildSignerURI: `https://github\.com/yourorg/workflows/\.github/workflows/build\.yaml@refs/tags/v.*`}}, good, ""},
		{"regular expressions are anchored at the start", sigwatchv1alpha1.Identity{ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{
			SourceRepositoryRef: `heads/main`}}, good, "sourceRepositoryRef must match \"heads/main\""},
		{"regular expressions are anchored at the end", sigwatchv1alpha1.Identity{ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{
			SourceRepositoryURI: `https://github\.com/yourorg/ap`}}, good, "sourceRepositoryURI must match"},
		{"an absent claim matches no expression, even .*", sigwatchv1alpha1.Identity{ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{
			RunnerEnvironment: `.*`}}, good, "runnerEnvironment must match \".*\", the certificate's is absent"},
		{"exact and regular expression both hold", sigwatchv1alpha1.Identity{
			Claims:       &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/heads/main"},
			ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/tags/.*"}}, good, "sourceRepositoryRef must match"},
		{"deprecated githubWorkflow claims", sigwatchv1alpha1.Identity{GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{
			Repository: "yourorg/app", Ref: "refs/heads/main", Name: "release", SHA: sha, Trigger: "push"}}, good, ""},
		{"deprecated githubWorkflow claim mismatch", sigwatchv1alpha1.Identity{GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{
			Name: "deploy"}}, good, `githubWorkflow.name must be "deploy"`},
		{"an old certificate matches current claims through the deprecated ones", sigwatchv1alpha1.Identity{Claims: &sigwatchv1alpha1.CertificateClaims{
			SourceRepositoryURI: "https://github.com/yourorg/app", SourceRepositoryRef: "refs/heads/main", BuildTrigger: "push", SourceRepositoryDigest: sha}}, old, ""},
		{"an old certificate has no repository ID", sigwatchv1alpha1.Identity{Claims: &sigwatchv1alpha1.CertificateClaims{
			SourceRepositoryIdentifier: "123456"}}, old, "sourceRepositoryIdentifier must be \"123456\", the certificate's is absent"},
		{"issuer", sigwatchv1alpha1.Identity{Issuer: "https://gitlab.com"}, good, `issuer must be "https://gitlab.com"`},
		{"subject", sigwatchv1alpha1.Identity{SubjectRegExp: `https://github\.com/yourorg/app/.+@refs/tags/.+`}, good, "subject must match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			i, err := Matchers{compile(t, tc.id)}.Match(tc.claims(t))
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(i).To(Equal(0))
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			var mm *MismatchError
			g.Expect(errors.As(err, &mm)).To(BeTrue())
		})
	}
}

func TestMatchersSayWhyEachIdentityFailed(t *testing.T) {
	g := NewWithT(t)
	c, err := Read(cert(t, current(t)...))
	g.Expect(err).NotTo(HaveOccurred())
	ms := Matchers{
		compile(t, sigwatchv1alpha1.Identity{Issuer: "https://gitlab.com"}),
		compile(t, sigwatchv1alpha1.Identity{Claims: &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/tags/v1"}}),
	}
	_, err = ms.Match(c)
	g.Expect(err).To(MatchError(And(ContainSubstring("none of the 2 identities matches"),
		ContainSubstring(`identities[0]: issuer must be "https://gitlab.com"`),
		ContainSubstring(`identities[1]: sourceRepositoryRef must be "refs/tags/v1"`))))
	ms = append(ms, compile(t, sigwatchv1alpha1.Identity{}))
	i, err := ms.Match(c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(i).To(Equal(2))
	_, err = Matchers{}.Match(c)
	g.Expect(err).To(HaveOccurred())
}

func TestCompileNamesTheField(t *testing.T) {
	cases := []struct {
		name      string
		id        sigwatchv1alpha1.Identity
		wantField string
	}{
		{"both issuers", sigwatchv1alpha1.Identity{Issuer: "a", IssuerRegExp: "b", Subject: "s"}, ""},
		{"no subject", sigwatchv1alpha1.Identity{Issuer: "a"}, ""},
		{"issuer expression", sigwatchv1alpha1.Identity{IssuerRegExp: "(", Subject: "s"}, "issuerRegExp"},
		{"subject expression", sigwatchv1alpha1.Identity{Issuer: "a", SubjectRegExp: "[z-a]"}, "subjectRegExp"},
		{"claim expression", sigwatchv1alpha1.Identity{Issuer: "a", Subject: "s",
			ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/(heads"}}, "claimsRegExp.sourceRepositoryRef"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Compile(tc.id)
			var fe *FieldError
			g.Expect(errors.As(err, &fe)).To(BeTrue(), "%v", err)
			g.Expect(fe.Field).To(Equal(tc.wantField))
		})
	}
}

// TestEveryClaimIsMapped: each field of the API's CertificateClaims is one entry of All, under its JSON
// name, which is also sigstore-go's name of the extension it is read from.
func TestEveryClaimIsMapped(t *testing.T) {
	g := NewWithT(t)
	api := reflect.TypeFor[sigwatchv1alpha1.CertificateClaims]()
	ext := reflect.TypeFor[certificate.Extensions]()
	g.Expect(All).To(HaveLen(api.NumField()))
	extByJSON := map[string]string{}
	for f := range ext.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		extByJSON[name] = f.Name
	}
	for i, c := range All {
		f := api.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		g.Expect(name).To(Equal(c.Name), "field %d of CertificateClaims", i)
		g.Expect(extByJSON).To(HaveKey(c.Name), "sigstore-go names the claim %s", c.Name)

		// The getters point at the field of that name on both sides.
		var a sigwatchv1alpha1.CertificateClaims
		var e certificate.Extensions
		*c.api(&a) = "v"
		*c.ext(&e) = "v"
		g.Expect(reflect.ValueOf(a).Field(i).String()).To(Equal("v"), c.Name)
		g.Expect(reflect.ValueOf(e).FieldByName(extByJSON[c.Name]).String()).To(Equal("v"), c.Name)
		g.Expect(Claims{Extensions: e}.API(strings.ToUpper)).To(Equal(Map(&a, strings.ToUpper)))
	}
	g.Expect(Claims{}.API(strings.ToUpper)).To(BeNil())
	g.Expect(Map(nil, strings.ToUpper)).To(BeNil())
}
