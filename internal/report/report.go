// Package report summarizes the signing state of a cluster's running images from their SignedImages:
// the shares verified, failed and unknown by namespace and by policy, the signers behind what runs, the
// failing images, which images a signer signed (in a window), and what a SignatureRevocation would do
// before it is applied (with the matching code of the controller, internal/revocation). It reads what
// the statuses say and nothing else: no registry, no cluster access.
package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/revocation"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// Counts are images by verdict.
type Counts struct {
	Images   int `json:"images"`
	Verified int `json:"verified"`
	Failed   int `json:"failed"`
	Unknown  int `json:"unknown"`
	// Exempt images are Unknown (Exempt): every policy that covers them exempts them. They are counted
	// in Unknown too.
	Exempt int `json:"exempt"`
}

func (c *Counts) add(status metav1.ConditionStatus, exempt bool) {
	c.Images++
	switch status {
	case metav1.ConditionTrue:
		c.Verified++
	case metav1.ConditionFalse:
		c.Failed++
	default:
		c.Unknown++
		if exempt {
			c.Exempt++
		}
	}
}

// Share is part of Images as a percentage.
func (c Counts) Share(n int) float64 {
	if c.Images == 0 {
		return 0
	}
	return 100 * float64(n) / float64(c.Images)
}

// NamespaceCounts are a namespace's counts.
type NamespaceCounts struct {
	Namespace string `json:"namespace"`
	Counts
}

// PolicyCounts are the results of one policy over the images it covers.
type PolicyCounts struct {
	Policy string `json:"policy"`
	Counts
}

// Signer is an identity (or key) whose accepted signatures are behind running images.
type Signer struct {
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
	KeyID   string `json:"keyID,omitempty"`
	// Images are how many images it signed (with a signature accepted now).
	Images int `json:"images"`
}

// Name is how sigwatch names the signer.
func (s Signer) Name() string { return verification.Signer(s.Subject, s.KeyID) }

// Image is one running image, as a report lists it.
type Image struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Image     string   `json:"image"`
	Digest    string   `json:"digest"`
	Verified  string   `json:"verified"`
	Reason    string   `json:"reason,omitempty"`
	Workloads []string `json:"workloads,omitempty"`
	// Why is the Verified condition's message, in one line.
	Why string `json:"why,omitempty"`
	// Signatures are the signatures that matched a filter or a revocation.
	Signatures []Signature `json:"signatures,omitempty"`
	// WouldFail (revocation predictions): every accepted signature of the image is revoked.
	WouldFail bool `json:"wouldFail,omitempty"`
}

// Signature is a signature a filter or revocation matched.
type Signature struct {
	// PredicateType is set for an attestation.
	PredicateType string     `json:"predicateType,omitempty"`
	Signer        string     `json:"signer"`
	Issuer        string     `json:"issuer,omitempty"`
	SignedTime    *time.Time `json:"signedTime,omitempty"`
	TimeSource    string     `json:"timeSource,omitempty"`
	Verdict       string     `json:"verdict"`
	// Note says why a windowed entry could not apply (no trusted signing time).
	Note string `json:"note,omitempty"`
}

// Prediction is what a revocation would do if it were applied now.
type Prediction struct {
	Revocation string `json:"revocation"`
	Reason     string `json:"reason"`
	// Invalid names the entries that do not compile (they would not apply).
	Invalid string `json:"invalid,omitempty"`
	// Affected are the images with an accepted signature it revokes; WouldFail how many of them would
	// turn Verified=False (nothing else accepted counts).
	Affected  int     `json:"affected"`
	WouldFail int     `json:"wouldFail"`
	Images    []Image `json:"images"`
	// Untimed are images with a signature whose signer a windowed entry matches but that has no trusted
	// signing time: never revoked by that entry.
	Untimed []Image `json:"untimed,omitempty"`
}

// Report is the fleet's signing state.
type Report struct {
	Generated  time.Time         `json:"generated"`
	Context    string            `json:"context,omitempty"`
	Totals     Counts            `json:"totals"`
	Namespaces []NamespaceCounts `json:"namespaces"`
	Policies   []PolicyCounts    `json:"policies"`
	Signers    []Signer          `json:"signers"`
	Failing    []Image           `json:"failing"`
	// Filter describes the --signer/--signed-after/... filter, and Matches the images it matched.
	Filter  string  `json:"filter,omitempty"`
	Matches []Image `json:"matches,omitempty"`
	// Prediction is what --revocation would do.
	Prediction *Prediction `json:"prediction,omitempty"`
}

// Filter selects the images signed by a signer (subject, exactly or by regular expression, and
// optionally the issuer), in a window of trusted signing time, or of digests.
type Filter struct {
	Signer, SignerRegExp, Issuer string
	SignedAfter, SignedBefore    time.Time
	Digests                      []string
}

// Empty reports whether the filter selects nothing (no flag was given).
func (f Filter) Empty() bool {
	return f.Signer == "" && f.SignerRegExp == "" && f.Issuer == "" && f.SignedAfter.IsZero() && f.SignedBefore.IsZero() && len(f.Digests) == 0
}

// signers is the filter's signer written as a revocation entry, so that it matches signers as a
// revocation would (nil: no signer given).
func (f Filter) signers() (*revocation.Set, error) {
	if f.Signer == "" && f.SignerRegExp == "" && f.Issuer == "" {
		return nil, nil
	}
	id := sigwatchv1alpha1.Identity{Subject: f.Signer, SubjectRegExp: f.SignerRegExp, Issuer: f.Issuer}
	if id.Subject == "" && id.SubjectRegExp == "" {
		id.SubjectRegExp = ".+"
	}
	if id.Issuer == "" {
		id.IssuerRegExp = ".+"
	}
	r, err := revocation.Compile(&sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "filter"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "filter", Signatures: []sigwatchv1alpha1.RevokedSignatures{{Keyless: &id}}}})
	if err != nil {
		return nil, err
	}
	return revocation.NewSet(r), nil
}

// Options say what the report holds besides the summary.
type Options struct {
	Now     time.Time
	Context string
	// Filter, when not empty, lists the images it matches.
	Filter Filter
	// Revocation, when set, is predicted.
	Revocation *sigwatchv1alpha1.SignatureRevocation
	// MaxFailing bounds the failing images listed (0: all).
	MaxFailing int
}

// Build reports on the SignedImages.
func Build(images []sigwatchv1alpha1.SignedImage, opts Options) (*Report, error) {
	r := &Report{Generated: opts.Now, Context: opts.Context, Namespaces: []NamespaceCounts{}, Policies: []PolicyCounts{},
		Signers: []Signer{}, Failing: []Image{}}
	byNS := map[string]*NamespaceCounts{}
	byPolicy := map[string]*PolicyCounts{}
	signers := map[string]*Signer{}
	slices.SortFunc(images, func(a, b sigwatchv1alpha1.SignedImage) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	// What runs: a SignedImage that no pod has run for a while (unusedSince, waiting for garbage
	// collection) is left out of the counts, signers, failing images and filters, as the metrics leave it
	// out. A revocation would still judge it, and the prediction says so.
	inUse := make([]sigwatchv1alpha1.SignedImage, 0, len(images))
	for i := range images {
		if images[i].Status.UnusedSince == nil {
			inUse = append(inUse, images[i])
		}
	}
	for i := range inUse {
		si := &inUse[i]
		status, reason := verdictOf(si)
		exempt := reason == sigwatchv1alpha1.ExemptReason
		r.Totals.add(status, exempt)
		ns := byNS[si.Namespace]
		if ns == nil {
			ns = &NamespaceCounts{Namespace: si.Namespace}
			byNS[si.Namespace] = ns
		}
		ns.add(status, exempt)
		for _, p := range si.Status.Policies {
			pc := byPolicy[p.Name]
			if pc == nil {
				pc = &PolicyCounts{Policy: p.Name}
				byPolicy[p.Name] = pc
			}
			pc.add(p.Result.ConditionStatus(), p.Result == sigwatchv1alpha1.PolicyExempt)
		}
		seen := map[string]bool{}
		for _, s := range si.Status.Signatures {
			if s.Verdict != sigwatchv1alpha1.SignatureAccepted {
				continue
			}
			key := s.Issuer + "\x00" + s.Subject + "\x00" + s.KeyID
			if seen[key] {
				continue
			}
			seen[key] = true
			if signers[key] == nil {
				signers[key] = &Signer{Issuer: s.Issuer, Subject: s.Subject, KeyID: s.KeyID}
			}
			signers[key].Images++
		}
		if status == metav1.ConditionFalse && (opts.MaxFailing <= 0 || len(r.Failing) < opts.MaxFailing) {
			r.Failing = append(r.Failing, imageOf(si))
		}
	}
	for _, ns := range byNS {
		r.Namespaces = append(r.Namespaces, *ns)
	}
	slices.SortFunc(r.Namespaces, func(a, b NamespaceCounts) int { return strings.Compare(a.Namespace, b.Namespace) })
	for _, p := range byPolicy {
		r.Policies = append(r.Policies, *p)
	}
	slices.SortFunc(r.Policies, func(a, b PolicyCounts) int { return strings.Compare(a.Policy, b.Policy) })
	for _, s := range signers {
		r.Signers = append(r.Signers, *s)
	}
	slices.SortFunc(r.Signers, func(a, b Signer) int {
		return cmp.Or(b.Images-a.Images, strings.Compare(a.Name(), b.Name()), strings.Compare(a.Issuer, b.Issuer))
	})
	if !opts.Filter.Empty() {
		matches, err := filter(inUse, opts.Filter)
		if err != nil {
			return nil, err
		}
		r.Filter, r.Matches = opts.Filter.String(), matches
	}
	if opts.Revocation != nil {
		r.Prediction = predict(images, opts.Revocation)
	}
	return r, nil
}

func (f Filter) String() string {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, name+"="+v)
		}
	}
	add("signer", f.Signer)
	add("signer-regexp", f.SignerRegExp)
	add("issuer", f.Issuer)
	if !f.SignedAfter.IsZero() {
		add("signed-after", f.SignedAfter.UTC().Format(time.RFC3339))
	}
	if !f.SignedBefore.IsZero() {
		add("signed-before", f.SignedBefore.UTC().Format(time.RFC3339))
	}
	add("digest", strings.Join(f.Digests, ","))
	return strings.Join(parts, " ")
}

// filter lists the images with a signature or attestation (accepted, or revoked or too old) that the
// filter matches:
// its signer, its digest, its trusted signing time in the window. A signature without a trusted time is
// listed with a note when a window is given, as a revocation's window would not apply to it.
func filter(images []sigwatchv1alpha1.SignedImage, f Filter) ([]Image, error) {
	signers, err := f.signers()
	if err != nil {
		return nil, fmt.Errorf("the filter: %w", err)
	}
	windowed := !f.SignedAfter.IsZero() || !f.SignedBefore.IsZero()
	out := []Image{}
	for i := range images {
		si := &images[i]
		img := imageOf(si)
		for _, s := range append(slices.Clone(si.Status.Signatures), si.Status.Attestations...) {
			if !judged(s) {
				continue
			}
			sig := revocation.FromStatus(si.Spec.Digest, s)
			if signers != nil && !signers.MaySigner(sig) {
				continue
			}
			if len(f.Digests) > 0 && !slices.ContainsFunc(sig.Digests, func(d string) bool { return slices.Contains(f.Digests, d) }) {
				continue
			}
			switch {
			case windowed && sig.Time.IsZero():
				img.Signatures = append(img.Signatures, signatureOf(s, "no trusted signing time: not known to be in the window"))
			case !windowed || revocation.InWindow(sig.Time, f.SignedAfter, f.SignedBefore):
				img.Signatures = append(img.Signatures, signatureOf(s, ""))
			}
		}
		if len(img.Signatures) > 0 {
			out = append(out, img)
		}
	}
	return out, nil
}

// judged reports whether a status signature's signer is verified: accepted, or accepted and then revoked
// or found too old. What a rejected signature claims is unverified, and matches nothing.
func judged(s sigwatchv1alpha1.SignatureInfo) bool {
	return s.Verdict == sigwatchv1alpha1.SignatureAccepted ||
		s.Reason == sigwatchv1alpha1.SignatureRevokedReason || s.Reason == sigwatchv1alpha1.SignatureTooOldReason
}

// predict says what the revocation would do: the images with an accepted signature or attestation it
// revokes, and whether each would fail: every accepted signature revoked, or every attestation of a
// predicate type a policy requires. A signature it already revoked (the revocation is applied, and
// edited) counts as accepted.
func predict(images []sigwatchv1alpha1.SignedImage, x *sigwatchv1alpha1.SignatureRevocation) *Prediction {
	compiled, err := revocation.Compile(x)
	p := &Prediction{Revocation: x.Name, Reason: x.Spec.Reason, Images: []Image{}}
	if err != nil {
		p.Invalid = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	set := revocation.NewSet(compiled)
	for i := range images {
		si := &images[i]
		img := imageOf(si)
		var untimed []Signature
		// group -> accepted, revoked: the image's signatures ("") and each attestation predicate type.
		accepted, revoked := map[string]int{}, map[string]int{}
		for _, s := range append(slices.Clone(si.Status.Signatures), si.Status.Attestations...) {
			if s.Verdict != sigwatchv1alpha1.SignatureAccepted && s.Revocation != x.Name {
				continue
			}
			accepted[s.PredicateType]++
			who := verification.Signer(s.Subject, s.KeyID)
			hit, misses := set.Match(revocation.FromStatus(si.Spec.Digest, s))
			switch {
			case hit != nil:
				revoked[s.PredicateType]++
				img.Signatures = append(img.Signatures, signatureOf(s, hit.Message(who)))
			case len(misses) > 0:
				untimed = append(untimed, signatureOf(s, misses[0].Note(who)))
			}
		}
		if len(img.Signatures) > 0 {
			for group, n := range revoked {
				img.WouldFail = img.WouldFail || n == accepted[group]
			}
			p.Affected++
			if img.WouldFail {
				p.WouldFail++
			}
			p.Images = append(p.Images, img)
		}
		if len(untimed) > 0 {
			u := imageOf(si)
			u.Signatures = untimed
			p.Untimed = append(p.Untimed, u)
		}
	}
	return p
}

func signatureOf(s sigwatchv1alpha1.SignatureInfo, note string) Signature {
	out := Signature{Signer: verification.Signer(s.Subject, s.KeyID), Issuer: s.Issuer, TimeSource: string(s.SignedTimeSource),
		Verdict: string(s.Verdict), Note: note, PredicateType: s.PredicateType}
	if s.Reason != "" {
		out.Verdict += " (" + s.Reason + ")"
	}
	if s.SignedTime != nil {
		t := s.SignedTime.UTC()
		out.SignedTime = &t
	}
	return out
}

func imageOf(si *sigwatchv1alpha1.SignedImage) Image {
	status, reason := verdictOf(si)
	img := Image{Namespace: si.Namespace, Name: si.Name, Image: si.Spec.Image, Digest: si.Spec.Digest, Verified: string(status), Reason: reason}
	for _, w := range si.Status.Workloads {
		img.Workloads = append(img.Workloads, w.Kind+"/"+w.Name)
	}
	if c := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition); c != nil {
		img.Why = oneLine(c.Message, 200)
	}
	return img
}

func verdictOf(si *sigwatchv1alpha1.SignedImage) (metav1.ConditionStatus, string) {
	c := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
	if c == nil {
		return metav1.ConditionUnknown, sigwatchv1alpha1.PendingReason
	}
	return c.Status, c.Reason
}

// oneLine is s on one line, cut at n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
