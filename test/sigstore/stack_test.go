package sigstore

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/signature"
)

// newStack is shared by the tests of the package: key generation is the slow part.
func newStack(t testing.TB) *Stack {
	t.Helper()
	s, err := NewStack()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func trustedRoot(t testing.TB, s *Stack) *root.TrustedRoot {
	t.Helper()
	tr, err := s.TrustedRoot()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestTrustedRootJSON(t *testing.T) {
	g := NewWithT(t)
	s := newStack(t)
	data, err := s.TrustedRootJSON()
	g.Expect(err).NotTo(HaveOccurred())

	var doc struct {
		MediaType string            `json:"mediaType"`
		Tlogs     []json.RawMessage `json:"tlogs"`
		Ctlogs    []json.RawMessage `json:"ctlogs"`
	}
	g.Expect(json.Unmarshal(data, &doc)).To(Succeed())
	g.Expect(doc.MediaType).To(Equal("application/vnd.dev.sigstore.trustedroot+json;version=0.1"))
	g.Expect(doc.Tlogs).To(HaveLen(1))
	g.Expect(doc.Ctlogs).To(BeEmpty())

	tr, err := root.NewTrustedRootFromJSON(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tr.CTLogs()).To(BeEmpty())
	g.Expect(tr.RekorLogs()).To(HaveLen(1))
	log := tr.RekorLogs()[s.LogID()]
	g.Expect(log).NotTo(BeNil(), "the log is keyed by its ID, hex(sha256(PKIX DER))")
	g.Expect(log.BaseURL).To(Equal(RekorURL))
	g.Expect(log.ValidityPeriodStart).To(Equal(ValidFrom))
	g.Expect(log.PublicKey).To(Equal(s.LogPublicKey()))
	der, err := x509.MarshalPKIXPublicKey(s.LogPublicKey())
	g.Expect(err).NotTo(HaveOccurred())
	sum := sha256.Sum256(der)
	g.Expect(log.ID).To(Equal(sum[:]))

	g.Expect(tr.FulcioCertificateAuthorities()).To(HaveLen(1))
	ca := tr.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority)
	g.Expect(ca.Root.Equal(s.Root)).To(BeTrue())
	g.Expect(ca.Intermediates).To(HaveLen(1))
	g.Expect(ca.Intermediates[0].Equal(s.Intermediate)).To(BeTrue())
	g.Expect(ca.ValidityPeriodStart).To(Equal(ValidFrom))

	g.Expect(tr.TimestampingAuthorities()).To(HaveLen(1))
	tsa := tr.TimestampingAuthorities()[0].(*root.SigstoreTimestampingAuthority)
	g.Expect(tsa.Root.Equal(s.TSARoot)).To(BeTrue())
	g.Expect(tsa.Leaf.Equal(s.TSALeaf)).To(BeTrue())
}

func TestCertificatesCover2020To2040(t *testing.T) {
	s := newStack(t)
	for name, c := range map[string]*x509.Certificate{"root": s.Root, "intermediate": s.Intermediate, "TSA root": s.TSARoot, "TSA leaf": s.TSALeaf} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(c.NotBefore).To(Equal(ValidFrom))
			g.Expect(c.NotAfter).To(Equal(ValidUntil))
		})
	}
	g := NewWithT(t)
	g.Expect(s.Intermediate.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}))
	g.Expect(s.TSALeaf.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}))
	g.Expect(s.TSALeaf.IsCA).To(BeFalse())
	critical := false
	for _, e := range s.TSALeaf.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) {
			critical = e.Critical
		}
	}
	g.Expect(critical).To(BeTrue(), "RFC 3161 requires the TSA's EKU to be critical")
}

func TestIssueCertificateGitHubActions(t *testing.T) {
	g := NewWithT(t)
	s := newStack(t)
	id := GitHubActions("acme/app", "release.yml", "refs/tags/v1.2.3")
	g.Expect(id.Subject).To(Equal("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3"))
	g.Expect(id.Issuer).To(Equal("https://token.actions.githubusercontent.com"))

	notBefore := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	cert, key, err := s.IssueCertificate(id, notBefore, notBefore.Add(10*time.Minute))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.PublicKey).To(Equal(key.Public()))
	g.Expect(cert.NotBefore).To(Equal(notBefore))
	g.Expect(cert.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}))
	g.Expect(cert.EmailAddresses).To(BeEmpty())
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:         pool(s.Root),
		Intermediates: pool(s.Intermediate),
		CurrentTime:   notBefore.Add(time.Minute),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	g.Expect(err).NotTo(HaveOccurred())

	summary, err := certificate.SummarizeCertificate(cert)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(summary.SubjectAlternativeName).To(Equal(id.Subject))
	g.Expect(summary.Extensions).To(Equal(id.Extensions()))
	g.Expect(summary.Extensions).To(Equal(certificate.Extensions{
		Issuer:                              GitHubIssuer,
		GithubWorkflowTrigger:               "push",
		GithubWorkflowSHA:                   id.SHA,
		GithubWorkflowName:                  "release",
		GithubWorkflowRepository:            "acme/app",
		GithubWorkflowRef:                   "refs/tags/v1.2.3",
		BuildSignerURI:                      "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3",
		BuildSignerDigest:                   id.SHA,
		RunnerEnvironment:                   "github-hosted",
		SourceRepositoryURI:                 "https://github.com/acme/app",
		SourceRepositoryDigest:              id.SHA,
		SourceRepositoryRef:                 "refs/tags/v1.2.3",
		SourceRepositoryIdentifier:          id.RepositoryID,
		SourceRepositoryOwnerURI:            "https://github.com/acme",
		SourceRepositoryOwnerIdentifier:     id.RepositoryOwnerID,
		BuildConfigURI:                      "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3",
		BuildConfigDigest:                   id.SHA,
		BuildTrigger:                        "push",
		RunInvocationURI:                    "https://github.com/acme/app/actions/runs/1/attempts/1",
		SourceRepositoryVisibilityAtSigning: "public",
	}))
	g.Expect(id.SHA).To(MatchRegexp("^[0-9a-f]{40}$"))

	// Both issuer extensions, the deprecated one raw, the new one a DER UTF8String, as Fulcio writes them.
	raw := extensionValues(cert)
	g.Expect(raw).To(HaveKeyWithValue("1.3.6.1.4.1.57264.1.1", []byte(GitHubIssuer)))
	g.Expect(raw).To(HaveKeyWithValue("1.3.6.1.4.1.57264.1.5", []byte("acme/app")))
	var issuer string
	rest, err := asn1.UnmarshalWithParams(raw["1.3.6.1.4.1.57264.1.8"], &issuer, "utf8")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rest).To(BeEmpty())
	g.Expect(issuer).To(Equal(GitHubIssuer))
	for _, oid := range []string{"1.2", "1.3", "1.4", "1.6", "1.9", "1.10", "1.11", "1.12", "1.13", "1.14", "1.15", "1.16", "1.17", "1.18", "1.19", "1.20", "1.21", "1.22"} {
		g.Expect(raw).To(HaveKey("1.3.6.1.4.1.57264."+oid), oid)
	}
}

func TestIssueCertificateEmail(t *testing.T) {
	g := NewWithT(t)
	s := newStack(t)
	id := Identity{Subject: "alice@example.com", Issuer: "https://accounts.example.com"}
	cert, _, err := s.IssueCertificate(id, ValidFrom, ValidUntil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.EmailAddresses).To(Equal([]string{"alice@example.com"}))
	g.Expect(cert.URIs).To(BeEmpty())
	summary, err := certificate.SummarizeCertificate(cert)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(summary.SubjectAlternativeName).To(Equal("alice@example.com"))
	g.Expect(summary.Extensions).To(Equal(certificate.Extensions{Issuer: "https://accounts.example.com"}))

	_, _, err = s.IssueCertificate(Identity{Subject: "alice@example.com"}, ValidFrom, ValidUntil)
	g.Expect(err).To(MatchError(ContainSubstring("needs a subject and an issuer")))
}

// TestLogEntry checks each kind of entry the way sigstore-go does: the body parses and validates, the SET
// verifies against the trusted root, and the inclusion proof and its checkpoint verify with the log key.
func TestLogEntry(t *testing.T) {
	s := newStack(t)
	tr := trustedRoot(t, s)
	signer, err := NewKeySigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := signer.material(time.Now())
	payload := []byte(`{"hello":"world"}`)
	sig, _ := m.sign(payload)
	job := &job{m: m}
	res := &Result{Payload: payload}
	env, err := job.envelope(res)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := json.Marshal(env)

	at := time.Date(2021, 6, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		req  EntryRequest
	}{
		{"hashedrekord", EntryRequest{Kind: KindHashedRekord, Artifact: payload, Signature: sig}},
		{"dsse", EntryRequest{Kind: KindDSSE, Artifact: envJSON}},
		{"intoto", EntryRequest{Kind: KindIntoto, Artifact: envJSON}},
		{"index 1", EntryRequest{Kind: KindDSSE, Artifact: envJSON, LogIndex: 1}},
		{"index 2^40-1", EntryRequest{Kind: KindDSSE, Artifact: envJSON, LogIndex: 1<<40 - 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tc.req.Verifier, tc.req.IntegratedTime = signer.PublicKeyPEM(), at
			e, err := s.LogEntry(tc.req)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(e.IntegratedTime).To(Equal(at.Unix()))
			g.Expect(e.TreeSize).To(Equal(e.LogIndex + 1))

			entry, err := tlog.NewTlogEntry(e.Proto())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tlog.ValidateEntry(entry)).To(Succeed())
			g.Expect(entry.Signature()).To(Or(Equal(res.Signature), Equal(sig)))
			g.Expect(tlog.VerifySET(entry, tr.RekorLogs())).To(Succeed())
			v, err := signature.LoadVerifier(s.LogPublicKey(), crypto.SHA256)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tlog.VerifyInclusion(entry, v)).To(Succeed())

			// A flipped bit in the SET is caught.
			e.SET[len(e.SET)-1] ^= 1
			entry, err = tlog.NewTlogEntry(e.Proto())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tlog.VerifySET(entry, tr.RekorLogs())).NotTo(Succeed())
		})
	}

	g := NewWithT(t)
	_, err = s.LogEntry(EntryRequest{Kind: "rekord", Artifact: payload})
	g.Expect(err).To(MatchError(ContainSubstring("unsupported")))
	// The log checks signatures, as Rekor does.
	_, err = s.LogEntry(EntryRequest{Kind: KindHashedRekord, Artifact: []byte("other"), Signature: sig, Verifier: signer.PublicKeyPEM()})
	g.Expect(err).To(HaveOccurred())
	// Indices increase when not chosen.
	e1, err := s.LogEntry(EntryRequest{Kind: KindHashedRekord, Artifact: payload, Signature: sig, Verifier: signer.PublicKeyPEM()})
	g.Expect(err).NotTo(HaveOccurred())
	e2, err := s.LogEntry(EntryRequest{Kind: KindHashedRekord, Artifact: payload, Signature: sig, Verifier: signer.PublicKeyPEM()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e2.LogIndex).To(BeNumerically(">", e1.LogIndex))
}

func TestTimestamp(t *testing.T) {
	g := NewWithT(t)
	s := newStack(t)
	tr := trustedRoot(t, s)
	at := time.Date(2022, 2, 2, 2, 2, 2, 0, time.UTC)
	sig := []byte("a signature")
	ts, err := s.Timestamp(sig, at)
	g.Expect(err).NotTo(HaveOccurred())

	got, err := tr.TimestampingAuthorities()[0].Verify(ts, sig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.Time).To(BeTemporally("==", at))
	g.Expect(got.URI).To(Equal(TSAURL))

	_, err = tr.TimestampingAuthorities()[0].Verify(ts, []byte("another signature"))
	g.Expect(err).To(HaveOccurred())
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func extensionValues(c *x509.Certificate) map[string][]byte {
	out := map[string][]byte{}
	for _, e := range c.Extensions {
		out[e.Id.String()] = e.Value
	}
	return out
}
