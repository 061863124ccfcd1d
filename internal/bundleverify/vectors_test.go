package bundleverify_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/bundleverify"
	"github.com/sigwatch/sigwatch/internal/trust"
)

const vectorsDir = "testdata/public-good-bundles"

// vector is one row of testdata/public-good-bundles/INDEX.tsv.
type vector struct {
	id, bundle, trustedRoot, key, san, issuer, artifact, sct, expected, source string
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir, "INDEX.tsv"))
	if err != nil {
		t.Fatalf("reading the vector index: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var out []vector
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		if len(f) != 10 {
			t.Fatalf("INDEX.tsv row %q: %d columns, want 10", line, len(f))
		}
		out = append(out, vector{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]})
	}
	if len(out) == 0 {
		t.Fatal("INDEX.tsv has no rows")
	}
	return out
}

func readVectorFile(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir, rel))
	if err != nil {
		t.Fatalf("reading %s: %v", rel, err)
	}
	return data
}

func loadRoot(t testing.TB, path string) *trust.Root {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	r, err := trust.FromJSON(data, filepath.Base(path))
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	return r
}

// request builds the library request a vector row describes.
func (v vector) request(t *testing.T) bundleverify.Request {
	req := bundleverify.Request{
		Bundle:    readVectorFile(t, v.bundle),
		TrustRoot: loadRoot(t, filepath.Join(vectorsDir, v.trustedRoot)),
	}
	if bundleverify.IsDigest(v.artifact) {
		req.ArtifactDigest = v.artifact
	} else {
		req.Artifact = readVectorFile(t, v.artifact)
	}
	if v.key != "-" {
		req.PublicKey = readVectorFile(t, v.key)
	} else {
		req.Identity = bundleverify.Identity{CertificateIdentity: v.san, CertificateOIDCIssuer: v.issuer}
	}
	return req
}

func TestPublicVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.id, func(t *testing.T) {
			g := NewWithT(t)
			res, err := bundleverify.Verify(context.Background(), v.request(t))
			switch v.expected {
			case "pass":
				g.Expect(err).NotTo(HaveOccurred())
				if v.key != "-" {
					g.Expect(res.KeyID).To(HaveLen(64))
					g.Expect(res.Certificate).To(BeNil())
				} else {
					g.Expect(res.Certificate).NotTo(BeNil())
					g.Expect(res.Certificate.SubjectAlternativeName).To(Equal(v.san))
					g.Expect(res.Certificate.Issuer).To(Equal(v.issuer))
					g.Expect(res.TlogEntries).NotTo(BeEmpty())
					g.Expect(res.VerifiedTimestamps).NotTo(BeEmpty())
				}
				t.Logf("%s: want=pass got=pass", v.id)
			case "fail":
				g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
				t.Logf("%s: want=fail got=fail: %v", v.id, err)
			default:
				t.Fatalf("expected column %q: want pass or fail", v.expected)
			}
		})
	}
}

// TestVectorSCTColumn compares the index's sct column with our rule: SCTs are required exactly when
// the trust root lists CT logs and the bundle is certificate-based. A disagreement is reported, not
// special-cased: the verdict test above is what must hold.
// TestVectorSCTColumn compares our SCT rule (required exactly when the trust root lists CT logs and the
// bundle is certificate-based) with the vectors' "sct" column. Ours must never be looser than the column
// (that would accept a certificate the column says needs an SCT); where it is stricter, the case is named
// here with why, and TestPublicVectors shows the verdict is still the expected one.
func TestVectorSCTColumn(t *testing.T) {
	g := NewWithT(t)
	stricter := map[string]string{
		"sgo-dsse-2sigs":             "expected to fail anyway (two DSSE signatures)",
		"sgo-othername(scaffolding)": "its certificate carries an SCT of the scaffolding CT log, so requiring one still passes",
		"sgo-othername-email-san":    "expected to fail anyway (wrong SAN)",
	}
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		r := loadRoot(t, filepath.Join(vectorsDir, v.trustedRoot))
		ours := r.RequireSCT() && certificateBased(t, readVectorFile(t, v.bundle))
		column := v.sct == "1"
		g.Expect(column && !ours).To(BeFalse(), "%s: the column requires SCTs and our rule does not (root %s lists %d CT logs)",
			v.id, v.trustedRoot, len(r.Material.CTLogs()))
		if ours && !column {
			g.Expect(stricter).To(HaveKey(v.id), "%s: our rule requires SCTs, the column does not; say why here (expected verdict %s)", v.id, v.expected)
			seen[v.id] = true
		}
	}
	for id := range stricter {
		g.Expect(seen).To(HaveKey(id), "%s is listed as stricter but the rule and the column now agree: drop it", id)
	}
}

func certificateBased(t *testing.T, bundleJSON []byte) bool {
	t.Helper()
	var b struct {
		VerificationMaterial map[string]json.RawMessage `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(bundleJSON, &b); err != nil {
		t.Fatalf("parsing bundle: %v", err)
	}
	_, hasKey := b.VerificationMaterial["publicKey"]
	return !hasKey
}

func TestCosignReferrerBundle(t *testing.T) {
	g := NewWithT(t)
	res, err := bundleverify.Verify(context.Background(), cosignReferrerRequest(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Certificate.SubjectAlternativeName).To(Equal("cody@soyland.com"))
	g.Expect(res.Certificate.Issuer).To(Equal("https://github.com/login/oauth"))
	g.Expect(res.TlogEntries).NotTo(BeEmpty())
	g.Expect(res.SignedAt().IsZero()).To(BeFalse())
}

// emptyImageDigest is go-containerregistry's empty.Image digest, the subject of the cosign bundle.
const emptyImageDigest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"

func cosignReferrerRequest(t testing.TB) bundleverify.Request {
	data, err := os.ReadFile("testdata/cosign-new-bundle/oci-attestation.sigstore.json")
	if err != nil {
		t.Fatal(err)
	}
	return bundleverify.Request{
		Bundle:         data,
		ArtifactDigest: emptyImageDigest,
		Identity: bundleverify.Identity{
			CertificateIdentity:   "cody@soyland.com",
			CertificateOIDCIssuer: "https://github.com/login/oauth",
		},
		TrustRoot: loadRoot(t, "testdata/cosign-new-bundle/trusted_root_pgi.json"),
	}
}
