// Package verification decides whether an image digest satisfies its ImageSignaturePolicies: it finds the
// signatures (internal/signatures), judges each with sigstore-go under each authority, checks the
// bindings sigstore-go does not, evaluates attestations, and caches verdicts keyed by what they depend
// on.
package verification

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/bundleverify"
	"github.com/sigwatch/sigwatch/internal/identity"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/sigconf"
	"github.com/sigwatch/sigwatch/internal/signatures"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// outcome is the judgment of one candidate under one authority.
type outcome struct {
	reason    string // "" when verified
	message   string
	authority string
	result    *verify.VerificationResult
	// otherKind: the authority trusts keys and the signature has a certificate, or the reverse.
	otherKind bool
	// unvouched: a TrustRootMismatch whose certificate authority is not in the trust root, so that no
	// trusted party vouches for the identity the certificate claims. Anyone can make such a signature.
	unvouched bool
}

func (o outcome) verified() bool { return o.reason == "" }

// rank orders failure reasons from closest to passing to furthest, to choose between the authorities
// that judged one signature: the closest explains it. A signature that fails only on the trust root
// (TrustRootMismatch) checked out in every other way, so it is closer than one from a signer no
// authority allows.
func rank(o outcome) int {
	switch o.reason {
	case "":
		return 0
	case sigwatchv1alpha1.TransparencyLogMissingReason:
		return 1
	case sigwatchv1alpha1.TrustRootMismatchReason:
		return 2
	case sigwatchv1alpha1.UntrustedSignerReason:
		return 3
	default: // InvalidSignature
		return 4
	}
}

// candidateRank is rank for choosing between signatures: the verdict reports the one closest to passing.
// A TrustRootMismatch whose CA the trust root does not list claims an identity nobody trusted vouches
// for, a signature anyone can make: it comes last, so that one attached beside a tampered or untrusted
// signature never hides it.
func candidateRank(o outcome) int {
	if o.reason == sigwatchv1alpha1.TrustRootMismatchReason && o.unvouched {
		return 5
	}
	return rank(o)
}

func better(a, b outcome) outcome {
	if rank(b) < rank(a) {
		return b
	}
	return a
}

// verifiers builds sigstore-go verifiers once per (authority, trust root, log requirement).
type verifiers struct {
	mu sync.Mutex
	m  map[verifierKey]*verify.Verifier
}

type verifierKey struct {
	policyHash, authority, rootVersion string
	rules                              sigconf.Rules
}

func (vs *verifiers) get(p *policy.Policy, a *policy.Authority, tr *trust.Root, rules sigconf.Rules) (*verify.Verifier, error) {
	k := verifierKey{p.Hash, a.Name, tr.Version, rules}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v, ok := vs.m[k]; ok {
		return v, nil
	}
	v, err := sigconf.NewVerifier(rules, tr, a.Key)
	if err != nil {
		return nil, fmt.Errorf("authority %s: %w", a.Name, err)
	}
	if vs.m == nil {
		vs.m = map[verifierKey]*verify.Verifier{}
	}
	if len(vs.m) > 4096 { // policies churn rarely; keep the map bounded all the same
		clear(vs.m)
	}
	vs.m[k] = v
	return v, nil
}

// judge verifies one candidate, already bound to the digest, under one authority.
func (vs *verifiers) judge(c *signatures.Candidate, digest string, p *policy.Policy, a *policy.Authority, tr *trust.Root) outcome {
	o := outcome{authority: a.Name}
	vc, err := c.Bundle.VerificationContent()
	if err != nil {
		return o.fail(sigwatchv1alpha1.InvalidSignatureReason, "no verification material: %v", err)
	}
	if a.Keyless() != (vc.Certificate() != nil) {
		o.otherKind = true
		if a.Keyless() {
			return o.fail(sigwatchv1alpha1.UntrustedSignerReason, "signed with a key, authority %s trusts certificates", a.Name)
		}
		return o.fail(sigwatchv1alpha1.UntrustedSignerReason, "signed with a certificate, authority %s trusts a key", a.Name)
	}
	entries, err := c.Bundle.TlogEntries()
	if err != nil {
		return o.fail(sigwatchv1alpha1.InvalidSignatureReason, "transparency log entries: %v", err)
	}
	mode := a.TransparencyLog
	tlog := mode == sigwatchv1alpha1.TransparencyLogRequired || (mode == sigwatchv1alpha1.TransparencyLogOptional && len(entries) > 0)
	logMissing := mode == sigwatchv1alpha1.TransparencyLogRequired && len(entries) == 0
	if logMissing {
		tlog = false // judge the rest, so that TransparencyLogMissing is only said of an allowed signer
	}
	// A key is valid at any time: an image's key signature is not failed over a timestamp that the
	// policy's trust root cannot check (a TSA it does not list). Only the times verified are shown.
	rules := sigconf.Rules{Keyless: a.Keyless(), TransparencyLog: tlog}
	v, err := vs.get(p, a, tr, rules)
	if err != nil {
		return o.fail(sigwatchv1alpha1.InvalidSignatureReason, "%v", err)
	}
	res, err := v.Verify(c.Bundle, verifyPolicy(c, digest, a))
	if err == nil && a.Keyless() {
		// sigstore-go verified everything but who signed: the identities are sigwatch's to match, with
		// every claim Fulcio writes (and the regular expressions sigstore-go cannot take for them).
		_, err = a.Identities.MatchCertificate(vc.Certificate())
	}
	if err != nil {
		return o.explain(err, c, digest, a, tr, rules, vc)
	}
	if logMissing {
		return o.fail(sigwatchv1alpha1.TransparencyLogMissingReason, "signature by %s has no transparency log entry, and authority %s requires one", signerOf(res, a), a.Name)
	}
	if !a.Keyless() {
		res.VerifiedTimestamps = append(res.VerifiedTimestamps, keyTimes(c.Bundle, tr, a.Key, tlog)...)
	}
	o.result = res
	return o
}

// keyTimes are the certified times of a key signature that verified. sigstore-go verifies a key signature
// without observer timestamps (a key is valid at any time), so it reports none: the times the bundle
// carries are verified here, over this signature, for revocation windows and maxSignatureAge, and never
// fail it. They are the signed entry timestamps of its log entries, when the authority's log entries were
// verified (withLog), and the RFC 3161 timestamps of the trust root's timestamp authorities.
func keyTimes(b *bundle.Bundle, tr *trust.Root, key crypto.PublicKey, withLog bool) []verify.TimestampVerificationResult {
	if tr == nil || tr.Material == nil {
		return nil
	}
	km, err := sigconf.KeyMaterial(key)
	if err != nil {
		return nil
	}
	material := root.TrustedMaterialCollection{tr.Material, km}
	var out []verify.TimestampVerificationResult
	if withLog {
		// Only entries with an inclusion promise give a time: an inclusion proof does not sign it.
		if stamps, err := verify.VerifyTlogEntry(b, material, 1, true); err == nil {
			for _, ts := range stamps {
				out = append(out, verify.TimestampVerificationResult{Type: "Tlog", URI: ts.URI, Timestamp: ts.Time})
			}
		}
	}
	if stamps, _, err := verify.VerifySignedTimestamp(b, material); err == nil {
		for _, ts := range stamps {
			out = append(out, verify.TimestampVerificationResult{Type: "TimestampAuthority", URI: ts.URI, Timestamp: ts.Time})
		}
	}
	return out
}

func verifyPolicy(c *signatures.Candidate, digest string, a *policy.Authority) verify.PolicyBuilder {
	var artifact verify.ArtifactPolicyOption
	if c.Payload != nil {
		// Legacy: the signature is over the simple-signing payload, which names the digest.
		artifact = verify.WithArtifact(strings.NewReader(string(c.Payload)))
	} else {
		// DSSE: sigstore-go checks that the statement's subject is the digest.
		raw, _ := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
		artifact = verify.WithArtifactDigest("sha256", raw)
	}
	if a.Keyless() {
		// The identity is matched after (judge): sigstore-go still verifies the certificate's chain to a
		// trusted CA, its validity at a verified time, and that its key made the signature.
		return verify.NewPolicy(artifact, verify.WithoutIdentitiesUnsafe())
	}
	return verify.NewPolicy(artifact, verify.WithKey())
}

// explain classifies a rejected signature. When the trust root lacks the signature's transparency log,
// certificate authority or timestamp authority (bundleverify.Diagnose), the order is:
//  1. the signature over the image does not check with the signature's own key (the certificate's, or
//     the authority's): InvalidSignature, or UntrustedSigner for a key signature made with another key;
//  2. a part the root vouches for does not verify (an entry of a log it lists, a timestamp of a TSA it
//     lists, the chain to a CA it lists, a certificate that names one of its CAs without its signature,
//     a log entry that records another signature): InvalidSignature, as tampering;
//  3. the certificate's identity is not allowed: UntrustedSigner;
//  4. only then TrustRootMismatch.
//
// In 1 to 3 the missing parts are said after the reason's message. A bundle can name any log or CA, so
// a signature from someone else's Sigstore is a TrustRootMismatch too: it is never accepted, and a
// tampered signature is never reported as one, since 1 and 2 come first.
func (o outcome) explain(err error, c *signatures.Candidate, digest string, a *policy.Authority, tr *trust.Root, rules sigconf.Rules, vc verify.VerificationContent) outcome {
	e := bundleverify.Expectation{Rules: rules, Root: tr, Key: a.Key}
	if a.Keyless() {
		e.Identity = func(leaf *x509.Certificate) error { _, err := a.Identities.MatchCertificate(leaf); return err }
	}
	if c.Payload != nil {
		e.Artifact = c.Payload
	} else {
		e.DigestAlgorithm = "sha256"
		e.Digest, _ = hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	}
	d := bundleverify.Diagnose(c.Bundle, e)
	switch {
	case d.Mismatch():
		rest := "the certificate's key signs the image, and its identity is one authority " + a.Name + " allows"
		if d.Missing.CA != nil {
			// No CA the root lists issued the certificate: the identity is only claimed.
			rest = "the certificate's key signs the image, and it claims an identity authority " + a.Name +
				" allows, which no trusted certificate authority vouches for"
		}
		if !a.Keyless() {
			rest = "the key of authority " + a.Name + " signs the image"
		}
		o.unvouched = d.Missing.CA != nil
		return o.fail(sigwatchv1alpha1.TrustRootMismatchReason, "signature by %s: %v, so it cannot be verified (the rest checks out: %s). "+
			"If the image was signed with a private Sigstore, set spec.trustedRoot on the policy to a ConfigMap holding that "+
			"Sigstore's trusted_root.json", unverifiedSigner(vc, a), d.Missing, rest)
	case d.Missing != nil:
		f := o.classify(d.Problem, a, keyHint(vc))
		f.message += fmt.Sprintf(" (besides, %v)", d.Missing)
		return f
	default:
		return o.classify(err, a, keyHint(vc))
	}
}

// unverifiedSigner names who a rejected signature claims to be: its certificate's subject, or the
// authority's key it was checked with.
func unverifiedSigner(vc verify.VerificationContent, a *policy.Authority) string {
	if cert := vc.Certificate(); cert != nil {
		if sum, err := certificate.SummarizeCertificate(cert); err == nil && sum.SubjectAlternativeName != "" {
			return sum.SubjectAlternativeName
		}
		return "an unnamed certificate"
	}
	return Signer("", a.KeyID)
}

func (o outcome) fail(reason, format string, args ...any) outcome {
	o.reason, o.message = reason, fmt.Sprintf(format, args...)
	return o
}

// classify maps a sigstore-go error to a reason: an identity mismatch (checked last, after all the
// cryptography passed) or a certificate from an unknown CA is an untrusted signer; anything else is an
// invalid signature.
//
// A key signature that does not check out was made with another key, unless the bundle names the
// authority's own key (cosign v3 writes the key's sha256 as a hint): then it is corrupt.
func (o outcome) classify(err error, a *policy.Authority, hint string) outcome {
	var noID *verify.ErrNoMatchingCertificateIdentity
	var noMatch *identity.NoMatchError
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.As(err, &noMatch):
		return o.fail(sigwatchv1alpha1.UntrustedSignerReason, "certificate identity not allowed by authority %s: %v", a.Name, noMatch)
	case errors.As(err, &noID):
		return o.fail(sigwatchv1alpha1.UntrustedSignerReason, "certificate identity not allowed by authority %s: %v", a.Name, lastLine(err))
	case errors.As(err, &unknownCA):
		return o.fail(sigwatchv1alpha1.UntrustedSignerReason, "certificate not issued by a trusted certificate authority: %v", err)
	case !a.Keyless() && (errors.Is(err, bundleverify.ErrSignatureDoesNotVerify) || strings.Contains(err.Error(), "failed to verify signature")) && hint != a.KeyID:
		return o.fail(sigwatchv1alpha1.UntrustedSignerReason, "not signed by the key of authority %s (key ID %s)", a.Name, short(a.KeyID))
	default:
		// sigstore-go v1.3.0 formats a nil error with %w in one message.
		return o.fail(sigwatchv1alpha1.InvalidSignatureReason, "%s", strings.ReplaceAll(err.Error(), "; error: %!w(<nil>)", ""))
	}
}

// keyHint returns the key ID (hex sha256 of the public key's DER) that a key-signed bundle names in its
// base64 hint, or "".
func keyHint(vc verify.VerificationContent) string {
	pk := vc.PublicKey()
	if pk == nil {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(pk.Hint())
	if err != nil || len(raw) != sha256.Size {
		return ""
	}
	return hex.EncodeToString(raw)
}

func lastLine(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "last error: "); i >= 0 {
		return s[i+len("last error: "):]
	}
	return s
}

// signerOf names who made a verified signature: the certificate's subject, or the authority's key.
func signerOf(res *verify.VerificationResult, a *policy.Authority) string {
	if res != nil && res.Signature != nil && res.Signature.Certificate != nil {
		return Signer(res.Signature.Certificate.SubjectAlternativeName, a.KeyID)
	}
	return Signer("", a.KeyID)
}

// Signer is how sigwatch names who made a signature, everywhere (messages, status, the CLI): the
// certificate's subject for a keyless signature, else "key " and the first 12 hex digits of the key ID;
// "" when neither is known.
func Signer(subject, keyID string) string {
	switch {
	case subject != "":
		return subject
	case keyID != "":
		return "key " + short(keyID)
	default:
		return ""
	}
}

// describe fills what a person wants to see about a signature: from the verified result when there is
// one, else from the unverified certificate (display only).
func describe(c *signatures.Candidate, o outcome, keyID string, tr *trust.Root, logURLs map[string]string) Signature {
	s := Signature{Format: c.Format, ManifestDigest: c.ManifestDigest, Reason: o.reason, Message: o.message}
	if c.Unreadable {
		s.Reason = sigwatchv1alpha1.RegistryUnavailableReason
	}
	if o.verified() {
		s.Authority = o.authority
	}
	if c.Kind == signatures.KindAttestation && c.Statement != nil {
		s.PredicateType = c.Statement.PredicateType
	}
	if c.Bundle == nil {
		return s
	}
	var summary *identity.Claims
	if vc, err := c.Bundle.VerificationContent(); err == nil && vc.Certificate() != nil {
		if claims, err := identity.Read(vc.Certificate()); err == nil {
			summary = &claims
		} else if sum, err := certificate.SummarizeCertificate(vc.Certificate()); err == nil {
			// Claims that disagree (never accepted): shown as the certificate has them.
			summary = &identity.Claims{Subject: sum.SubjectAlternativeName, Extensions: sum.Extensions}
		}
	}
	if summary != nil {
		s.Subject = summary.Subject
		s.Issuer = summary.Issuer
		s.Claims = summary.API(func(v string) string { return v })
		s.GitHubWorkflowRepository = summary.GithubWorkflowRepository
		if s.GitHubWorkflowRepository == "" {
			s.GitHubWorkflowRepository = strings.TrimPrefix(summary.SourceRepositoryURI, "https://github.com/")
		}
		s.GitHubWorkflowRef = summary.GithubWorkflowRef
		if s.GitHubWorkflowRef == "" {
			s.GitHubWorkflowRef = summary.SourceRepositoryRef
		}
	} else if o.verified() || o.reason == sigwatchv1alpha1.TransparencyLogMissingReason || o.reason == sigwatchv1alpha1.TrustRootMismatchReason {
		s.KeyID = keyID // the signature checked out against this key
	}
	// The log entry shown is one that verification accepted, and only for an accepted signature: a
	// rejected signature's entries were not verified.
	if entries, err := c.Bundle.TlogEntries(); err == nil && o.verified() {
		if entry := acceptedEntry(entries, tr); entry != nil {
			idx := entry.LogIndex()
			s.TransparencyLogIndex = &idx
			s.entry = entryOf(entry, tr, logURLs)
			if s.entry != nil && s.entry.problem == "" {
				s.TransparencyLog = s.entry.log.Name()
			}
			if t := entry.IntegratedTime(); !t.IsZero() && t.Unix() > 0 {
				s.IntegratedTime = &t
			}
		}
	}
	if o.result != nil {
		// Only the times sigstore-go verified count: a log's signed entry timestamp or a timestamp of a
		// TSA the root lists, never the "current time" it falls back on for a key signature.
		for _, ts := range o.result.VerifiedTimestamps {
			t := ts.Timestamp
			source := ""
			switch ts.Type {
			case "TimestampAuthority":
				if s.TimestampTime == nil {
					s.TimestampTime = &t
				}
				source = TimeSourceTSA
			case "Tlog":
				source = TimeSourceTlog
			default:
				continue
			}
			if s.SigningTime == nil || t.Before(*s.SigningTime) {
				s.SigningTime, s.TimeSource = &t, source
			}
		}
	}
	return s
}

// acceptedEntry returns the first entry that sigstore-go's verification counts: from a log the trust root
// lists, and, when it carries a signed entry timestamp, one that verifies (sigstore-go skips the others).
func acceptedEntry(entries []*tlog.Entry, tr *trust.Root) *tlog.Entry {
	if tr == nil || tr.Material == nil {
		return nil
	}
	logs := tr.Material.RekorLogs()
	for _, e := range entries {
		if _, ok := logs[hex.EncodeToString([]byte(e.LogKeyID()))]; !ok {
			continue
		}
		if e.HasInclusionPromise() && tlog.VerifySET(e, logs) != nil {
			continue
		}
		return e
	}
	return nil
}

// short abbreviates a key ID for messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
