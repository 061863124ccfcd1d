package verification

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/logmonitor"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

func onlinePolicy(modes ...sigwatchv1alpha1.OnlineLogCheck) *policy.Policy {
	p := &policy.Policy{Name: "p"}
	for i, m := range modes {
		p.Authorities = append(p.Authorities, &policy.Authority{Name: []string{"a", "b"}[i], Online: m})
	}
	return p
}

func checked(authority string, r sigwatchv1alpha1.LogInclusionResult) Signature {
	return Signature{Authority: authority, Subject: "https://github.com/yourorg/app/.github/workflows/release.yaml@refs/heads/main",
		Inclusion: &Inclusion{Result: r, Message: string(r) + " message"}}
}

// TestRequire: under online: Require a verified result stands only when an accepted signature counts;
// a log that could not be read is Unknown, never False.
func TestRequire(t *testing.T) {
	verified := PolicyResult{Policy: "p", Result: sigwatchv1alpha1.PolicyVerified, Reason: sigwatchv1alpha1.VerifiedReason, Message: "signed"}
	const (
		req = sigwatchv1alpha1.OnlineLogRequire
		mon = sigwatchv1alpha1.OnlineLogMonitor
	)
	for _, tc := range []struct {
		name       string
		p          *policy.Policy
		sigs       []Signature
		want       sigwatchv1alpha1.PolicyResultType
		wantReason string
	}{
		{"in log", onlinePolicy(req), []Signature{checked("a", sigwatchv1alpha1.LogInclusionInLog)}, sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason},
		{"not in log", onlinePolicy(req), []Signature{checked("a", sigwatchv1alpha1.LogInclusionNotInLog)}, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.EntryNotInLogReason},
		{"inconsistent", onlinePolicy(req), []Signature{checked("a", sigwatchv1alpha1.LogInclusionInconsistent)}, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.LogInconsistentReason},
		{"unavailable", onlinePolicy(req), []Signature{checked("a", sigwatchv1alpha1.LogInclusionUnavailable)}, sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.LogUnavailableReason},
		{"unavailable beats a proven absence", onlinePolicy(req), []Signature{checked("a", sigwatchv1alpha1.LogInclusionNotInLog), checked("a", sigwatchv1alpha1.LogInclusionUnavailable)},
			sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.LogUnavailableReason},
		{"one of two in log", onlinePolicy(req), []Signature{checked("a", sigwatchv1alpha1.LogInclusionInconsistent), checked("a", sigwatchv1alpha1.LogInclusionInLog)},
			sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason},
		{"no entry to check", onlinePolicy(req), []Signature{{Authority: "a", KeyID: "0123456789abcdef"}}, sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.EntryNotInLogReason},
		{"an entry that cannot be checked online", onlinePolicy(req), []Signature{{Authority: "a", entry: &logEntry{problem: "no inclusion proof"}}}, sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.LogUnavailableReason},
		{"another authority monitors only", onlinePolicy(req, mon), []Signature{checked("a", sigwatchv1alpha1.LogInclusionNotInLog), checked("b", sigwatchv1alpha1.LogInclusionNotInLog)},
			sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason},
		{"rejected signatures do not count", onlinePolicy(req), []Signature{{Authority: "", Reason: sigwatchv1alpha1.UntrustedSignerReason}, checked("a", sigwatchv1alpha1.LogInclusionNotInLog)},
			sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.EntryNotInLogReason},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got := require(tc.p, verified, tc.sigs)
			g.Expect(got.Result).To(Equal(tc.want), got.Message)
			g.Expect(got.Reason).To(Equal(tc.wantReason))
			if tc.want != sigwatchv1alpha1.PolicyVerified {
				g.Expect(got.Message).To(ContainSubstring("transparencyLog.online: Require"))
			}
		})
	}
}

// fakeLogs answers every entry with one status, and counts.
type fakeLogs struct {
	status logmonitor.Status
	asked  int
}

func (f *fakeLogs) Search(context.Context, logmonitor.Log, string) ([]logmonitor.LoggedSigner, bool, error) {
	return nil, false, nil
}

func (f *fakeLogs) Check(_ context.Context, es []logmonitor.Entry) []logmonitor.Result {
	out := make([]logmonitor.Result, len(es))
	for i, e := range es {
		f.asked++
		out[i] = logmonitor.Result{Status: f.status, Origin: e.Log.Origin, Index: e.Index, TreeSize: 42, Message: "checked"}
	}
	return out
}

// TestOnlineNeverChangesTheCachedVerdict: the check is made on a copy, only for verified results, only
// for accepted image signatures of authorities that do not say Off, and Monitor never changes the
// verdict.
func TestOnlineNeverChangesTheCachedVerdict(t *testing.T) {
	g := NewWithT(t)
	logs := &fakeLogs{status: logmonitor.NotInLog}
	e := New(Options{Logs: logs, Clock: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	entry := &logEntry{log: logmonitor.Log{Origin: "log.example", ID: "00"}, index: 7}
	cached := policyVerdict{
		result: PolicyResult{Policy: "p", Result: sigwatchv1alpha1.PolicyVerified, Reason: sigwatchv1alpha1.VerifiedReason},
		signatures: []Signature{
			{Authority: "a", entry: entry},
			{Authority: "b", entry: entry},                                    // Off
			{Authority: "a", entry: entry, PredicateType: "https://slsa.dev"}, // an attestation
			{Reason: sigwatchv1alpha1.UntrustedSignerReason, entry: entry},    // rejected
		},
	}
	p := onlinePolicy(sigwatchv1alpha1.OnlineLogMonitor, sigwatchv1alpha1.OnlineLogOff)
	got := e.online(context.Background(), p, cached)
	g.Expect(logs.asked).To(Equal(1))
	g.Expect(got.result.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "Monitor reports, the verdict stands")
	g.Expect(got.signatures[0].Inclusion).NotTo(BeNil())
	g.Expect(got.signatures[0].Inclusion.Result).To(Equal(sigwatchv1alpha1.LogInclusionNotInLog))
	g.Expect(got.signatures[0].Inclusion.TreeSize).To(BeZero(), "a tree size is only said of a proof")
	for _, s := range got.signatures[1:] {
		g.Expect(s.Inclusion).To(BeNil())
	}
	g.Expect(cached.signatures[0].Inclusion).To(BeNil(), "the cached verdict is not written to")

	failed := cached
	failed.result.Result = sigwatchv1alpha1.PolicyFailed
	g.Expect(e.online(context.Background(), p, failed).signatures[0].Inclusion).To(BeNil())
	g.Expect(logs.asked).To(Equal(1), "a policy that did not verify the image is not checked online")

	p = onlinePolicy(sigwatchv1alpha1.OnlineLogRequire, sigwatchv1alpha1.OnlineLogOff)
	got = e.online(context.Background(), p, policyVerdict{result: cached.result, signatures: cached.signatures[:1]})
	g.Expect(got.result.Result).To(Equal(sigwatchv1alpha1.PolicyFailed))
	g.Expect(got.result.Reason).To(Equal(sigwatchv1alpha1.EntryNotInLogReason))
}

// TestExpectedSigners: an entry the log holds for the digest is expected when an authority of a policy
// that covers the image trusts its signer: a keyless identity its certificate matches, or the key.
func TestExpectedSigners(t *testing.T) {
	g := NewWithT(t)
	st, err := sigstore.NewStack()
	g.Expect(err).NotTo(HaveOccurred())
	release := sigstore.Identity{Subject: "https://github.com/yourorg/app/.github/workflows/release.yaml@refs/heads/main", Issuer: "https://token.actions.githubusercontent.com"}
	mallory := sigstore.Identity{Subject: "https://github.com/mallory/app/.github/workflows/release.yaml@refs/heads/main", Issuer: "https://token.actions.githubusercontent.com"}
	cert := func(id sigstore.Identity) *x509.Certificate {
		c, _, err := st.IssueCertificate(id, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
		g.Expect(err).NotTo(HaveOccurred())
		return c
	}
	key, err := sigstore.NewKeySigner(nil)
	g.Expect(err).NotTo(HaveOccurred())
	other, err := sigstore.NewKeySigner(nil)
	g.Expect(err).NotTo(HaveOccurred())
	p, err := policy.Compile(&sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**"},
			Authorities: []sigwatchv1alpha1.Authority{
				{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{Identities: []sigwatchv1alpha1.Identity{{Issuer: release.Issuer, Subject: release.Subject}}}},
				{Name: "team", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: string(key.PublicKeyPEM())}},
			}}}, policy.Inputs{})
	g.Expect(err).NotTo(HaveOccurred())
	root, err := st.TrustedRootJSON()
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := trust.FromJSON(root, "test")
	g.Expect(err).NotTo(HaveOccurred())
	pols := []trustedPolicy{{p, tr}}
	now := time.Now()
	g.Expect(expected(pols, logmonitor.LoggedSigner{Certificate: cert(release), IntegratedTime: now})).To(BeTrue())
	g.Expect(expected(pols, logmonitor.LoggedSigner{Certificate: cert(mallory), IntegratedTime: now})).To(BeFalse())
	g.Expect(expected(pols, logmonitor.LoggedSigner{Certificate: cert(release), IntegratedTime: now.Add(time.Hour)})).To(BeFalse(),
		"logged when the certificate was no longer valid")
	// The trusted identity, claimed by a certificate of another CA (a decoy): not expected.
	decoyCA, err := sigstore.NewStack()
	g.Expect(err).NotTo(HaveOccurred())
	decoy, _, err := decoyCA.IssueCertificate(release, now.Add(-time.Minute), now.Add(time.Minute))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(expected(pols, logmonitor.LoggedSigner{Certificate: decoy, IntegratedTime: now})).To(BeFalse())
	g.Expect(expected(pols, logmonitor.LoggedSigner{PublicKey: key.PublicKey()})).To(BeTrue())
	g.Expect(expected(pols, logmonitor.LoggedSigner{PublicKey: other.PublicKey()})).To(BeFalse())
	g.Expect(expected(nil, logmonitor.LoggedSigner{Certificate: cert(release), IntegratedTime: now})).To(BeFalse(), "no policy, nobody expected")
}
