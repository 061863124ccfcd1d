//go:build integration

package crd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/test/envtest"
)

const digestA = "sha256:0f3c4fe5a5a8c7d6b3a1e2f4d5c6b7a8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"

func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := envtest.Namespace(name, nil)
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return name
}

func signedImage(ns, name, image, digest string) *sigwatchv1alpha1.SignedImage {
	return &sigwatchv1alpha1.SignedImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       sigwatchv1alpha1.SignedImageSpec{Image: image, Digest: digest},
	}
}

func TestSignedImageValidation(t *testing.T) {
	ns := newNamespace(t, "si-validation")
	cases := []struct {
		name, image, digest string
		want                []string
	}{
		{"digest without algorithm", "ghcr.io/o/app", strings.TrimPrefix(digestA, "sha256:"), []string{"spec.digest", "at least 71 chars long"}},
		{"digest too short", "ghcr.io/o/app", "sha256:abc", []string{"spec.digest", "at least 71 chars long"}},
		{"digest of the right length, not hex", "ghcr.io/o/app", "sha256:" + strings.Repeat("z", 64), []string{"spec.digest", "should match"}},
		{"digest upper case", "ghcr.io/o/app", strings.ToUpper(digestA), []string{"spec.digest", "should match"}},
		{"sha512 digest", "ghcr.io/o/app", "sha512:" + strings.Repeat("a", 128), []string{"spec.digest", "may not be more than 71"}},
		{"image with a tag", "ghcr.io/o/app:v1", digestA, []string{"spec.image", "without tag or digest"}},
		{"image with a digest", "ghcr.io/o/app@" + digestA, digestA, []string{"spec.image", "without tag or digest"}},
		{"image missing", "", digestA, []string{"spec.image"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(context.Background(), signedImage(ns, "bad", tc.image, tc.digest))
			g.Expect(err).To(HaveOccurred())
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

func TestSignedImageSpecIsImmutable(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "si-immutable")
	si := signedImage(ns, "app", "ghcr.io/yourorg/app", digestA)
	g.Expect(env.Client.Create(ctx, si)).To(Succeed())

	changed := si.DeepCopy()
	changed.Spec.Digest = "sha256:" + strings.Repeat("1", 64)
	err := env.Client.Update(ctx, changed)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.digest"))
	g.Expect(err.Error()).To(ContainSubstring("digest is immutable"))

	changed = si.DeepCopy()
	changed.Spec.Image = "ghcr.io/yourorg/other"
	err = env.Client.Update(ctx, changed)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.image"))
	g.Expect(err.Error()).To(ContainSubstring("image is immutable"))

	// Metadata stays mutable.
	labelled := si.DeepCopy()
	labelled.Labels = map[string]string{"team": "a"}
	g.Expect(env.Client.Update(ctx, labelled)).To(Succeed())
}

func TestStatusSubresource(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "si-status")
	si := signedImage(ns, "app", "ghcr.io/yourorg/app", digestA)
	g.Expect(env.Client.Create(ctx, si)).To(Succeed())

	// Status written through the main resource is dropped.
	si.Status.Summary.Signer = "sneaky"
	g.Expect(env.Client.Update(ctx, si)).To(Succeed())
	got := &sigwatchv1alpha1.SignedImage{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(si), got)).To(Succeed())
	g.Expect(got.Status.Summary.Signer).To(BeEmpty())

	// Status written through the status subresource sticks, and does not bump the generation.
	gen := got.Generation
	got.Status.Summary.Signer = "https://github.com/yourorg/yourrepo/.github/workflows/release.yaml@refs/heads/main"
	meta.SetStatusCondition(&got.Status.Conditions, metav1.Condition{
		Type: sigwatchv1alpha1.VerifiedCondition, Status: metav1.ConditionTrue,
		Reason: sigwatchv1alpha1.VerifiedReason, Message: "ok", ObservedGeneration: gen,
	})
	g.Expect(env.Client.Status().Update(ctx, got)).To(Succeed())
	again := &sigwatchv1alpha1.SignedImage{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(si), again)).To(Succeed())
	g.Expect(again.Status.Summary.Signer).To(Equal(got.Status.Summary.Signer))
	g.Expect(again.Generation).To(Equal(gen))
	g.Expect(meta.IsStatusConditionTrue(again.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)).To(BeTrue())

	// An invalid status (unknown policy result) is rejected by the schema.
	again.Status.Policies = []sigwatchv1alpha1.PolicyResult{{Name: "p", Result: "Maybe"}}
	err := env.Client.Status().Update(ctx, again)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("status.policies[0].result"))
}

// table fetches a list as kubectl does, as a server-side Table.
func table(t *testing.T, path string) *metav1.Table {
	t.Helper()
	g := NewWithT(t)
	cs, err := kubernetes.NewForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	body, err := cs.CoreV1().RESTClient().Get().AbsPath(path).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	g.Expect(err).NotTo(HaveOccurred(), string(body))
	tbl := &metav1.Table{}
	g.Expect(json.Unmarshal(body, tbl)).To(Succeed())
	return tbl
}

func columns(tbl *metav1.Table) (names []string, wide []string) {
	for _, c := range tbl.ColumnDefinitions {
		if c.Priority == 0 {
			names = append(names, c.Name)
		} else {
			wide = append(wide, c.Name)
		}
	}
	return names, wide
}

func cell(tbl *metav1.Table, row int, column string) any {
	for i, c := range tbl.ColumnDefinitions {
		if c.Name == column {
			return tbl.Rows[row].Cells[i]
		}
	}
	return nil
}

func TestSignedImagePrinterColumns(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "si-columns")
	si := signedImage(ns, "app", "ghcr.io/yourorg/app", digestA)
	g.Expect(env.Client.Create(ctx, si)).To(Succeed())
	now := metav1.NewTime(time.Now().Add(-2 * time.Minute))
	si.Status = sigwatchv1alpha1.SignedImageStatus{
		Summary: sigwatchv1alpha1.SignedImageSummary{
			ShortDigest: digestA[7:19],
			Signer:      "https://github.com/yourorg/yourrepo/.github/workflows/release.yaml@refs/heads/main",
			Policies:    "release,slsa",
			Workloads:   "Deployment/web",
		},
		Conditions: []metav1.Condition{{
			Type: sigwatchv1alpha1.VerifiedCondition, Status: metav1.ConditionFalse,
			Reason: sigwatchv1alpha1.UntrustedSignerReason, Message: "m", LastTransitionTime: now,
		}},
		Policies:         []sigwatchv1alpha1.PolicyResult{{Name: "release", Result: sigwatchv1alpha1.PolicyFailed}, {Name: "slsa", Result: sigwatchv1alpha1.PolicyVerified}},
		Workloads:        []sigwatchv1alpha1.WorkloadReference{{Kind: "Deployment", Name: "web", Containers: []string{"app"}}},
		LastVerifiedTime: &now,
		LastAttemptTime:  &metav1.Time{Time: time.Now().Add(-30 * time.Second)},
	}
	g.Expect(env.Client.Status().Update(ctx, si)).To(Succeed())

	tbl := table(t, "/apis/sigwatch.dev/v1alpha1/namespaces/"+ns+"/signedimages")
	names, wide := columns(tbl)
	g.Expect(names).To(Equal([]string{"Name", "Image", "Digest", "Verified", "Reason", "Signer", "Checked", "Age"}))
	g.Expect(wide).To(Equal([]string{"Last Verified", "Policies", "Workloads"}), "the last success is in -o wide, so that it is not read beside False as \"verified 2m ago\"")
	g.Expect(tbl.Rows).To(HaveLen(1))
	g.Expect(cell(tbl, 0, "Image")).To(Equal("ghcr.io/yourorg/app"))
	g.Expect(cell(tbl, 0, "Digest")).To(Equal("0f3c4fe5a5a8"))
	g.Expect(cell(tbl, 0, "Verified")).To(Equal("False"))
	g.Expect(cell(tbl, 0, "Reason")).To(Equal("UntrustedSigner"))
	g.Expect(cell(tbl, 0, "Signer")).To(Equal(si.Status.Summary.Signer))
	g.Expect(cell(tbl, 0, "Last Verified")).To(Equal("2m"))
	g.Expect(cell(tbl, 0, "Checked")).To(Equal("30s"))
	g.Expect(cell(tbl, 0, "Policies")).To(Equal("release,slsa"))
	g.Expect(cell(tbl, 0, "Workloads")).To(Equal("Deployment/web"))
}

func TestPolicyPrinterColumns(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "columns"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: "https://token.actions.githubusercontent.com", Subject: "s"}},
			}}},
		},
	}
	g.Expect(env.Client.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
	p.Status = sigwatchv1alpha1.ImageSignaturePolicyStatus{
		Conditions: []metav1.Condition{{
			Type: sigwatchv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
			Reason: sigwatchv1alpha1.PolicyReadyReason, Message: "m", LastTransitionTime: metav1.Now(),
		}},
		MatchedImages: 5, VerifiedImages: 3, FailedImages: 1, UnknownImages: 1,
	}
	g.Expect(env.Client.Status().Update(ctx, p)).To(Succeed())

	// A policy whose status has only its conditions (as the controller first writes it) shows 0s.
	fresh := p.DeepCopy()
	fresh.ObjectMeta = metav1.ObjectMeta{Name: "columns-fresh"}
	fresh.Spec.Mode = sigwatchv1alpha1.PolicyModeAudit
	fresh.Status = sigwatchv1alpha1.ImageSignaturePolicyStatus{}
	g.Expect(env.Client.Create(ctx, fresh)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, fresh) })
	patch := []byte(`{"status":{"conditions":[{"type":"Ready","status":"False","reason":"InvalidPolicy","message":"m","lastTransitionTime":"2026-12-02T00:00:00Z"}]}}`)
	g.Expect(env.Client.Status().Patch(ctx, fresh, client.RawPatch(types.MergePatchType, patch))).To(Succeed())

	tbl := table(t, "/apis/sigwatch.dev/v1alpha1/imagesignaturepolicies")
	names, wide := columns(tbl)
	g.Expect(names).To(Equal([]string{"Name", "Ready", "Reason", "Mode", "Matched", "Verified", "Failed", "Age"}))
	g.Expect(wide).To(Equal([]string{"Unknown", "Exempt", "Severity"}))
	for i, r := range tbl.Rows {
		if r.Cells[0] == "columns-fresh" {
			g.Expect(cell(tbl, i, "Reason")).To(Equal("InvalidPolicy"))
			g.Expect(cell(tbl, i, "Mode")).To(Equal("Audit"))
			g.Expect(cell(tbl, i, "Severity")).To(Equal("high"))
			for _, c := range []string{"Matched", "Verified", "Failed", "Unknown", "Exempt"} {
				g.Expect(cell(tbl, i, c)).To(BeEquivalentTo(0), "%s is 0, not blank", c)
			}
		}
	}
	var row = -1
	for i, r := range tbl.Rows {
		if r.Cells[0] == "columns" {
			row = i
		}
	}
	g.Expect(row).NotTo(Equal(-1))
	g.Expect(cell(tbl, row, "Ready")).To(Equal("True"))
	g.Expect(cell(tbl, row, "Matched")).To(BeEquivalentTo(5))
	g.Expect(cell(tbl, row, "Verified")).To(BeEquivalentTo(3))
	g.Expect(cell(tbl, row, "Failed")).To(BeEquivalentTo(1))
}

func TestShortNamesAndCategory(t *testing.T) {
	g := NewWithT(t)
	resources, err := discoveryResources()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resources).To(HaveKeyWithValue("imagesignaturepolicies", resourceInfo{ShortNames: []string{"isp"}, Categories: []string{"sigwatch"}, Namespaced: false}))
	g.Expect(resources).To(HaveKeyWithValue("signedimages", resourceInfo{ShortNames: []string{"si"}, Categories: []string{"sigwatch"}, Namespaced: true}))
	g.Expect(resources).To(HaveKeyWithValue("imagesignatureexemptions", resourceInfo{ShortNames: []string{"isx"}, Categories: []string{"sigwatch"}, Namespaced: false}))
	g.Expect(resources).To(HaveKeyWithValue("transparencylogs", resourceInfo{ShortNames: []string{"tlog"}, Categories: []string{"sigwatch"}, Namespaced: false}))
	g.Expect(resources).To(HaveKeyWithValue("signaturerevocations", resourceInfo{ShortNames: []string{"sigrev"}, Categories: []string{"sigwatch"}, Namespaced: false}))
}

func TestExemptionValidationAndColumns(t *testing.T) {
	ctx := context.Background()
	exemption := func(name, spec string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		g := NewWithT(t)
		g.Expect(yaml.Unmarshal([]byte("apiVersion: sigwatch.dev/v1alpha1\nkind: ImageSignatureExemption\nmetadata: {name: "+name+"}\nspec:\n"+indent(spec, 2)), &u.Object)).To(Succeed())
		return u
	}
	for _, c := range []struct{ name, spec, want string }{
		{"no-selector", "reason: r", "at least one of namespaces, images or digests"},
		{"no-reason", "namespaces: [a]", "spec.reason"},
		{"bad-namespace", "reason: r\nnamespaces: [Kube_System]", "spec.namespaces[0]"},
		{"bad-digest", "reason: r\ndigests: [sha256:abc]", "spec.digests[0]"},
		{"bad-image", "reason: r\nimages: [ghcr.io/Org/app]", "lower case"},
		{"bad-expiry", "reason: r\nnamespaces: [a]\nexpiresAt: next week", "spec.expiresAt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(ctx, exemption(c.name, c.spec))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(c.want))
		})
	}
	g := NewWithT(t)
	u := exemption("legacy", "reason: INC-1 unsigned legacy image\nnamespaces: [team-*]\nimages: [docker.io/library/nginx]\nexpiresAt: \"2027-01-31T00:00:00Z\"")
	g.Expect(env.Client.Create(ctx, u)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	tbl := table(t, "/apis/sigwatch.dev/v1alpha1/imagesignatureexemptions")
	names, _ := columns(tbl)
	g.Expect(names).To(Equal([]string{"Name", "Ready", "Expires", "Reason", "Age"}))
	g.Expect(cell(tbl, 0, "Reason")).To(Equal("INC-1 unsigned legacy image"))
}

type resourceInfo struct {
	ShortNames []string
	Categories []string
	Namespaced bool
}

func discoveryResources() (map[string]resourceInfo, error) {
	c, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		return nil, err
	}
	list, err := c.ServerResourcesForGroupVersion(sigwatchv1alpha1.GroupVersion.String())
	if err != nil {
		return nil, err
	}
	out := map[string]resourceInfo{}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue
		}
		out[r.Name] = resourceInfo{ShortNames: r.ShortNames, Categories: r.Categories, Namespaced: r.Namespaced}
	}
	return out, nil
}

// issueRevocation is the SignatureRevocation of the incident-response docs, with a real key.
const issueRevocation = `apiVersion: sigwatch.dev/v1alpha1
kind: SignatureRevocation
metadata:
  name: release-workflow-compromise-2026-12
spec:
  reason: "CI token of yourorg/yourrepo leaked; see INC-4711"
  signatures:
    - keyless:
        issuer: https://token.actions.githubusercontent.com
        subjectRegExp: https://github.com/yourorg/yourrepo/.+
      signedAfter: "2026-12-01T10:00:00Z"
      signedBefore: "2026-12-01T14:00:00Z"
    - key:
        publicKey: |
          -----BEGIN PUBLIC KEY-----
          MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1XoTR0kr4q5y7H8r0t0b4xYc9mZ0
          -----END PUBLIC KEY-----
    - digests:
        - sha256:4f1d2a8d2f6e4d1b7f0e3c1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c
`

func TestRevocationValidationAndColumns(t *testing.T) {
	ctx := context.Background()
	revocation := func(name, spec string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		g := NewWithT(t)
		g.Expect(yaml.Unmarshal([]byte("apiVersion: sigwatch.dev/v1alpha1\nkind: SignatureRevocation\nmetadata: {name: "+name+"}\nspec:\n"+indent(spec, 2)), &u.Object)).To(Succeed())
		return u
	}
	for _, c := range []struct{ name, spec, want string }{
		{"no-reason", "signatures: [{digests: [sha256:" + strings.Repeat("a", 64) + "]}]", "spec.reason"},
		{"no-signatures", "reason: r", "spec.signatures"},
		{"empty-entry", "reason: r\nsignatures: [{}]", "exactly one of keyless, key or digests"},
		{"two-kinds", "reason: r\nsignatures: [{digests: [sha256:" + strings.Repeat("a", 64) + "], key: {publicKey: '-----BEGIN PUBLIC KEY-----'}}]", "exactly one of keyless, key or digests"},
		{"no-subject", "reason: r\nsignatures: [{keyless: {issuer: https://x}}]", "exactly one of subject or subjectRegExp"},
		{"bad-digest", "reason: r\nsignatures: [{digests: [sha256:abc]}]", "spec.signatures[0].digests[0]"},
		{"not-pem", "reason: r\nsignatures: [{key: {publicKey: abc}}]", "publicKey must be a PEM public key"},
		{"window-backwards", "reason: r\nsignatures: [{keyless: {issuer: https://x, subject: s}, signedAfter: '2026-12-01T14:00:00Z', signedBefore: '2026-12-01T10:00:00Z'}]", "signedAfter must be before signedBefore"},
		{"bad-time", "reason: r\nsignatures: [{keyless: {issuer: https://x, subject: s}, signedAfter: yesterday}]", "signedAfter"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(ctx, revocation(c.name, c.spec))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(c.want))
		})
	}
	g := NewWithT(t)
	u := &unstructured.Unstructured{}
	g.Expect(yaml.Unmarshal([]byte(issueRevocation), &u.Object)).To(Succeed())
	g.Expect(env.Client.Create(ctx, u)).To(Succeed(), "the revocation of the docs applies as written")
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	tbl := table(t, "/apis/sigwatch.dev/v1alpha1/signaturerevocations")
	names, _ := columns(tbl)
	g.Expect(names).To(Equal([]string{"Name", "Ready", "Affected", "Reason", "Age"}))
	g.Expect(cell(tbl, 0, "Reason")).To(Equal("CI token of yourorg/yourrepo leaked; see INC-4711"))
}
