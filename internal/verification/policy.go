package verification

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

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
	// A signature was accepted. Every required attestation is judged over every candidate, so that
	// settle can judge again, with the revocations and the time of the day, which ones still count.
	pv := policyVerdict{signatures: sigs, accepted: true}
	if unreadable != nil {
		r := couldNotRead(p.Name, unreadable)
		pv.unreadable = &r
	}
	// Every requirement is judged, even past the deadline (each is then undecided, never met).
	for _, a := range p.Attestations {
		av, attSigs := e.judgeAttestation(ctx, digest, p, a, tr, candidates, len(pv.signatures))
		pv.signatures = append(pv.signatures, attSigs...)
		pv.attestations = append(pv.attestations, av)
		pv.undecided = pv.undecided || av.undecided
	}
	pv.result, _ = settle(p, pv, nil)
	return pv
}

// attestationVerdict is the judgment of one required attestation over every candidate.
type attestationVerdict struct {
	name string
	// satisfied are the indices, in the policy's signatures, of the accepted attestations whose
	// conditions hold.
	satisfied []int
	// failure is the result when none does.
	failure *PolicyResult
	// undecided: the deadline cut the evaluation short (see policyVerdict).
	undecided bool
}

// rejection is why an accepted signature does not count: revoked, or too old.
type rejection struct {
	reason, message, revocation string
}

// checkFunc judges an accepted signature (or attestation) again: rejected, or counting until a time (zero:
// for ever); note says something worth saying of it (an entry of a revocation that could not apply).
type checkFunc func(s Signature) (rej *rejection, note string, until time.Time)

// settle reaches a policy's result from its cached judgment: only the accepted signatures and
// attestations that check (nil: all) count. A rejected one is marked so in the signatures returned
// (with its reason, message and revocation), a copy when check is set. A verified result carries until
// when its signatures age (see PolicyResult.until).
func settle(p *policy.Policy, pv policyVerdict, check checkFunc) (PolicyResult, []Signature) {
	if !pv.accepted {
		return pv.result, pv.signatures
	}
	sigs := pv.signatures
	if check != nil {
		sigs = slices.Clone(sigs)
	}
	var notes, rejected []string
	var firstRej *rejection
	counts := func(i int) (bool, time.Time) {
		if check == nil {
			return true, time.Time{}
		}
		rej, note, until := check(sigs[i])
		if note != "" && !slices.Contains(notes, note) {
			notes = append(notes, note)
		}
		if rej == nil {
			return true, until
		}
		sigs[i].Reason, sigs[i].Message, sigs[i].Revocation = rej.reason, rej.message, rej.revocation
		rejected = append(rejected, rej.message)
		// A revocation says more than an age: it is the reason shown when both rejected signatures.
		if firstRej == nil || (rej.reason == sigwatchv1alpha1.SignatureRevokedReason && firstRej.reason != sigwatchv1alpha1.SignatureRevokedReason) {
			firstRej = rej
		}
		return false, time.Time{}
	}
	first, accepted := -1, 0
	var until expiry
	for i := range sigs {
		if sigs[i].PredicateType != "" || !sigs[i].Verified() {
			continue
		}
		accepted++
		ok, u := counts(i)
		if !ok {
			continue
		}
		if first < 0 {
			first = i
		}
		until.alternative(u)
	}
	if pv.unreadable != nil {
		u := *pv.unreadable
		u.TrustedRoot = pv.result.TrustedRoot
		pv.unreadable = &u // a copy: the cached one is shared
	}
	if first < 0 {
		if pv.unreadable != nil {
			return *pv.unreadable, sigs
		}
		r := failed(p.Name, firstRej.reason, "%s", noneCounts(accepted, "signature", firstRej))
		r.Revocation, r.TrustedRoot = firstRej.revocation, pv.result.TrustedRoot
		return r, sigs
	}
	res := PolicyResult{Policy: p.Name, Result: sigwatchv1alpha1.PolicyVerified, Reason: sigwatchv1alpha1.VerifiedReason, TrustedRoot: pv.result.TrustedRoot,
		Authority: sigs[first].Authority, Message: fmt.Sprintf("signed by %s, trusted by authority %s", Signer(sigs[first].Subject, sigs[first].KeyID), sigs[first].Authority)}
	overall, attestations := until, expiry{set: true}
	for _, av := range pv.attestations {
		if av.failure != nil {
			if pv.unreadable != nil {
				return *pv.unreadable, sigs
			}
			r := *av.failure
			r.Policy, r.TrustedRoot = p.Name, pv.result.TrustedRoot
			return r, sigs
		}
		var attUntil expiry
		firstRej = nil
		for _, i := range av.satisfied {
			if ok, u := counts(i); ok {
				attUntil.alternative(u)
			}
		}
		if !attUntil.set {
			if pv.unreadable != nil {
				return *pv.unreadable, sigs
			}
			if av.undecided {
				// Cut off by the deadline: a candidate not evaluated might have satisfied it.
				r := unknown(p.Name, sigwatchv1alpha1.VerificationErrorReason, "attestation %s: %s, and the other candidates could not be evaluated in time",
					av.name, noneCounts(len(av.satisfied), "attestation", firstRej))
				r.TrustedRoot = pv.result.TrustedRoot
				return r, sigs
			}
			r := failed(p.Name, firstRej.reason, "attestation %s: %s", av.name, noneCounts(len(av.satisfied), "attestation", firstRej))
			r.Revocation, r.TrustedRoot = firstRej.revocation, pv.result.TrustedRoot
			return r, sigs
		}
		overall.requirement(attUntil)
		attestations.requirement(attUntil)
	}
	if len(rejected) > 0 {
		notes = append(slices.Clone(rejected[:min(len(rejected), 3)]), notes...)
	}
	if len(notes) > 0 {
		res.Message += "; " + strings.Join(notes[:min(len(notes), 4)], "; ")
		res.notes = notes
	}
	res.until, res.attestationsUntil = overall.t, attestations.t
	return res, sigs
}

// expiryOf is when an accepted signature of authority a stops counting (zero: never).
func expiryOf(a *policy.Authority, s Signature) time.Time {
	if a.MaxSignatureAge <= 0 || s.SigningTime == nil {
		return time.Time{}
	}
	return s.SigningTime.Add(a.MaxSignatureAge)
}

func noneCounts(n int, what string, rej *rejection) string {
	if n == 1 {
		return rej.message
	}
	return fmt.Sprintf("%d accepted %ss, none counts: %s", n, what, rej.message)
}

// expiry is when something that holds stops holding: set once something holds, t zero for ever.
type expiry struct {
	t   time.Time
	set bool
}

// alternative adds one of several ways for it to hold (any suffices): it holds as long as the last one.
func (x *expiry) alternative(until time.Time) {
	switch {
	case !x.set:
		x.t, x.set = until, true
	case x.t.IsZero() || until.IsZero():
		x.t = time.Time{}
	case until.After(x.t):
		x.t = until
	}
}

// requirement adds something that must hold too: it holds as long as the first to stop.
func (x *expiry) requirement(y expiry) {
	if y.t.IsZero() {
		return
	}
	if x.t.IsZero() || y.t.Before(x.t) {
		x.t = y.t
	}
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

// judgeAttestation judges every attestation of the required type: bound to the digest, signed by one of
// the policy's authorities, satisfying every condition. offset is where its signatures will start in the
// policy's.
func (e *Engine) judgeAttestation(ctx context.Context, digest string, p *policy.Policy, a *policy.Attestation, tr *trust.Root, candidates []signatures.Candidate, offset int) (attestationVerdict, []Signature) {
	av := attestationVerdict{name: a.Name}
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
			sigs[len(sigs)-1].Satisfied = true
			av.satisfied = append(av.satisfied, offset+len(sigs)-1)
			continue
		}
		if ctx.Err() != nil {
			// Cut off by the deadline: not evaluated is not false.
			av.undecided = true
			if len(av.satisfied) == 0 {
				r := unknown("", sigwatchv1alpha1.VerificationErrorReason, "attestation %s: the conditions could not be evaluated in time: %s", a.Name, reason)
				av.failure = &r
			}
			return av, sigs
		}
		why = append(why, reason)
	}
	switch {
	case len(av.satisfied) > 0:
		return av, sigs
	case len(sigs) == 0:
		r := failed("", sigwatchv1alpha1.AttestationMissingReason, "attestation %s: no %s attestation found", a.Name, a.PredicateType)
		av.failure = &r
	case signed == 0:
		r := failed("", sigwatchv1alpha1.AttestationMissingReason, "attestation %s: no %s attestation signed by an allowed signer: %s", a.Name, a.PredicateType, why[0])
		av.failure = &r
	default:
		r := failed("", sigwatchv1alpha1.AttestationFailedReason, "attestation %s: %s", a.Name, why[len(why)-1])
		av.failure = &r
	}
	return av, sigs
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
