//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/stack"
)

// The policies per CI of docs/policies.md (docs/examples/ci), each against a signature its CI's release
// build makes and the near misses that must not pass: real certificates from the stack's Fulcio, which
// trusts an issuer of each CI's shape with the public-good Fulcio's templates for it.

const sharedWorkflow = "yourorg/workflows/.github/workflows/build-and-sign.yaml@refs/tags/v1"

// ciSigner is one signature made for a policy's images, and the verdict the policy gives it.
type ciSigner struct {
	name   string
	claims stack.Claims
	// says is in the message of a signer the policy refuses (UntrustedSigner); "" : Verified.
	says string
}

type ciExample struct {
	file     string
	provider stack.Provider
	// repo is where the signed images are pushed, under the example's image pattern.
	repo    string
	signers []ciSigner
}

func ciExamples() []ciExample {
	release := stack.ReusableWorkflow("yourorg/yourrepo", "release.yaml", "refs/tags/v1.2.0", sharedWorkflow)
	recreatedRepo, recreatedOrg, manual := release, release, release
	recreatedRepo.RepositoryID = "1"
	recreatedOrg.RepositoryOwnerID = "2"
	manual.EventName = "workflow_dispatch"

	gitlab := stack.GitLabPipeline("yourgroup/yourproject", "refs/tags/v1.2.0")
	recreatedProject, recreatedGroup, selfHosted := gitlab, gitlab, gitlab
	recreatedProject.ProjectID = "1"
	recreatedGroup.NamespaceID = "2"
	selfHosted.RunnerEnvironment = "self-hosted"

	buildkite := stack.BuildkiteJob("yourorg", "payments", "main")
	agent, fromUI := buildkite, buildkite
	agent.RunnerEnvironment = "self-hosted"
	fromUI.BuildSource = "ui"

	return []ciExample{
		{"github-reusable-workflow.yaml", stack.GitHubActions, "yourorg/yourrepo/web", []ciSigner{
			{"the release tag's build, through the shared workflow", release, ""},
			{"another repository calling the shared workflow", stack.ReusableWorkflow("yourorg/other", "release.yaml", "refs/tags/v1.2.0", sharedWorkflow), "sourceRepositoryURI must be"},
			{"the repository deleted and created again under its name", recreatedRepo, "sourceRepositoryIdentifier must be"},
			{"the organisation deleted and created again under its name", recreatedOrg, "sourceRepositoryOwnerIdentifier must be"},
			{"a branch build", stack.ReusableWorkflow("yourorg/yourrepo", "release.yaml", "refs/heads/main", sharedWorkflow), "sourceRepositoryRef must match"},
			{"a manual run", manual, "buildTrigger must be"},
			{"the caller's own workflow, not the shared one", stack.GitHubWorkflow("yourorg/yourrepo", "release.yaml", "refs/tags/v1.2.0"), "subject must be"},
		}},
		{"gitlab.yaml", stack.GitLabCI, "yourgroup/yourproject/api", []ciSigner{
			{"the release tag's pipeline", gitlab, ""},
			{"a branch pipeline", stack.GitLabPipeline("yourgroup/yourproject", "refs/heads/main"), "subject must match"},
			{"the project deleted and created again under its path", recreatedProject, "sourceRepositoryIdentifier must be"},
			{"the group deleted and created again under its path", recreatedGroup, "sourceRepositoryOwnerIdentifier must be"},
			{"a self-hosted runner", selfHosted, "runnerEnvironment must be"},
		}},
		{"buildkite.yaml", stack.Buildkite, "payments/api", []ciSigner{
			{"the pipeline's build", buildkite, ""},
			{"another pipeline", stack.BuildkiteJob("yourorg", "payments-sandbox", "main"), "subject must be"},
			{"a self-hosted agent", agent, "runnerEnvironment must be"},
			{"a build started from the UI", fromUI, "buildTrigger must be"},
		}},
		{"circleci.yaml", stack.CircleCI, "storefront/web", []ciSigner{
			{"a build of main", stack.CircleCIJob("yourorg/storefront", "refs/heads/main"), ""},
			{"a build of another branch", stack.CircleCIJob("yourorg/storefront", "refs/heads/feature"), "sourceRepositoryRef must be"},
			{"another project", stack.CircleCIJob("yourorg/other", "refs/heads/main"), "subject must be"},
		}},
		{"kubernetes.yaml", stack.Kubernetes, "platform/builder", []ciSigner{
			{"the image-builder service account", stack.ServiceAccount("ci", "image-builder"), ""},
			{"another service account of the namespace", stack.ServiceAccount("ci", "default"), "subject must be"},
			{"the same service account in another namespace", stack.ServiceAccount("dev", "image-builder"), "subject must be"},
		}},
	}
}

var (
	ciOnce   sync.Once
	ciImages map[string]name.Digest // by example file and signer name
	ciErr    error
)

// ciSigned pushes and signs one image per signer of every example, once for the suite.
func ciSigned(t *testing.T) map[string]name.Digest {
	t.Helper()
	ciOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		ciImages = map[string]name.Digest{}
		for _, ex := range ciExamples() {
			for _, sg := range ex.signers {
				img, err := s.push(ctx, ex.repo)
				if err != nil {
					ciErr = err
					return
				}
				if out, err := s.stack.Sign(ctx, img.String(), sg.claims, stack.SignOptions{}); err != nil {
					ciErr = fmt.Errorf("%s, %s: %w\n%s", ex.file, sg.name, err, out)
					return
				}
				ciImages[ex.file+"/"+sg.name] = img
			}
		}
	})
	if ciErr != nil {
		t.Fatal(ciErr)
	}
	return ciImages
}

var (
	ciExampleImageHost = regexp.MustCompile(`(?m)^(    - )[a-z0-9.-]+\.[a-z]+/`)
	ciExampleIssuer    = regexp.MustCompile(`(?m)^(\s+- issuer: )\S+$`)
)

// ciPolicy reads a policy of docs/examples/ci for this suite: its image patterns' host becomes the test
// registry and its issuer the stack's issuer of provider. Nothing else in the file is changed.
func ciPolicy(t *testing.T, ex ciExample) *sigwatchv1alpha1.ImageSignaturePolicy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "docs", "examples", "ci", ex.file))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	if len(ciExampleImageHost.FindAllString(doc, -1)) != 1 || len(ciExampleIssuer.FindAllString(doc, -1)) != 1 {
		t.Fatalf("%s: want one image pattern and one issuer to point at the suite", ex.file)
	}
	doc = ciExampleImageHost.ReplaceAllString(doc, "${1}"+s.reg.Host+"/")
	doc = ciExampleIssuer.ReplaceAllString(doc, "${1}"+s.stack.OIDC.URLFor(ex.provider))
	policies, err := policy.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("%s: %v", ex.file, err)
	}
	if len(policies) != 1 {
		t.Fatalf("%s: want one policy, got %d", ex.file, len(policies))
	}
	return policies[0]
}

// TestCIPolicies: each policy accepts its CI's release signature, with the claims the certificate carries
// shown, and refuses each near miss for the claim it gets wrong.
func TestCIPolicies(t *testing.T) {
	images := ciSigned(t)
	for _, ex := range ciExamples() {
		t.Run(ex.file, func(t *testing.T) {
			p := ciPolicy(t, ex)
			compiled := compile(t, p.Name, p.Spec)
			for _, sg := range ex.signers {
				g := NewWithT(t)
				res := engine(t).Verify(context.Background(), verificationRequest(t, images[ex.file+"/"+sg.name], compiled))
				pr := res.Policies[0]
				if sg.says == "" {
					g.Expect(pr.Reason).To(Equal(sigwatchv1alpha1.VerifiedReason), "%s: %s", sg.name, pr.Message)
					g.Expect(res.Signatures[0].Subject).To(Equal(sg.claims.CertificateIdentity()))
					if ex.provider != stack.Kubernetes {
						g.Expect(res.Signatures[0].Claims).NotTo(BeNil(), "the accepted signature's claims are shown")
						expectClaimsSubset(g, p.Spec.Authorities[0].Keyless.Identities[0].Claims, res.Signatures[0].Claims)
					}
					continue
				}
				g.Expect(pr.Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason), "%s: %s", sg.name, pr.Message)
				g.Expect(pr.Message).To(ContainSubstring(sg.says), sg.name)
			}
		})
	}
}

// expectClaimsSubset checks that every claim the policy pins is what the accepted signature shows.
func expectClaimsSubset(g Gomega, pinned, shown *sigwatchv1alpha1.CertificateClaims) {
	if pinned == nil {
		return
	}
	pv, sv := reflect.ValueOf(*pinned), reflect.ValueOf(*shown)
	for i := range pv.NumField() {
		if v := pv.Field(i).String(); v != "" {
			g.Expect(sv.Field(i).String()).To(Equal(v), pv.Type().Field(i).Name)
		}
	}
}

// TestCIPoliciesNearMissOfEachClaim changes, one at a time, every value each policy pins (issuer,
// subject, each claim and each claim expression) and checks that the release signature is then refused
// for that value.
func TestCIPoliciesNearMissOfEachClaim(t *testing.T) {
	images := ciSigned(t)
	for _, ex := range ciExamples() {
		t.Run(ex.file, func(t *testing.T) {
			good := images[ex.file+"/"+ex.signers[0].name]
			p := ciPolicy(t, ex)
			mutations := 0
			for _, m := range identityMutations(p.Spec.Authorities[0].Keyless.Identities[0]) {
				g := NewWithT(t)
				spec := *p.Spec.DeepCopy()
				spec.Authorities[0].Keyless.Identities[0] = m.id
				res := engine(t).Verify(context.Background(), verificationRequest(t, good, compile(t, p.Name, spec)))
				pr := res.Policies[0]
				g.Expect(pr.Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason), "%s: %s", m.field, pr.Message)
				g.Expect(pr.Message).To(ContainSubstring(m.field+" must "), m.field)
				mutations++
			}
			NewWithT(t).Expect(mutations).To(BeNumerically(">=", 2), "the issuer and the subject at least")
		})
	}
}

type mutation struct {
	field string // as the mismatch names it
	id    sigwatchv1alpha1.Identity
}

// identityMutations returns id with one pinned value spoilt, for each value: an exact value gains a
// character, an expression must then start with "x" (which no value here does).
func identityMutations(id sigwatchv1alpha1.Identity) []mutation {
	var out []mutation
	spoil := func(field string, set func(*sigwatchv1alpha1.Identity)) {
		m := *id.DeepCopy()
		set(&m)
		out = append(out, mutation{field, m})
	}
	if id.Issuer != "" {
		spoil("issuer", func(m *sigwatchv1alpha1.Identity) { m.Issuer += "x" })
	}
	if id.Subject != "" {
		spoil("subject", func(m *sigwatchv1alpha1.Identity) { m.Subject += "x" })
	}
	if id.SubjectRegExp != "" {
		spoil("subject", func(m *sigwatchv1alpha1.Identity) { m.SubjectRegExp = "x" + m.SubjectRegExp })
	}
	for _, set := range []struct {
		claims func(*sigwatchv1alpha1.Identity) *sigwatchv1alpha1.CertificateClaims
		spoil  func(string) string
	}{
		{func(m *sigwatchv1alpha1.Identity) *sigwatchv1alpha1.CertificateClaims { return m.Claims }, func(v string) string { return v + "x" }},
		{func(m *sigwatchv1alpha1.Identity) *sigwatchv1alpha1.CertificateClaims { return m.ClaimsRegExp }, func(v string) string { return "x" + v }},
	} {
		c := set.claims(&id)
		if c == nil {
			continue
		}
		t := reflect.TypeFor[sigwatchv1alpha1.CertificateClaims]()
		for i := range t.NumField() {
			if reflect.ValueOf(*c).Field(i).String() == "" {
				continue
			}
			field, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			spoil(field, func(m *sigwatchv1alpha1.Identity) {
				f := reflect.ValueOf(set.claims(m)).Elem().Field(i)
				f.SetString(set.spoil(f.String()))
			})
		}
	}
	return out
}

// TestCIPoliciesThroughSigwatchVerify runs `sigwatch verify -o json` with the five policies in one file:
// each release signature is verified, with its claims in the output, and a near miss is refused.
func TestCIPoliciesThroughSigwatchVerify(t *testing.T) {
	images := ciSigned(t)
	bin := sigwatchBinary(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "trusted_root.json")
	NewWithT(t).Expect(os.WriteFile(root, s.stack.TrustedRootJSON(), 0o600)).To(Succeed())
	var docs []string
	for _, ex := range ciExamples() {
		data, err := json.Marshal(ciPolicy(t, ex))
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		docs = append(docs, string(data))
	}
	policies := filepath.Join(dir, "policies.yaml")
	NewWithT(t).Expect(os.WriteFile(policies, []byte(strings.Join(docs, "\n---\n")), 0o600)).To(Succeed())

	for _, ex := range ciExamples() {
		for _, sg := range []ciSigner{ex.signers[0], ex.signers[1]} {
			t.Run(ex.file+"/"+sg.name, func(t *testing.T) {
				g := NewWithT(t)
				cmd := exec.Command(bin, "verify", "--policy", policies, "--trusted-root", root,
					"--insecure-registry", s.reg.Host, "-o", "json", images[ex.file+"/"+sg.name].String())
				out, _ := cmd.Output()
				var got struct {
					Reason     string `json:"reason"`
					Message    string `json:"message"`
					Signatures []struct {
						Subject string                              `json:"subject"`
						Issuer  string                              `json:"issuer"`
						Claims  *sigwatchv1alpha1.CertificateClaims `json:"claims"`
					} `json:"signatures"`
				}
				g.Expect(json.Unmarshal(out, &got)).To(Succeed(), string(out))
				g.Expect(got.Signatures).NotTo(BeEmpty())
				g.Expect(got.Signatures[0].Issuer).To(Equal(s.stack.OIDC.URLFor(ex.provider)))
				if sg.says == "" {
					g.Expect(cmd.ProcessState.ExitCode()).To(Equal(0), string(out))
					g.Expect(got.Reason).To(Equal(sigwatchv1alpha1.VerifiedReason))
					if ex.provider != stack.Kubernetes {
						g.Expect(got.Signatures[0].Claims).NotTo(BeNil(), string(out))
					}
					return
				}
				g.Expect(cmd.ProcessState.ExitCode()).To(Equal(1), string(out))
				g.Expect(got.Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason))
				g.Expect(got.Message).To(ContainSubstring(sg.says))
				if ex.provider != stack.Kubernetes {
					g.Expect(got.Signatures[0].Claims).NotTo(BeNil(), "a refused signature's claims are shown too, to write a policy from")
				}
			})
		}
	}
}

// TestCIPoliciesThroughControllers applies the five policies to the API server (trust root in a
// ConfigMap) and runs every signed image: the manager gives each the policy's verdict, and the
// SignedImages of the release builds show their certificates' claims.
func TestCIPoliciesThroughControllers(t *testing.T) {
	images := ciSigned(t)
	g := NewWithT(t)
	ctx := context.Background()
	c := s.env.Client
	g.Expect(c.Create(ctx, envtest.Namespace("ci-trust", nil))).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ci-trust", Name: "ci-sigstore"},
		Data: map[string]string{"trusted_root.json": string(s.stack.TrustedRootJSON())}})).To(Succeed())
	for _, ex := range ciExamples() {
		p := ciPolicy(t, ex)
		p.Spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "ci-trust", Name: "ci-sigstore"}}
		g.Expect(c.Create(ctx, p)).To(Succeed(), ex.file)
		t.Cleanup(func() { _ = c.Delete(ctx, p) })
	}
	startManager(t)

	g.Expect(c.Create(ctx, envtest.Namespace("ci-examples", nil))).To(Succeed())
	want := map[string]string{}
	claimsOf := map[string]bool{}
	n := 0
	for _, ex := range ciExamples() {
		for _, sg := range ex.signers {
			img := images[ex.file+"/"+sg.name]
			_, err := envtest.RunDeployment(ctx, c, "ci-examples", fmt.Sprintf("w%d", n), img.String(), "docker-pullable://"+img.String())
			g.Expect(err).NotTo(HaveOccurred())
			n++
			want[img.DigestStr()] = sigwatchv1alpha1.VerifiedReason
			if sg.says != "" {
				want[img.DigestStr()] = sigwatchv1alpha1.UntrustedSignerReason
			} else {
				claimsOf[img.DigestStr()] = ex.provider != stack.Kubernetes
			}
		}
	}
	g.Eventually(func(g Gomega) {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace("ci-examples"))).To(Succeed())
		got := map[string]string{}
		for _, si := range list.Items {
			cond := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
			if cond == nil {
				continue
			}
			got[si.Spec.Digest] = cond.Reason
			if hasClaims, ok := claimsOf[si.Spec.Digest]; ok && cond.Reason == sigwatchv1alpha1.VerifiedReason {
				g.Expect(si.Status.Signatures).NotTo(BeEmpty())
				g.Expect(si.Status.Signatures[0].Verdict).To(Equal(sigwatchv1alpha1.SignatureAccepted))
				g.Expect(si.Status.Signatures[0].Claims != nil).To(Equal(hasClaims), si.Spec.Digest)
			}
		}
		g.Expect(got).To(Equal(want))
	}).WithTimeout(90 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
}
