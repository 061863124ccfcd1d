package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
)

// Exemption is an ImageSignatureExemption, as the controllers apply it: which images (namespace,
// repository, digest) it excludes from which policies, until when.
type Exemption struct {
	Name   string
	Reason string
	// Expires is when it stops applying (zero: never).
	Expires time.Time
	// Policies it exempts from (nil: every policy).
	Policies []string
	// Namespaces are globs over namespace names (nil: any namespace).
	Namespaces []string
	// Images are normalized repository globs (nil: any repository).
	Images []string
	// Digests are exact digests (nil: any digest).
	Digests []string
}

// ExemptionOf reads an exemption from its spec.
func ExemptionOf(x *sigwatchv1alpha1.ImageSignatureExemption) Exemption {
	e := Exemption{Name: x.Name, Reason: x.Spec.Reason, Policies: x.Spec.Policies, Namespaces: x.Spec.Namespaces,
		Digests: x.Spec.Digests}
	if x.Spec.ExpiresAt != nil {
		e.Expires = x.Spec.ExpiresAt.Time
	}
	for _, p := range x.Spec.Images {
		e.Images = append(e.Images, imageref.NormalizePattern(string(p)))
	}
	return e
}

// Expired reports whether the exemption no longer applies at now: it stops applying at the moment
// Expires is reached.
func (e Exemption) Expired(now time.Time) bool { return !e.Expires.IsZero() && !now.Before(e.Expires) }

// Exempts reports whether the exemption excludes the image (in namespace, repository and digest) from
// the policy at now. An exemption with no selector at all exempts nothing: the CRD refuses one, and an
// object that slipped past it must not exempt the whole cluster.
func (e Exemption) Exempts(namespace string, img imageref.Image, policyName string, now time.Time) bool {
	if e.Expired(now) || (e.Namespaces == nil && e.Images == nil && e.Digests == nil) {
		return false
	}
	if e.Policies != nil && !slices.Contains(e.Policies, policyName) {
		return false
	}
	if e.Namespaces != nil && !slices.ContainsFunc(e.Namespaces, func(p string) bool { return namespaceMatch(p, namespace) }) {
		return false
	}
	if e.Images != nil && !slices.ContainsFunc(e.Images, func(p string) bool { return imageref.Match(p, img.Repository) }) {
		return false
	}
	return e.Digests == nil || slices.Contains(e.Digests, img.Digest)
}

// namespaceMatch matches a namespace name against a pattern where `*` is any run of characters. Names
// hold no `/`, `?` or `[`, so path.Match's other syntax never applies (the CRD's pattern refuses them).
func namespaceMatch(pattern, namespace string) bool {
	if strings.ContainsAny(pattern, "?[\\") {
		return false
	}
	ok, err := path.Match(pattern, namespace)
	return err == nil && ok
}

// Describe says, in one line, what the exemption is, for a status message.
func (e Exemption) Describe() string {
	s := fmt.Sprintf("exempt by ImageSignatureExemption %s: %s", e.Name, e.Reason)
	if !e.Expires.IsZero() {
		s += " (until " + e.Expires.UTC().Format(time.RFC3339) + ")"
	}
	return s
}

// Exempting returns the first exemption (by name) that excludes the image from the policy at now, if
// any.
func Exempting(exemptions []Exemption, namespace string, img imageref.Image, policyName string, now time.Time) (Exemption, bool) {
	var found *Exemption
	for i := range exemptions {
		e := &exemptions[i]
		if e.Exempts(namespace, img, policyName, now) && (found == nil || e.Name < found.Name) {
			found = e
		}
	}
	if found == nil {
		return Exemption{}, false
	}
	return *found, true
}

// NextExpiry is the earliest future expiry, after now, among the exemptions that match the image for
// any of the policies (zero: none): the moment a verdict may change because an exemption stops
// applying.
func NextExpiry(exemptions []Exemption, namespace string, img imageref.Image, policies []string, now time.Time) time.Time {
	var next time.Time
	for _, e := range exemptions {
		if e.Expires.IsZero() || e.Expired(now) {
			continue
		}
		if !slices.ContainsFunc(policies, func(p string) bool { return e.Exempts(namespace, img, p, now) }) {
			continue
		}
		if next.IsZero() || e.Expires.Before(next) {
			next = e.Expires
		}
	}
	return next
}
