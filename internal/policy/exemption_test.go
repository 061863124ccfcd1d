package policy

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestExempts(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	app := imageref.Image{Repository: "ghcr.io/org/app", Digest: digestA}
	nginx := imageref.Image{Repository: "docker.io/library/nginx", Digest: digestB}
	cases := []struct {
		name      string
		spec      sigwatchv1alpha1.ImageSignatureExemptionSpec
		namespace string
		img       imageref.Image
		policy    string
		want      bool
	}{
		{"namespace", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) { s.Namespaces = []string{"kube-system"} }), "kube-system", app, "p", true},
		{"other namespace", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) { s.Namespaces = []string{"kube-system"} }), "default", app, "p", false},
		{"namespace glob", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) { s.Namespaces = []string{"team-*"} }), "team-a", app, "p", true},
		{"namespace glob is anchored", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) { s.Namespaces = []string{"team-*"} }), "xteam-a", app, "p", false},
		{"namespace with path syntax matches nothing", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) { s.Namespaces = []string{"team-[ab]"} }), "team-a", app, "p", false},
		{"image glob", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Images = []sigwatchv1alpha1.ImagePattern{"ghcr.io/org/**"}
		}), "default", app, "p", true},
		{"image glob normalized", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Images = []sigwatchv1alpha1.ImagePattern{"nginx"}
		}), "default", nginx, "p", true},
		{"other image", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Images = []sigwatchv1alpha1.ImagePattern{"ghcr.io/org/**"}
		}), "default", nginx, "p", false},
		{"digest", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) { s.Digests = []string{digestA} }), "default", app, "p", true},
		{"other digest", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) { s.Digests = []string{digestB} }), "default", app, "p", false},
		{"all selectors must match", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Namespaces, s.Images = []string{"default"}, []sigwatchv1alpha1.ImagePattern{"docker.io/**"}
		}), "default", app, "p", false},
		{"listed policy", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Namespaces, s.Policies = []string{"default"}, []string{"p"}
		}), "default", app, "p", true},
		{"unlisted policy", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Namespaces, s.Policies = []string{"default"}, []string{"q"}
		}), "default", app, "p", false},
		{"not yet expired", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Namespaces, s.ExpiresAt = []string{"default"}, &metav1.Time{Time: now.Add(time.Second)}
		}), "default", app, "p", true},
		{"expired at that moment", spec(func(s *sigwatchv1alpha1.ImageSignatureExemptionSpec) {
			s.Namespaces, s.ExpiresAt = []string{"default"}, &metav1.Time{Time: now}
		}), "default", app, "p", false},
		{"no selector exempts nothing", spec(func(*sigwatchv1alpha1.ImageSignatureExemptionSpec) {}), "default", app, "p", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := &sigwatchv1alpha1.ImageSignatureExemption{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: c.spec}
			NewWithT(t).Expect(ExemptionOf(x).Exempts(c.namespace, c.img, c.policy, now)).To(Equal(c.want))
		})
	}
}

func spec(f func(*sigwatchv1alpha1.ImageSignatureExemptionSpec)) sigwatchv1alpha1.ImageSignatureExemptionSpec {
	s := sigwatchv1alpha1.ImageSignatureExemptionSpec{Reason: "test"}
	f(&s)
	return s
}

func TestExemptingAndNextExpiry(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	img := imageref.Image{Repository: "ghcr.io/org/app", Digest: digestA}
	xs := []Exemption{
		{Name: "b", Namespaces: []string{"default"}, Expires: now.Add(2 * time.Hour)},
		{Name: "a", Namespaces: []string{"default"}, Expires: now.Add(time.Hour), Policies: []string{"p"}},
		{Name: "gone", Namespaces: []string{"default"}, Expires: now.Add(-time.Hour)},
		{Name: "elsewhere", Namespaces: []string{"other"}, Expires: now.Add(time.Minute)},
	}
	e, ok := Exempting(xs, "default", img, "p", now)
	g.Expect(ok).To(BeTrue())
	g.Expect(e.Name).To(Equal("a"), "the first by name")
	e, ok = Exempting(xs, "default", img, "q", now)
	g.Expect(ok).To(BeTrue())
	g.Expect(e.Name).To(Equal("b"))
	_, ok = Exempting(xs, "default", img, "q", now.Add(3*time.Hour))
	g.Expect(ok).To(BeFalse(), "every exemption has expired")

	g.Expect(NextExpiry(xs, "default", img, []string{"p", "q"}, now)).To(Equal(now.Add(time.Hour)))
	g.Expect(NextExpiry(xs, "default", img, []string{"q"}, now)).To(Equal(now.Add(2 * time.Hour)))
	g.Expect(NextExpiry(xs, "default", img, []string{"q"}, now.Add(3*time.Hour)).IsZero()).To(BeTrue())
	g.Expect(Exemption{Name: "n", Reason: "INC-1", Expires: now}.Describe()).To(Equal(
		"exempt by ImageSignatureExemption n: INC-1 (until 2026-12-02T12:00:00Z)"))
}
