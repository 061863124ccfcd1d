//go:build e2e

package image

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/stack"
)

const (
	sigwatchRepository = "sigwatch/sigwatch"
	releaseWorkflow    = ".github/workflows/release.yaml"
	samplePolicy       = "config/samples/sigwatch_v1alpha1_imagesignaturepolicy_sigwatch.yaml"
)

// TestDogfood builds sigwatch's image with make image, signs it keyless and attests its provenance as the
// release workflow does on the tag v0.1.0 (the local Sigstore stack, with GitHub Actions-shaped tokens),
// and has the image's own binary verify it (`sigwatch verify`) with the sample policy for sigwatch's own
// image, changed only where it must be: the images (the loopback registry), the issuer and the trust
// root (the stack's). Near misses of the same image are not verified.
func TestDogfood(t *testing.T) {
	host := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if host.OS != "linux" || (host.Architecture != "amd64" && host.Architecture != "arm64") {
		t.Skipf("the image is for linux/amd64 and linux/arm64; this is %s/%s", host.OS, host.Architecture)
	}
	st := stack.StartT(t)
	reg := testregistry.Start(t, true)
	base := PushBase(t, reg, map[string]v1.Platform{"amd64": LinuxAMD64, "arm64": LinuxARM64}[host.Architecture])
	// One platform, the host's: TestMakeImage covers both.
	release, _ := Build(t, reg.Repo(sigwatchRepository)+":v0.1.0", base, "linux/"+host.Architecture, "v0.1.0")
	img := ImageFor(t, release, host)
	sigwatch := Binary(t, img, t.TempDir())

	dir := t.TempDir()
	root := filepath.Join(dir, "trusted_root.json")
	NewWithT(t).Expect(os.WriteFile(root, st.TrustedRootJSON(), 0o600)).To(Succeed())
	policyFile := filepath.Join(dir, "policy.yaml")
	NewWithT(t).Expect(os.WriteFile(policyFile, localSample(t, reg.Repo(sigwatchRepository), st.OIDC.URL), 0o600)).To(Succeed())

	onTag := stack.GitHubWorkflow(sigwatchRepository, releaseWorkflow, "refs/tags/v0.1.0")
	onMain := stack.GitHubWorkflow(sigwatchRepository, releaseWorkflow, "refs/heads/main")
	fork := stack.GitHubWorkflow("evil/sigwatch", releaseWorkflow, "refs/tags/v0.1.0")
	for _, tc := range []struct {
		name       string
		claims     stack.GitHubClaims
		provenance bool
		code       int
		reason     string
	}{
		{"release tag", onTag, true, 0, sigwatchv1alpha1.VerifiedReason},
		{"main branch", onMain, true, 1, sigwatchv1alpha1.UntrustedSignerReason},
		{"fork", fork, true, 1, sigwatchv1alpha1.UntrustedSignerReason},
		{"release tag without provenance", onTag, false, 1, sigwatchv1alpha1.AttestationMissingReason},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ref := release
			if tc.name != "release tag" {
				ref = variant(t, img, ref.Context(), tc.name) // the same image under another digest
			}
			_, err := st.Sign(t.Context(), ref.String(), tc.claims, stack.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			if tc.provenance {
				_, err := st.Attest(t.Context(), ref.String(), tc.claims, "slsaprovenance1", GitHubProvenance(tc.claims), stack.SignOptions{})
				g.Expect(err).NotTo(HaveOccurred())
			}
			cmd := exec.Command(sigwatch, "verify", "--policy", policyFile, "--trusted-root", root,
				"--insecure-registry", reg.Host, "-o", "json", ref.String())
			out, _ := cmd.Output()
			t.Logf("sigwatch verify %s (signed as %s):\n%s", ref, tc.claims.CertificateIdentity(), out)
			g.Expect(cmd.ProcessState.ExitCode()).To(Equal(tc.code))
			var res struct{ Verdict, Reason string }
			g.Expect(json.Unmarshal(out, &res)).To(Succeed())
			g.Expect(res.Reason).To(Equal(tc.reason))
		})
	}
}

// localSample is the sample policy for sigwatch's own image with its images replaced by repo and the
// issuer of its identities by issuer; everything else is as written.
func localSample(t *testing.T, repo, issuer string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), samplePolicy))
	if err != nil {
		t.Fatal(err)
	}
	var p sigwatchv1alpha1.ImageSignaturePolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("%s: %v", samplePolicy, err)
	}
	if len(p.Spec.Images) != 1 || p.Spec.Images[0] != "ghcr.io/sigwatch/sigwatch" || p.Spec.TrustedRoot != nil {
		t.Fatalf("%s: want the public-good image ghcr.io/sigwatch/sigwatch, got %v", samplePolicy, p.Spec.Images)
	}
	p.Spec.Images = []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(repo)}
	replaced := 0
	for _, a := range p.Spec.Authorities {
		if a.Keyless == nil {
			continue
		}
		for i := range a.Keyless.Identities {
			if a.Keyless.Identities[i].Issuer != "https://token.actions.githubusercontent.com" {
				t.Fatalf("%s: an identity of another issuer: %+v", samplePolicy, a.Keyless.Identities[i])
			}
			a.Keyless.Identities[i].Issuer = issuer
			replaced++
		}
	}
	if replaced == 0 {
		t.Fatalf("%s has no keyless identity", samplePolicy)
	}
	out, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// variant pushes img to repo with an annotation naming it, as a new digest of the same content.
func variant(t *testing.T, img v1.Image, repo name.Repository, note string) name.Digest {
	t.Helper()
	v, ok := mutate.Annotations(img, map[string]string{"dev.sigwatch.test/variant": note}).(v1.Image)
	if !ok {
		t.Fatal("annotating the image")
	}
	h, err := v.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d := repo.Digest(h.String())
	if err := remote.Write(d, v); err != nil {
		t.Fatalf("pushing %s: %v", d, err)
	}
	return d
}
