package policy

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

func TestCovers(t *testing.T) {
	teamA := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	broken := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Sometimes"}}}
	for _, tc := range []struct {
		name     string
		images   []sigwatchv1alpha1.ImagePattern
		selector *metav1.LabelSelector
		repo     string
		ns       labels.Set
		want     bool
	}{
		{"glob matches", []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**"}, nil, "ghcr.io/yourorg/app", labels.Set{}, true},
		{"glob does not match", []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**"}, nil, "ghcr.io/other/app", labels.Set{}, false},
		{"second glob matches", []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**", "nginx"}, nil, "docker.io/library/nginx", labels.Set{}, true},
		{"Docker Hub short names are normalized", []sigwatchv1alpha1.ImagePattern{"library/*"}, nil, "docker.io/library/nginx", nil, true},
		{"selector selects", []sigwatchv1alpha1.ImagePattern{"**"}, teamA, "ghcr.io/yourorg/app", labels.Set{"team": "a"}, true},
		{"selector does not select", []sigwatchv1alpha1.ImagePattern{"**"}, teamA, "ghcr.io/yourorg/app", labels.Set{"team": "b"}, false},
		{"namespace without labels is not selected", []sigwatchv1alpha1.ImagePattern{"**"}, teamA, "ghcr.io/yourorg/app", labels.Set{}, false},
		{"no namespace (CLI, policy mapping): globs only", []sigwatchv1alpha1.ImagePattern{"**"}, teamA, "ghcr.io/yourorg/app", nil, true},
		{"a selector that does not parse covers the globs, so its error is shown", []sigwatchv1alpha1.ImagePattern{"**"}, broken, "ghcr.io/yourorg/app", labels.Set{"team": "b"}, true},
		{"a glob that does not parse matches nothing", []sigwatchv1alpha1.ImagePattern{"ghcr.io/[yourorg/**"}, nil, "ghcr.io/[yourorg/app", labels.Set{}, false},
		{"no globs cover nothing", nil, nil, "ghcr.io/yourorg/app", labels.Set{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &sigwatchv1alpha1.ImageSignaturePolicy{Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: tc.images, NamespaceSelector: tc.selector}}
			NewWithT(t).Expect(Covers(p, tc.repo, tc.ns)).To(Equal(tc.want))
		})
	}
}

// TestCompiledPolicyCoversAsItsSpec: the compiled policy answers with the same function.
func TestCompiledPolicyCoversAsItsSpec(t *testing.T) {
	g := NewWithT(t)
	p := newPolicy(keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject}))
	p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	cp, err := Compile(p, Inputs{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, repo := range []string{"ghcr.io/yourorg/app", "docker.io/library/nginx", "ghcr.io/other/app"} {
		for _, ns := range []labels.Set{nil, {}, {"team": "a"}, {"team": "b"}} {
			g.Expect(cp.Covers(repo, ns)).To(Equal(Covers(p, repo, ns)), "%s in %v", repo, ns)
		}
	}
}
