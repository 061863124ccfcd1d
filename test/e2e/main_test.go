//go:build e2e

// Package e2e proves sigwatch against what the real cosign produces with a real keyless Sigstore stack on
// loopback (Fulcio, Rekor v2, a timestamp authority, a GitHub-like OIDC issuer: test/stack), with a real
// kube-apiserver (envtest) and the manager.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/stack"
)

// suite is shared by the tests of the package: one control plane, one Sigstore stack, one registry, and
// images signed once.
type suite struct {
	env   *envtest.Environment
	stack *stack.Stack
	reg   *testregistry.Registry

	release, pr, unsigned, aging name.Digest
	agingSignedAt                time.Time
}

var s suite

var (
	releaseClaims = stack.GitHubWorkflow("yourorg/app", "release.yaml", "refs/heads/main")
	prClaims      = stack.GitHubWorkflow("yourorg/app", "pr.yml", "refs/pull/1/merge")
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, stack.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: starting the Sigstore stack (make sigstore-stack cosign): %v\n", err)
		return 1
	}
	defer st.Stop()
	s.stack = st
	reg, err := testregistry.Serve(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer reg.Stop()
	s.reg = reg
	if err := s.signImages(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n%s\n", err, st.LogTails())
		return 1
	}
	return envtest.Run(m, &s.env)
}

func (s *suite) push(ctx context.Context, repo string) (name.Digest, error) {
	w := writer(s.reg)
	return w.PushRandomImage(ctx, repo)
}

// signImages pushes and signs the images every test uses. The "aging" image is signed first: a test
// verifies it again once its short-lived certificate has expired.
func (s *suite) signImages(ctx context.Context) error {
	var err error
	if s.aging, err = s.push(ctx, "yourorg/aging:v1"); err != nil {
		return err
	}
	s.agingSignedAt = time.Now()
	if _, err := s.stack.Sign(ctx, s.aging.String(), releaseClaims, stack.SignOptions{}); err != nil {
		return err
	}
	if s.release, err = s.push(ctx, "yourorg/app:v1"); err != nil {
		return err
	}
	if _, err := s.stack.Sign(ctx, s.release.String(), releaseClaims, stack.SignOptions{}); err != nil {
		return err
	}
	provenance := []byte(`{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1"},` +
		`"runDetails":{"builder":{"id":"https://github.com/actions/runner/github-hosted"}}}`)
	if _, err := s.stack.Attest(ctx, s.release.String(), releaseClaims, "slsaprovenance1", provenance, stack.SignOptions{}); err != nil {
		return err
	}
	if s.pr, err = s.push(ctx, "yourorg/app:pr-1"); err != nil {
		return err
	}
	if _, err := s.stack.Sign(ctx, s.pr.String(), prClaims, stack.SignOptions{}); err != nil {
		return err
	}
	s.unsigned, err = s.push(ctx, "yourorg/app:debug")
	return err
}
