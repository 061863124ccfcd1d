package stack

import (
	"crypto/sha1" //nolint:gosec // made-up commit SHAs, as git's
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Provider is a CI (or a cluster) whose OIDC tokens the issuer mints. Each has its own issuer URL
// (Issuer.URLFor), which Fulcio trusts with that provider's claim layout, as the public-good Fulcio
// does for the real ones.
type Provider string

const (
	// GitHubActions tokens are issued at Issuer.URL itself (token.actions.githubusercontent.com).
	GitHubActions Provider = "github"
	// GitLabCI tokens are GitLab's ID tokens (gitlab.com).
	GitLabCI Provider = "gitlab"
	// Buildkite tokens are the Buildkite agent's (agent.buildkite.com).
	Buildkite Provider = "buildkite"
	// CircleCI tokens are CircleCI's OIDC tokens (oidc.circleci.com/org/ORG).
	CircleCI Provider = "circleci"
	// Kubernetes tokens are projected service account tokens of a cluster's issuer.
	Kubernetes Provider = "kubernetes"
)

// Providers are all the providers, GitHub Actions first.
var Providers = []Provider{GitHubActions, GitLabCI, Buildkite, CircleCI, Kubernetes}

// Claims are the claims of one provider's token, which Fulcio turns into a certificate.
type Claims interface {
	// Provider is the provider whose token has these claims.
	Provider() Provider
	// CertificateIdentity is the subject alternative name Fulcio writes for them.
	CertificateIdentity() string
	// check says what Fulcio would refuse the token for.
	check() error
}

func (GitHubClaims) Provider() Provider { return GitHubActions }

func (c GitHubClaims) check() error {
	if c.Repository == "" || c.JobWorkflowRef == "" {
		return errors.New("the claims need at least Repository and JobWorkflowRef (see GitHubWorkflow)")
	}
	return nil
}

// ReusableWorkflow returns the claims of a run of callerFile in repo at ref whose job calls the reusable
// workflow reusable ("owner/repo/.github/workflows/file.yaml@ref"), as GitHub sets them: the job's
// workflow (job_workflow_ref, the certificate's SAN and build signer URI) is the reusable one, while the
// repository, its ref and the top-level workflow (workflow_ref, the build config URI) are the caller's.
func ReusableWorkflow(repo, callerFile, ref, reusable string) GitHubClaims {
	c := GitHubWorkflow(repo, callerFile, ref)
	c.JobWorkflowRef = reusable
	reusableRepo, _, _ := strings.Cut(reusable, "/.github/")
	c.JobWorkflowSHA = madeUpSHA(reusable + "@" + reusableRepo)
	return c
}

// GitLabClaims are the claims of a GitLab CI job's ID token that Fulcio reads.
type GitLabClaims struct {
	// Subject is "project_path:{group}/{project}:ref_type:{type}:ref:{ref}".
	Subject           string `json:"sub"`
	NamespaceID       string `json:"namespace_id"`
	NamespacePath     string `json:"namespace_path"`
	ProjectID         string `json:"project_id"`
	ProjectPath       string `json:"project_path"`
	ProjectVisibility string `json:"project_visibility"`
	UserLogin         string `json:"user_login"`
	PipelineID        string `json:"pipeline_id"`
	PipelineSource    string `json:"pipeline_source"`
	JobID             string `json:"job_id"`
	// Ref is the branch or tag name, without refs/heads/ or refs/tags/; RefType says which.
	Ref          string `json:"ref"`
	RefType      string `json:"ref_type"`
	RefProtected string `json:"ref_protected"`
	SHA          string `json:"sha"`
	// CIConfigRefURI is "gitlab.com/{project}//.gitlab-ci.yml@refs/heads/{ref}", without a scheme.
	CIConfigRefURI    string `json:"ci_config_ref_uri"`
	CIConfigSHA       string `json:"ci_config_sha"`
	RunnerID          int64  `json:"runner_id"`
	RunnerEnvironment string `json:"runner_environment"`
}

// GitLabPipeline returns the claims of a push pipeline of project ("group/name") on gitlab.com at ref
// ("refs/heads/main" or "refs/tags/v1"), run by a GitLab-hosted runner from the project's own
// .gitlab-ci.yml; IDs and the commit are derived from the arguments.
func GitLabPipeline(project, ref string) GitLabClaims {
	refType, short := "branch", strings.TrimPrefix(ref, "refs/heads/")
	if name, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		refType, short = "tag", name
	}
	namespace := project[:max(strings.LastIndex(project, "/"), 0)]
	sha := madeUpSHA(project + "@" + ref)
	return GitLabClaims{
		Subject:           "project_path:" + project + ":ref_type:" + refType + ":ref:" + short,
		NamespaceID:       madeUpID(namespace),
		NamespacePath:     namespace,
		ProjectID:         madeUpID(project),
		ProjectPath:       project,
		ProjectVisibility: "private",
		UserLogin:         "release-bot",
		PipelineID:        "1234",
		PipelineSource:    "push",
		JobID:             "5678",
		Ref:               short,
		RefType:           refType,
		RefProtected:      "true",
		SHA:               sha,
		CIConfigRefURI:    "gitlab.com/" + project + "//.gitlab-ci.yml@" + ref,
		CIConfigSHA:       sha,
		RunnerID:          42,
		RunnerEnvironment: "gitlab-hosted",
	}
}

func (GitLabClaims) Provider() Provider { return GitLabCI }

// CertificateIdentity is https://{ci_config_ref_uri}.
func (c GitLabClaims) CertificateIdentity() string { return "https://" + c.CIConfigRefURI }

func (c GitLabClaims) check() error {
	if c.ProjectPath == "" || c.CIConfigRefURI == "" {
		return errors.New("the claims need at least ProjectPath and CIConfigRefURI (see GitLabPipeline)")
	}
	return nil
}

// BuildkiteClaims are the claims of a Buildkite agent's OIDC token that Fulcio reads.
type BuildkiteClaims struct {
	// Subject is "organization:{org}:pipeline:{pipeline}:ref:{ref}:commit:{sha}:step:{step}".
	Subject           string `json:"sub"`
	OrganizationSlug  string `json:"organization_slug"`
	PipelineSlug      string `json:"pipeline_slug"`
	BuildNumber       int    `json:"build_number"`
	BuildBranch       string `json:"build_branch"`
	BuildCommit       string `json:"build_commit"`
	BuildSource       string `json:"build_source"`
	StepKey           string `json:"step_key"`
	JobID             string `json:"job_id"`
	AgentID           string `json:"agent_id"`
	RunnerEnvironment string `json:"runner_environment"`
}

// BuildkiteJob returns the claims of the step "release" of build 7 of pipeline in org, started by a
// webhook for branch on a Buildkite-hosted agent.
func BuildkiteJob(org, pipeline, branch string) BuildkiteClaims {
	sha := madeUpSHA(org + "/" + pipeline + "@" + branch)
	return BuildkiteClaims{
		Subject:           "organization:" + org + ":pipeline:" + pipeline + ":ref:refs/heads/" + branch + ":commit:" + sha + ":step:release",
		OrganizationSlug:  org,
		PipelineSlug:      pipeline,
		BuildNumber:       7,
		BuildBranch:       branch,
		BuildCommit:       sha,
		BuildSource:       "webhook",
		StepKey:           "release",
		JobID:             "0190b6b2-7b1e-4a55-9a9e-5d3c8a1c0f11",
		AgentID:           "0190b6b2-7b1e-4a55-9a9e-5d3c8a1c0f22",
		RunnerEnvironment: "buildkite-hosted",
	}
}

func (BuildkiteClaims) Provider() Provider { return Buildkite }

// CertificateIdentity is https://buildkite.com/{org}/{pipeline}: the pipeline, not the branch.
func (c BuildkiteClaims) CertificateIdentity() string {
	return "https://buildkite.com/" + c.OrganizationSlug + "/" + c.PipelineSlug
}

func (c BuildkiteClaims) check() error {
	if c.OrganizationSlug == "" || c.PipelineSlug == "" {
		return errors.New("the claims need at least OrganizationSlug and PipelineSlug (see BuildkiteJob)")
	}
	return nil
}

// CircleCIClaims are the claims of a CircleCI job's OIDC token that Fulcio reads.
type CircleCIClaims struct {
	// Subject is "org/{org}/project/{project}/user/{user}".
	Subject              string `json:"sub"`
	ProjectID            string `json:"oidc.circleci.com/project-id"`
	PipelineDefinitionID string `json:"oidc.circleci.com/pipeline-definition-id"`
	PipelineID           string `json:"oidc.circleci.com/pipeline-id"`
	WorkflowID           string `json:"oidc.circleci.com/workflow-id"`
	JobID                string `json:"oidc.circleci.com/job-id"`
	// VCSOrigin is the repository, "github.com/{owner}/{repo}"; VCSRef the git ref built.
	VCSOrigin  string   `json:"oidc.circleci.com/vcs-origin"`
	VCSRef     string   `json:"oidc.circleci.com/vcs-ref"`
	SSHRerun   bool     `json:"oidc.circleci.com/ssh-rerun"`
	ContextIDs []string `json:"oidc.circleci.com/context-ids"`
}

// CircleCIJob returns the claims of a job of the project of repo ("owner/name", on GitHub) at ref,
// with IDs derived from the arguments (CircleCI's are UUIDs).
func CircleCIJob(repo, ref string) CircleCIClaims {
	id := func(s string) string {
		h := madeUpSHA(s)
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	return CircleCIClaims{
		Subject:              "org/" + id("org:"+repo) + "/project/" + id("project:"+repo) + "/user/" + id("user"),
		ProjectID:            id("project:" + repo),
		PipelineDefinitionID: id("definition:" + repo),
		PipelineID:           id("pipeline:" + repo + "@" + ref),
		WorkflowID:           id("workflow:" + repo + "@" + ref),
		JobID:                id("job:" + repo + "@" + ref),
		VCSOrigin:            "github.com/" + repo,
		VCSRef:               ref,
		ContextIDs:           []string{id("context")},
	}
}

func (CircleCIClaims) Provider() Provider { return CircleCI }

// CertificateIdentity is https://circleci.com/api/v2/projects/{project}/pipeline-definitions/{definition}.
func (c CircleCIClaims) CertificateIdentity() string {
	return "https://circleci.com/api/v2/projects/" + c.ProjectID + "/pipeline-definitions/" + c.PipelineDefinitionID
}

func (c CircleCIClaims) check() error {
	if c.ProjectID == "" || c.PipelineDefinitionID == "" {
		return errors.New("the claims need at least ProjectID and PipelineDefinitionID (see CircleCIJob)")
	}
	return nil
}

// KubernetesClaims are the claims of a projected service account token.
type KubernetesClaims struct {
	// Subject is "system:serviceaccount:{namespace}:{name}".
	Subject    string           `json:"sub"`
	Kubernetes KubernetesObject `json:"kubernetes.io"`
}

// KubernetesObject is the kubernetes.io claim of a service account token.
type KubernetesObject struct {
	Namespace      string        `json:"namespace"`
	ServiceAccount KubernetesRef `json:"serviceaccount"`
	Pod            KubernetesRef `json:"pod"`
}

// KubernetesRef names an object of the cluster.
type KubernetesRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// ServiceAccount returns the claims of a token of the service account name in namespace, bound to a
// pod of it.
func ServiceAccount(namespace, name string) KubernetesClaims {
	return KubernetesClaims{
		Subject: "system:serviceaccount:" + namespace + ":" + name,
		Kubernetes: KubernetesObject{
			Namespace:      namespace,
			ServiceAccount: KubernetesRef{Name: name, UID: madeUpID("sa:" + namespace + "/" + name)},
			Pod:            KubernetesRef{Name: name + "-7d4b9c-x2x9z", UID: madeUpID("pod:" + namespace + "/" + name)},
		},
	}
}

func (KubernetesClaims) Provider() Provider { return Kubernetes }

// CertificateIdentity is https://kubernetes.io/namespaces/{namespace}/serviceaccounts/{name}.
func (c KubernetesClaims) CertificateIdentity() string {
	return "https://kubernetes.io/namespaces/" + c.Kubernetes.Namespace + "/serviceaccounts/" + c.Kubernetes.ServiceAccount.Name
}

func (c KubernetesClaims) check() error {
	if c.Kubernetes.Namespace == "" || c.Kubernetes.ServiceAccount.Name == "" {
		return errors.New("the claims need a namespace and a service account (see ServiceAccount)")
	}
	return nil
}

func madeUpSHA(s string) string {
	sum := sha1.Sum([]byte(s)) //nolint:gosec // not for security
	return hex.EncodeToString(sum[:])
}

func madeUpID(s string) string { return fmt.Sprint(crc32.ChecksumIEEE([]byte(s))) }
