package sigstore

import (
	"crypto/sha1" //nolint:gosec // a made-up commit SHA, as git's
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"net/url"
	"path"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
)

// GitHubIssuer is the OIDC issuer of GitHub Actions tokens.
const GitHubIssuer = "https://token.actions.githubusercontent.com"

// Identity is the OIDC identity a keyless certificate is issued for: what Fulcio reads from the token.
type Identity struct {
	// Subject is the certificate's subject alternative name: a URI SAN when it has a scheme
	// ("https://github.com/..."), an email SAN otherwise.
	Subject string
	// Issuer is the OIDC issuer, written in the extensions 1.3.6.1.4.1.57264.1.1 (deprecated, raw) and
	// 1.3.6.1.4.1.57264.1.8 (DER UTF8String).
	Issuer string

	// The claims of a GitHub Actions token. The GitHub extensions are written only when Repository is set.

	// Repository is the repository claim, "owner/name".
	Repository string
	// RepositoryID and RepositoryOwnerID are the repository_id and repository_owner_id claims.
	RepositoryID, RepositoryOwnerID string
	// Ref is the git ref claim, e.g. "refs/heads/main" or "refs/tags/v1.0.0".
	Ref string
	// SHA is the commit built (sha claim).
	SHA string
	// Trigger is the event that started the workflow (event_name claim), e.g. "push".
	Trigger string
	// WorkflowName is the workflow's name (workflow claim).
	WorkflowName string
	// WorkflowRef is the workflow file at its ref (job_workflow_ref and workflow_ref claims),
	// "owner/name/.github/workflows/release.yml@refs/heads/main".
	WorkflowRef string
	// WorkflowSHA is the commit of the workflow file (job_workflow_sha and workflow_sha claims).
	WorkflowSHA string
	// RunnerEnvironment is "github-hosted" or "self-hosted".
	RunnerEnvironment string
	// RunID and RunAttempt identify the run.
	RunID, RunAttempt string
	// Visibility is the repository's visibility, e.g. "public".
	Visibility string
	// ServerURL is the GitHub server (default https://github.com).
	ServerURL string
}

// GitHubActions returns the identity real Fulcio certifies for the token of a GitHub Actions run of
// workflowFile (a file name under .github/workflows, or a path) in repo ("owner/name") at ref
// ("refs/heads/main"): SAN https://github.com/{repo}/.github/workflows/{file}@{ref}, issuer
// GitHubIssuer, a push by a GitHub-hosted runner of a public repository, and a commit SHA derived from
// repo and ref.
func GitHubActions(repo, workflowFile, ref string) Identity {
	if !strings.Contains(workflowFile, "/") {
		workflowFile = ".github/workflows/" + workflowFile
	}
	workflowRef := repo + "/" + workflowFile + "@" + ref
	sha := sha1.Sum([]byte(repo + "@" + ref)) //nolint:gosec // not for security
	owner, _, _ := strings.Cut(repo, "/")
	base := path.Base(workflowFile)
	return Identity{
		Subject:           "https://github.com/" + workflowRef,
		Issuer:            GitHubIssuer,
		Repository:        repo,
		RepositoryID:      fmt.Sprint(crc32.ChecksumIEEE([]byte(repo))),
		RepositoryOwnerID: fmt.Sprint(crc32.ChecksumIEEE([]byte(owner))),
		Ref:               ref,
		SHA:               hex.EncodeToString(sha[:]),
		Trigger:           "push",
		WorkflowName:      strings.TrimSuffix(base, path.Ext(base)),
		WorkflowRef:       workflowRef,
		WorkflowSHA:       hex.EncodeToString(sha[:]),
		RunnerEnvironment: "github-hosted",
		RunID:             "1",
		RunAttempt:        "1",
		Visibility:        "public",
		ServerURL:         "https://github.com",
	}
}

// Extensions returns the Fulcio certificate extensions of the identity, as sigstore-go's
// certificate.SummarizeCertificate reads them back: the issuer, and for a GitHub Actions identity what
// Fulcio v1.8 derives from the token's claims.
func (id Identity) Extensions() certificate.Extensions {
	e := certificate.Extensions{Issuer: id.Issuer}
	if id.Repository == "" {
		return e
	}
	server := id.ServerURL
	if server == "" {
		server = "https://github.com"
	}
	owner, _, _ := strings.Cut(id.Repository, "/")
	e.GithubWorkflowTrigger = id.Trigger
	e.GithubWorkflowSHA = id.SHA
	e.GithubWorkflowName = id.WorkflowName
	e.GithubWorkflowRepository = id.Repository
	e.GithubWorkflowRef = id.Ref
	if id.WorkflowRef != "" {
		e.BuildSignerURI = server + "/" + id.WorkflowRef
		e.BuildConfigURI = server + "/" + id.WorkflowRef
	}
	e.BuildSignerDigest = id.WorkflowSHA
	e.BuildConfigDigest = id.WorkflowSHA
	e.RunnerEnvironment = id.RunnerEnvironment
	e.SourceRepositoryURI = server + "/" + id.Repository
	e.SourceRepositoryDigest = id.SHA
	e.SourceRepositoryRef = id.Ref
	e.SourceRepositoryIdentifier = id.RepositoryID
	e.SourceRepositoryOwnerURI = server + "/" + owner
	e.SourceRepositoryOwnerIdentifier = id.RepositoryOwnerID
	e.BuildTrigger = id.Trigger
	if id.RunID != "" {
		e.RunInvocationURI = fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", server, id.Repository, id.RunID, id.RunAttempt)
	}
	e.SourceRepositoryVisibilityAtSigning = id.Visibility
	return e
}

// template is the certificate Fulcio issues for the identity, without key, validity or serial.
func (id Identity) template() (*x509.Certificate, error) {
	if id.Subject == "" || id.Issuer == "" {
		return nil, fmt.Errorf("an identity needs a subject and an issuer, got %q and %q", id.Subject, id.Issuer)
	}
	tmpl := &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	if strings.Contains(id.Subject, "://") {
		u, err := url.Parse(id.Subject)
		if err != nil {
			return nil, fmt.Errorf("subject %q is not a URI: %w", id.Subject, err)
		}
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{id.Subject}
	}
	exts, err := renderExtensions(id.Extensions())
	if err != nil {
		return nil, err
	}
	tmpl.ExtraExtensions = exts
	return tmpl, nil
}

// renderExtensions writes e as Fulcio does: the deprecated extensions 1.1 to 1.6 as raw strings, the
// others as DER UTF8Strings; empty values are left out.
func renderExtensions(e certificate.Extensions) ([]pkix.Extension, error) {
	var out []pkix.Extension
	raw := func(oid asn1.ObjectIdentifier, v string) {
		if v != "" {
			out = append(out, pkix.Extension{Id: oid, Value: []byte(v)})
		}
	}
	var err error
	der := func(oid asn1.ObjectIdentifier, v string) {
		if v == "" || err != nil {
			return
		}
		var b []byte
		b, err = asn1.MarshalWithParams(v, "utf8")
		out = append(out, pkix.Extension{Id: oid, Value: b})
	}
	raw(certificate.OIDIssuer, e.Issuer)
	raw(certificate.OIDGitHubWorkflowTrigger, e.GithubWorkflowTrigger)
	raw(certificate.OIDGitHubWorkflowSHA, e.GithubWorkflowSHA)
	raw(certificate.OIDGitHubWorkflowName, e.GithubWorkflowName)
	raw(certificate.OIDGitHubWorkflowRepository, e.GithubWorkflowRepository)
	raw(certificate.OIDGitHubWorkflowRef, e.GithubWorkflowRef)
	der(certificate.OIDIssuerV2, e.Issuer)
	der(certificate.OIDBuildSignerURI, e.BuildSignerURI)
	der(certificate.OIDBuildSignerDigest, e.BuildSignerDigest)
	der(certificate.OIDRunnerEnvironment, e.RunnerEnvironment)
	der(certificate.OIDSourceRepositoryURI, e.SourceRepositoryURI)
	der(certificate.OIDSourceRepositoryDigest, e.SourceRepositoryDigest)
	der(certificate.OIDSourceRepositoryRef, e.SourceRepositoryRef)
	der(certificate.OIDSourceRepositoryIdentifier, e.SourceRepositoryIdentifier)
	der(certificate.OIDSourceRepositoryOwnerURI, e.SourceRepositoryOwnerURI)
	der(certificate.OIDSourceRepositoryOwnerIdentifier, e.SourceRepositoryOwnerIdentifier)
	der(certificate.OIDBuildConfigURI, e.BuildConfigURI)
	der(certificate.OIDBuildConfigDigest, e.BuildConfigDigest)
	der(certificate.OIDBuildTrigger, e.BuildTrigger)
	der(certificate.OIDRunInvocationURI, e.RunInvocationURI)
	der(certificate.OIDSourceRepositoryVisibilityAtSigning, e.SourceRepositoryVisibilityAtSigning)
	if err != nil {
		return nil, fmt.Errorf("encoding certificate extensions: %w", err)
	}
	return out, nil
}
