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
	// Namespaces selects the namespaces (nil: every namespace). A selector that does not parse selects
	// every namespace, for the same reason: the policy's error is then shown on the images it names.
	Namespaces labels.Selector
}

// ScopeOf returns the scope of a policy spec.
func ScopeOf(spec sigwatchv1alpha1.ImageSignaturePolicySpec) Scope {
	s := Scope{Images: make([]string, 0, len(spec.Images))}
	for _, p := range spec.Images {
		s.Images = append(s.Images, imageref.NormalizePattern(string(p)))
	}
	if spec.NamespaceSelector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(spec.NamespaceSelector); err == nil {
			s.Namespaces = sel
		}
	}
	return s
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
