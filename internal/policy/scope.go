package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
)

// Scope is what a policy covers: repositories (globs) in namespaces (a label selector). It is read from
// the spec alone, without compiling the policy, so that an image covered by a policy that does not compile
// is reported against that policy rather than silently left unchecked.
type Scope struct {
	// Images are the normalized globs.
	Images []string
	// Namespaces selects the namespaces (nil: every namespace).
	Namespaces labels.Selector
	// SelectorErr is why spec.namespaceSelector cannot be evaluated. Such a scope fails closed: it covers
	// its globs in every namespace (Namespaces is nil), so that their images are reported against the
	// policy, which is not ready, instead of matching no policy.
	SelectorErr error
}

// ScopeOf returns the scope of a policy spec.
func ScopeOf(spec sigwatchv1alpha1.ImageSignaturePolicySpec) Scope {
	s := Scope{Images: make([]string, 0, len(spec.Images))}
	for _, p := range spec.Images {
		s.Images = append(s.Images, imageref.NormalizePattern(string(p)))
	}
	if spec.NamespaceSelector != nil {
		s.Namespaces, s.SelectorErr = metav1.LabelSelectorAsSelector(spec.NamespaceSelector)
		if s.SelectorErr != nil {
			s.Namespaces = nil
		}
	}
	return s
}

const namespaceSelectorField = "spec.namespaceSelector"

// ScopeError is the error that makes a policy's scope fail closed (Scope.SelectorErr), as Compile
// reports it: an InvalidPolicy *Error on spec.namespaceSelector. Nil when the selector can be evaluated.
// Whoever judges an image against a policy checks it before trusting any compiled or cached form.
func ScopeError(p *sigwatchv1alpha1.ImageSignaturePolicy) error {
	if err := ScopeOf(p.Spec).SelectorErr; err != nil {
		return &Error{Policy: p.Name, Reason: sigwatchv1alpha1.InvalidPolicyReason, Field: namespaceSelectorField, Err: err}
	}
	return nil
}

// Covers reports whether the scope covers the normalized repository in a namespace with the given
// labels. Nil labels leave the namespace out: the CLI has none, and a policy change is mapped to the
// SignedImages its globs cover before their namespaces are looked at.
func (s Scope) Covers(repository string, namespaceLabels labels.Set) bool {
	if namespaceLabels != nil && s.Namespaces != nil && !s.Namespaces.Matches(namespaceLabels) {
		return false
	}
	for _, pat := range s.Images {
		if imageref.Match(pat, repository) {
			return true
		}
	}
	return false
}

// Covers reports whether the policy p covers the repository in a namespace with the given labels (see
// Scope.Covers). It is the one answer to "does this policy apply here", for the controllers, their
// watches and the CLI.
func Covers(p *sigwatchv1alpha1.ImageSignaturePolicy, repository string, namespaceLabels labels.Set) bool {
	return ScopeOf(p.Spec).Covers(repository, namespaceLabels)
}
