package verification

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/signatures"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// Review findings of the revocation change, each a test that failed before its fix.

// A key signature with a transparency log entry (and a TSA timestamp) has a trusted time: a windowed key
// revocation revokes it when it was logged in the window.
func TestKeySignatureWithALogEntryHasItsTrustedTime(t *testing.T) {
	k := newKeyless(t, true)
	key, err := sigstore.NewKeySigner(k.stack)
	if err != nil {
		t.Fatal(err)
	}
	d := k.push(t, "yourorg/app")
	at := windowStart.Add(time.Hour)
	if _, err := k.writer.SignBundle(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOn, IntegratedTime: at, Timestamp: true}); err != nil {
		t.Fatal(err)
	}
	p := keyPolicy(t, "team", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogRequired)
	entry := sigwatchv1alpha1.RevokedSignatures{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: string(key.PublicKeyPEM())},
		SignedAfter: &metav1.Time{Time: windowStart}, SignedBefore: &metav1.Time{Time: windowEnd}}
	got, res := k.judge(t, d, p, revocations(t, "key-window", "key leaked", entry))
	s := res.Signatures[0]
	t.Logf("result=%s reason=%s msg=%s", got.Result, got.Reason, got.Message)
	t.Logf("sig: integratedTime=%v timestampTime=%v signingTime=%v source=%q keyID=%q", s.IntegratedTime, s.TimestampTime, s.SigningTime, s.TimeSource, s.KeyID)
	if s.SigningTime == nil {
		t.Errorf("a key signature with a verified log entry (SET) has no trusted signing time")
	}
	if got.Result != sigwatchv1alpha1.PolicyFailed {
		t.Errorf("windowed key revocation did not revoke a logged key signature made inside the window")
	}
}

// errCtx reports an expired deadline through Err, without ever closing Done (so CEL runs to the end).
type errCtx struct{ context.Context }

func (errCtx) Err() error { return context.DeadlineExceeded }

// The deadline hits while the first required attestation has one satisfied candidate: the second
// required attestation is never judged, and the policy must not be Verified without it.
func TestDeadlineInAnAttestationNeverSkipsTheNextRequirement(t *testing.T) {
	ctx := context.Background()
	k := newKeyless(t, true)
	const vuln = "https://cosign.sigstore.dev/attestation/vuln/v1"
	// No SLSA provenance at all.
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "two-atts"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}}}}},
			Attestations: []sigwatchv1alpha1.Attestation{
				{Name: "vulns", PredicateType: vuln, Conditions: []string{"predicate.critical == 0"}},
				{Name: "provenance", PredicateType: "https://slsa.dev/provenance/v1"},
			}},
	})
	for attempt := 0; attempt < 10; attempt++ {
		d := k.push(t, "yourorg/app")
		if _, err := k.writer.SignBundle(ctx, d, k.ci, sigstore.SignOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, crit := range []int{0, 1} {
			if _, err := k.writer.AttestBundle(ctx, d, k.ci, vuln, map[string]any{"critical": crit}, sigstore.SignOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		where := signatures.Where{Image: image(t, d)}
		sess := k.engine.discoverer(registry.Credentials{})
		st, err := k.engine.state(ctx, sess, where, true, true, false)
		if err != nil {
			t.Fatal(err)
		}
		cands, _, release, err := k.engine.fetch(ctx, sess, st)
		if err != nil {
			t.Fatal(err)
		}
		pv := k.engine.judgePolicy(errCtx{ctx}, where, p, k.root, cands)
		release()
		if len(pv.attestations) == 0 || len(pv.attestations[0].satisfied) == 0 {
			continue // the unsatisfied candidate came first: try another digest
		}
		t.Logf("result=%s reason=%s undecided=%v judged requirements=%d/2 msg=%s", pv.result.Result, pv.result.Reason, pv.undecided, len(pv.attestations), pv.result.Message)
		if pv.result.Result == sigwatchv1alpha1.PolicyVerified {
			t.Errorf("Verified although required attestation provenance was never judged (and does not exist)")
		}
		return
	}
	t.Skip("candidate order never put the satisfied attestation first")
}

func TestSettledResultsKeepTheTrustRoot(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := k.verify(t, d, releasePolicy(t))
	t.Logf("result=%s trustedRoot=%q", got.Result, got.TrustedRoot)
	if got.TrustedRoot == "" {
		t.Errorf("settle dropped PolicyResult.TrustedRoot of a verified result")
	}
}

func TestKeySignatureWithALogEntryAgesByItsLogTime(t *testing.T) {
	k := newKeyless(t, true)
	key, err := sigstore.NewKeySigner(k.stack)
	if err != nil {
		t.Fatal(err)
	}
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignBundle(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOn, Timestamp: true}); err != nil {
		t.Fatal(err)
	}
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh-key"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "team-key", MaxSignatureAge: &metav1.Duration{Duration: 720 * time.Hour},
				Key:             &sigwatchv1alpha1.KeyAuthority{PublicKey: string(key.PublicKeyPEM())},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogRequired}}}},
	})
	got, res := k.judge(t, d, p, nil)
	t.Logf("%s %s: %s (integratedTime=%v)", got.Result, got.Reason, got.Message, res.Signatures[0].IntegratedTime)
	if got.Result != sigwatchv1alpha1.PolicyVerified {
		t.Errorf("a key signature just logged in Rekor (with a TSA timestamp too) fails maxSignatureAge")
	}
}

// The deadline cut attestation evaluation short after one satisfied candidate; that one is revoked:
// the unevaluated candidate might satisfy, so the policy must be Unknown, not Failed.
func TestUndecidedAttestationRevokedIsUnknownNotFailed(t *testing.T) {
	ctx := context.Background()
	k := newKeyless(t, true)
	scanner := &sigstore.KeylessSigner{Stack: k.stack, Identity: sigstore.GitHubActions("yourorg/scanner", "scan.yml", "refs/heads/main")}
	scannerSubject := "https://github.com/yourorg/scanner/.github/workflows/scan.yml@refs/heads/main"
	other := &sigstore.KeylessSigner{Stack: k.stack, Identity: sigstore.GitHubActions("yourorg/scanner2", "scan.yml", "refs/heads/main")}
	const vuln = "https://cosign.sigstore.dev/attestation/vuln/v1"
	for attempt := 0; attempt < 10; attempt++ {
		d := k.push(t, "yourorg/app")
		if _, err := k.writer.SignBundle(ctx, d, k.ci, sigstore.SignOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := k.writer.AttestBundle(ctx, d, scanner, vuln, map[string]any{"critical": 0}, sigstore.SignOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := k.writer.AttestBundle(ctx, d, other, vuln, map[string]any{"critical": 1}, sigstore.SignOptions{}); err != nil {
			t.Fatal(err)
		}
		p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "scanned"},
			Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
				Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
					Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}, {Issuer: ghIssuer, SubjectRegExp: "https://github.com/yourorg/scanner.*"}}}}},
				Attestations: []sigwatchv1alpha1.Attestation{{Name: "vulns", PredicateType: vuln, Conditions: []string{"predicate.critical == 0"}}}},
		})
		where := signatures.Where{Image: image(t, d)}
		sess := k.engine.discoverer(registry.Credentials{})
		st, err := k.engine.state(ctx, sess, where, true, true, false)
		if err != nil {
			t.Fatal(err)
		}
		cands, _, release, err := k.engine.fetch(ctx, sess, st)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		pv := k.engine.judgePolicy(errCtx{ctx}, where, p, k.root, cands)
		if len(pv.attestations) == 0 || len(pv.attestations[0].satisfied) == 0 {
			continue
		}
		t.Logf("offline: %s %s undecided=%v satisfied=%v", pv.result.Result, pv.result.Reason, pv.undecided, pv.attestations[0].satisfied)
		set := revocations(t, "scanner", "scanner token leaked", sigwatchv1alpha1.RevokedSignatures{Keyless: &sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: scannerSubject}})
		req := Request{Image: where.Image, Revocations: set}
		r, _ := settle(p, pv, k.engine.check(p, req, time.Now()))
		t.Logf("settled: %s %s: %s", r.Result, r.Reason, r.Message)
		if pv.undecided && r.Result == sigwatchv1alpha1.PolicyFailed {
			t.Errorf("undecided attestation judgment settled to Failed")
		}
		return
	}
	t.Skip("order never right")
}

// While the registry is down the image is Unknown; a revocation change (Reuse) must not turn it
// Verified again from the state read before the outage.
func TestReuseNeverAnswersFromBeforeAFailedRead(t *testing.T) {
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	p := releasePolicy(t)
	req := Request{Image: image(t, d), Policies: []*policy.Policy{p}}
	if r := k.engine.Verify(context.Background(), req).Policies[0]; r.Result != sigwatchv1alpha1.PolicyVerified {
		t.Fatal(r.Message)
	}
	k.reg.FailManifests("", 503)
	req.Fresh = true
	r := k.engine.Verify(context.Background(), req).Policies[0]
	t.Logf("during the outage: %s %s", r.Result, r.Reason)
	req.Fresh, req.Reuse = false, true
	req.Revocations = revocations(t, "unrelated", "x", sigwatchv1alpha1.RevokedSignatures{Digests: []string{"sha256:" + strings.Repeat("0", 64)}})
	r2 := k.engine.Verify(context.Background(), req).Policies[0]
	t.Logf("rejudge (Reuse) during the outage: %s %s", r2.Result, r2.Reason)
	if r.Result == sigwatchv1alpha1.PolicyUnknown && r2.Result == sigwatchv1alpha1.PolicyVerified {
		t.Errorf("Reuse answered Verified from the state read before the failed read")
	}
}

// A key signature timestamped by a TSA of the trust root, without a log entry, has the TSA's time.
func TestKeySignatureWithATimestampHasTheTSATime(t *testing.T) {
	k := newKeyless(t, true)
	key, err := sigstore.NewKeySigner(k.stack)
	if err != nil {
		t.Fatal(err)
	}
	d := k.push(t, "yourorg/app")
	at := windowStart.Add(time.Hour)
	if _, err := k.writer.SignBundle(context.Background(), d, key, sigstore.SignOptions{Tlog: sigstore.TlogOff, Timestamp: true, TimestampTime: at}); err != nil {
		t.Fatal(err)
	}
	p := keyPolicy(t, "team", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogOptional)
	_, res := k.judge(t, d, p, nil)
	s := res.Signatures[0]
	if s.SigningTime == nil || !s.SigningTime.Equal(at) || s.TimeSource != TimeSourceTSA {
		t.Fatalf("signing time %v from %q, want %v from the TSA", s.SigningTime, s.TimeSource, at)
	}
}
