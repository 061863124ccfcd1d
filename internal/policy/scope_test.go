package policy

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
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

// TestScopeNormalizesSpellings: a policy's globs and the running images are normalized by the same
// function, so that no spelling of a registry escapes a policy (finding 4 of issue 10).
func TestScopeNormalizesSpellings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pattern sigwatchv1alpha1.ImagePattern
		image   string // as a pod or a container status spells it
		want    bool
	}{
		{"upper-case host in the image", "ghcr.io/yourorg/**", "GHCR.IO/yourorg/app", true},
		{"default port in the image", "ghcr.io/yourorg/**", "ghcr.io:443/yourorg/app", true},
		{"trailing dot in the image", "ghcr.io/yourorg/**", "ghcr.io./yourorg/app", true},
		{"Docker Hub endpoint in the image", "docker.io/library/nginx", "registry-1.docker.io/library/nginx", true},
		{"Docker Hub endpoint, short path", "docker.io/library/nginx", "registry-1.docker.io/nginx", true},
		{"index.docker.io in the image", "docker.io/library/nginx", "index.docker.io/nginx", true},
		{"upper-case host in the glob", "GHCR.IO/yourorg/**", "ghcr.io/yourorg/app", true},
		{"default port in the glob", "ghcr.io:443/yourorg/**", "ghcr.io/yourorg/app", true},
		{"trailing dot in the glob", "ghcr.io./yourorg/**", "ghcr.io/yourorg/app", true},
		{"implicit library/ in the glob", "docker.io/nginx", "nginx", true},
		{"Docker Hub endpoint in the glob", "registry-1.docker.io/nginx", "docker.io/library/nginx", true},
		{"IPv6 registry", "[::1]:5000/team/**", "[::1]:5000/team/app", true},
		{"a longer host is another registry", "ghcr.io/yourorg/**", "ghcr.io.evil.com/yourorg/x", false},
		{"another port is another registry", "ghcr.io/yourorg/**", "ghcr.io:4443/yourorg/x", false},
		{"a longer Docker Hub host is another registry", "docker.io/library/nginx", "docker.io.evil/library/nginx", false},
		{"another IPv6 host", "[::1]:5000/team/**", "[::2]:5000/team/app", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			repo, err := imageref.NormalizeRepository(tc.image)
			g.Expect(err).NotTo(HaveOccurred())
			p := newPolicy(keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject}))
			p.Spec.Images = []sigwatchv1alpha1.ImagePattern{tc.pattern}
			g.Expect(Covers(p, repo, labels.Set{})).To(Equal(tc.want), "spec scope, repository %q", repo)
			cp, err := Compile(p, Inputs{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cp.MatchesImage(repo)).To(Equal(tc.want), "compiled policy, repository %q", repo)
		})
	}
}

// TestCompileRejectsUpperCasePaths: repository paths are lower case (the distribution spec), so a glob
// with an upper-case path would match nothing; the policy says so instead of covering nothing silently.
func TestCompileRejectsUpperCasePaths(t *testing.T) {
	for pattern, wantErr := range map[sigwatchv1alpha1.ImagePattern]bool{
		"ghcr.io/YourOrg/**": true,
		"YourOrg/app":        true,
		"Nginx":              true,
		"GHCR.IO/yourorg/**": false, // the host is case-insensitive
		"[::1]:5000/team/**": false,
	} {
		t.Run(string(pattern), func(t *testing.T) {
			g := NewWithT(t)
			p := newPolicy(keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject}))
			p.Spec.Images = []sigwatchv1alpha1.ImagePattern{"ghcr.io/other/**", pattern}
			_, err := Compile(p, Inputs{})
			if !wantErr {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var perr *Error
			g.Expect(errors.As(err, &perr)).To(BeTrue())
			g.Expect(perr.Reason).To(Equal(sigwatchv1alpha1.InvalidPolicyReason))
			g.Expect(perr.Field).To(Equal("spec.images[1]"))
			g.Expect(perr.Err).To(MatchError(ContainSubstring("lower case")))
		})
	}
}

// TestBrokenSelectorCoversItsImages: a namespaceSelector that does not compile fails closed (finding 5 of
// issue 10): the policy is InvalidPolicy, and it covers the images its globs match in every namespace,
// so that they are reported against the policy that is not ready, never left as "no policy matches".
func TestBrokenSelectorCoversItsImages(t *testing.T) {
	req := func(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	for name, sel := range map[string]*metav1.LabelSelector{
		"invalid operator":             req("team", "Sometimes", "a"),
		"operator in lower case":       req("team", "in", "a"),
		"In without values":            req("team", metav1.LabelSelectorOpIn),
		"NotIn without values":         req("team", metav1.LabelSelectorOpNotIn),
		"Exists with values":           req("team", metav1.LabelSelectorOpExists, "a"),
		"DoesNotExist with values":     req("team", metav1.LabelSelectorOpDoesNotExist, "a"),
		"invalid key":                  req("team a", metav1.LabelSelectorOpIn, "a"),
		"empty key":                    req("", metav1.LabelSelectorOpExists),
		"invalid value":                req("team", metav1.LabelSelectorOpIn, "a b"),
		"invalid matchLabels value":    {MatchLabels: map[string]string{"team": "a/b"}},
		"one good, one bad expression": {MatchLabels: map[string]string{"team": "a"}, MatchExpressions: req("env", "Sometimes").MatchExpressions},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p := newPolicy(keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject}))
			p.Spec.NamespaceSelector = sel
			_, err := Compile(p, Inputs{})
			var perr *Error
			g.Expect(errors.As(err, &perr)).To(BeTrue(), "the policy does not compile")
			g.Expect(perr.Reason).To(Equal(sigwatchv1alpha1.InvalidPolicyReason))
			g.Expect(perr.Field).To(Equal("spec.namespaceSelector"))

			scope := ScopeOf(p.Spec)
			g.Expect(scope.SelectorErr).To(HaveOccurred(), "the scope knows its selector is broken")
			g.Expect(ScopeError(p)).To(Equal(err), "the same error as Compile's")
			for _, ns := range []labels.Set{nil, {}, {"team": "a"}, {"team": "b", "env": "prod"}} {
				g.Expect(Covers(p, "ghcr.io/yourorg/app", ns)).To(BeTrue(), "an image in the globs, namespace %v", ns)
				g.Expect(Covers(p, "ghcr.io/other/app", ns)).To(BeFalse(), "an image outside the globs, namespace %v", ns)
			}
		})
	}
}
