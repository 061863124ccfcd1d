// Package release checks that the release workflow, the sample policy for sigwatch's own image and the
// install docs agree on who signs sigwatch: the identity the workflow's certificates carry is accepted by
// the sample policy, through the policy code the controllers run, and by the docs' cosign command; and
// nothing near it is.
package release

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"sigs.k8s.io/yaml"

	"github.com/sigwatch/sigwatch/internal/identity"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/image"
	"github.com/sigwatch/sigwatch/test/stack"
)

const (
	workflowPath = ".github/workflows/release.yaml"
	samplePath   = "config/samples/sigwatch_v1alpha1_imagesignaturepolicy_sigwatch.yaml"
	installDoc   = "docs/install.md"
	// githubIssuer is the OIDC issuer of GitHub Actions tokens, and so of their Fulcio certificates.
	githubIssuer = "https://token.actions.githubusercontent.com"
	releaseImage = "ghcr.io/sigwatch/sigwatch"
)

// workflow is the part of a GitHub Actions workflow the tests read.
type workflow struct {
	Permissions map[string]string `json:"permissions"`
	Jobs        map[string]job    `json:"jobs"`
}

type job struct {
	Permissions map[string]string `json:"permissions"`
	Env         map[string]string `json:"env"`
	Steps       []step            `json:"steps"`
}

type step struct {
	ID   string            `json:"id"`
	Name string            `json:"name"`
	Uses string            `json:"uses"`
	Run  string            `json:"run"`
	With map[string]any    `json:"with"`
	Env  map[string]string `json:"env"`
}

// trigger is the workflow's `on:`.
type trigger struct {
	Push *struct {
		Tags     []string `json:"tags"`
		Branches []string `json:"branches"`
	} `json:"push"`
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readWorkflow(t *testing.T) (workflow, map[string]json.RawMessage) {
	t.Helper()
	data, err := yaml.YAMLToJSON(readFile(t, workflowPath))
	if err != nil {
		t.Fatalf("%s: %v", workflowPath, err)
	}
	var w workflow
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatalf("%s: %v", workflowPath, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	return w, top
}

// readTrigger returns the workflow's `on:`. YAML 1.1, which sigs.k8s.io/yaml speaks, reads an unquoted
// `on` key as the boolean true; GitHub reads it as "on".
func readTrigger(t *testing.T) trigger {
	t.Helper()
	_, top := readWorkflow(t)
	raw, ok := top["on"]
	if !ok {
		raw, ok = top["true"]
	}
	if !ok {
		t.Fatalf("%s has no on:", workflowPath)
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatalf("on: %v", err)
	}
	if len(events) != 1 {
		t.Fatalf("on: want only push, got %s", raw)
	}
	var tr trigger
	if err := json.Unmarshal(raw, &tr); err != nil {
		t.Fatalf("on: %v", err)
	}
	if tr.Push == nil {
		t.Fatalf("on: want push, got %s", raw)
	}
	return tr
}

// releaseJob is the one job of the workflow.
func releaseJob(t *testing.T) job {
	t.Helper()
	w, _ := readWorkflow(t)
	if len(w.Jobs) != 1 {
		t.Fatalf("want one job, got %d", len(w.Jobs))
	}
	for _, j := range w.Jobs {
		return j
	}
	return job{}
}

// repository is the GitHub repository of the module, "sigwatch/sigwatch".
func repository(t *testing.T) string {
	t.Helper()
	for line := range strings.Lines(string(readFile(t, "go.mod"))) {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(line), "module github.com/"); ok {
			return mod
		}
	}
	t.Fatal("go.mod names no github.com module")
	return ""
}

func TestWorkflowRunsOnVersionTagsOnly(t *testing.T) {
	g := NewWithT(t)
	tr := readTrigger(t)
	g.Expect(tr.Push.Tags).To(Equal([]string{"v*"}))
	g.Expect(tr.Push.Branches).To(BeEmpty())
}

func TestWorkflowPermissions(t *testing.T) {
	g := NewWithT(t)
	w, _ := readWorkflow(t)
	g.Expect(w.Permissions).To(BeEmpty(), "no permission by default; the job asks for what it needs")
	g.Expect(releaseJob(t).Permissions).To(Equal(map[string]string{
		"contents":          "read",
		"packages":          "write",
		"id-token":          "write",
		"attestations":      "write",
		"artifact-metadata": "write",
	}))
}

var pinned = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)

func TestWorkflowActionsArePinnedByCommit(t *testing.T) {
	for _, s := range releaseJob(t).Steps {
		if s.Uses != "" {
			NewWithT(t).Expect(s.Uses).To(MatchRegexp(pinned.String()), "step %q", s.Name)
		}
	}
}

// TestWorkflowSignsTheDigestItPushed: the image is built by make image, signed and attested by the digest
// make image printed, and the chart by the digest helm push printed; never by a tag.
func TestWorkflowSignsTheDigestItPushed(t *testing.T) {
	g := NewWithT(t)
	j := releaseJob(t)
	g.Expect(j.Env).To(HaveKeyWithValue("IMAGE", releaseImage))

	var build *step
	for i, s := range j.Steps {
		if strings.Contains(s.Run, "make image ") {
			build = &j.Steps[i]
		}
	}
	g.Expect(build).NotTo(BeNil(), "a step runs make image")
	g.Expect(build.ID).NotTo(BeEmpty())
	g.Expect(build.Run).To(ContainSubstring(`IMG="$IMAGE:$TAG"`))
	g.Expect(build.Run).To(ContainSubstring(`>> "$GITHUB_OUTPUT"`))
	digest := "${{ steps." + build.ID + ".outputs.digest }}"

	var signs, attests int
	for _, s := range j.Steps {
		for line := range strings.Lines(s.Run) {
			if !strings.Contains(line, "cosign sign") {
				continue
			}
			signs++
			g.Expect(line).To(ContainSubstring("--yes"))
			switch {
			case strings.Contains(line, "$IMAGE"):
				g.Expect(strings.TrimSpace(line)).To(HaveSuffix(`"$IMAGE@$DIGEST"`))
				g.Expect(s.Env).To(HaveKeyWithValue("DIGEST", digest))
			default:
				g.Expect(strings.TrimSpace(line)).To(HaveSuffix(`"$CHARTS/sigwatch@$digest"`), "the chart, by the digest helm push printed")
				g.Expect(s.Run).To(ContainSubstring(`digest=$(awk '$1 == "Digest:" {print $2}'`))
			}
		}
		if strings.HasPrefix(s.Uses, "actions/attest@") {
			attests++
			g.Expect(s.With).To(HaveKeyWithValue("subject-name", releaseImage))
			g.Expect(s.With).To(HaveKeyWithValue("subject-digest", digest))
			g.Expect(s.With).To(HaveKeyWithValue("push-to-registry", true), "sigwatch reads the provenance from the registry")
			g.Expect(s.With).NotTo(HaveKey("predicate-type"), "the default: SLSA build provenance")
		}
	}
	g.Expect(signs).To(Equal(2), "the image and the chart")
	g.Expect(attests).To(Equal(1))
}

// signer is who a certificate says signed: a GitHub Actions run (the claims of its OIDC token), or a
// token of another issuer.
type signer struct {
	issuer string
	claims stack.GitHubClaims
}

// subject is the certificate's SAN: the workflow that ran, https://github.com/{job_workflow_ref}.
func (s signer) subject() string { return s.claims.CertificateIdentity() }

// summary is the certificate Fulcio issues for the signer: its SAN, and the extensions it copies from
// the token's claims (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
func (s signer) summary() certificate.Summary {
	return certificate.Summary{
		SubjectAlternativeName: s.subject(),
		Extensions: certificate.Extensions{
			Issuer:                   s.issuer,
			GithubWorkflowTrigger:    s.claims.EventName,
			GithubWorkflowSHA:        s.claims.SHA,
			GithubWorkflowName:       s.claims.Workflow,
			GithubWorkflowRepository: s.claims.Repository,
			GithubWorkflowRef:        s.claims.Ref,
			BuildSignerURI:           "https://github.com/" + s.claims.JobWorkflowRef,
			RunnerEnvironment:        s.claims.RunnerEnvironment,
			SourceRepositoryURI:      "https://github.com/" + s.claims.Repository,
			SourceRepositoryRef:      s.claims.Ref,
			BuildTrigger:             s.claims.EventName,
		},
	}
}

// signers are the release's own identity on several tags, and everything near it.
func signers(t *testing.T) map[string]signer {
	repo := repository(t)
	gh := func(repo, file, ref string) signer {
		return signer{issuer: githubIssuer, claims: stack.GitHubWorkflow(repo, file, ref)}
	}
	out := map[string]signer{
		"tag v1.2.3":                 gh(repo, workflowPath, "refs/tags/v1.2.3"),
		"tag v0.1.0":                 gh(repo, workflowPath, "refs/tags/v0.1.0"),
		"tag v2.0.0-rc.1":            gh(repo, workflowPath, "refs/tags/v2.0.0-rc.1"),
		"branch main":                gh(repo, workflowPath, "refs/heads/main"),
		"branch v1":                  gh(repo, workflowPath, "refs/heads/v1"),
		"tag without v":              gh(repo, workflowPath, "refs/tags/1.2.3"),
		"tag v1/x, which v* misses":  gh(repo, workflowPath, "refs/tags/v1/x"),
		"pull request":               gh(repo, workflowPath, "refs/pull/7/merge"),
		"fork evil/sigwatch":         gh("evil/sigwatch", workflowPath, "refs/tags/v1.2.3"),
		"other workflow file":        gh(repo, ".github/workflows/ci.yaml", "refs/tags/v1.2.3"),
		"release.yml, not .yaml":     gh(repo, ".github/workflows/release.yml", "refs/tags/v1.2.3"),
		"workflow in a subdirectory": gh(repo, ".github/workflows/x/release.yaml", "refs/tags/v1.2.3"),
	}
	dispatch := gh(repo, workflowPath, "refs/tags/v1.2.3")
	dispatch.claims.EventName = "workflow_dispatch"
	out["tag, run by hand"] = dispatch
	// Another repository calling release.yaml as a reusable workflow: the subject (job_workflow_ref) is
	// sigwatch's, the repository claim the caller's.
	reused := gh(repo, workflowPath, "refs/tags/v1.2.3")
	reused.claims.Repository, reused.claims.RepositoryOwner = "evil/app", "evil"
	out["called from evil/app"] = reused
	gitlab := gh(repo, workflowPath, "refs/tags/v1.2.3")
	gitlab.issuer = "https://gitlab.com"
	out["other issuer"] = gitlab
	return out
}

// isRelease says whether the release workflow makes this signature: this repository's release.yaml,
// run by the push of a tag that `on.push.tags` matches (GitHub's * matches anything but /, as path.Match's
// does), with GitHub's token.
func isRelease(t *testing.T, s signer) bool {
	repo := repository(t)
	tag, ok := strings.CutPrefix(s.claims.Ref, "refs/tags/")
	if !ok || s.issuer != githubIssuer || s.claims.Repository != repo || s.claims.EventName != "push" ||
		s.claims.JobWorkflowRef != repo+"/"+workflowPath+"@"+s.claims.Ref {
		return false
	}
	for _, glob := range readTrigger(t).Push.Tags {
		if m, _ := path.Match(glob, tag); m {
			return true
		}
	}
	return false
}

func samplePolicy(t *testing.T) *policy.Policy {
	t.Helper()
	objs, err := policy.Decode(readFile(t, samplePath))
	if err != nil {
		t.Fatalf("%s: %v", samplePath, err)
	}
	if len(objs) != 1 {
		t.Fatalf("%s: want one policy, got %d", samplePath, len(objs))
	}
	p, err := policy.Compile(objs[0], policy.Inputs{})
	if err != nil {
		t.Fatalf("%s: %v", samplePath, err)
	}
	return p
}

// TestSamplePolicyAcceptsExactlyTheReleaseWorkflow evaluates the sample's authorities, compiled by the
// controllers' policy code, with sigwatch's certificate identity matching, on the certificates of the
// release and of its near misses.
func TestSamplePolicyAcceptsExactlyTheReleaseWorkflow(t *testing.T) {
	p := samplePolicy(t)
	NewWithT(t).Expect(p.MatchesImage(releaseImage)).To(BeTrue())
	NewWithT(t).Expect(p.MatchesImage(releaseImage + "-debug")).To(BeFalse())
	NewWithT(t).Expect(p.TrustedRoot).To(BeNil(), "the public-good Sigstore, which GitHub Actions signs with")
	NewWithT(t).Expect(p.Authorities).To(HaveLen(1))
	auth := p.Authorities[0]
	NewWithT(t).Expect(auth.Keyless()).To(BeTrue())
	accepted := 0
	for name, s := range signers(t) {
		t.Run(name, func(t *testing.T) {
			_, err := auth.Identities.Match(identity.Claims{Subject: s.summary().SubjectAlternativeName, Extensions: s.summary().Extensions})
			want := isRelease(t, s)
			if want {
				accepted++
				NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%s, issued by %s", s.subject(), s.issuer)
			} else {
				NewWithT(t).Expect(err).To(HaveOccurred(), "%s (repository %s, trigger %s), issued by %s",
					s.subject(), s.claims.Repository, s.claims.EventName, s.issuer)
			}
		})
	}
	NewWithT(t).Expect(accepted).To(Equal(3), "the three release tags")
}

// TestSampleProvenanceConditions: the sample's conditions hold for the provenance actions/attest writes
// in the release workflow on a tag, and not for one written elsewhere.
func TestSampleProvenanceConditions(t *testing.T) {
	p := samplePolicy(t)
	NewWithT(t).Expect(p.Attestations).To(HaveLen(1))
	att := p.Attestations[0]
	NewWithT(t).Expect(att.PredicateType).To(Equal("https://slsa.dev/provenance/v1"))
	holds := func(s signer) bool {
		var predicate any
		NewWithT(t).Expect(json.Unmarshal(image.GitHubProvenance(s.claims), &predicate)).To(Succeed())
		for _, c := range att.Conditions {
			ok, err := c.Eval(context.Background(), predicate)
			if err != nil || !ok {
				return false
			}
		}
		return true
	}
	all := signers(t)
	for _, name := range []string{"tag v1.2.3", "tag v2.0.0-rc.1"} {
		NewWithT(t).Expect(holds(all[name])).To(BeTrue(), name)
	}
	for _, name := range []string{"branch main", "pull request", "fork evil/sigwatch", "other workflow file"} {
		NewWithT(t).Expect(holds(all[name])).To(BeFalse(), name)
	}
}

// cosignCommand is a `cosign verify` or `cosign verify-attestation` command of the docs.
type cosignCommand struct {
	line  string
	image string
	flags map[string]string
}

// installDocCommands returns the cosign commands of the section of docs/install.md on sigwatch's own
// image.
func installDocCommands(t *testing.T) []cosignCommand {
	t.Helper()
	doc := string(readFile(t, installDoc))
	_, section, ok := strings.Cut(doc, "\n## Verify sigwatch's own image\n")
	if !ok {
		t.Fatalf("%s has no section \"Verify sigwatch's own image\"", installDoc)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	section = strings.ReplaceAll(section, "\\\n", " ")
	var out []cosignCommand
	for line := range strings.Lines(section) {
		words := shellWords(line)
		if len(words) < 2 || words[0] != "cosign" || !strings.HasPrefix(words[1], "verify") {
			continue
		}
		c := cosignCommand{line: strings.TrimSpace(line), flags: map[string]string{}}
		for i := 2; i < len(words); i++ {
			if f, ok := strings.CutPrefix(words[i], "--"); ok && i+1 < len(words) {
				c.flags[f] = words[i+1]
				i++
			} else if c.image == "" {
				c.image = words[i]
			}
		}
		out = append(out, c)
	}
	return out
}

// shellWords splits a command line into words: blanks separate them, single quotes keep a word whole.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case !quoted && r == '#' && !inWord:
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestInstallDocVerifiesTheSameIdentity: docs/install.md's cosign commands for sigwatch's image accept
// the same signers as the sample policy. cosign matches --certificate-identity-regexp unanchored.
func TestInstallDocVerifiesTheSameIdentity(t *testing.T) {
	g := NewWithT(t)
	cmds := installDocCommands(t)
	g.Expect(cmds).NotTo(BeEmpty())
	var verifies, attestations int
	for _, c := range cmds {
		switch {
		case strings.HasPrefix(c.line, "cosign verify-attestation"):
			attestations++
			g.Expect(c.flags).To(HaveKeyWithValue("type", "slsaprovenance1"), c.line)
		default:
			verifies++
		}
		g.Expect(c.image).To(HavePrefix(releaseImage+":"), c.line)
		g.Expect(c.flags).To(HaveKeyWithValue("certificate-oidc-issuer", githubIssuer), c.line)
		g.Expect(c.flags).To(HaveKeyWithValue("certificate-github-workflow-repository", repository(t)), c.line)
		g.Expect(c.flags).To(HaveKeyWithValue("certificate-github-workflow-trigger", "push"), c.line)
		g.Expect(c.flags).To(HaveKey("certificate-identity-regexp"), c.line)
		re, err := regexp.Compile(c.flags["certificate-identity-regexp"])
		g.Expect(err).NotTo(HaveOccurred())
		for name, s := range signers(t) {
			accepts := s.issuer == c.flags["certificate-oidc-issuer"] && re.MatchString(s.subject()) &&
				s.claims.Repository == c.flags["certificate-github-workflow-repository"] &&
				s.claims.EventName == c.flags["certificate-github-workflow-trigger"]
			g.Expect(accepts).To(Equal(isRelease(t, s)), "%s: %s", name, c.line)
		}
	}
	g.Expect(verifies).To(BeNumerically(">=", 1))
	g.Expect(attestations).To(Equal(1))
	g.Expect(string(readFile(t, installDoc))).To(ContainSubstring(samplePath))
}
