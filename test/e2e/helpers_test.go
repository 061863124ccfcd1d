//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/internal/verification"
	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

func writer(reg *testregistry.Registry) *sigstore.Writer { return &sigstore.Writer{Registry: reg.Host} }

// trustRoot is the stack's trusted_root.json, as sigwatch loads it.
func trustRoot(t *testing.T) *trust.Root {
	t.Helper()
	r, err := trust.FromJSON(s.stack.TrustedRootJSON(), "the e2e Sigstore stack")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// engine is a fresh verification engine that trusts the stack.
func engine(t *testing.T) *verification.Engine {
	t.Helper()
	tr := trustRoot(t)
	return verification.New(verification.Options{
		Registry: registry.New(registry.Options{Insecure: []string{"127.0.0.1:*"}}),
		Roots:    func(context.Context, *policy.Policy) (*trust.Root, error) { return tr, nil },
	})
}

// releasePolicySpec requires the release workflow on main, through the identity and the GitHub workflow
// claims, for the registry's yourorg images.
func releasePolicySpec(identity sigwatchv1alpha1.Identity) sigwatchv1alpha1.ImageSignaturePolicySpec {
	return sigwatchv1alpha1.ImageSignaturePolicySpec{
		Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(s.reg.Host + "/yourorg/**")},
		Authorities: []sigwatchv1alpha1.Authority{{Name: "release-workflow", Keyless: &sigwatchv1alpha1.KeylessAuthority{
			Identities: []sigwatchv1alpha1.Identity{identity}}}},
	}
}

func releaseIdentity() sigwatchv1alpha1.Identity {
	return sigwatchv1alpha1.Identity{
		Issuer:  s.stack.OIDC.URL,
		Subject: releaseClaims.CertificateIdentity(),
		GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{
			Repository: "yourorg/app", Ref: "refs/heads/main", Trigger: "push",
		},
	}
}

func compile(t *testing.T, name string, spec sigwatchv1alpha1.ImageSignaturePolicySpec) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(&sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, policy.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func verify(t *testing.T, img imageref.Image, p *policy.Policy) verification.PolicyResult {
	t.Helper()
	res := engine(t).Verify(context.Background(), verification.Request{Image: img, Policies: []*policy.Policy{p}})
	if len(res.Policies) != 1 {
		t.Fatalf("want one result, got %+v", res.Policies)
	}
	t.Logf("%s %s: %s", res.Policies[0].Result, res.Policies[0].Reason, res.Policies[0].Message)
	return res.Policies[0]
}

func imageOf(t *testing.T, ref string) imageref.Image {
	t.Helper()
	img, err := imageref.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// verificationRequest asks for img's verdict under p alone.
func verificationRequest(t *testing.T, img name.Digest, p *policy.Policy) verification.Request {
	t.Helper()
	return verification.Request{Image: imageOf(t, img.String()), Policies: []*policy.Policy{p}}
}

var (
	sigwatchOnce sync.Once
	sigwatchBin  string
	sigwatchErr  error
)

// sigwatchBinary builds the sigwatch command once for the suite.
func sigwatchBinary(t *testing.T) string {
	t.Helper()
	sigwatchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sigwatch-e2e-")
		if err != nil {
			sigwatchErr = err
			return
		}
		sigwatchBin = filepath.Join(dir, "sigwatch")
		build := exec.Command("go", "build", "-o", sigwatchBin, "./cmd/sigwatch")
		build.Dir = envtest.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			sigwatchErr = fmt.Errorf("building sigwatch: %w\n%s", err, out)
		}
	})
	if sigwatchErr != nil {
		t.Fatal(sigwatchErr)
	}
	return sigwatchBin
}
