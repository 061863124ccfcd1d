// Package revocation decides whether a signature is revoked by a SignatureRevocation: by its signer (a
// keyless identity or a key), or by the image digest it is for, and, when an entry has a window, by its
// trusted signing time. The controller (on verified signatures) and `sigwatch report` (on what
// SignedImage statuses show) match with this same code.
package revocation

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
	"github.com/sigwatch/sigwatch/internal/sigconf"
)

// Signature is what a revocation matches of one signature or attestation.
type Signature struct {
	// Claims are a keyless signature's subject, issuer and certificate claims (zero for a key).
	Claims identity.Claims
	// KeyID is a key signature's key (hex sha256 of its DER form).
	KeyID string
	// Digests are the digests the signature is for: the one it signs and the one that runs.
	Digests []string
	// Time is the trusted signing time (zero: none), and TimeSource what certified it.
	Time       time.Time
	TimeSource string
}

// Keyless reports whether the signature was made with a Fulcio certificate.
func (s Signature) Keyless() bool { return s.Claims.Subject != "" || s.Claims.Issuer != "" }

// Revocation is a compiled SignatureRevocation.
type Revocation struct {
	Name, Reason string
	Generation   int64
	Entries      []Entry
}

// Entry is one compiled entry: a signer or digests, and a window.
type Entry struct {
	// Index is the entry's position in spec.signatures.
	Index         int
	keyless       *identity.Matcher
	keyID         string
	digests       []string
	after, before time.Time
}

// Windowed reports whether the entry has a window of signing time.
func (e *Entry) Windowed() bool { return !e.after.IsZero() || !e.before.IsZero() }

// FieldError is an entry that cannot be compiled: Field is its JSON path.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Compile compiles a SignatureRevocation. The entries that compile are kept; the error (a join of
// *FieldError) names every entry that does not. A revocation applies what it can: revoking less than was
// written would be the worse mistake, and Ready=False says what was left out.
func Compile(r *sigwatchv1alpha1.SignatureRevocation) (*Revocation, error) {
	out := &Revocation{Name: r.Name, Reason: r.Spec.Reason, Generation: r.Generation}
	var errs []error
	for i, s := range r.Spec.Signatures {
		field := fmt.Sprintf("spec.signatures[%d]", i)
		e, err := compileEntry(field, i, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	return out, errors.Join(errs...)
}

func compileEntry(field string, i int, s sigwatchv1alpha1.RevokedSignatures) (Entry, error) {
	e := Entry{Index: i}
	if s.SignedAfter != nil {
		e.after = s.SignedAfter.Time
	}
	if s.SignedBefore != nil {
		e.before = s.SignedBefore.Time
	}
	if !e.after.IsZero() && !e.before.IsZero() && !e.after.Before(e.before) {
		return e, &FieldError{field + ".signedAfter", errors.New("must be before signedBefore")}
	}
	kinds := 0
	if s.Keyless != nil {
		kinds++
		if identity.UsesGitHubWorkflow(*s.Keyless) {
			return e, &FieldError{field + ".keyless.githubWorkflow", errors.New("not supported in a revocation: match the same claims with claims or claimsRegExp")}
		}
		m, err := identity.Compile(*s.Keyless)
		if err != nil {
			var fe *identity.FieldError
			if errors.As(err, &fe) && fe.Field != "" {
				return e, &FieldError{field + ".keyless." + fe.Field, fe.Err}
			}
			return e, &FieldError{field + ".keyless", err}
		}
		e.keyless = m
	}
	if s.Key != nil {
		kinds++
		_, id, err := sigconf.ParsePublicKey([]byte(s.Key.PublicKey))
		if err != nil {
			return e, &FieldError{field + ".key.publicKey", err}
		}
		e.keyID = id
	}
	if len(s.Digests) > 0 {
		kinds++
		e.digests = slices.Clone(s.Digests)
	}
	if kinds != 1 {
		return e, &FieldError{field, errors.New("exactly one of keyless, key or digests must be set")}
	}
	return e, nil
}

// signer reports whether the entry's signer (or digests) matches s, whatever the time.
func (e *Entry) signer(s Signature) bool {
	switch {
	case e.keyless != nil:
		return s.Keyless() && e.keyless.Match(s.Claims) == nil
	case e.keyID != "":
		return s.KeyID != "" && s.KeyID == e.keyID
	default:
		return slices.ContainsFunc(s.Digests, func(d string) bool { return slices.Contains(e.digests, d) })
	}
}

// inWindow reports whether t (non-zero) falls in the entry's window: at or after signedAfter, before
// signedBefore.
func (e *Entry) inWindow(t time.Time) bool { return InWindow(t, e.after, e.before) }

// InWindow reports whether t is at or after after and before before (a zero bound is no bound): a
// revocation's window, and `sigwatch report --signed-after/--signed-before`.
func InWindow(t, after, before time.Time) bool {
	return (after.IsZero() || !t.Before(after)) && (before.IsZero() || t.Before(before))
}

// Window describes the entry's window ("" when it has none).
func (e *Entry) Window() string {
	switch {
	case !e.after.IsZero() && !e.before.IsZero():
		return fmt.Sprintf("signed from %s to %s", e.after.UTC().Format(time.RFC3339), e.before.UTC().Format(time.RFC3339))
	case !e.after.IsZero():
		return "signed from " + e.after.UTC().Format(time.RFC3339)
	case !e.before.IsZero():
		return "signed before " + e.before.UTC().Format(time.RFC3339)
	default:
		return ""
	}
}

// Hit is a revocation that revokes a signature.
type Hit struct {
	Revocation, Reason string
	Entry              int
	// Window describes the entry's window ("" when it has none).
	Window string
}

// Message says, in one line, that who's signature is revoked and why.
func (h *Hit) Message(who string) string {
	m := fmt.Sprintf("signature by %s is revoked by SignatureRevocation %s (spec.signatures[%d]", who, h.Revocation, h.Entry)
	if h.Window != "" {
		m += ", " + h.Window
	}
	return m + "): " + h.Reason
}

// Miss is an entry whose signer matched a signature that it did not revoke: its window needs a trusted
// signing time the signature does not have.
type Miss struct {
	Revocation string
	Entry      int
}

// Note says, in one line, why the entry did not apply to who's signature.
func (m Miss) Note(who string) string {
	return fmt.Sprintf("SignatureRevocation %s spec.signatures[%d] does not apply to the signature by %s: the entry has a window of "+
		"signing time and the signature has no trusted signing time (no transparency log entry or timestamp)", m.Revocation, m.Entry, who)
}

// Set is the revocations in force, in name order.
type Set struct {
	revs []*Revocation
}

// NewSet returns the set of revs, sorted by name.
func NewSet(revs ...*Revocation) *Set {
	s := &Set{revs: slices.Clone(revs)}
	slices.SortFunc(s.revs, func(a, b *Revocation) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// Len is the number of revocations.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.revs)
}

// Revocations are the revocations, in name order.
func (s *Set) Revocations() []*Revocation {
	if s == nil {
		return nil
	}
	return s.revs
}

// Match returns the first revocation (by name, then entry) that revokes sig, or nil, and the windowed
// entries whose signer matched but which could not apply for want of a trusted signing time.
func (s *Set) Match(sig Signature) (*Hit, []Miss) {
	if s == nil {
		return nil, nil
	}
	var misses []Miss
	for _, r := range s.revs {
		for i := range r.Entries {
			e := &r.Entries[i]
			if !e.signer(sig) {
				continue
			}
			if e.Windowed() && sig.Time.IsZero() {
				misses = append(misses, Miss{Revocation: r.Name, Entry: e.Index})
				continue
			}
			if e.Windowed() && !e.inWindow(sig.Time) {
				continue
			}
			return &Hit{Revocation: r.Name, Reason: r.Reason, Entry: e.Index, Window: e.Window()}, misses
		}
	}
	return nil, misses
}

// MaySigner reports whether an entry of the set could revoke a signature of this signer or digest at
// some time: whether the signature's image needs judging again when the set changes. It matches the
// signer only, never the window, so that an image is never left out.
func (s *Set) MaySigner(sig Signature) bool {
	if s == nil {
		return false
	}
	for _, r := range s.revs {
		for i := range r.Entries {
			if r.Entries[i].signer(sig) {
				return true
			}
		}
	}
	return false
}

// FromStatus is what a revocation matches of a signature that a SignedImage's status shows, of the
// image digest: the claims as the status keeps them (cut at its bounds), its trusted signing time.
func FromStatus(digest string, s sigwatchv1alpha1.SignatureInfo) Signature {
	out := Signature{KeyID: s.KeyID, TimeSource: string(s.SignedTimeSource), Digests: []string{digest}}
	if s.Subject != "" || s.Issuer != "" {
		out.Claims = identity.FromAPI(s.Subject, s.Issuer, s.Claims)
		out.KeyID = ""
	}
	if s.SignedDigest != "" && s.SignedDigest != digest {
		out.Digests = append(out.Digests, s.SignedDigest)
	}
	if s.SignedTime != nil {
		out.Time = s.SignedTime.Time
	}
	return out
}
