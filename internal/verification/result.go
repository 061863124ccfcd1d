package verification

import (
	"fmt"
	"slices"
	"strings"
	"time"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
)

// Time sources that can certify a certificate's validity.
const (
	TimeSourceTlog = "transparency log"
	TimeSourceTSA  = "timestamp authority"
)

// Signature describes one signature or attestation that was examined.
type Signature struct {
	Format                   sigwatchv1alpha1.SignatureFormat `json:"format"`
	PredicateType            string                           `json:"predicateType,omitempty"` // attestations only
	Subject                  string                           `json:"subject,omitempty"`
	Issuer                   string                           `json:"issuer,omitempty"`
	KeyID                    string                           `json:"keyID,omitempty"`
	GitHubWorkflowRepository string                           `json:"githubWorkflowRepository,omitempty"`
	GitHubWorkflowRef        string                           `json:"githubWorkflowRef,omitempty"`
	// Claims are the certificate's Fulcio claims (verified only for a verified signature).
	Claims               *sigwatchv1alpha1.CertificateClaims `json:"claims,omitempty"`
	TransparencyLogIndex *int64                              `json:"transparencyLogIndex,omitempty"`
	IntegratedTime       *time.Time                          `json:"integratedTime,omitempty"`
	TimestampTime        *time.Time                          `json:"timestampTime,omitempty"`
	ManifestDigest       string                              `json:"signatureDigest,omitempty"`
	// SignedDigest is the digest the signature is over when it is not the image's: the image index, pinned
	// in the pod spec, that lists the running platform manifest.
	SignedDigest string `json:"signedDigest,omitempty"`
	// SigningTime is the trusted signing time: the earliest time that a transparency log (its signed
	// entry timestamp) or a timestamp authority of the trust root certified, never the signature's own
	// claim; nil when there is none. TimeSource says what certified it (TimeSourceTlog or TimeSourceTSA).
	SigningTime *time.Time `json:"signingTime,omitempty"`
	TimeSource  string     `json:"timeSource,omitempty"`
	// Revocation names the SignatureRevocation that revoked the signature (Reason SignatureRevoked).
	Revocation string `json:"revocation,omitempty"`
	// Authority is the authority it satisfied; Reason and Message say why not when it satisfied none.
	Authority string `json:"authority,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
	// TransparencyLog names the TransparencyLog of the accepted entry (a Rekor v2 log the trust root
	// lists), and Inclusion is its live check (policies whose transparencyLog.online is not Off).
	TransparencyLog string     `json:"transparencyLog,omitempty"`
	Inclusion       *Inclusion `json:"inclusion,omitempty"`
	// entry is the accepted entry, for the live check.
	entry *logEntry
	// Satisfied: an attestation whose conditions held for a required attestation of the policy.
	Satisfied bool `json:"satisfied,omitempty"`
}

// Inclusion is the live check of a signature's entry in its transparency log.
type Inclusion struct {
	Result sigwatchv1alpha1.LogInclusionResult `json:"result"`
	// Origin is the log's checkpoint origin; Index the entry's; TreeSize the tree it was proven in.
	Origin   string    `json:"origin"`
	Index    int64     `json:"index"`
	TreeSize int64     `json:"treeSize,omitempty"`
	Checked  time.Time `json:"checked"`
	Message  string    `json:"message,omitempty"`
}

// Verified reports whether the signature satisfied an authority.
func (s Signature) Verified() bool { return s.Reason == "" }

// PolicyResult is the verdict of one policy.
type PolicyResult struct {
	Policy    string                            `json:"policy"`
	Result    sigwatchv1alpha1.PolicyResultType `json:"result"`
	Reason    string                            `json:"reason"`
	Message   string                            `json:"message"`
	Authority string                            `json:"authority,omitempty"`
	// Revocation names the SignatureRevocation that revoked what the policy accepted (Reason
	// SignatureRevoked).
	Revocation string `json:"revocation,omitempty"`
	// TrustedRoot says which trust root judged (for example "public-good (embedded snapshot)").
	TrustedRoot string `json:"trustedRoot,omitempty"`
	// undecided: reached for a reason other than the content (see policyVerdict); never cached.
	undecided bool
	// notes are what a verified result says besides who signed: signatures revoked or too old, and
	// revocations that could not apply; the image's verdict repeats them.
	notes []string
	// until is when a verified result stops holding because its signatures grow older than their
	// authorities' maxSignatureAge (zero: never); attestationsUntil is when its required attestations do.
	until, attestationsUntil time.Time
}

// Result is the verdict on one image digest.
type Result struct {
	Image      imageref.Image `json:"image"`
	Policies   []PolicyResult `json:"policies"`
	Signatures []Signature    `json:"signatures"`
	// Time is when the verdict was reached (for a cached verdict: when it was checked to still hold).
	Time time.Time `json:"time"`
	// Cached reports that no signature was fetched or judged: the signature set, policies and trust
	// roots were unchanged since the cached verdict.
	Cached bool `json:"cached"`
	// Deferred, when set, says why the verification did not run (a registry host it reads had all the
	// verifications in flight it may have): there is no verdict, and the caller asks again soon.
	Deferred string `json:"deferred,omitempty"`
	// UnexpectedSigners are the entries Rekor v1 logs hold for the digest by signers no policy trusts.
	UnexpectedSigners []UnexpectedSigner `json:"unexpectedSigners,omitempty"`
	// UnexpectedSignersTruncated: the log held more entries than sigwatch reads, or there were more such
	// signers than are listed.
	UnexpectedSignersTruncated bool `json:"unexpectedSignersTruncated,omitempty"`
	// ChangesAt, when set, is the first moment a verified policy's result stops holding by itself: its
	// newest accepted signature grows older than maxSignatureAge. The image is judged again then.
	ChangesAt *time.Time `json:"changesAt,omitempty"`
}

// Verdict summarizes the policies: Failed if any failed, else Unknown if any is unknown, else Verified.
// The reason and message are the first failing (or unknown) policy's. No policy: Unknown
// (NoMatchingPolicy). Deferred: Unknown (VerificationError), with why.
func (r *Result) Verdict() (sigwatchv1alpha1.PolicyResultType, string, string) {
	if r.Deferred != "" {
		return sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.VerificationErrorReason, r.Deferred
	}
	if len(r.Policies) == 0 {
		return sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.NoMatchingPolicyReason, "no ImageSignaturePolicy covers " + r.Image.Repository
	}
	for _, want := range []sigwatchv1alpha1.PolicyResultType{sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.PolicyUnknown} {
		for _, p := range r.Policies {
			if p.Result == want {
				return want, p.Reason, fmt.Sprintf("policy %s: %s", p.Policy, p.Message)
			}
		}
	}
	return sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason, verifiedMessage(r)
}

func verifiedMessage(r *Result) string {
	msg := "verified"
	for _, s := range r.Signatures {
		if s.Verified() && s.PredicateType == "" {
			msg = fmt.Sprintf("signed by %s (%s)", Signer(s.Subject, s.KeyID), s.Format)
			break
		}
	}
	var notes []string
	for _, p := range r.Policies {
		for _, n := range p.notes {
			if !slices.Contains(notes, n) {
				notes = append(notes, n)
			}
		}
	}
	if len(notes) > 0 {
		msg += "; " + strings.Join(notes[:min(len(notes), 3)], "; ")
	}
	return msg
}

func unknown(policy, reason, format string, args ...any) PolicyResult {
	return PolicyResult{Policy: policy, Result: sigwatchv1alpha1.PolicyUnknown, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func failed(policy, reason, format string, args ...any) PolicyResult {
	return PolicyResult{Policy: policy, Result: sigwatchv1alpha1.PolicyFailed, Reason: reason, Message: fmt.Sprintf(format, args...)}
}
