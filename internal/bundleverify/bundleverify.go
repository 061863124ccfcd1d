// Package bundleverify verifies one Sigstore bundle over one artifact, offline, against a trust root:
// the library behind `sigwatch verify-bundle`. A bundle is keyless (a Fulcio certificate, checked
// against an expected identity) or signed with a key (checked against a given public key).
//
// The rules, whatever the bundle says about itself:
//   - keyless: a transparency log entry and an observer timestamp (log integrated time or RFC 3161)
//     are required, and the certificate is checked at that certified time, never at "now"; signed
//     certificate timestamps are required exactly when the trust root lists CT logs;
//   - key: the transparency log entries and timestamps the bundle carries are verified; none is
//     required, since a key has no validity window to place the signature in;
//   - identity regular expressions match whole values (anchored as ^(?:RE)$).
package bundleverify

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/sigwatch/sigwatch/internal/sigconf"
	"github.com/sigwatch/sigwatch/internal/trust"
)

var (
	// ErrInvalidRequest wraps every error caused by the request itself (a missing or conflicting field, a
	// malformed digest, regular expression or key): retrying with the same request cannot succeed, and
	// the bundle was not judged.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNotVerified wraps every reason the bundle does not verify: it cannot be parsed, it is not signed
	// the way the request expects, or sigstore-go rejected it (the wrapped error says which step failed).
	ErrNotVerified = errors.New("bundle does not verify")
)

// Request is one bundle to verify over one artifact.
type Request struct {
	// Bundle is the Sigstore bundle, JSON (v0.1 to v0.3).
	Bundle []byte
	// Artifact is the signed artifact itself; exclusive with ArtifactDigest.
	Artifact []byte
	// ArtifactDigest is the artifact's digest, "sha256:HEX" or "sha512:HEX"; exclusive with Artifact.
	// An Ed25519 message signature can only be verified over the artifact itself.
	ArtifactDigest string
	// Identity is the expected keyless signer; exclusive with PublicKey.
	Identity Identity
	// PublicKey is the PEM public key of a key-signed bundle; exclusive with Identity.
	PublicKey []byte
	// TrustRoot holds the CAs, logs and timestamp authorities to verify against. With PublicKey it still
	// verifies the bundle's transparency log entries and timestamps.
	TrustRoot *trust.Root
}

// Result is what a verified bundle proves.
type Result struct {
	// Certificate summarizes the verified signing certificate (SAN, OIDC issuer, GitHub workflow claims);
	// nil when the bundle is signed with a key.
	Certificate *certificate.Summary
	// KeyID is the hex sha256 of the PKIX DER form of the verifying public key; empty when keyless.
	KeyID string
	// TlogEntries are the bundle's transparency log entries; when the request required a log entry, at
	// least one was verified against the trust root's logs.
	TlogEntries []TlogEntry
	// VerifiedTimestamps are the certified times the verification used, earliest first.
	VerifiedTimestamps []Timestamp
	// PredicateType is the in-toto predicate type when the bundle is a DSSE attestation.
	PredicateType string
	// TrustRoot names the trust root used (trust.Root.Source).
	TrustRoot string
}

// TlogEntry is one transparency log entry of the bundle.
type TlogEntry struct {
	// LogIndex is the entry's index in its log.
	LogIndex int64
	// IntegratedTime is when the log integrated the entry; zero when the entry does not say (Rekor v2).
	IntegratedTime time.Time
	// RekorV2 tells a Rekor v2 (tile-based) entry.
	RekorV2 bool
}

// Timestamp is a verified time at which the signature existed.
type Timestamp struct {
	// Source is "Tlog" (a log's signed integrated time) or "TimestampAuthority" (RFC 3161).
	Source string
	// URI names the log or authority, when the trust root gives it.
	URI string
	// Time is the certified time.
	Time time.Time
}

// SignedAt is the earliest certified time the signature existed, or zero when none was verified.
func (r *Result) SignedAt() time.Time {
	if len(r.VerifiedTimestamps) == 0 {
		return time.Time{}
	}
	return r.VerifiedTimestamps[0].Time
}

// Verify verifies req.Bundle over the artifact. The error wraps ErrInvalidRequest when the request is
// unusable, ErrNotVerified when the bundle does not verify; any other error (a cancelled context) left
// the bundle unjudged.
func Verify(ctx context.Context, req Request) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	checks, err := compile(&req)
	if err != nil {
		return nil, err
	}
	b := &bundle.Bundle{}
	if err := b.UnmarshalJSON(req.Bundle); err != nil {
		return nil, notVerified("parsing bundle: %w", err)
	}
	if err := checks.signerKindMatches(b); err != nil {
		return nil, err
	}
	rules, err := checks.rules(b)
	if err != nil {
		return nil, err
	}
	v, err := sigconf.NewVerifier(rules, req.TrustRoot, checks.key)
	if err != nil {
		return nil, fmt.Errorf("configuring the verifier: %w", err) // a bug here, not the request's fault
	}
	res, err := v.Verify(b, verify.NewPolicy(checks.artifact, checks.signer))
	if err != nil {
		return nil, checks.failure(b, &req, rules, err)
	}
	return result(b, res, checks.keyID, req.TrustRoot.Source)
}

// checks is a request compiled into what sigstore-go needs.
type checks struct {
	keyless  bool
	artifact verify.ArtifactPolicyOption
	signer   verify.PolicyOption
	identity verify.CertificateIdentity
	keyID    string
	key      crypto.PublicKey
}

// failure explains sigstore-go's err. When the trust root lacks the bundle's log, CA or TSA and nothing
// else is wrong, the error wraps ErrTrustRootMismatch and the *Mismatch; when something else is wrong too,
// that is the error, and the missing parts are said after it. Otherwise err stands.
func (c *checks) failure(b *bundle.Bundle, req *Request, rules sigconf.Rules, err error) error {
	e := Expectation{Rules: rules, Root: req.TrustRoot, Key: c.key, Artifact: req.Artifact}
	if c.keyless {
		e.Identity = func(leaf *x509.Certificate) error {
			summary, err := certificate.SummarizeCertificate(leaf)
			if err != nil {
				return fmt.Errorf("reading the certificate: %w", err)
			}
			_, err = verify.CertificateIdentities{c.identity}.Verify(summary)
			return err
		}
	}
	if req.ArtifactDigest != "" {
		e.DigestAlgorithm, e.Digest, _ = ParseDigest(req.ArtifactDigest) // parsed once already by compile
	}
	d := Diagnose(b, e)
	prefix := ""
	if !c.keyless {
		prefix = "with key " + c.keyID + ": "
	}
	switch {
	case d.Mismatch():
		return fmt.Errorf("%w: %w: %s%w; the rest of the bundle checks out. If it was signed with a private Sigstore "+
			"(or staging), verify it against that Sigstore's trusted_root.json", ErrNotVerified, ErrTrustRootMismatch, prefix, d.Missing)
	case d.Missing != nil:
		return notVerified("%s%w (besides, %s)", prefix, d.Problem, d.Missing)
	default:
		return notVerified("%s%w", prefix, err)
	}
}

func compile(req *Request) (*checks, error) {
	if len(req.Bundle) == 0 {
		return nil, invalid("Bundle is required")
	}
	if req.TrustRoot == nil || req.TrustRoot.Material == nil {
		return nil, invalid("TrustRoot is required")
	}
	keyless := !req.Identity.empty()
	switch {
	case keyless && req.PublicKey != nil:
		return nil, invalid("Identity and PublicKey are mutually exclusive")
	case !keyless && req.PublicKey == nil:
		return nil, invalid("one of Identity and PublicKey is required")
	}
	artifact, err := req.artifactPolicy()
	if err != nil {
		return nil, err
	}
	c := &checks{keyless: keyless, artifact: artifact}
	if keyless {
		ci, err := req.Identity.certificateIdentity()
		if err != nil {
			return nil, err
		}
		c.signer, c.identity = verify.WithCertificateIdentity(ci), ci
		return c, nil
	}
	key, id, err := sigconf.ParsePublicKey(req.PublicKey)
	if err != nil {
		return nil, invalid("PublicKey: %v", err)
	}
	c.signer, c.keyID, c.key = verify.WithKey(), id, key
	return c, nil
}

// signerKindMatches rejects a key-signed bundle checked against an identity and the reverse, with a
// message that says so rather than sigstore-go's first failing step.
func (c *checks) signerKindMatches(b *bundle.Bundle) error {
	vc, err := b.VerificationContent()
	if err != nil {
		return notVerified("reading verification material: %w", err)
	}
	certificateBased := vc.Certificate() != nil
	switch {
	case c.keyless && !certificateBased:
		return notVerified("bundle is signed with a public key, not a certificate: verify it with a key, not an identity")
	case !c.keyless && certificateBased:
		return notVerified("bundle is signed with a certificate, not a public key: verify it with an identity, not a key")
	}
	return nil
}

// rules states the rules of the package comment: a keyless bundle needs a log entry; a key-signed one
// has what it carries verified.
func (c *checks) rules(b *bundle.Bundle) (sigconf.Rules, error) {
	if c.keyless {
		return sigconf.Rules{Keyless: true, TransparencyLog: true}, nil
	}
	entries, err := b.TlogEntries()
	if err != nil {
		return sigconf.Rules{}, notVerified("reading transparency log entries: %w", err)
	}
	r := sigconf.Rules{TransparencyLog: len(entries) > 0}
	if r.CarriesTime, err = sigconf.CarriesTime(b, r.TransparencyLog); err != nil {
		return sigconf.Rules{}, notVerified("%w", err)
	}
	return r, nil
}
