//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/test/cosign"
	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/stack"
)

// The migration guide (docs/migration.md) translates ClusterImagePolicies and Kyverno verifyImages rules
// into ImageSignaturePolicies. These tests take each translation as docs/examples/migration holds it and
// check that it gives, on images signed by the real cosign, the verdicts its source's documented semantics
// give: the identity or key the source allows is Verified, another one UntrustedSigner, no signature
// SignatureMissing, a missing or failing attestation AttestationMissing or AttestationFailed; and that its
// globs cover the repositories the source's patterns match. Neither policy-controller nor Kyverno runs here.

const (
	exampleRegistry = "ghcr.io"
	exampleIssuer   = "https://token.actions.githubusercontent.com"
)

// examplePublicKey matches the PEM block of an example's public key, with its indentation.
var examplePublicKey = regexp.MustCompile(`(?m)^( *)-----BEGIN PUBLIC KEY-----\n(?:.*\n)*?\s*-----END PUBLIC KEY-----$`)

// migrationExample reads a translated policy from docs/examples/migration and compiles it for this suite:
// the examples name ghcr.io and GitHub's issuer, which become the suite's registry and OIDC issuer; key,
// when given, replaces the example's public key. Nothing else in the file is changed.
func migrationExample(t *testing.T, file string, key []byte) *policy.Policy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "docs", "examples", "migration", file))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	if !strings.Contains(doc, "- "+exampleRegistry+"/") {
		t.Fatalf("%s: no image pattern under %s to point at the test registry", file, exampleRegistry)
	}
	doc = strings.ReplaceAll(doc, "- "+exampleRegistry+"/", "- "+s.reg.Host+"/")
	doc = strings.ReplaceAll(doc, "issuer: "+exampleIssuer+"\n", "issuer: "+s.stack.OIDC.URL+"\n")
	if key != nil {
		if !examplePublicKey.MatchString(doc) {
			t.Fatalf("%s: no public key to replace", file)
		}
		doc = examplePublicKey.ReplaceAllStringFunc(doc, func(block string) string {
			indent := examplePublicKey.FindStringSubmatch(block)[1]
			lines := strings.Split(strings.TrimSpace(string(key)), "\n")
			return indent + strings.Join(lines, "\n"+indent)
		})
	}
	policies, err := policy.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(policies) != 1 {
		t.Fatalf("%s: want one policy, got %d", file, len(policies))
	}
	return compile(t, policies[0].Name, policies[0].Spec)
}

type migrationCase struct {
	image  string // registry/repo@sha256:…
	reason string
}

func expectVerdicts(t *testing.T, file string, p *policy.Policy, cases []migrationCase) {
	t.Helper()
	for _, tc := range cases {
		pr := verify(t, imageOf(t, tc.image), p)
		NewWithT(t).Expect(pr.Reason).To(Equal(tc.reason), "%s on %s: %s", file, tc.image, pr.Message)
		if tc.reason == sigwatchv1alpha1.VerifiedReason {
			NewWithT(t).Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "%s on %s", file, tc.image)
		}
	}
}

// expectCoverage checks which repositories (paths under the test registry) the translated globs cover.
func expectCoverage(t *testing.T, file string, p *policy.Policy, covered, notCovered []string) {
	t.Helper()
	for _, repo := range covered {
		NewWithT(t).Expect(p.MatchesImage(s.reg.Host+"/"+repo)).To(BeTrue(), "%s should cover %s", file, repo)
	}
	for _, repo := range notCovered {
		NewWithT(t).Expect(p.MatchesImage(s.reg.Host+"/"+repo)).To(BeFalse(), "%s should not cover %s", file, repo)
	}
}

func pushAndSign(t *testing.T, ctx context.Context, ref string, claims *stack.GitHubClaims) name.Digest {
	t.Helper()
	img, err := s.push(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if claims != nil {
		if out, err := s.stack.Sign(ctx, img.String(), *claims, stack.SignOptions{}); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	return img
}

func attestProvenance(t *testing.T, ctx context.Context, img name.Digest, buildType string) {
	t.Helper()
	predicate := []byte(`{"buildDefinition":{"buildType":"` + buildType + `"},` +
		`"runDetails":{"builder":{"id":"https://github.com/actions/runner/github-hosted"}}}`)
	if out, err := s.stack.Attest(ctx, img.String(), releaseClaims, "slsaprovenance1", predicate, stack.SignOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestMigrationKeyless: an exact issuer and subject (policy-controller) and an anchored subjectRegExp over
// main and release tags (Kyverno), against the suite's release, PR and unsigned images and a release tag.
func TestMigrationKeyless(t *testing.T) {
	t.Parallel()
	tagClaims := stack.GitHubWorkflow("yourorg/app", "release.yaml", "refs/tags/v1.2.3")
	rcClaims := stack.GitHubWorkflow("yourorg/app", "release.yaml", "refs/tags/v1.2.3-rc.1")
	tagged := pushAndSign(t, t.Context(), "yourorg/app:v1.2.3", &tagClaims)
	rc := pushAndSign(t, t.Context(), "yourorg/app:v1.2.3-rc.1", &rcClaims)

	const pc = "policy-controller-keyless.sigwatch.yaml"
	p := migrationExample(t, pc, nil)
	expectVerdicts(t, pc, p, []migrationCase{
		{s.release.String(), sigwatchv1alpha1.VerifiedReason},
		{s.pr.String(), sigwatchv1alpha1.UntrustedSignerReason},
		{tagged.String(), sigwatchv1alpha1.UntrustedSignerReason}, // the CIP names main only
		{s.unsigned.String(), sigwatchv1alpha1.SignatureMissingReason},
	})
	// glob "ghcr.io/yourorg/**": any depth under yourorg, and nothing beside it.
	expectCoverage(t, pc, p, []string{"yourorg/app", "yourorg/team/app"}, []string{"yourorgs/app", "other/app"})

	const ky = "kyverno-keyless.sigwatch.yaml"
	p = migrationExample(t, ky, nil)
	expectVerdicts(t, ky, p, []migrationCase{
		{s.release.String(), sigwatchv1alpha1.VerifiedReason},
		{tagged.String(), sigwatchv1alpha1.VerifiedReason},
		{rc.String(), sigwatchv1alpha1.UntrustedSignerReason}, // the source's $ refuses the -rc.1 suffix
		{s.pr.String(), sigwatchv1alpha1.UntrustedSignerReason},
		{s.unsigned.String(), sigwatchv1alpha1.SignatureMissingReason},
	})
	// imageReferences "ghcr.io/yourorg/*": Kyverno's * crosses "/".
	expectCoverage(t, ky, p, []string{"yourorg/app", "yourorg/team/app"}, []string{"other/app"})
}

// TestMigrationKey: a public key without a transparency log, signed by cosign in its legacy .sig format
// (policy-controller reads key-signed bundles not at all).
func TestMigrationKey(t *testing.T) {
	t.Parallel()
	platform := cosign.GenerateKeyPair(t, t.TempDir())
	other := cosign.GenerateKeyPair(t, t.TempDir())
	signed := pushAndSign(t, t.Context(), "yourorg/platform/api:v1", nil)
	cosign.Sign(t, platform, signed.String(), cosign.SignOptions{})
	otherKey := pushAndSign(t, t.Context(), "yourorg/platform/worker:v1", nil)
	cosign.Sign(t, other, otherKey.String(), cosign.SignOptions{})
	unsigned := pushAndSign(t, t.Context(), "yourorg/platform/cron:v1", nil)
	cases := []migrationCase{
		{signed.String(), sigwatchv1alpha1.VerifiedReason},
		{otherKey.String(), sigwatchv1alpha1.UntrustedSignerReason},
		{unsigned.String(), sigwatchv1alpha1.SignatureMissingReason},
	}

	const pc = "policy-controller-key.sigwatch.yaml"
	p := migrationExample(t, pc, platform.PublicKeyPEM)
	expectVerdicts(t, pc, p, cases)
	// glob "ghcr.io/yourorg/platform/*": one path segment, as in sigwatch.
	expectCoverage(t, pc, p, []string{"yourorg/platform/api"}, []string{"yourorg/platform/team/api", "yourorg/app"})

	const ky = "kyverno-key.sigwatch.yaml"
	p = migrationExample(t, ky, platform.PublicKeyPEM)
	expectVerdicts(t, ky, p, cases)
	// imageReferences "ghcr.io/yourorg/platform/*": any depth.
	expectCoverage(t, ky, p, []string{"yourorg/platform/api", "yourorg/platform/team/api"}, []string{"yourorg/app"})
}

// TestMigrationSLSAProvenance: SLSA v1 provenance whose build type must be GitHub Actions' (a CUE policy in
// policy-controller, a JMESPath condition in Kyverno, one CEL condition in sigwatch).
func TestMigrationSLSAProvenance(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	noProvenance := pushAndSign(t, ctx, "yourorg/app:no-provenance", &releaseClaims)
	otherBuild := pushAndSign(t, ctx, "yourorg/app:other-build", &releaseClaims)
	attestProvenance(t, ctx, otherBuild, "https://example.com/other-build/v1")
	// Attested, not signed: policy-controller and Kyverno admit it (their attestation checks stand alone);
	// sigwatch requires the image signature first. The guide lists this difference.
	attestedOnly := pushAndSign(t, ctx, "yourorg/app:attested-only", nil)
	attestProvenance(t, ctx, attestedOnly, "https://actions.github.io/buildtypes/workflow/v1")

	for _, file := range []string{"policy-controller-slsa.sigwatch.yaml", "kyverno-slsa.sigwatch.yaml"} {
		p := migrationExample(t, file, nil)
		expectVerdicts(t, file, p, []migrationCase{
			{s.release.String(), sigwatchv1alpha1.VerifiedReason}, // signed and attested by the release workflow
			{noProvenance.String(), sigwatchv1alpha1.AttestationMissingReason},
			{otherBuild.String(), sigwatchv1alpha1.AttestationFailedReason},
			{s.pr.String(), sigwatchv1alpha1.UntrustedSignerReason},
			{s.unsigned.String(), sigwatchv1alpha1.SignatureMissingReason},
			{attestedOnly.String(), sigwatchv1alpha1.SignatureMissingReason},
		})
	}
}
