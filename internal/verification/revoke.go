package verification

import (
	"fmt"
	"strings"
	"time"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/revocation"
)

// check judges an accepted signature or attestation of policy p again at now: revoked by one of the
// request's revocations, or older than its authority's maxSignatureAge by its trusted signing time.
func (e *Engine) check(p *policy.Policy, req Request, now time.Time) checkFunc {
	return func(s Signature) (*rejection, string, time.Time) {
		who := Signer(s.Subject, s.KeyID)
		note := ""
		if req.Revocations.Len() > 0 {
			hit, misses := req.Revocations.Match(RevocationSignature(s, req.Image.Digest, req.platform))
			if hit != nil {
				return &rejection{reason: sigwatchv1alpha1.SignatureRevokedReason, message: hit.Message(who), revocation: hit.Revocation}, "", time.Time{}
			}
			if len(misses) > 0 {
				note = misses[0].Note(who)
			}
		}
		a := authorityOf(p, s.Authority)
		if a.MaxSignatureAge <= 0 {
			return nil, note, time.Time{}
		}
		if s.SigningTime == nil {
			return &rejection{reason: sigwatchv1alpha1.SignatureTooOldReason, message: fmt.Sprintf(
				"signature by %s has no trusted signing time (no transparency log entry or timestamp), and authority %s counts a signature "+
					"only for %s after it (maxSignatureAge)", who, a.Name, Duration(a.MaxSignatureAge))}, note, time.Time{}
		}
		end := expiryOf(a, s)
		if !now.Before(end) {
			return &rejection{reason: sigwatchv1alpha1.SignatureTooOldReason, message: fmt.Sprintf(
				"signature by %s was made at %s (%s), more than %s ago, authority %s's maxSignatureAge: sign the image again",
				who, s.SigningTime.UTC().Format(time.RFC3339), s.TimeSource, Duration(a.MaxSignatureAge), a.Name)}, note, time.Time{}
		}
		return nil, note, end
	}
}

// RevocationSignature is what a revocation matches of a signature (s, of the digest verified, on behalf of
// the platform digest that runs when it is an image index's).
func RevocationSignature(s Signature, digest, platform string) revocation.Signature {
	out := revocation.Signature{KeyID: s.KeyID, TimeSource: s.TimeSource}
	if s.Subject != "" || s.Issuer != "" {
		out.Claims = identity.FromAPI(s.Subject, s.Issuer, s.Claims)
		out.KeyID = ""
	}
	for _, d := range []string{digest, platform, s.SignedDigest} {
		if d != "" {
			out.Digests = append(out.Digests, d)
		}
	}
	if s.SigningTime != nil {
		out.Time = *s.SigningTime
	}
	return out
}

// Duration writes d as a policy does ("720h", "90m", "1h30m").
func Duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
