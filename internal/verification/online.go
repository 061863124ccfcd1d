package verification

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
	"github.com/sigwatch/sigwatch/internal/logmonitor"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// LogChecker checks entries against their live transparency logs, and searches Rekor v1 logs for the
// entries of a digest (logmonitor.Monitor).
type LogChecker interface {
	Check(ctx context.Context, entries []logmonitor.Entry) []logmonitor.Result
	Search(ctx context.Context, l logmonitor.Log, digest string) ([]logmonitor.LoggedSigner, bool, error)
}

// UnexpectedSigner is an entry a transparency log holds for the image's digest, made by a signer that no
// authority of the policies that cover the image trusts: someone else signed the image. It never changes
// the verdict.
type UnexpectedSigner struct {
	// Log is the log's checkpoint origin; UUID and Index the entry's.
	Log   string `json:"log"`
	UUID  string `json:"uuid"`
	Index int64  `json:"index"`
	// Signer names the certificate's subject or the key; Issuer is the certificate's OIDC issuer.
	Signer string `json:"signer"`
	Issuer string `json:"issuer,omitempty"`
	// IntegratedTime is when the log took the entry.
	IntegratedTime time.Time `json:"integratedTime"`
}

// MaxUnexpectedSigners bounds what a Result lists of them.
const MaxUnexpectedSigners = 16

// searchSigners asks each Rekor v1 log that holds an accepted signature of the image for every entry of
// the image's digest, and keeps those whose signer no authority of policies trusts. A log whose search
// fails is left out: the search reports, it decides nothing.
func (e *Engine) searchSigners(ctx context.Context, digest string, policies []*policy.Policy, sigs []Signature) (out []UnexpectedSigner, truncated bool) {
	if e.opts.Logs == nil {
		return nil, false
	}
	var trusted []trustedPolicy
	for _, p := range policies {
		if r, err := e.opts.Roots(ctx, p); err == nil && r != nil {
			trusted = append(trusted, trustedPolicy{p, r})
		}
	}
	seen := map[string]bool{}
	for _, s := range sigs {
		// Only the logs whose live check ran (not Off) and reached the log.
		if !s.Verified() || s.entry == nil || s.entry.problem != "" || !s.entry.log.V1 || seen[s.entry.log.URL] ||
			s.Inclusion == nil || s.Inclusion.Result == sigwatchv1alpha1.LogInclusionUnavailable {
			continue
		}
		seen[s.entry.log.URL] = true
		found, more, err := e.opts.Logs.Search(ctx, s.entry.log, digest)
		if err != nil {
			continue
		}
		truncated = truncated || more
		for _, f := range found {
			if expected(trusted, f) {
				continue
			}
			if len(out) == MaxUnexpectedSigners {
				truncated = true
				continue
			}
			u := UnexpectedSigner{Log: s.entry.log.Origin, UUID: f.UUID, Index: f.LogIndex, IntegratedTime: f.IntegratedTime}
			if f.Certificate != nil {
				if c, err := identity.Read(f.Certificate); err == nil {
					u.Signer, u.Issuer = c.Subject, c.Issuer
				} else if sum, err := certificate.SummarizeCertificate(f.Certificate); err == nil {
					u.Signer = sum.SubjectAlternativeName
				}
			} else if id, err := keyIDOfKey(f.PublicKey); err == nil {
				u.Signer = Signer("", id)
			}
			out = append(out, u)
		}
	}
	return out, truncated
}

// trustedPolicy is a policy with its trust root.
type trustedPolicy struct {
	p    *policy.Policy
	root *trust.Root
}

// expected reports whether an authority of the policies trusts the signer of a logged entry: a keyless
// authority whose identities the certificate matches, the certificate issued by a certificate authority of
// the policy's trust root at the time the log took the entry; or a key authority with that key. A
// certificate that only claims a trusted identity (Rekor v1 takes self-signed certificates) is not
// expected: it would hide the others.
func expected(policies []trustedPolicy, f logmonitor.LoggedSigner) bool {
	for _, tp := range policies {
		for _, a := range tp.p.Authorities {
			switch {
			case a.Keyless() && f.Certificate != nil:
				if _, err := a.Identities.MatchCertificate(f.Certificate); err != nil || tp.root.Material == nil {
					continue
				}
				if _, err := verify.VerifyLeafCertificate(f.IntegratedTime, f.Certificate, tp.root.Material); err == nil {
					return true
				}
			case !a.Keyless() && f.PublicKey != nil:
				if id, err := keyIDOfKey(f.PublicKey); err == nil && id == a.KeyID {
					return true
				}
			}
		}
	}
	return false
}

func keyIDOfKey(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// logEntry is an accepted signature's log entry, as the live check needs it.
type logEntry struct {
	log logmonitor.Log
	// index is the entry's index in its tree; global, for Rekor v1, its index across the log's shards.
	index, global int64
	leaf          [32]byte
	// problem says why the entry cannot be checked live ("" when it can): it is then left out of the
	// check, and does not count under online: Require.
	problem string
}

// entryOf describes an accepted entry for the live check. The leaf is the hash of the entry's body, which
// must be the leaf that the bundle's inclusion proof (verified offline against a signed checkpoint)
// proves at the entry's index: a body or an index that is not would be checked in vain.
func entryOf(entry *tlog.Entry, tr *trust.Root, urls map[string]string) *logEntry {
	id := hex.EncodeToString([]byte(entry.LogKeyID()))
	tl, ok := tr.Material.RekorLogs()[id]
	if !ok {
		return nil
	}
	out := &logEntry{index: entry.LogIndex(), global: entry.LogIndex()}
	if out.global < 0 {
		out.problem = fmt.Sprintf("its log index %d is negative", out.global)
		return out
	}
	tle := entry.TransparencyLogEntry()
	ip := tle.GetInclusionProof()
	if ip == nil || ip.GetTreeSize() <= 0 || ip.GetCheckpoint().GetEnvelope() == "" {
		out.problem = "its bundle has no inclusion proof (only a promise of inclusion), which sigwatch cannot check online yet"
		return out
	}
	var err error
	if entry.IsRekorV2() {
		if ip.GetLogIndex() != entry.LogIndex() {
			out.problem = fmt.Sprintf("its inclusion proof is for index %d, the entry says %d", ip.GetLogIndex(), entry.LogIndex())
			return out
		}
		out.log, err = logmonitor.NewLog(tl.BaseURL, tl.ID, tl.PublicKey, tl.SignatureHashFunc, "")
		if err == nil && urls[out.log.Origin] != "" {
			out.log, err = logmonitor.NewLog(tl.BaseURL, tl.ID, tl.PublicKey, tl.SignatureHashFunc, urls[out.log.Origin])
		}
	} else {
		// Rekor v1: the shard is the checkpoint's tree, the entry's index in it the proof's.
		origin, _, _ := strings.Cut(ip.GetCheckpoint().GetEnvelope(), "\n")
		out.index = ip.GetLogIndex()
		out.log, err = logmonitor.NewV1Log(tl.BaseURL, tl.ID, tl.PublicKey, tl.SignatureHashFunc, origin, urls[hostOfURL(tl.BaseURL)])
	}
	if err != nil {
		out.problem = err.Error()
		return out
	}
	out.leaf = logmonitor.LeafHash(tle.GetCanonicalizedBody())
	if proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.GetLogIndex()), uint64(ip.GetTreeSize()),
		out.leaf[:], ip.GetHashes(), ip.GetRootHash()) != nil {
		out.problem = "its body is not the leaf its inclusion proof proves"
	}
	return out
}

func hostOfURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// online runs the live log check of a policy's verified verdict: each accepted signature's entry (of an
// authority whose online check is not Off) is proven in its log's current, consistent tree. Under
// Require, the verdict stands only when a signature of a Monitor or Off authority was accepted, or one of
// a Require authority was proven in its log: otherwise it fails (EntryNotInLog, LogInconsistent), or is
// Unknown (LogUnavailable) when a log could not be read. The verdict given is never changed: the copy
// returned carries the checks.
func (e *Engine) online(ctx context.Context, p *policy.Policy, v policyVerdict) policyVerdict {
	if e.opts.Logs == nil || v.result.Result != sigwatchv1alpha1.PolicyVerified {
		return v
	}
	var idx []int
	var entries []logmonitor.Entry
	for i, s := range v.signatures {
		if !s.Verified() || s.PredicateType != "" || s.entry == nil || s.entry.problem != "" || authorityOf(p, s.Authority).Online == sigwatchv1alpha1.OnlineLogOff {
			continue
		}
		idx = append(idx, i)
		entries = append(entries, logmonitor.Entry{Log: s.entry.log, Index: s.entry.index, Global: s.entry.global, Leaf: s.entry.leaf})
	}
	requires := slices.ContainsFunc(p.Authorities, func(a *policy.Authority) bool { return a.Online == sigwatchv1alpha1.OnlineLogRequire })
	if len(entries) == 0 && !requires {
		return v
	}
	v.signatures = slices.Clone(v.signatures)
	now := e.opts.Clock()
	for j, r := range e.opts.Logs.Check(ctx, entries) {
		s := &v.signatures[idx[j]]
		s.Inclusion = &Inclusion{Result: inclusionResult(r.Status), Origin: r.Origin, Index: r.Index, TreeSize: r.TreeSize, Checked: now, Message: r.Message}
		if r.Status != logmonitor.InLog {
			s.Inclusion.TreeSize = 0
		}
	}
	if requires {
		root := v.result.TrustedRoot
		v.result = require(p, v.result, v.signatures)
		v.result.TrustedRoot = root
		v.result.until = requiredUntil(p, v.result, v.signatures)
	}
	return v
}

// requiredUntil is when a result that online: Require left verified stops holding: when the last of the
// signatures that count under it (of an authority that does not require the live check, or proven in
// the log) grows too old, or its attestations do.
func requiredUntil(p *policy.Policy, res PolicyResult, sigs []Signature) time.Time {
	if res.Result != sigwatchv1alpha1.PolicyVerified {
		return time.Time{}
	}
	var x expiry
	for _, s := range sigs {
		if !s.Verified() || s.PredicateType != "" {
			continue
		}
		a := authorityOf(p, s.Authority)
		if a.Online != sigwatchv1alpha1.OnlineLogRequire || (s.Inclusion != nil && s.Inclusion.Result == sigwatchv1alpha1.LogInclusionInLog) {
			x.alternative(expiryOf(a, s))
		}
	}
	x.requirement(expiry{t: res.attestationsUntil, set: true})
	return x.t
}

func inclusionResult(s logmonitor.Status) sigwatchv1alpha1.LogInclusionResult {
	switch s {
	case logmonitor.InLog:
		return sigwatchv1alpha1.LogInclusionInLog
	case logmonitor.NotInLog:
		return sigwatchv1alpha1.LogInclusionNotInLog
	case logmonitor.Inconsistent:
		return sigwatchv1alpha1.LogInclusionInconsistent
	default:
		return sigwatchv1alpha1.LogInclusionUnavailable
	}
}

// require applies online: Require to a verified result: it stands when an accepted signature counts (its
// authority does not require the live check, or its entry was proven in the log). Otherwise a log that
// could not be read makes it Unknown, and a proven absence or inconsistency makes it Failed.
func require(p *policy.Policy, res PolicyResult, sigs []Signature) PolicyResult {
	var unavailable, absent, inconsistent string
	for _, s := range sigs {
		if !s.Verified() || s.PredicateType != "" {
			continue
		}
		a := authorityOf(p, s.Authority)
		if a.Online != sigwatchv1alpha1.OnlineLogRequire {
			return res
		}
		who := Signer(s.Subject, s.KeyID)
		switch {
		case s.Inclusion != nil && s.Inclusion.Result == sigwatchv1alpha1.LogInclusionInLog:
			res.Message += fmt.Sprintf("; %s", s.Inclusion.Message)
			return res
		case s.Inclusion != nil && s.Inclusion.Result == sigwatchv1alpha1.LogInclusionUnavailable:
			unavailable = first(unavailable, fmt.Sprintf("signature by %s: %s", who, s.Inclusion.Message))
		case s.Inclusion != nil && s.Inclusion.Result == sigwatchv1alpha1.LogInclusionInconsistent:
			inconsistent = first(inconsistent, fmt.Sprintf("signature by %s: %s", who, s.Inclusion.Message))
		case s.Inclusion != nil:
			absent = first(absent, fmt.Sprintf("signature by %s: %s", who, s.Inclusion.Message))
		case s.entry != nil && s.entry.problem != "":
			// Could not check is not absent: Unknown, with what would make it checkable.
			unavailable = first(unavailable, fmt.Sprintf("signature by %s: its log entry cannot be checked online: %s "+
				"(re-sign with cosign v2.4 or later, or set transparencyLog.online to Monitor)", who, s.entry.problem))

		default:
			absent = first(absent, fmt.Sprintf("signature by %s has no entry in a transparency log of the trust root to check online", who))
		}
	}
	const suffix = " (authority requires transparencyLog.online: Require)"
	// A signature whose log could not be read might count: could not verify is never unverified.
	switch {
	case unavailable != "":
		return unknown(p.Name, sigwatchv1alpha1.LogUnavailableReason, "%s%s", unavailable, suffix)
	case inconsistent != "":
		return failed(p.Name, sigwatchv1alpha1.LogInconsistentReason, "%s%s", inconsistent, suffix)
	case absent != "":
		return failed(p.Name, sigwatchv1alpha1.EntryNotInLogReason, "%s%s", absent, suffix)
	default:
		return res
	}
}

func first(have, s string) string {
	if have != "" {
		return have
	}
	return s
}
