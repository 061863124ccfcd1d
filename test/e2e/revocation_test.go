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
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/report"
	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/stack"
)

// sleepUntil waits until t has passed.
func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// TestWindowedRevocationOnRealKeylessSignatures: two workflows of one repository sign images with the real
// cosign, Fulcio, Rekor v2 and timestamp authority, before, during and after a window. `sigwatch report
// --revocation` predicts what revoking the release workflow's signatures of the window does; applied, it
// flips exactly the images the release workflow signed inside the window (by the TSA's time), and an image
// re-signed after the window stays verified; an attestation the nightly workflow signed in the window is
// revoked with its signer; deleting the revocation restores them all.
func TestWindowedRevocationOnRealKeylessSignatures(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := s.env.Client
	release := stack.GitHubWorkflow("yourorg/shop", "release.yaml", "refs/heads/main")
	nightly := stack.GitHubWorkflow("yourorg/shop", "nightly.yaml", "refs/heads/main")
	sign := func(img name.Digest, claims stack.GitHubClaims) {
		t.Helper()
		if out, err := s.stack.Sign(ctx, img.String(), claims, stack.SignOptions{}); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	push := func(repo string) name.Digest {
		t.Helper()
		img, err := s.push(ctx, repo)
		g.Expect(err).NotTo(HaveOccurred())
		return img
	}
	early, compromised, nightlyBuild, resigned, attested := push("yourorg/shop/early:v1"), push("yourorg/shop/api:v1"),
		push("yourorg/shop/nightly:v1"), push("yourorg/shop/web:v1"), push("yourorg/shop/scanned:v1")
	sign(early, release)
	// The window, in whole seconds as the API keeps times, strictly after the early signature.
	windowStart := time.Now().Truncate(time.Second).Add(2 * time.Second)
	sleepUntil(windowStart.Add(200 * time.Millisecond))
	sign(compromised, release)
	sign(nightlyBuild, nightly)
	sign(resigned, release)
	sign(attested, nightly)
	if out, err := s.stack.Attest(ctx, attested.String(), release, "https://cosign.sigstore.dev/attestation/vuln/v1",
		[]byte(`{"scanner":{"result":{"critical":0}}}`), stack.SignOptions{}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	windowEnd := time.Now().Truncate(time.Second).Add(2 * time.Second)
	sleepUntil(windowEnd.Add(200 * time.Millisecond))
	sign(resigned, release) // signed again, after the window

	g.Expect(c.Create(ctx, envtest.Namespace("revocation-trust", nil))).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "revocation-trust", Name: "sigstore"},
		Data: map[string]string{"trusted_root.json": string(s.stack.TrustedRootJSON())}})).To(Succeed())
	trustedRoot := &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "revocation-trust", Name: "sigstore"}}
	workflows := sigwatchv1alpha1.Authority{Name: "shop-workflows", Keyless: &sigwatchv1alpha1.KeylessAuthority{
		Identities: []sigwatchv1alpha1.Identity{{Issuer: s.stack.OIDC.URL, SubjectRegExp: "https://github.com/yourorg/shop/.+"}}}}
	images := sigwatchv1alpha1.ImagePattern(s.reg.Host + "/yourorg/shop/**")
	policies := []*sigwatchv1alpha1.ImageSignaturePolicy{
		{ObjectMeta: metav1.ObjectMeta{Name: "shop-signed"}, Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{images}, Authorities: []sigwatchv1alpha1.Authority{workflows}, TrustedRoot: trustedRoot}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop-scanned"}, Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(s.reg.Host + "/yourorg/shop/scanned")}, Authorities: []sigwatchv1alpha1.Authority{workflows},
			TrustedRoot: trustedRoot, Attestations: []sigwatchv1alpha1.Attestation{{Name: "vulns", PredicateType: "https://cosign.sigstore.dev/attestation/vuln/v1",
				Conditions: []string{"predicate.scanner.result.critical == 0"}}}}},
	}
	for _, p := range policies {
		g.Expect(c.Create(ctx, p)).To(Succeed())
		t.Cleanup(func() { _ = c.Delete(ctx, p) })
	}
	startManager(t)
	ns := "revocations"
	g.Expect(c.Create(ctx, envtest.Namespace(ns, nil))).To(Succeed())
	byName := map[string]name.Digest{"early": early, "api": compromised, "nightly": nightlyBuild, "web": resigned, "scanned": attested}
	for dep, img := range byName {
		_, err := envtest.RunDeployment(ctx, c, ns, dep, img.String(), "docker-pullable://"+img.String())
		g.Expect(err).NotTo(HaveOccurred())
	}
	verdicts := func(g Gomega) map[string]string {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		out := map[string]string{}
		for _, si := range list.Items {
			for dep, img := range byName {
				if si.Spec.Digest == img.DigestStr() {
					if v := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition); v != nil {
						out[dep] = v.Reason
					}
				}
			}
		}
		return out
	}
	allVerified := map[string]string{"early": "Verified", "api": "Verified", "nightly": "Verified", "web": "Verified", "scanned": "Verified"}
	g.Eventually(verdicts).WithTimeout(90 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(allVerified))

	// The revocation, written as the docs write it.
	rev := &sigwatchv1alpha1.SignatureRevocation{
		TypeMeta:   metav1.TypeMeta{APIVersion: sigwatchv1alpha1.GroupVersion.String(), Kind: "SignatureRevocation"},
		ObjectMeta: metav1.ObjectMeta{Name: "shop-token-leak"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "yourorg/shop's CI token leaked; see INC-4711", Signatures: []sigwatchv1alpha1.RevokedSignatures{
			{Keyless: &sigwatchv1alpha1.Identity{Issuer: s.stack.OIDC.URL, SubjectRegExp: "https://github.com/yourorg/shop/.github/workflows/release.yaml@.+",
				ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{SourceRepositoryURI: "https://github.com/yourorg/shop"}},
				SignedAfter: &metav1.Time{Time: windowStart}, SignedBefore: &metav1.Time{Time: windowEnd}},
		}},
	}
	file := filepath.Join(t.TempDir(), "revocation.yaml")
	data, err := yaml.Marshal(rev)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(file, data, 0o600)).To(Succeed())
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	kc, err := s.env.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(kubeconfig, kc, 0o600)).To(Succeed())
	runReport := func(args ...string) *report.Report {
		t.Helper()
		cmd := exec.Command(sigwatchBinary(t), append([]string{"report", "--kubeconfig", kubeconfig, "-n", ns, "-o", "json"}, args...)...)
		out, err := cmd.Output()
		g.Expect(err).NotTo(HaveOccurred(), "%s", out)
		r := &report.Report{}
		g.Expect(json.Unmarshal(out, r)).To(Succeed())
		return r
	}
	predicted := runReport("--revocation", file).Prediction
	g.Expect(predicted.Invalid).To(BeEmpty())

	// Which running images did the release workflow sign in the window? The report knows, by the TSA's time.
	matched := runReport("--signer-regexp", "https://github.com/yourorg/shop/.github/workflows/release.yaml@.+",
		"--signed-after", windowStart.Format(time.RFC3339), "--signed-before", windowEnd.Format(time.RFC3339)).Matches
	var matchedNames []string
	for _, m := range matched {
		matchedNames = append(matchedNames, m.Name)
		if m.Name == siName(g, ns, attested) {
			g.Expect(m.Signatures).To(ConsistOf(HaveField("PredicateType", "https://cosign.sigstore.dev/attestation/vuln/v1")),
				"scanned's image signature was made by the nightly workflow, its attestation by the release workflow")
		}
	}
	g.Expect(matchedNames).To(ConsistOf(siName(g, ns, compromised), siName(g, ns, resigned), siName(g, ns, attested)))

	g.Expect(c.Create(ctx, rev)).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(ctx, rev) })
	revoked := map[string]string{
		"early":   "Verified",         // signed by the release workflow before the window
		"api":     "SignatureRevoked", // signed by the release workflow inside the window
		"nightly": "Verified",         // signed by the other workflow inside the window
		"web":     "Verified",         // signed inside the window, and again after it
		"scanned": "SignatureRevoked", // its required attestation was made by the release workflow inside the window
	}
	g.Eventually(verdicts).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(revoked))

	// The prediction was what happened: the same images affected, the same ones failed.
	var list sigwatchv1alpha1.SignedImageList
	g.Eventually(func(g Gomega) {
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		affected := map[string]bool{}
		for _, si := range list.Items {
			revokedSomething := false
			for _, sig := range append(append([]sigwatchv1alpha1.SignatureInfo{}, si.Status.Signatures...), si.Status.Attestations...) {
				revokedSomething = revokedSomething || sig.Revocation == rev.Name
			}
			if revokedSomething {
				affected[si.Name] = !meta.IsStatusConditionTrue(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
			}
		}
		want := map[string]bool{}
		for _, img := range predicted.Images {
			want[img.Name] = img.WouldFail
		}
		g.Expect(affected).To(Equal(want))
		g.Expect(affected).To(HaveLen(3), "api and scanned fail; web keeps its signature of after the window")
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	g.Expect(predicted.WouldFail).To(Equal(2))

	// What the statuses say: the revoked signature, its TSA time, the revocation and its reason.
	for _, si := range list.Items {
		v := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		switch si.Spec.Digest {
		case compromised.DigestStr():
			g.Expect(v.Message).To(And(ContainSubstring("SignatureRevocation shop-token-leak"), ContainSubstring("INC-4711")))
			g.Expect(si.Status.Signatures[0].SignedTimeSource).To(Equal(sigwatchv1alpha1.SignedTimeTimestampAuthority))
			g.Expect(si.Status.Signatures[0].SignedTime.Time).To(BeTemporally(">=", windowStart))
		case resigned.DigestStr():
			g.Expect(v.Message).To(ContainSubstring("revoked by SignatureRevocation shop-token-leak"), "says which signature was revoked")
		case attested.DigestStr():
			g.Expect(v.Message).To(ContainSubstring("attestation vulns"))
			g.Expect(si.Status.Attestations).To(ContainElement(And(HaveField("Revocation", rev.Name),
				HaveField("PredicateType", "https://cosign.sigstore.dev/attestation/vuln/v1"))))
		}
	}
	eventually := func(g Gomega) {
		r := &sigwatchv1alpha1.SignatureRevocation{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(rev), r)).To(Succeed())
		g.Expect(r.Status.AffectedImages).To(HaveValue(BeEquivalentTo(3)))
	}
	g.Eventually(eventually).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// Deleted: every image verifies again.
	g.Expect(c.Delete(ctx, rev)).To(Succeed())
	g.Eventually(verdicts).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(allVerified))
}

func siName(g Gomega, ns string, img name.Digest) string {
	var list sigwatchv1alpha1.SignedImageList
	g.Expect(s.env.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	for _, si := range list.Items {
		if si.Spec.Digest == img.DigestStr() {
			return si.Name
		}
	}
	return ""
}
