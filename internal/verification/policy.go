package verification

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/signatures"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// judgePolicy decides one policy over the candidates found for the digest.
func (e *Engine) judgePolicy(ctx context.Context, where signatures.Where, p *policy.Policy, tr *trust.Root, candidates []signatures.Candidate) policyVerdict {
	digest := where.Image.Digest
	var sigs []Signature
	best := outcome{reason: sigwatchv1alpha1.SignatureMissingReason}
	examined := 0
	var unreadable *signatures.Candidate
	for i := range candidates {
		c := &candidates[i]
		if c.Unreadable && unreadable == nil {
			unreadable = c // a signature or an attestation: which one it was is unknown until read
		}
		if c.Kind != signatures.KindSignature {
			continue
		}
		examined++
		o := e.judgeCandidate(c, digest, p, tr)
		sigs = append(sigs, describe(c, o, keyIDOf(p, o.authority), tr, e.opts.LogURLs))
		if examined == 1 || candidateRank(o) < candidateRank(best) {
			best = o
		}
	}
	if examined == 0 {
		return policyVerdict{result: failed(p.Name, sigwatchv1alpha1.SignatureMissingReason,
			"no signature found for %s (looked for Sigstore bundle referrers and the %s tag%s)",
			where.Image, strings.Replace(digest, ":", "-", 1)+".sig", inRepo(where))}
	}
	if !best.verified() {
		if unreadable != nil {
			return policyVerdict{result: couldNotRead(p.Name, unreadable), signatures: sigs}
		}
		return policyVerdict{result: failed(p.Name, best.reason, "%s", summarize(examined, best)), signatures: sigs}
	}
	for _, a := range p.Attestations {
		r, attSigs := e.judgeAttestation(ctx, digest, p, a, tr, candidates)
		sigs = append(sigs, attSigs...)
		if r != nil {
			if unreadable != nil {
				return policyVerdict{result: couldNotRead(p.Name, unreadable), signatures: sigs}
			}
			r.Policy = p.Name
			return policyVerdict{result: *r, signatures: sigs, undecided: r.undecided}
		}
	}
	res := PolicyResult{Policy: p.Name, Result: sigwatchv1alpha1.PolicyVerified, Reason: sigwatchv1alpha1.VerifiedReason,
		Authority: best.authority, Message: fmt.Sprintf("signed by %s, trusted by authority %s", signerOf(best.result, authorityOf(p, best.authority)), best.authority)}
	return policyVerdict{result: res, signatures: sigs}
}

// couldNotRead is the verdict when nothing was accepted and a candidate could not be read: it might
// have been the one (a registry glitch is not an unsigned image).
func couldNotRead(policyName string, c *signatures.Candidate) PolicyResult {
	return unknown(policyName, sigwatchv1alpha1.RegistryUnavailableReason, "no signature accepted, and %s could not be read: %v", c.ManifestDigest, c.Err)
}

func inRepo(w signatures.Where) string {
	if w.SignatureRepository == "" {
		return ""
	}
	return " in " + w.SignatureRepository
}

func summarize(n int, best outcome) string {
	plural := "s"
	if n == 1 {
		plural = ""
	}
	return fmt.Sprintf("%d signature%s examined, none accepted: %s", n, plural, best.message)
}

func authorityOf(p *policy.Policy, name string) *policy.Authority {
	for _, a := range p.Authorities {
		if a.Name == name {
			return a
		}
	}
	return &policy.Authority{}
}

func keyIDOf(p *policy.Policy, authority string) string { return authorityOf(p, authority).KeyID }

// judgeCandidate checks the binding, then tries every authority and keeps the outcome closest to passing.
// An authority of the other kind (keyless for a key signature, or the reverse) only counts when no
// authority of the same kind exists.
func (e *Engine) judgeCandidate(c *signatures.Candidate, digest string, p *policy.Policy, tr *trust.Root) outcome {
	if err := c.CheckBinding(digest); err != nil {
		return outcome{reason: sigwatchv1alpha1.InvalidSignatureReason, message: err.Error()}
	}
	var best *outcome
	for _, a := range p.Authorities {
		o := e.verifiers.judge(c, digest, p, a, tr)
		if o.verified() {
			return o
		}
		if best == nil || closer(o, *best) {
			b := o
			best = &b
		}
	}
	return *best
}

// closer reports whether o explains a failure better than best: an authority of the signature's kind
// (keyless for a certificate, key for a key) before one of the other kind, then the reason closest to
// passing.
func closer(o, best outcome) bool {
	if o.otherKind != best.otherKind {
		return !o.otherKind
	}
	return rank(o) < rank(best)
}

// judgeAttestation returns nil when an attestation of the required type is bound to the digest, signed
// by one of the policy's authorities, and satisfies every condition; otherwise the failing result.
func (e *Engine) judgeAttestation(ctx context.Context, digest string, p *policy.Policy, a *policy.Attestation, tr *trust.Root, candidates []signatures.Candidate) (*PolicyResult, []Signature) {
	var sigs []Signature
	var why []string
	signed := 0
	for i := range candidates {
		c := &candidates[i]
		if c.Kind != signatures.KindAttestation || c.Statement == nil || c.Statement.PredicateType != a.PredicateType {
			continue
		}
		o := e.judgeCandidate(c, digest, p, tr)
		sigs = append(sigs, describe(c, o, keyIDOf(p, o.authority), tr, e.opts.LogURLs))
		if !o.verified() {
			why = append(why, o.message)
			continue
		}
		signed++
		predicate, err := c.Predicate()
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		ok, reason := conditionsHold(ctx, a, predicate)
		if ok {
			return nil, sigs
		}
		if ctx.Err() != nil {
			// Cut off by the deadline: not evaluated is not false.
			r := unknown("", sigwatchv1alpha1.VerificationErrorReason, "attestation %s: the conditions could not be evaluated in time: %s", a.Name, reason)
			r.undecided = true
			return &r, sigs
		}
		why = append(why, reason)
	}
	switch {
	case len(sigs) == 0:
		r := failed("", sigwatchv1alpha1.AttestationMissingReason, "attestation %s: no %s attestation found", a.Name, a.PredicateType)
		return &r, sigs
	case signed == 0:
		r := failed("", sigwatchv1alpha1.AttestationMissingReason, "attestation %s: no %s attestation signed by an allowed signer: %s", a.Name, a.PredicateType, why[0])
		return &r, sigs
	default:
		r := failed("", sigwatchv1alpha1.AttestationFailedReason, "attestation %s: %s", a.Name, why[len(why)-1])
		return &r, sigs
	}
}

func conditionsHold(ctx context.Context, a *policy.Attestation, raw json.RawMessage) (bool, string) {
	var predicate any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &predicate); err != nil {
			return false, fmt.Sprintf("predicate does not parse: %v", err)
		}
	}
	for _, c := range a.Conditions {
		ok, err := c.Eval(ctx, predicate)
		if err != nil {
			return false, err.Error()
		}
		if !ok {
			return false, fmt.Sprintf("condition %q is false", c.Source)
		}
	}
	return true, ""
}
