package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// NoMatchPolicy says what an image that no policy covers gets.
type NoMatchPolicy string

const (
	// NoMatchIgnore: Verified=Unknown (NoMatchingPolicy) and Ready=True, no Warning.
	NoMatchIgnore NoMatchPolicy = "ignore"
	// NoMatchWarn: Verified=Unknown (NoMatchingPolicy), Ready=False and a Warning Event.
	NoMatchWarn NoMatchPolicy = "warn"
)

// transientReasons are the Unknown reasons that may clear up by themselves: the verdict is retried with
// backoff and the last good result is kept.
var transientReasons = map[string]bool{
	sigwatchv1alpha1.RegistryUnavailableReason:    true,
	sigwatchv1alpha1.TrustedRootUnavailableReason: true,
	sigwatchv1alpha1.VerificationErrorReason:      true,
	// A grant of RBAC takes effect without any change sigwatch watches.
	sigwatchv1alpha1.CredentialsForbiddenReason: true,
	// A transparency log outage (transparencyLog.online: Require).
	sigwatchv1alpha1.LogUnavailableReason: true,
}

// matchedPolicy is a policy that covers the image, ready or not.
type matchedPolicy struct {
	name        string
	fingerprint string
	interval    time.Duration
	mode        sigwatchv1alpha1.PolicyMode
	severity    sigwatchv1alpha1.PolicySeverity
	// errReason is set when the policy cannot be used (it is not ready): its result is Unknown with this
	// reason and errMessage.
	errReason, errMessage string
	// exemption, when set, excludes the image from the policy: it is not judged (result Exempt).
	exemption *policy.Exemption
}

// exempt marks a matched policy as excluded by an exemption: not judged, whatever its readiness, and
// judged again when the exemption changes (its fingerprint).
func (m matchedPolicy) exempt(e policy.Exemption) matchedPolicy {
	m.exemption = &e
	m.errReason, m.errMessage, m.interval = "", "", 0
	m.fingerprint = fingerprint("exempt", e.Name, e.Expires.UTC().String(), string(m.mode), string(m.severity))
	return m
}

// matchPolicy describes a policy that covers the image, from PolicyResolver.Resolve's answer. Its
// fingerprint changes with whatever the policy's verdict depends on besides the signatures: content and
// trust root, or why it is not ready. A policy whose inputs could not be read just now is a transient
// Unknown (VerificationError, retried); one that is not ready is PolicyNotReady. A policy whose
// namespaceSelector cannot be evaluated covers the image in any namespace (policy.Scope fails closed)
// and is not ready, whatever the resolver answered: that is settled by the spec alone. A positive
// override replaces its reverify interval.
func matchPolicy(p *sigwatchv1alpha1.ImageSignaturePolicy, rp *ResolvedPolicy, err error, override time.Duration) matchedPolicy {
	m := matchedPolicy{name: p.Name, mode: p.Spec.EffectiveMode(), severity: p.Spec.EffectiveSeverity()}
	if serr := policy.ScopeError(p); serr != nil {
		rp, err = nil, serr
	}
	if IsTransient(err) {
		m.fingerprint = fingerprint("transient", p.Name)
		m.errReason, m.errMessage = transientReason(err), "could not read the policy's inputs (retrying): "+err.Error()
		return m
	}
	r := readinessOf(rp, err)
	if !r.ready {
		m.fingerprint = fingerprint("not-ready", fmt.Sprint(p.Generation), r.reason, r.message)
		m.errReason, m.errMessage = sigwatchv1alpha1.PolicyNotReadyReason, fmt.Sprintf("the policy is not ready (%s): %s", r.reason, r.message)
		return m
	}
	m.interval = rp.Policy.ReverifyInterval
	if override > 0 {
		m.interval = override
	}
	// Mode and severity change how a verdict is reported, not the verdict: a change rewrites the status.
	m.fingerprint = fingerprint(rp.Policy.Hash, rp.Root.Version, string(m.mode), string(m.severity))
	return m
}

// gcDecision is the garbage collector's decision about a SignedImage: the unusedSince to record, and
// whether to delete it now. A running image is in use; a hand-made one (not managed) is never deleted; a
// managed one is deleted once nothing has run it for grace.
func gcDecision(managed, running bool, unusedSince *metav1.Time, now time.Time, grace time.Duration) (*metav1.Time, bool) {
	switch {
	case running:
		return nil, false
	case !managed:
		return nil, false // no clock: a SignedImage made by hand is never collected
	case unusedSince == nil:
		return &metav1.Time{Time: now}, false
	default:
		return unusedSince, now.Sub(unusedSince.Time) >= grace
	}
}

// verificationDelay decides when the next verification is due. A settled verdict waits for the
// jittered reverify interval. While a policy's result is transient (the registry, a trust root or a
// policy's inputs could not be read), it is retried sooner: minRetry after the first failure, then
// twice the previous delay each time, up to the interval. prev is the status before this verification.
func verificationDelay(prev sigwatchv1alpha1.SignedImageStatus, transient bool, jittered, minRetry, interval time.Duration) time.Duration {
	if !transient {
		return jittered
	}
	d := minRetry
	if anyTransient(prev.Policies) && prev.LastAttemptTime != nil && prev.NextVerificationTime != nil {
		d = 2 * prev.NextVerificationTime.Sub(prev.LastAttemptTime.Time)
	}
	return min(max(d, minRetry), interval)
}

// unknownFor is the result of a verification that could not start: every policy Unknown for reason.
func unknownFor(req verification.Request, reason, message string) *verification.Result {
	res := &verification.Result{Image: req.Image}
	for _, p := range req.Policies {
		res.Policies = append(res.Policies, verification.PolicyResult{Policy: p.Name, Result: sigwatchv1alpha1.PolicyUnknown,
			Reason: reason, Message: message})
	}
	return res
}

// anyTransient reports whether a policy's result may clear up by itself.
func anyTransient(ps []sigwatchv1alpha1.PolicyResult) bool {
	for _, p := range ps {
		if p.Result == sigwatchv1alpha1.PolicyUnknown && transientReasons[p.Reason] {
			return true
		}
	}
	return false
}

// Deferred verifications come back after a delay between minDeferral and maxDeferral, spread so that
// the SignedImages of a busy registry do not all come back at once.
const (
	minDeferral = 2 * time.Second
	maxDeferral = 5 * time.Second
)

// deferralDelay is when a deferred verification is tried again.
func deferralDelay(rnd *rand.Rand) time.Duration {
	return minDeferral + time.Duration(rnd.Int64N(int64(maxDeferral-minDeferral)+1))
}

// nextVisit is when the SignedImage is reconciled again: its next verification, or its garbage
// collection if that comes first; never sooner than a second.
func nextVisit(st sigwatchv1alpha1.SignedImageStatus, now time.Time, grace time.Duration) time.Duration {
	next := time.Duration(0)
	if st.NextVerificationTime != nil {
		next = st.NextVerificationTime.Sub(now)
	}
	if st.UnusedSince != nil {
		next = min(next, st.UnusedSince.Add(grace).Sub(now))
	}
	return max(next, time.Second)
}

// verificationDue decides whether the engine runs in this reconcile.
func verificationDue(si *sigwatchv1alpha1.SignedImage, matched []matchedPolicy, now time.Time) bool {
	st := si.Status
	switch {
	case meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.VerifiedCondition) == nil:
		return true
	case st.ObservedGeneration != si.Generation:
		return true
	case reverifyToken(si) != st.LastHandledReverify:
		return true
	case st.NextVerificationTime == nil || !now.Before(st.NextVerificationTime.Time):
		return true
	}
	prev := map[string]string{}
	for _, p := range st.Policies {
		prev[p.Name] = p.Fingerprint
	}
	// The status lists the first maxListedPolicies by name: compare those (a change to a policy past
	// them waits for the interval).
	matched = slices.SortedFunc(slices.Values(matched), func(a, b matchedPolicy) int { return strings.Compare(a.name, b.name) })
	matched = matched[:min(len(matched), maxListedPolicies)]
	if len(prev) != len(matched) {
		return true
	}
	for _, m := range matched {
		if fp, ok := prev[m.name]; !ok || fp != m.fingerprint {
			return true
		}
	}
	return false
}

// fingerprint identifies what a policy's verdict depends on besides the signatures.
func fingerprint(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "|")))
	return hex.EncodeToString(sum[:])[:16]
}

// verdict is the outcome of one verification, ready to be written.
type verdict struct {
	status  metav1.ConditionStatus
	reason  string
	message string
	// auditOnly: the verdict is not True only because of policies in Audit mode; every Enforce policy
	// verified the image. It stays Ready, and its Events are Normal.
	auditOnly bool
}

// judge combines the policies' results into the image's verdict. Exempt results are not judged; when
// every result is Exempt, the image is Unknown (Exempt). Enforce policies come first, so that the reason
// shown is an enforced one whenever an Enforce policy did not verify the image.
func judge(all []verification.PolicyResult, audit map[string]bool, res *verification.Result) verdict {
	var enforced, audited []verification.PolicyResult
	var exempt *verification.PolicyResult
	for i, p := range all {
		switch {
		case p.Result == sigwatchv1alpha1.PolicyExempt:
			if exempt == nil {
				exempt = &all[i]
			}
		case audit[p.Policy]:
			audited = append(audited, p)
		default:
			enforced = append(enforced, p)
		}
	}
	if len(enforced)+len(audited) == 0 && exempt != nil {
		return verdict{status: metav1.ConditionUnknown, reason: sigwatchv1alpha1.ExemptReason,
			message: fmt.Sprintf("policy %s: %s", exempt.Policy, exempt.Message)}
	}
	combined := verification.Result{Image: res.Image, Policies: append(enforced, audited...), Signatures: res.Signatures}
	result, reason, message := combined.Verdict()
	v := verdict{status: result.ConditionStatus(), reason: reason, message: message}
	if v.status != metav1.ConditionTrue && len(combined.Policies) > 0 {
		enf := verification.Result{Image: res.Image, Policies: enforced, Signatures: res.Signatures}
		r, _, _ := enf.Verdict()
		v.auditOnly = len(enforced) == 0 || r == sigwatchv1alpha1.PolicyVerified
	}
	if v.auditOnly {
		v.message = "Audit mode, not enforced: " + v.message
	}
	return v
}

// applyResult writes a verification result into the status. A transient failure keeps the last good
// signatures, signer and lastVerifiedTime.
func applyResult(st *sigwatchv1alpha1.SignedImageStatus, res *verification.Result, matched []matchedPolicy, now time.Time) verdict {
	byName := map[string]matchedPolicy{}
	audit := map[string]bool{}
	all := append([]verification.PolicyResult(nil), res.Policies...)
	for _, m := range matched {
		byName[m.name] = m
		audit[m.name] = m.mode == sigwatchv1alpha1.PolicyModeAudit
		switch {
		case m.exemption != nil:
			all = append(all, verification.PolicyResult{Policy: m.name, Result: sigwatchv1alpha1.PolicyExempt,
				Reason: sigwatchv1alpha1.ExemptReason, Message: m.exemption.Describe()})
		case m.errReason != "":
			all = append(all, verification.PolicyResult{Policy: m.name, Result: sigwatchv1alpha1.PolicyUnknown,
				Reason: m.errReason, Message: m.errMessage})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Policy < all[j].Policy })
	v := judge(all, audit, res)
	policies := make([]sigwatchv1alpha1.PolicyResult, 0, min(len(all), maxListedPolicies))
	for _, p := range all[:min(len(all), maxListedPolicies)] {
		m := byName[p.Policy]
		r := sigwatchv1alpha1.PolicyResult{
			Name: p.Policy, Result: p.Result, Reason: p.Reason, Message: truncate(p.Message, 1024),
			Authority: p.Authority, Fingerprint: m.fingerprint, Mode: m.mode, Severity: m.severity, Revocation: p.Revocation,
		}
		if m.exemption != nil {
			r.Exemption = m.exemption.Name
		}
		policies = append(policies, r)
	}
	st.Policies = policies
	st.LastAttemptTime = &metav1.Time{Time: now}
	if v.status == metav1.ConditionUnknown && v.reason != sigwatchv1alpha1.NoMatchingPolicyReason && v.reason != sigwatchv1alpha1.ExemptReason {
		return v // could not verify: keep the last good signatures, signer and time
	}
	st.Signatures = signatureInfos(res.Signatures)
	st.Attestations = attestationInfos(res.Signatures)
	st.Summary.Signer = ""
	switch v.status {
	case metav1.ConditionTrue:
		st.LastVerifiedTime = &metav1.Time{Time: now}
		st.Summary.Signer = signerOf(res.Signatures)
	case metav1.ConditionFalse:
		st.Summary.Signer = rejectedSignerOf(res.Signatures)
	}
	return v
}

// rejectedSignerOf is who made the first signature found and not accepted, marked as such: a clue for
// the person who reads `kubectl get si`, unverified; or, for a signature accepted and then revoked or
// found too old (verified, but it does not count), marked as that.
func rejectedSignerOf(sigs []verification.Signature) string {
	for _, s := range sigs {
		if s.Verified() || s.PredicateType != "" || (s.Subject == "" && s.KeyID == "") {
			continue
		}
		mark := " (not accepted)"
		switch s.Reason {
		case sigwatchv1alpha1.SignatureRevokedReason:
			mark = " (revoked)"
		case sigwatchv1alpha1.SignatureTooOldReason:
			mark = " (too old)"
		}
		return truncate(verification.Signer(s.Subject, s.KeyID), 1024-len(mark)) + mark
	}
	return ""
}

// maxListedSignatures is how many signatures a status lists: the first ones, verified ones first.
const maxListedSignatures = 16

func signatureInfos(sigs []verification.Signature) []sigwatchv1alpha1.SignatureInfo {
	return infos(sigs, func(s verification.Signature) bool { return s.PredicateType == "" }) // attestations are not signatures of the image
}

// attestationInfos are the attestations that satisfied a policy's required attestation, and those that
// did but were revoked or too old.
func attestationInfos(sigs []verification.Signature) []sigwatchv1alpha1.SignatureInfo {
	return infos(sigs, func(s verification.Signature) bool { return s.PredicateType != "" && s.Satisfied })
}

func infos(sigs []verification.Signature, keep func(verification.Signature) bool) []sigwatchv1alpha1.SignatureInfo {
	var out []sigwatchv1alpha1.SignatureInfo
	for _, s := range sigs {
		if !keep(s) {
			continue
		}
		if len(out) == maxListedSignatures {
			break
		}
		// Certificate claims come from the registry: cut to the API's bounds, so that the status can
		// always be written.
		info := sigwatchv1alpha1.SignatureInfo{
			Verdict: sigwatchv1alpha1.SignatureAccepted, Authority: truncate(s.Authority, 63),
			Format: s.Format, PredicateType: truncate(s.PredicateType, 256), Subject: truncate(s.Subject, 1024), Issuer: truncate(s.Issuer, 1024), KeyID: truncate(s.KeyID, 64),
			GitHubWorkflowRepository: truncate(s.GitHubWorkflowRepository, 512), GitHubWorkflowRef: truncate(s.GitHubWorkflowRef, 512),
			Claims:               cutClaims(s.Claims),
			TransparencyLogIndex: s.TransparencyLogIndex, IntegratedTime: metaTime(s.IntegratedTime),
			TimestampTime: metaTime(s.TimestampTime), SignatureDigest: truncate(s.ManifestDigest, 135), SignedDigest: s.SignedDigest,
			SignedTime: metaTime(s.SigningTime), SignedTimeSource: signedTimeSource(s.TimeSource), Revocation: s.Revocation,
		}
		switch {
		case s.Reason == sigwatchv1alpha1.SignatureRevokedReason || s.Reason == sigwatchv1alpha1.SignatureTooOldReason:
			// Accepted by its authority, then revoked or too old: who signed it is verified, and kept.
			info.Verdict, info.Reason = sigwatchv1alpha1.SignatureRejected, s.Reason
		case !s.Verified():
			info.Verdict, info.Reason, info.Authority = sigwatchv1alpha1.SignatureRejected, truncate(s.Reason, 64), ""
		default:
			info.TransparencyLog, info.Inclusion = s.TransparencyLog, inclusionInfo(s.Inclusion)
		}
		out = append(out, info)
	}
	return out
}

func signedTimeSource(source string) sigwatchv1alpha1.SignedTimeSource {
	switch source {
	case verification.TimeSourceTlog:
		return sigwatchv1alpha1.SignedTimeTransparencyLog
	case verification.TimeSourceTSA:
		return sigwatchv1alpha1.SignedTimeTimestampAuthority
	default:
		return ""
	}
}

func inclusionInfo(in *verification.Inclusion) *sigwatchv1alpha1.LogInclusion {
	if in == nil {
		return nil
	}
	return &sigwatchv1alpha1.LogInclusion{Result: in.Result, CheckedTime: &metav1.Time{Time: in.Checked}, Message: truncate(in.Message, 1024), TreeSize: in.TreeSize}
}

// inclusionCondition is the InTransparencyLog condition of the accepted signatures' live log checks:
// False when a log is inconsistent or an entry is not in its log, else Unknown when a log could not be
// read, else True; nil when no accepted signature was checked.
func inclusionCondition(sigs []verification.Signature, unexpected []verification.UnexpectedSigner, truncated bool, generation int64, now time.Time) *metav1.Condition {
	var checked []*verification.Inclusion
	for _, s := range sigs {
		if s.Verified() && s.PredicateType == "" && s.Inclusion != nil {
			checked = append(checked, s.Inclusion)
		}
	}
	if len(checked) == 0 {
		return nil
	}
	c := &metav1.Condition{Type: sigwatchv1alpha1.InTransparencyLogCondition, ObservedGeneration: generation, LastTransitionTime: metav1.Time{Time: now}}
	for _, rule := range []struct {
		result sigwatchv1alpha1.LogInclusionResult
		status metav1.ConditionStatus
		reason string
	}{
		{sigwatchv1alpha1.LogInclusionInconsistent, metav1.ConditionFalse, sigwatchv1alpha1.LogInconsistentReason},
		{sigwatchv1alpha1.LogInclusionNotInLog, metav1.ConditionFalse, sigwatchv1alpha1.EntryNotInLogReason},
		{"unexpected", metav1.ConditionFalse, sigwatchv1alpha1.UnexpectedSignerReason},
		{sigwatchv1alpha1.LogInclusionUnavailable, metav1.ConditionUnknown, sigwatchv1alpha1.LogUnavailableReason},
	} {
		if rule.result == "unexpected" {
			if len(unexpected) > 0 {
				c.Status, c.Reason, c.Message = rule.status, rule.reason, truncate(unexpectedMessage(unexpected, truncated), 32768)
				return c
			}
			continue
		}
		for _, in := range checked {
			if in.Result == rule.result {
				c.Status, c.Reason, c.Message = rule.status, rule.reason, truncate(in.Message, 32768)
				return c
			}
		}
	}
	in := checked[0]
	c.Status, c.Reason = metav1.ConditionTrue, sigwatchv1alpha1.EntryInLogReason
	c.Message = fmt.Sprintf("%s, %s", in.Message, in.Checked.UTC().Format(time.RFC3339))
	if len(checked) > 1 {
		c.Message += fmt.Sprintf(" (and %d more entries)", len(checked)-1)
	}
	return c
}

// unexpectedMessage names the entries of signers no policy trusts.
func unexpectedMessage(us []verification.UnexpectedSigner, truncated bool) string {
	var parts []string
	for _, u := range us {
		who := u.Signer
		if u.Issuer != "" {
			who += " (issuer " + u.Issuer + ")"
		}
		parts = append(parts, fmt.Sprintf("%s, entry %d (%s) of log %s at %s", who, u.Index, u.UUID, u.Log, u.IntegratedTime.UTC().Format(time.RFC3339)))
	}
	more := ""
	if truncated {
		more = " (and maybe more: sigwatch reads a bounded number of the log's entries for a digest)"
	}
	return fmt.Sprintf("the transparency log holds entries for this digest by signers no policy that covers the image trusts: %s%s",
		strings.Join(parts, "; "), more)
}

// setInclusionCondition writes the InTransparencyLog condition of a verification: as the live checks
// say, removed when a verdict was reached without any, and kept as it was when the verification could not
// decide for another reason (the last good result stands).
func setInclusionCondition(st *sigwatchv1alpha1.SignedImageStatus, res *verification.Result, v verdict, generation int64, now time.Time) {
	c := inclusionCondition(res.Signatures, res.UnexpectedSigners, res.UnexpectedSignersTruncated, generation, now)
	switch {
	case c != nil:
		meta.SetStatusCondition(&st.Conditions, *c)
	case v.status != metav1.ConditionUnknown || v.reason == sigwatchv1alpha1.NoMatchingPolicyReason || v.reason == sigwatchv1alpha1.ExemptReason:
		meta.RemoveStatusCondition(&st.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)
	}
}

// cutClaims bounds each claim to 512 characters, as the API allows.
func cutClaims(c *sigwatchv1alpha1.CertificateClaims) *sigwatchv1alpha1.CertificateClaims {
	return identity.Map(c, func(v string) string { return truncate(v, 512) })
}

func signerOf(sigs []verification.Signature) string {
	for _, s := range sigs {
		if s.Verified() && s.PredicateType == "" {
			return truncate(verification.Signer(s.Subject, s.KeyID), 1024)
		}
	}
	return ""
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return &metav1.Time{Time: *t}
}

// truncate cuts s to at most n bytes (so at most n characters), at a character boundary, marking the cut
// with "...".
//
// What it returns is printable: control and format characters (terminal escapes, bidirectional
// overrides) and invalid UTF-8 become spaces. Much of what reaches a status comes from registries and
// certificates, and is shown by kubectl to a person.
func truncate(s string, n int) string {
	s = printable(s)
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// printable replaces every rune that is not printable (nor a plain space) with a space.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (r != ' ' && !unicode.IsPrint(r)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || (r != ' ' && !unicode.IsPrint(r)) {
			return ' '
		}
		return r
	}, s)
}

// Bounds of the lists in the status (the CRD's MaxItems).
const (
	maxListedPolicies  = 64
	maxListedWorkloads = 256
	maxListedContainer = 64
)

// reverifyToken is what status.lastHandledReverify records of the reverify annotation: its value, or
// its sha256 when it is longer than the field may be.
func reverifyToken(si *sigwatchv1alpha1.SignedImage) string {
	v := si.Annotations[sigwatchv1alpha1.ReverifyAnnotation]
	if len(v) <= 256 {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// setConditions writes Verified, Ready and Stalled from a verdict; a condition whose status changes
// records now as its last transition.
func setConditions(st *sigwatchv1alpha1.SignedImageStatus, v verdict, generation int64, noMatch NoMatchPolicy, now time.Time) {
	at := metav1.Time{Time: now}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: sigwatchv1alpha1.VerifiedCondition,
		Status: v.status, Reason: v.reason, Message: truncate(v.message, 32768), ObservedGeneration: generation, LastTransitionTime: at})
	ready := metav1.Condition{Type: sigwatchv1alpha1.ReadyCondition, Status: metav1.ConditionFalse,
		Reason: v.reason, Message: truncate(v.message, 32768), ObservedGeneration: generation, LastTransitionTime: at}
	switch {
	case v.status == metav1.ConditionTrue, v.reason == sigwatchv1alpha1.ExemptReason,
		v.reason == sigwatchv1alpha1.NoMatchingPolicyReason && noMatch == NoMatchIgnore:
		ready.Status = metav1.ConditionTrue
	case v.auditOnly:
		ready.Status, ready.Reason = metav1.ConditionTrue, sigwatchv1alpha1.AuditOnlyReason
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	// Stalled says the verdict is settled and not good: the image failed a policy (or no policy covers it
	// and that is to be warned about). kstatus then reports Failed rather than InProgress; a transient
	// Unknown stays InProgress while it is retried.
	stalled := metav1.Condition{Type: sigwatchv1alpha1.StalledCondition, Status: metav1.ConditionFalse,
		Reason: v.reason, Message: truncate(v.message, 32768), ObservedGeneration: generation, LastTransitionTime: at}
	if !v.auditOnly && (v.status == metav1.ConditionFalse || v.reason == sigwatchv1alpha1.PolicyNotReadyReason ||
		(v.reason == sigwatchv1alpha1.NoMatchingPolicyReason && noMatch == NoMatchWarn)) {
		stalled.Status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, stalled)
}

// reverifyInterval is the shortest reverify interval of the policies, fallback when none has one.
func reverifyInterval(matched []matchedPolicy, fallback time.Duration) time.Duration {
	interval := fallback
	for _, m := range matched {
		if m.interval > 0 && m.interval < interval {
			interval = m.interval
		}
	}
	return interval
}

// jitter spreads an interval by ±10 %, so that many images do not re-verify in the same second.
func jitter(interval time.Duration, rnd *rand.Rand) time.Duration {
	return time.Duration(float64(interval) * (0.9 + 0.2*rnd.Float64()))
}

// transition describes a change of the Verified condition worth an Event, or "" for none.
func transition(before, after *metav1.Condition) bool {
	if after == nil {
		return false
	}
	if before == nil {
		return after.Status != metav1.ConditionUnknown || after.Reason != sigwatchv1alpha1.PendingReason
	}
	return before.Status != after.Status || before.Reason != after.Reason
}

// Reasons of the Events on SignedImages and on the pods that run them.
const (
	// EventReasonVerified (Normal): the image became verified.
	EventReasonVerified = "Verified"
	// EventReasonVerificationFailed (Warning): the image became unverified (Verified=False).
	EventReasonVerificationFailed = "VerificationFailed"
	// EventReasonVerificationUnknown (Warning): the image could not be verified (Verified=Unknown).
	EventReasonVerificationUnknown = "VerificationUnknown"
	// EventReasonAuditFailed (Normal): only policies in Audit mode failed the image (Verified=False).
	EventReasonAuditFailed = "AuditFailed"
	// EventReasonAuditUnknown (Normal): only policies in Audit mode could not decide (Verified=Unknown).
	EventReasonAuditUnknown = "AuditUnknown"
	// EventReasonExempt (Normal): an ImageSignatureExemption excludes the image from every policy that
	// covers it.
	EventReasonExempt = "Exempt"
)

// eventReasonFor is the type and reason of the Event announcing a Verified condition c; ready is the
// Ready condition beside it (Audit-only failures and exemptions are Normal: they are not enforced).
func eventReasonFor(c, ready *metav1.Condition) (eventType, reason string) {
	switch {
	case c.Reason == sigwatchv1alpha1.ExemptReason:
		return corev1.EventTypeNormal, EventReasonExempt
	case ready != nil && ready.Reason == sigwatchv1alpha1.AuditOnlyReason && c.Status == metav1.ConditionFalse:
		return corev1.EventTypeNormal, EventReasonAuditFailed
	case ready != nil && ready.Reason == sigwatchv1alpha1.AuditOnlyReason:
		return corev1.EventTypeNormal, EventReasonAuditUnknown
	}
	switch c.Status {
	case metav1.ConditionTrue:
		return corev1.EventTypeNormal, EventReasonVerified
	case metav1.ConditionFalse:
		return corev1.EventTypeWarning, EventReasonVerificationFailed
	default:
		return corev1.EventTypeWarning, EventReasonVerificationUnknown
	}
}

// auditOnly reports whether conditions say that only Audit policies did not verify the image.
func auditOnly(conditions []metav1.Condition) bool {
	c := meta.FindStatusCondition(conditions, sigwatchv1alpha1.ReadyCondition)
	return c != nil && c.Reason == sigwatchv1alpha1.AuditOnlyReason
}

// severityRank orders severities, worst first.
var severityRank = map[sigwatchv1alpha1.PolicySeverity]int{sigwatchv1alpha1.SeverityCritical: 4, sigwatchv1alpha1.SeverityHigh: 3,
	sigwatchv1alpha1.SeverityMedium: 2, sigwatchv1alpha1.SeverityLow: 1}

// verdictSeverity is the severity an Event about a bad verdict carries: the worst of the policies that did
// not verify the image, Enforce ones first; "info" when only Audit policies did not; "" when all did.
func verdictSeverity(results []sigwatchv1alpha1.PolicyResult) string {
	worst, audit := sigwatchv1alpha1.PolicySeverity(""), false
	for _, p := range results {
		if p.Result == sigwatchv1alpha1.PolicyVerified || p.Result == sigwatchv1alpha1.PolicyExempt {
			continue
		}
		if p.Mode == sigwatchv1alpha1.PolicyModeAudit {
			audit = true
			continue
		}
		sev := p.Severity
		if sev == "" {
			sev = sigwatchv1alpha1.SeverityHigh
		}
		if severityRank[sev] > severityRank[worst] {
			worst = sev
		}
	}
	switch {
	case worst != "":
		return string(worst)
	case audit:
		return "info"
	}
	return ""
}

func oneLine(reason, message string) string {
	return fmt.Sprintf("%s: %s", reason, truncate(strings.ReplaceAll(message, "\n", " "), 900))
}
