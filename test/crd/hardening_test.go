//go:build integration

package crd

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/imageref"
)

// TestSignedImageAcceptsWhatTheParserGives: every repository that imageref returns for a running image,
// an IPv6 registry with a port included, can be written into a SignedImage (finding 4 of issue 10: an
// IPv6 registry parsed, but its SignedImage was refused, so the image was never verified).
func TestSignedImageAcceptsWhatTheParserGives(t *testing.T) {
	ns := newNamespace(t, "si-parser")
	for i, spelling := range []string{
		"[::1]:5000/team/app",
		"[::1]/team/app",
		"[0:0:0:0:0:0:0:1]:5000/team/app",
		"[FE80::A]:5000/team/app:v1",
		"[::ffff:102:304]:5000/team/app",
		"[2001:db8::1]:443/team/app",
		"GHCR.IO/yourorg/app",
		"ghcr.io:443/yourorg/app",
		"ghcr.io./yourorg/app",
		"registry-1.docker.io/nginx",
		"index.docker.io:443/yourorg/app",
		"LocalHost:5000/app",
		"127.0.0.1:5000/team/app",
		"registry.example.com/a/b__c/d-e.f",
		"ghcr.io:4443/yourorg/app",
	} {
		t.Run(spelling, func(t *testing.T) {
			g := NewWithT(t)
			repo, err := imageref.NormalizeRepository(spelling)
			g.Expect(err).NotTo(HaveOccurred())
			si := signedImage(ns, fmt.Sprintf("parsed-%d", i), repo, digestA)
			g.Expect(env.Client.Create(context.Background(), si)).To(Succeed(), "spec.image %q", repo)
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), si) })
		})
	}
	g := NewWithT(t)
	si := signedImage(ns, "ipv6", "[::1]:5000/team/app", digestA)
	g.Expect(env.Client.Create(context.Background(), si)).To(Succeed(), "an IPv6 registry with a port")
	g.Expect(si.Spec.Image).To(Equal("[::1]:5000/team/app"))
}

// TestSignedImageRefusesOtherSpellings: spec.image is the canonical repository, so a SignedImage made
// by hand cannot name a registry in a spelling that no running image is reported under.
func TestSignedImageRefusesOtherSpellings(t *testing.T) {
	ns := newNamespace(t, "si-spellings")
	for _, image := range []string{
		"GHCR.IO/yourorg/app",
		"ghcr.io./yourorg/app",
		"ghcr.io:443/yourorg/app",
		"[::1]:443/team/app",
		"index.docker.io/library/nginx",
		"registry-1.docker.io/library/nginx",
		"[FE80::A]:5000/team/app",
		"[::1/team/app",
		"-ghcr.io/yourorg/app",
		"ghcr_io.example/yourorg/app",
	} {
		t.Run(image, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(context.Background(), signedImage(ns, "spelled", image, digestA))
			g.Expect(err).To(HaveOccurred(), "the API server accepted spec.image %q", image)
			g.Expect(err.Error()).To(ContainSubstring("spec.image"))
		})
	}
}

// TestPolicyRepositoriesAcceptIPv6: a policy can name an IPv6 registry, in its globs and as its
// signature repository; a glob with an upper-case path (which could never match) is refused.
func TestPolicyRepositoriesAcceptIPv6(t *testing.T) {
	g := NewWithT(t)
	u := policy(t, "ipv6", `images: ["[::1]:5000/team/**", "[::1]:*/**", "GHCR.IO/yourorg/**"]
signatureRepository: "[::1]:5000/signatures"
authorities:`+keylessAuthority)
	g.Expect(env.Client.Create(context.Background(), u)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })

	for name, tc := range map[string]struct{ spec, field string }{
		"upper-case path in a glob": {`images: ["ghcr.io/YourOrg/**"]
authorities:` + keylessAuthority, "spec.images[0]"},
		"upper-case short name": {`images: ["Nginx"]
authorities:` + keylessAuthority, "spec.images[0]"},
		"unclosed IPv6 signature repository": {`images: ["ghcr.io/yourorg/**"]
signatureRepository: "[::1:5000/signatures"
authorities:` + keylessAuthority, "spec.signatureRepository"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(context.Background(), policy(t, "bad-repository", tc.spec))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.field))
		})
	}
}

// TestNamespaceSelectorIsValidated: the API server refuses a namespaceSelector that cannot be compiled
// (finding 5 of issue 10), rather than leaving it to make the policy InvalidPolicy.
func TestNamespaceSelectorIsValidated(t *testing.T) {
	for name, tc := range map[string]struct{ selector, want string }{
		"invalid operator":         {`{matchExpressions: [{key: team, operator: Sometimes, values: [a]}]}`, "operator"},
		"operator in lower case":   {`{matchExpressions: [{key: team, operator: in, values: [a]}]}`, "operator"},
		"In without values":        {`{matchExpressions: [{key: team, operator: In}]}`, "In and NotIn"},
		"NotIn with empty values":  {`{matchExpressions: [{key: team, operator: NotIn, values: []}]}`, "In and NotIn"},
		"Exists with values":       {`{matchExpressions: [{key: team, operator: Exists, values: [a]}]}`, "Exists and DoesNotExist"},
		"DoesNotExist with values": {`{matchExpressions: [{key: team, operator: DoesNotExist, values: [a]}]}`, "Exists and DoesNotExist"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			u := policy(t, "bad-selector", `images: [ghcr.io/yourorg/**]
namespaceSelector: `+tc.selector+`
authorities:`+keylessAuthority)
			err := env.Client.Create(context.Background(), u)
			if err == nil {
				_ = env.Client.Delete(context.Background(), u)
			}
			g.Expect(err).To(HaveOccurred(), "the API server accepted a broken namespaceSelector")
			g.Expect(err.Error()).To(ContainSubstring("spec.namespaceSelector"))
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
	i := 0
	for name, selector := range map[string]string{
		"every operator":                   `{matchLabels: {env: prod}, matchExpressions: [{key: team, operator: In, values: [a, b]}, {key: tier, operator: NotIn, values: [x]}, {key: owner, operator: Exists}, {key: legacy, operator: DoesNotExist}]}`,
		"Exists with an empty values list": `{matchExpressions: [{key: owner, operator: Exists, values: []}]}`,
		"empty selector":                   `{}`,
	} {
		i++
		t.Run("valid: "+name, func(t *testing.T) {
			g := NewWithT(t)
			u := policy(t, fmt.Sprintf("good-selector-%d", i), `images: [ghcr.io/yourorg/**]
namespaceSelector: `+selector+`
authorities:`+keylessAuthority)
			g.Expect(env.Client.Create(context.Background(), u)).To(Succeed())
			g.Expect(env.Client.Delete(context.Background(), u)).To(Succeed())
		})
	}
}
