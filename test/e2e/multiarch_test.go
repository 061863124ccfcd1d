//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/stack"
)

// TestMultiArchImages: multi-arch images signed with the real cosign, run as a runtime reports them
// (containerd: the digest pulled by, often the index; others: the platform manifest), through the
// controllers:
//   - an index signed at the index only, run as the index: verified by its own signature;
//   - an index signed with --recursive, a platform run with a tag in the spec: the platform's own signature;
//   - the platform of an index signed at the index only, the index pinned in the spec: the index's signature
//     counts, and the status says it was on the index;
//   - that platform with a tag in the spec: SignatureMissing, saying why and what to do.
func TestMultiArchImages(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := writer(s.reg)
	indexOnly, indexOnlyPlatforms, err := w.PushRandomIndex(ctx, "yourorg/multi:v1", "linux/amd64", "linux/arm64")
	g.Expect(err).NotTo(HaveOccurred())
	recursive, recursivePlatforms, err := w.PushRandomIndex(ctx, "yourorg/multi-recursive:v1", "linux/amd64", "linux/arm64")
	g.Expect(err).NotTo(HaveOccurred())
	for _, sg := range []struct {
		img       name.Digest
		recursive bool
	}{{indexOnly, false}, {recursive, true}} {
		out, err := s.stack.Sign(ctx, sg.img.String(), releaseClaims, stack.SignOptions{Recursive: sg.recursive})
		g.Expect(err).NotTo(HaveOccurred(), string(out))
	}

	c := s.env.Client
	g.Expect(c.Create(ctx, envtest.Namespace("multiarch-trust", nil))).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "multiarch-trust", Name: "sigstore"},
		Data: map[string]string{"trusted_root.json": string(s.stack.TrustedRootJSON())}})).To(Succeed())
	spec := releasePolicySpec(releaseIdentity())
	spec.Images = []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(s.reg.Host + "/yourorg/multi*")}
	spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "multiarch-trust", Name: "sigstore"}}
	p := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "multiarch"}, Spec: spec}
	g.Expect(c.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(ctx, p) })
	startManager(t)

	ns := "multiarch"
	g.Expect(c.Create(ctx, envtest.Namespace(ns, nil))).To(Succeed())
	tagOf := func(d name.Digest, tag string) string { return d.Context().Tag(tag).String() }
	runs := []struct {
		workload, spec string
		running        name.Digest
		reason         string
	}{
		{"index", indexOnly.String(), indexOnly, sigwatchv1alpha1.VerifiedReason},
		{"recursive", tagOf(recursive, "v1"), recursivePlatforms[1], sigwatchv1alpha1.VerifiedReason},
		{"pinned", indexOnly.String(), indexOnlyPlatforms[0], sigwatchv1alpha1.VerifiedReason},
		{"tagged", tagOf(indexOnly, "v1"), indexOnlyPlatforms[1], sigwatchv1alpha1.SignatureMissingReason},
	}
	for _, r := range runs {
		_, err := envtest.RunDeployment(ctx, c, ns, r.workload, r.spec, "docker-pullable://"+r.running.String())
		g.Expect(err).NotTo(HaveOccurred())
	}
	byDigest := map[string]sigwatchv1alpha1.SignedImage{}
	g.Eventually(func(g Gomega) {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		got := map[string]string{}
		for _, si := range list.Items {
			if cond := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition); cond != nil {
				got[si.Spec.Digest] = cond.Reason
				byDigest[si.Spec.Digest] = si
			}
		}
		want := map[string]string{}
		for _, r := range runs {
			want[r.running.DigestStr()] = r.reason
		}
		g.Expect(got).To(Equal(want))
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())

	own := byDigest[indexOnly.DigestStr()]
	g.Expect(own.Status.Signatures[0].SignedDigest).To(BeEmpty(), "the index's own signature")
	g.Expect(own.Status.IndexDigests).To(BeEmpty())

	rec := byDigest[recursivePlatforms[1].DigestStr()]
	g.Expect(rec.Status.Signatures[0].Verdict).To(Equal(sigwatchv1alpha1.SignatureAccepted))
	g.Expect(rec.Status.Signatures[0].SignedDigest).To(BeEmpty(), "--recursive signed the platform itself")

	pinned := byDigest[indexOnlyPlatforms[0].DigestStr()]
	g.Expect(pinned.Status.IndexDigests).To(Equal([]string{indexOnly.DigestStr()}))
	g.Expect(pinned.Status.Signatures[0].SignedDigest).To(Equal(indexOnly.DigestStr()), "the signature was on the index")
	g.Expect(pinned.Status.Policies[0].Message).To(ContainSubstring("via the image index " + indexOnly.DigestStr()))

	tagged := byDigest[indexOnlyPlatforms[1].DigestStr()]
	cond := meta.FindStatusCondition(tagged.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
	g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(cond.Message).To(And(ContainSubstring("cosign sign --recursive"), ContainSubstring("pin the index by digest"),
		ContainSubstring("a tag is never resolved")))

	t.Run("sigwatch verify --index", func(t *testing.T) {
		g := NewWithT(t)
		dir := t.TempDir()
		root := filepath.Join(dir, "trusted_root.json")
		g.Expect(os.WriteFile(root, s.stack.TrustedRootJSON(), 0o600)).To(Succeed())
		cli := p.DeepCopy()
		cli.Spec.TrustedRoot = nil // --trusted-root instead
		cli.APIVersion, cli.Kind = sigwatchv1alpha1.GroupVersion.String(), "ImageSignaturePolicy"
		data, err := json.Marshal(cli)
		g.Expect(err).NotTo(HaveOccurred())
		policyFile := filepath.Join(dir, "policy.yaml")
		g.Expect(os.WriteFile(policyFile, data, 0o600)).To(Succeed())
		run := func(args ...string) (int, string) {
			cmd := exec.Command(sigwatchBinary(t), append([]string{"verify", "--policy", policyFile, "--trusted-root", root,
				"--insecure-registry", s.reg.Host}, args...)...)
			out, _ := cmd.CombinedOutput()
			return cmd.ProcessState.ExitCode(), string(out)
		}
		code, out := run("--index", indexOnly.DigestStr(), indexOnlyPlatforms[0].String())
		g.Expect(code).To(Equal(0), out)
		g.Expect(out).To(ContainSubstring("(on index " + indexOnly.DigestStr()[:19] + ")"))
		code, out = run(indexOnlyPlatforms[0].String())
		g.Expect(code).To(Equal(1), out)
		g.Expect(out).To(ContainSubstring(sigwatchv1alpha1.SignatureMissingReason))
	})
}
