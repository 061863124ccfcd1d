//go:build e2e

package stack

import (
	"testing"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// TestProvidersCertificates signs as each provider with the real cosign and Fulcio, and pins the claims
// of each certificate: what Fulcio, with the public-good templates, writes for that CI's token. These are
// the claims docs/policies.md describes per CI.
func TestProvidersCertificates(t *testing.T) {
	s := StartT(t)
	reg := testregistry.Start(t, true)
	gitlab := GitLabPipeline("yourgroup/yourproject", "refs/tags/v1.2.0")
	buildkite := BuildkiteJob("yourorg", "payments", "main")
	circle := CircleCIJob("yourorg/storefront", "refs/heads/main")
	reusable := ReusableWorkflow("yourorg/yourrepo", "release.yaml", "refs/tags/v1.2.0",
		"yourorg/workflows/.github/workflows/build-and-sign.yaml@refs/tags/v1")
	cases := []struct {
		name   string
		claims Claims
		want   sigwatchv1alpha1.CertificateClaims
	}{
		{"GitHub Actions, reusable workflow", reusable, sigwatchv1alpha1.CertificateClaims{
			BuildSignerURI:                      "https://github.com/yourorg/workflows/.github/workflows/build-and-sign.yaml@refs/tags/v1",
			BuildSignerDigest:                   reusable.JobWorkflowSHA,
			RunnerEnvironment:                   "github-hosted",
			SourceRepositoryURI:                 "https://github.com/yourorg/yourrepo",
			SourceRepositoryDigest:              reusable.SHA,
			SourceRepositoryRef:                 "refs/tags/v1.2.0",
			SourceRepositoryIdentifier:          reusable.RepositoryID,
			SourceRepositoryOwnerURI:            "https://github.com/yourorg",
			SourceRepositoryOwnerIdentifier:     reusable.RepositoryOwnerID,
			BuildConfigURI:                      "https://github.com/yourorg/yourrepo/.github/workflows/release.yaml@refs/tags/v1.2.0",
			BuildConfigDigest:                   reusable.WorkflowSHA,
			BuildTrigger:                        "push",
			RunInvocationURI:                    "https://github.com/yourorg/yourrepo/actions/runs/4242/attempts/1",
			SourceRepositoryVisibilityAtSigning: "public",
		}},
		{"GitLab CI", gitlab, sigwatchv1alpha1.CertificateClaims{
			BuildSignerURI:                      "https://gitlab.com/yourgroup/yourproject//.gitlab-ci.yml@refs/tags/v1.2.0",
			BuildSignerDigest:                   gitlab.CIConfigSHA,
			RunnerEnvironment:                   "gitlab-hosted",
			SourceRepositoryURI:                 "https://gitlab.com/yourgroup/yourproject",
			SourceRepositoryDigest:              gitlab.SHA,
			SourceRepositoryRef:                 "refs/tags/v1.2.0",
			SourceRepositoryIdentifier:          gitlab.ProjectID,
			SourceRepositoryOwnerURI:            "https://gitlab.com/yourgroup",
			SourceRepositoryOwnerIdentifier:     gitlab.NamespaceID,
			BuildConfigURI:                      "https://gitlab.com/yourgroup/yourproject//.gitlab-ci.yml@refs/tags/v1.2.0",
			BuildConfigDigest:                   gitlab.CIConfigSHA,
			BuildTrigger:                        "push",
			RunInvocationURI:                    "https://gitlab.com/yourgroup/yourproject/-/jobs/5678",
			SourceRepositoryVisibilityAtSigning: "private",
		}},
		{"Buildkite", buildkite, sigwatchv1alpha1.CertificateClaims{
			RunnerEnvironment:      "buildkite-hosted",
			SourceRepositoryDigest: buildkite.BuildCommit,
			BuildTrigger:           "webhook",
			RunInvocationURI:       "https://buildkite.com/yourorg/payments/builds/7#" + buildkite.JobID,
		}},
		{"CircleCI", circle, sigwatchv1alpha1.CertificateClaims{
			BuildSignerURI: circle.CertificateIdentity(),
			// Fulcio's template writes two quote characters when the job is not an SSH rerun.
			RunnerEnvironment:   `""`,
			SourceRepositoryURI: "github.com/yourorg/storefront",
			SourceRepositoryRef: "refs/heads/main",
			BuildConfigURI:      "https://circleci.com/api/v2/pipeline/" + circle.PipelineID + "/config",
			RunInvocationURI:    "https://app.circleci.com//workflow/" + circle.WorkflowID + "/job/" + circle.JobID,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := signedClaims(t, s, reg, tc.claims)
			g.Expect(c.Subject).To(Equal(tc.claims.CertificateIdentity()))
			g.Expect(c.Issuer).To(Equal(s.OIDC.URLFor(tc.claims.Provider())))
			g.Expect(c.API(func(v string) string { return v })).To(Equal(&tc.want))
		})
	}

	t.Run("Kubernetes service account", func(t *testing.T) {
		g := NewWithT(t)
		sa := ServiceAccount("ci", "image-builder")
		c := signedClaims(t, s, reg, sa)
		g.Expect(c.Subject).To(Equal("https://kubernetes.io/namespaces/ci/serviceaccounts/image-builder"))
		g.Expect(c.Issuer).To(Equal(s.OIDC.URL + "/kubernetes"))
		g.Expect(c.API(func(v string) string { return v })).To(BeNil(), "Fulcio writes only the issuer for a service account")
	})
}

// signedClaims signs a new image as claims and returns the claims of the bundle's certificate, as
// sigwatch reads them.
func signedClaims(t *testing.T, s *Stack, reg *testregistry.Registry, claims Claims) identity.Claims {
	t.Helper()
	g := NewWithT(t)
	image := reg.PushRandomImage(t, "yourorg/"+string(claims.Provider()))
	out, err := s.Sign(t.Context(), image.String(), claims, SignOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	var b bundle.Bundle
	g.Expect(b.UnmarshalJSON(referrerBundle(t, image, cosignSignPredicate))).To(Succeed())
	vc, err := b.VerificationContent()
	g.Expect(err).NotTo(HaveOccurred())
	c, err := identity.Read(vc.Certificate())
	g.Expect(err).NotTo(HaveOccurred())
	return c
}
