//go:build e2e

package demo

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policyreport"
	"github.com/sigwatch/sigwatch/test/envtest"
)

// TestDemo runs the demo's code path, with the sigwatch binary built from this tree, and checks the three
// verdicts of the seed scenario.
func TestDemo(t *testing.T) {
	g := NewWithT(t)
	bin := filepath.Join(t.TempDir(), "sigwatch")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sigwatch")
	build.Dir = envtest.RepoRoot()
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var narration bytes.Buffer
	kubectl, _ := exec.LookPath("kubectl")
	res, err := Run(ctx, Options{Out: &narration, Sigwatch: bin, Kubectl: kubectl})
	t.Log(narration.String())
	g.Expect(err).NotTo(HaveOccurred())
	verdicts := map[string][2]string{}
	for _, img := range res.Images {
		g.Expect(img.Verified).NotTo(BeNil(), img.Deployment)
		verdicts[img.Deployment] = [2]string{string(img.Verified.Status), img.Verified.Reason}
	}
	g.Expect(verdicts).To(Equal(map[string][2]string{
		"web":   {string(metav1.ConditionTrue), sigwatchv1alpha1.VerifiedReason},
		"tools": {string(metav1.ConditionFalse), sigwatchv1alpha1.UntrustedSignerReason},
		"debug": {string(metav1.ConditionFalse), sigwatchv1alpha1.SignatureMissingReason},
	}))
	// The release image's signature is proven, live, in the local Rekor v2 (read from its tiles).
	for _, img := range res.Images {
		if img.Deployment == "web" {
			g.Expect(img.InTransparencyLog).NotTo(BeNil())
			g.Expect(img.InTransparencyLog.Reason).To(Equal(sigwatchv1alpha1.EntryInLogReason), img.InTransparencyLog.Message)
		}
	}
	// The PolicyReport of the namespace holds the same verdicts: one pass, two fails.
	g.Expect(res.PolicyReport).To(Equal(policyreport.Summary{Pass: 1, Fail: 2}))
	g.Expect(narration.String()).To(ContainSubstring("real Sigstore services"), "the demo says plainly what runs")
	g.Expect(narration.String()).To(ContainSubstring("Pushing signature to"), "cosign's own output")
	// The manager serves its metrics, and the demo says how to read them.
	g.Expect(res.MetricsURL).To(HavePrefix("http://127.0.0.1:"))
	g.Expect(narration.String()).To(ContainSubstring("$ curl -s " + res.MetricsURL + " | grep ^sigwatch_"))
	g.Expect(narration.String()).To(MatchRegexp(`(?m)^sigwatch_\w+`), "the demo shows the metrics")
	if kubectl != "" {
		g.Expect(narration.String()).To(ContainSubstring("$ kubectl get signedimages -A -o wide"))
		g.Expect(narration.String()).To(ContainSubstring("UntrustedSigner"))
		g.Expect(narration.String()).To(ContainSubstring("$ kubectl get policyreports -n shop"))
		g.Expect(narration.String()).To(MatchRegexp(`(?m)^fail\s+\w+\s+ci-release\s+UntrustedSigner`))
	}
}
