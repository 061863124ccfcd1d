package stack

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // a made-up commit SHA, as git's
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	// Audience is the aud claim of every token: the client ID Fulcio expects.
	Audience = "sigstore"
	// DefaultTokenValidity is how long a token is valid when Token is given no validity.
	DefaultTokenValidity = 5 * time.Minute
)

// GitHubClaims are the claims of a GitHub Actions OIDC token that Fulcio turns into the subject
// alternative name and the GitHub extensions of a certificate. Fulcio refuses a token that lacks any of
// them, except Subject. GitHubWorkflow fills them consistently.
type GitHubClaims struct {
	// Subject is the sub claim, e.g. "repo:yourorg/app:ref:refs/heads/main"; empty means
	// "repo:{Repository}:ref:{Ref}". Fulcio copies it into the certificate's Subject extension, and cosign
	// signs it as the proof of possession.
	Subject              string `json:"sub"`
	Repository           string `json:"repository"`
	RepositoryOwner      string `json:"repository_owner"`
	RepositoryID         string `json:"repository_id"`
	RepositoryOwnerID    string `json:"repository_owner_id"`
	RepositoryVisibility string `json:"repository_visibility"`
	Ref                  string `json:"ref"`
	SHA                  string `json:"sha"`
	EventName            string `json:"event_name"`
	Workflow             string `json:"workflow"`
	WorkflowRef          string `json:"workflow_ref"`
	WorkflowSHA          string `json:"workflow_sha"`
	// JobWorkflowRef is "{repo}/.github/workflows/{file}@{ref}": Fulcio's SAN is
	// https://github.com/{JobWorkflowRef}.
	JobWorkflowRef    string `json:"job_workflow_ref"`
	JobWorkflowSHA    string `json:"job_workflow_sha"`
	RunnerEnvironment string `json:"runner_environment"`
	RunID             string `json:"run_id"`
	RunAttempt        string `json:"run_attempt"`
}

// GitHubWorkflow returns the claims of a push to ref ("refs/heads/main") that runs workflowFile (a file
// name under .github/workflows, or a path in the repository) of repo ("owner/name") on a GitHub-hosted
// runner: the workflow file is the one at ref, the commit SHA is derived from repo and ref, and the
// repository and owner IDs from their names, so the same arguments always give the same claims.
func GitHubWorkflow(repo, workflowFile, ref string) GitHubClaims {
	if !strings.Contains(workflowFile, "/") {
		workflowFile = ".github/workflows/" + workflowFile
	}
	workflowRef := repo + "/" + workflowFile + "@" + ref
	sum := sha1.Sum([]byte(repo + "@" + ref)) //nolint:gosec // not for security
	sha := hex.EncodeToString(sum[:])
	owner, _, _ := strings.Cut(repo, "/")
	return GitHubClaims{
		Subject:              "repo:" + repo + ":ref:" + ref,
		Repository:           repo,
		RepositoryOwner:      owner,
		RepositoryID:         fmt.Sprint(crc32.ChecksumIEEE([]byte(repo))),
		RepositoryOwnerID:    fmt.Sprint(crc32.ChecksumIEEE([]byte(owner))),
		RepositoryVisibility: "public",
		Ref:                  ref,
		SHA:                  sha,
		EventName:            "push",
		Workflow:             strings.TrimSuffix(strings.TrimSuffix(path.Base(workflowFile), ".yaml"), ".yml"),
		WorkflowRef:          workflowRef,
		WorkflowSHA:          sha,
		JobWorkflowRef:       workflowRef,
		JobWorkflowSHA:       sha,
		RunnerEnvironment:    "github-hosted",
		RunID:                "4242",
		RunAttempt:           "1",
	}
}

// CertificateIdentity is the subject alternative name Fulcio writes in certificates for these claims:
// https://github.com/{JobWorkflowRef}.
func (c GitHubClaims) CertificateIdentity() string { return "https://github.com/" + c.JobWorkflowRef }

// Issuer is an OIDC provider on 127.0.0.1 that mints GitHub Actions-shaped ID tokens, signed RS256 with a
// key of its own: it serves /.well-known/openid-configuration and the JWKS, which is all Fulcio needs.
type Issuer struct {
	// URL is the issuer, "http://127.0.0.1:PORT": the iss claim of its tokens, and the OIDC issuer Fulcio
	// writes in certificates (what --certificate-oidc-issuer must be).
	URL string

	key    *rsa.PrivateKey
	keyID  string
	signer jose.Signer
	srv    *http.Server
	now    func() time.Time
}

// StartIssuer starts an issuer listening on addr ("127.0.0.1:PORT"); empty means a free port of
// 127.0.0.1. A fixed address gives a fixed issuer URL, for policies written ahead of time. Close stops it.
func StartIssuer(addr string) (*Issuer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating the OIDC issuer's key: %w", err)
	}
	i := &Issuer{key: key, keyID: "sigwatch-test", now: time.Now}
	i.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", i.keyID))
	if err != nil {
		return nil, fmt.Errorf("creating the OIDC issuer's signer: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the OIDC issuer on %s: %w", addr, err)
	}
	i.URL = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	for _, p := range Providers {
		mux.HandleFunc("GET "+strings.TrimPrefix(i.URLFor(p), i.URL)+"/.well-known/openid-configuration",
			func(w http.ResponseWriter, _ *http.Request) { i.serveDiscovery(w, i.URLFor(p)) })
	}
	mux.HandleFunc("GET /.well-known/jwks", i.serveJWKS)
	i.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = i.srv.Serve(ln) }()
	return i, nil
}

// Close stops the issuer.
func (i *Issuer) Close() error {
	if i == nil || i.srv == nil {
		return nil
	}
	return i.srv.Close()
}

// URLFor is the issuer URL of provider's tokens: URL itself for GitHub Actions, URL/{provider} for the
// others (each a distinct issuer, as Fulcio needs to tell their claim layouts apart).
func (i *Issuer) URLFor(p Provider) string {
	if p == GitHubActions {
		return i.URL
	}
	return i.URL + "/" + string(p)
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, issuer string) {
	writeJSON(w, map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              i.URL + "/.well-known/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid"},
		"claims_supported": []string{"sub", "aud", "exp", "iat", "iss", "nbf", "jti", "repository",
			"repository_owner", "repository_id", "repository_owner_id", "repository_visibility", "ref", "sha",
			"event_name", "workflow", "workflow_ref", "workflow_sha", "job_workflow_ref", "job_workflow_sha",
			"runner_environment", "run_id", "run_attempt"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &i.key.PublicKey, KeyID: i.keyID, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Token mints an ID token for claims, valid from now for validity (DefaultTokenValidity when zero). A
// negative validity mints a token that expired -validity ago, which Fulcio must refuse.
func (i *Issuer) Token(claims GitHubClaims, validity time.Duration) (string, error) {
	return i.TokenFor(claims, validity)
}

// TokenFor mints an ID token of claims' provider, issued at URLFor(claims.Provider()), like Token.
func (i *Issuer) TokenFor(claims Claims, validity time.Duration) (string, error) {
	if err := claims.check(); err != nil {
		return "", fmt.Errorf("minting a %s token: %w", claims.Provider(), err)
	}
	if validity == 0 {
		validity = DefaultTokenValidity
	}
	if gh, ok := claims.(GitHubClaims); ok && gh.Subject == "" {
		gh.Subject = "repo:" + gh.Repository + ":ref:" + gh.Ref
		claims = gh
	}
	now := i.now()
	expires := now.Add(validity)
	issued := now
	if validity < 0 {
		issued = expires.Add(-DefaultTokenValidity)
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	registered := jwt.Claims{
		Issuer:    i.URLFor(claims.Provider()),
		Audience:  jwt.Audience{Audience},
		IssuedAt:  jwt.NewNumericDate(issued),
		NotBefore: jwt.NewNumericDate(issued.Add(-5 * time.Second)), // tolerate a clock a little behind
		Expiry:    jwt.NewNumericDate(expires),
		ID:        hex.EncodeToString(jti),
	}
	token, err := jwt.Signed(i.signer).Claims(registered).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing the token of %s: %w", claims.CertificateIdentity(), err)
	}
	return token, nil
}
