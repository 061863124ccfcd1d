package stack

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CosignTimeout bounds every cosign invocation.
const CosignTimeout = 2 * time.Minute

// SignOptions are the choices of Sign and Attest beyond the signer's claims.
type SignOptions struct {
	// Token is the identity token to present to Fulcio instead of one minted from the claims, e.g. an
	// expired token from Issuer.Token with a negative validity.
	Token string
	// TokenValidity is the validity of the minted token (DefaultTokenValidity when zero).
	TokenValidity time.Duration
	// Annotations are signed along with the image (cosign sign -a key=value); not for Attest.
	Annotations map[string]string
	// SignatureRepository, if set, is where cosign stores the bundle (COSIGN_REPOSITORY), e.g.
	// "127.0.0.1:5000/signatures"; by default it goes to the image's own repository.
	SignatureRepository string
	// Recursive signs, besides an image index, every manifest it lists (cosign sign --recursive); not
	// for Attest.
	Recursive bool
	// SigningConfig, if set, is the signing config cosign uses instead of the stack's: a RekorFork's,
	// to log the signature in the fork, or a RekorV1Signing's.
	SigningConfig string
	// TrustedRoot, if set, is the trusted root cosign uses instead of the stack's (a RekorV1Signing's).
	TrustedRoot string
}

// Sign signs image ("registry/repo@sha256:...") keyless as the signer of claims (a GitHub workflow, a
// GitLab pipeline, a service account...), with the real cosign: a Fulcio certificate for a token of the
// stack's issuer of that provider, a Rekor v2 entry and a timestamp, stored as a Sigstore bundle that is
// an OCI referrer of the image (cosign v3's default). The registry may be plain HTTP. It returns cosign's
// output.
func (s *Stack) Sign(ctx context.Context, image string, claims Claims, opts SignOptions) ([]byte, error) {
	args := []string{"sign"}
	if opts.Recursive {
		args = append(args, "--recursive")
	}
	keys := make([]string, 0, len(opts.Annotations))
	for k := range opts.Annotations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-a", k+"="+opts.Annotations[k])
	}
	out, err := s.signOrAttest(ctx, image, claims, opts, args, nil)
	if err != nil {
		return out, fmt.Errorf("signing %s as %s: %w", image, claims.CertificateIdentity(), err)
	}
	return out, nil
}

// Attest signs an in-toto statement about image with the given predicate, keyless as the GitHub workflow
// of claims, like Sign. predicateType is anything `cosign attest --type` accepts: a full URI, or a short
// name such as slsaprovenance1 (https://slsa.dev/provenance/v1).
func (s *Stack) Attest(ctx context.Context, image string, claims Claims, predicateType string, predicateJSON []byte, opts SignOptions) ([]byte, error) {
	if len(opts.Annotations) > 0 || opts.Recursive {
		return nil, fmt.Errorf("attesting %s: Annotations and Recursive are for Sign", image)
	}
	predicate := func(dir string) ([]string, error) {
		path := filepath.Join(dir, "predicate.json")
		if err := os.WriteFile(path, predicateJSON, 0o600); err != nil {
			return nil, fmt.Errorf("writing the predicate: %w", err)
		}
		return []string{"--type", predicateType, "--predicate", path}, nil
	}
	out, err := s.signOrAttest(ctx, image, claims, opts, []string{"attest"}, predicate)
	if err != nil {
		return out, fmt.Errorf("attesting %s (%s) as %s: %w", image, predicateType, claims.CertificateIdentity(), err)
	}
	return out, nil
}

// signOrAttest runs `cosign sign` or `cosign attest` (args) against the stack; extra adds flags that need
// files in the invocation's directory.
func (s *Stack) signOrAttest(ctx context.Context, image string, claims Claims, opts SignOptions, args []string,
	extra func(dir string) ([]string, error)) ([]byte, error) {
	if !strings.Contains(image, "@sha256:") {
		return nil, fmt.Errorf("%q: sign an image by digest (registry/repo@sha256:...)", image)
	}
	token := opts.Token
	if token == "" {
		var err error
		if token, err = s.OIDC.TokenFor(claims, opts.TokenValidity); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(s.Dir, "cosign-")
	if err != nil {
		return nil, fmt.Errorf("creating cosign's directory: %w", err)
	}
	// A file rather than the token itself keeps it out of the command lines quoted in errors.
	tokenPath := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenPath, []byte(token), 0o600); err != nil {
		return nil, fmt.Errorf("writing the identity token: %w", err)
	}
	args = append(args,
		"--yes",
		"--identity-token", tokenPath,
		"--signing-config", cmp.Or(opts.SigningConfig, s.SigningConfigPath),
		"--trusted-root", cmp.Or(opts.TrustedRoot, s.TrustedRootPath),
		"--allow-http-registry", "--allow-insecure-registry")
	if extra != nil {
		more, err := extra(dir)
		if err != nil {
			return nil, err
		}
		args = append(args, more...)
	}
	args = append(args, image)
	var env []string
	if opts.SignatureRepository != "" {
		env = append(env, "COSIGN_REPOSITORY="+opts.SignatureRepository)
	}
	return s.cosign(ctx, dir, env, args...)
}

// VerifyOptions say which signer `cosign verify` must accept.
type VerifyOptions struct {
	// CertificateIdentity is the exact SAN expected, e.g. GitHubClaims.CertificateIdentity(); exclusive
	// with CertificateIdentityRegexp.
	CertificateIdentity string
	// CertificateIdentityRegexp is a regular expression the SAN must match.
	CertificateIdentityRegexp string
	// CertificateOIDCIssuer is the issuer expected; empty means the stack's, OIDC.URL.
	CertificateOIDCIssuer string
	// AttestationType, if set, runs `cosign verify-attestation --type AttestationType` instead of
	// `cosign verify`.
	AttestationType string
	// SignatureRepository, if set, is where cosign looks for the bundle (COSIGN_REPOSITORY).
	SignatureRepository string
}

// Verify runs `cosign verify` (or verify-attestation) on image against the stack's trusted root, without
// SCTs (the stack has no CT log), and returns cosign's output; the error says cosign refused.
func (s *Stack) Verify(ctx context.Context, image string, opts VerifyOptions) ([]byte, error) {
	issuer := opts.CertificateOIDCIssuer
	if issuer == "" {
		issuer = s.OIDC.URL
	}
	args := []string{"verify"}
	if opts.AttestationType != "" {
		args = []string{"verify-attestation", "--type", opts.AttestationType}
	}
	args = append(args,
		"--trusted-root", s.TrustedRootPath,
		"--insecure-ignore-sct",
		"--certificate-oidc-issuer", issuer,
		"--allow-http-registry", "--allow-insecure-registry")
	if opts.CertificateIdentityRegexp != "" {
		args = append(args, "--certificate-identity-regexp", opts.CertificateIdentityRegexp)
	} else {
		args = append(args, "--certificate-identity", opts.CertificateIdentity)
	}
	args = append(args, image)
	var env []string
	if opts.SignatureRepository != "" {
		env = append(env, "COSIGN_REPOSITORY="+opts.SignatureRepository)
	}
	dir, err := os.MkdirTemp(s.Dir, "cosign-")
	if err != nil {
		return nil, fmt.Errorf("creating cosign's directory: %w", err)
	}
	out, err := s.cosign(ctx, dir, env, args...)
	if err != nil {
		return out, fmt.Errorf("verifying %s: %w", image, err)
	}
	return out, nil
}

// cosign runs cosign with args in dir, in the hermetic environment of the services plus extraEnv, and
// returns its combined output; the error quotes the command line and the output.
func (s *Stack) cosign(ctx context.Context, dir string, extraEnv []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, CosignTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.cosignBin, args...)
	cmd.Dir = dir
	cmd.Env = append(hermeticEnv(dir), extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return out, fmt.Errorf("cosign %s: no result after %s: %w\n%s", strings.Join(args, " "), CosignTimeout, ctx.Err(), out)
	}
	if err != nil {
		return out, fmt.Errorf("cosign %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}
