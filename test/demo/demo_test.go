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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policyreport"
	"github.com/sigwatch/sigwatch/internal/report"
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
	expectReportAndRevocation(t, res, narration.String(), kubectl != "")
	if kubectl != "" {
		g.Expect(narration.String()).To(ContainSubstring("$ kubectl get signedimages -A -o wide"))
		g.Expect(narration.String()).To(ContainSubstring("UntrustedSigner"))
		g.Expect(narration.String()).To(ContainSubstring("$ kubectl get policyreports -n shop"))
		g.Expect(narration.String()).To(MatchRegexp(`(?m)^fail\s+\w+\s+ci-release\s+UntrustedSigner`))
	}
}

// expectReportAndRevocation: the report's numbers are those of the SignedImages; --revocation predicted
// exactly what applying the revocation then did; deleting it restored the image.
func expectReportAndRevocation(t *testing.T, res *Result, narration string, kubectl bool) {
	g := NewWithT(t)
	g.Expect(res.Report).NotTo(BeNil())
	want := report.Counts{}
	byNS := map[string]*report.Counts{}
	byPolicy := map[string]*report.Counts{}
	count := func(c *report.Counts, status string) {
		c.Images++
		switch status {
		case "True", string(sigwatchv1alpha1.PolicyVerified):
			c.Verified++
		case "False", string(sigwatchv1alpha1.PolicyFailed):
			c.Failed++
		default:
			c.Unknown++
		}
	}
	for _, si := range res.SignedImages {
		c := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		g.Expect(c).NotTo(BeNil())
		count(&want, string(c.Status))
		if byNS[si.Namespace] == nil {
			byNS[si.Namespace] = &report.Counts{}
		}
		count(byNS[si.Namespace], string(c.Status))
		for _, p := range si.Status.Policies {
			if byPolicy[p.Name] == nil {
				byPolicy[p.Name] = &report.Counts{}
			}
			count(byPolicy[p.Name], string(p.Result))
		}
	}
	g.Expect(res.Report.Totals).To(Equal(want))
	g.Expect(want).To(Equal(report.Counts{Images: 3, Verified: 1, Failed: 2}), "the seed scenario")
	g.Expect(res.Report.Namespaces).To(HaveLen(len(byNS)))
	for _, n := range res.Report.Namespaces {
		g.Expect(n.Counts).To(Equal(*byNS[n.Namespace]), n.Namespace)
	}
	g.Expect(res.Report.Policies).To(HaveLen(len(byPolicy)))
	for _, p := range res.Report.Policies {
		g.Expect(p.Counts).To(Equal(*byPolicy[p.Policy]), p.Policy)
	}
	g.Expect(res.Report.Signers).To(ConsistOf(HaveField("Subject", ReleaseWorkflow)))
	g.Expect(res.Report.Failing).To(HaveLen(2))

	// The prediction is what happened.
	p := res.Prediction
	g.Expect(p).NotTo(BeNil())
	g.Expect(p.Revocation).To(Equal(RevocationName))
	predicted := map[string]bool{}
	for _, img := range p.Images {
		predicted[img.Namespace+"/"+img.Name] = img.WouldFail
	}
	happened := map[string]bool{}
	for _, img := range res.Images {
		c := res.Revoked[img.Deployment]
		g.Expect(c).NotTo(BeNil(), img.Deployment)
		if c.Reason == sigwatchv1alpha1.SignatureRevokedReason {
			happened[Namespace+"/"+res.RevokedSignedImage.Name] = true
		}
	}
	g.Expect(predicted).To(Equal(happened))
	g.Expect(p.Affected).To(Equal(1))
	g.Expect(p.WouldFail).To(Equal(1))
	g.Expect(res.Revoked["tools"].Reason).To(Equal(sigwatchv1alpha1.UntrustedSignerReason), "a rejected signature is not revoked: it was never accepted")
	g.Expect(res.Revoked["debug"].Reason).To(Equal(sigwatchv1alpha1.SignatureMissingReason))
	g.Expect(res.Revoked["web"].Message).To(And(ContainSubstring("SignatureRevocation "+RevocationName), ContainSubstring("INC-4711")))
	sig := res.RevokedSignedImage.Status.Signatures[0]
	g.Expect(sig.Revocation).To(Equal(RevocationName))
	g.Expect(sig.SignedTimeSource).To(Equal(sigwatchv1alpha1.SignedTimeTimestampAuthority), "Rekor v2: the TSA's time")
	g.Expect(sig.SignedTime).NotTo(BeNil())
	g.Expect(res.Restored["web"].Reason).To(Equal(sigwatchv1alpha1.VerifiedReason), "deleting the revocation restores the image")
	g.Expect(narration).To(ContainSubstring("would affect 1 image; 1 would turn Verified=False"))
	if kubectl {
		g.Expect(narration).To(ContainSubstring("$ kubectl sigwatch report"))
		g.Expect(narration).To(ContainSubstring("Running images"), "kubectl found the plugin")
		g.Expect(narration).To(MatchRegexp(`(?m)SignatureRevoked`))
	}
}
