package bundleverify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/bundleverify"
	"github.com/sigwatch/sigwatch/internal/trust"
)

const (
	provenanceSAN    = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
	githubIssuer     = "https://token.actions.githubusercontent.com"
	provenanceDigest = "sha512:76176ffa33808b54602c7c35de5c6e9a4deb96066dba6533f50ac234f4f1f4c6b3527515dc17c06fbe2860030f410eee69ea20079bd3a2c6f3dcf3b329b10751"
	prodRoot         = "roots/prod.sigstore-python.trusted_root.json"
	stagingRoot      = "roots/staging.sigstore-python.trusted_root.json"
)

// provenanceRequest is the sigstore-go example bundle (DSSE, production, GitHub Actions), valid as is.
func provenanceRequest(t testing.TB) bundleverify.Request {
	return bundleverify.Request{
		Bundle:         readVectorFile(t, "sigstore-go/bundle-provenance.json"),
		ArtifactDigest: provenanceDigest,
		Identity:       bundleverify.Identity{CertificateIdentity: provenanceSAN, CertificateOIDCIssuer: githubIssuer},
		TrustRoot:      loadRoot(t, filepath.Join(vectorsDir, prodRoot)),
	}
}

// messageSignatureRequest is a sigstore-python staging bundle (message signature over a file).
func messageSignatureRequest(t testing.TB) bundleverify.Request {
	return bundleverify.Request{
		Bundle:    readVectorFile(t, "sigstore-python/bundle_v3.txt.sigstore"),
		Artifact:  readVectorFile(t, "sigstore-python/bundle_v3.txt"),
		Identity:  bundleverify.Identity{CertificateIdentity: "william@yossarian.net", CertificateOIDCIssuer: "https://github.com/login/oauth"},
		TrustRoot: loadRoot(t, filepath.Join(vectorsDir, stagingRoot)),
	}
}

// keyRequest is the sigstore-go key-signed example bundle.
func keyRequest(t testing.TB) bundleverify.Request {
	return bundleverify.Request{
		Bundle:         readVectorFile(t, "sigstore-go/bundle-publish.json"),
		ArtifactDigest: provenanceDigest,
		PublicKey:      readVectorFile(t, "sigstore-go/publish_key.pub"),
		TrustRoot:      loadRoot(t, filepath.Join(vectorsDir, prodRoot)),
	}
}

func verify(req bundleverify.Request) (*bundleverify.Result, error) {
	return bundleverify.Verify(context.Background(), req)
}

func TestVerifyReportsSigner(t *testing.T) {
	g := NewWithT(t)
	res, err := verify(provenanceRequest(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Certificate.SubjectAlternativeName).To(Equal(provenanceSAN))
	g.Expect(res.Certificate.Issuer).To(Equal(githubIssuer))
	g.Expect(res.Certificate.SourceRepositoryURI).To(Equal("https://github.com/sigstore/sigstore-js"))
	g.Expect(res.Certificate.GithubWorkflowRef).To(Equal("refs/heads/main"))
	g.Expect(res.KeyID).To(BeEmpty())
	g.Expect(res.TlogEntries).To(ConsistOf(HaveField("LogIndex", int64(18300934))))
	g.Expect(res.VerifiedTimestamps).To(ConsistOf(HaveField("Source", "Tlog")))
	g.Expect(res.SignedAt().Unix()).To(Equal(int64(1681839912)))
	g.Expect(res.PredicateType).To(Equal("https://slsa.dev/provenance/v0.2"))
	g.Expect(res.TrustRoot).To(Equal("prod.sigstore-python.trusted_root.json"))
}

func TestVerifyReportsKey(t *testing.T) {
	g := NewWithT(t)
	res, err := verify(keyRequest(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Certificate).To(BeNil())
	g.Expect(res.KeyID).To(MatchRegexp("^[0-9a-f]{64}$"))
	g.Expect(res.TlogEntries).To(ConsistOf(HaveField("LogIndex", int64(18300940))))
	g.Expect(res.VerifiedTimestamps).NotTo(BeEmpty())
}

func TestVerifyAcceptsAnchoredRegexps(t *testing.T) {
	g := NewWithT(t)
	req := provenanceRequest(t)
	req.Identity = bundleverify.Identity{
		CertificateIdentityRegexp:   `https://github\.com/sigstore/sigstore-js/\.github/workflows/.*@refs/heads/main`,
		CertificateOIDCIssuerRegexp: `https://token\.actions\.githubusercontent\.com`,
	}
	_, err := verify(req)
	g.Expect(err).NotTo(HaveOccurred())
}

func TestVerifyRejectsWrongSAN(t *testing.T) {
	g := NewWithT(t)
	req := provenanceRequest(t)
	req.Identity.CertificateIdentity = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/evil"
	_, err := verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("certificate identity")))
	g.Expect(err).To(MatchError(ContainSubstring("SAN")))
}

func TestVerifyRejectsWrongIssuer(t *testing.T) {
	g := NewWithT(t)
	req := provenanceRequest(t)
	req.Identity.CertificateOIDCIssuer = "https://accounts.google.com"
	_, err := verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("certificate identity")))
	g.Expect(err).To(MatchError(ContainSubstring(`expected issuer value "https://accounts.google.com"`)))
}

func TestVerifyRejectsUnanchoredRegexpMatch(t *testing.T) {
	for name, id := range map[string]bundleverify.Identity{
		"SAN prefix": {
			CertificateIdentityRegexp: "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/mai",
			CertificateOIDCIssuer:     githubIssuer,
		},
		"SAN substring": {CertificateIdentityRegexp: "sigstore-js/", CertificateOIDCIssuer: githubIssuer},
		"issuer substring": {
			CertificateIdentity:         provenanceSAN,
			CertificateOIDCIssuerRegexp: `token\.actions`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			req := provenanceRequest(t)
			req.Identity = id
			_, err := verify(req)
			g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
			g.Expect(err).To(MatchError(ContainSubstring("to match regex")))
		})
	}
}

func TestVerifyRejectsWrongArtifactDigest(t *testing.T) {
	g := NewWithT(t)
	req := provenanceRequest(t)
	req.ArtifactDigest = "sha512:" + "00" + provenanceDigest[len("sha512:00"):]
	_, err := verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("failed to verify signature")))
}

func TestVerifyRejectsWrongArtifact(t *testing.T) {
	g := NewWithT(t)
	req := messageSignatureRequest(t)
	req.Artifact = append(req.Artifact, '\n')
	_, err := verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("failed to verify signature")))
}

func TestVerifyRejectsTamperedSignature(t *testing.T) {
	withoutLogEntry := keyRequest(t)
	withoutLogEntry.Bundle = editJSON(t, withoutLogEntry.Bundle, func(b map[string]any) {
		b["verificationMaterial"].(map[string]any)["tlogEntries"] = []any{}
	})
	for name, tc := range map[string]struct {
		req  bundleverify.Request
		want string
	}{
		// A Rekor v1 entry records the signature: the log check catches the change first.
		"DSSE":              {provenanceRequest(t), "transparency log signature does not match"},
		"message signature": {messageSignatureRequest(t), "transparency log signature does not match"},
		"key":               {keyRequest(t), "transparency log signature does not match"},
		"key, no log entry": {withoutLogEntry, "failed to verify signature"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := verify(tc.req)
			g.Expect(err).NotTo(HaveOccurred(), "the untampered bundle must verify")
			tc.req.Bundle = flipSignatureByte(t, tc.req.Bundle)
			_, err = verify(tc.req)
			g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

// flipSignatureByte flips the last byte of the bundle's (first) signature.
func flipSignatureByte(t *testing.T, bundleJSON []byte) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(bundleJSON, &b); err != nil {
		t.Fatal(err)
	}
	var holder map[string]any
	field := "signature"
	if ms, ok := b["messageSignature"].(map[string]any); ok {
		holder = ms
	} else {
		holder = b["dsseEnvelope"].(map[string]any)["signatures"].([]any)[0].(map[string]any)
		field = "sig"
	}
	sig, err := base64.StdEncoding.DecodeString(holder[field].(string))
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 0x01
	holder[field] = base64.StdEncoding.EncodeToString(sig)
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyRejectsWrongKey(t *testing.T) {
	g := NewWithT(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	g.Expect(err).NotTo(HaveOccurred())
	req := keyRequest(t)
	req.PublicKey = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	_, err = verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	// The Rekor v1 entry records the signer's key, so the log check catches the other key first.
	g.Expect(err).To(MatchError(ContainSubstring("with key " + keyIDOf(t, req.PublicKey))))
	g.Expect(err).To(MatchError(ContainSubstring("transparency log certificate does not match")))

	// Without the log entry, the signature check itself rejects the key.
	req.Bundle = editJSON(t, req.Bundle, func(b map[string]any) {
		b["verificationMaterial"].(map[string]any)["tlogEntries"] = []any{}
	})
	_, err = verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("failed to verify signature")))
}

func keyIDOf(t *testing.T, pemKey []byte) string {
	t.Helper()
	block, _ := pem.Decode(pemKey)
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

func TestVerifyRejectsUntrustedCA(t *testing.T) {
	prod := readVectorFile(t, prodRoot)
	for name, tc := range map[string]struct {
		root *trust.Root
		want string
	}{
		// The staging root knows neither the production CA nor the production log.
		"staging root": {loadRoot(t, filepath.Join(vectorsDir, stagingRoot)), "log"},
		// The production root without its CAs: the log entry verifies, the certificate does not.
		"production root without CAs": {editRoot(t, prod, func(r map[string]any) { r["certificateAuthorities"] = []any{} }), "certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			req := provenanceRequest(t)
			req.TrustRoot = tc.root
			_, err := verify(req)
			g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
			g.Expect(err).To(MatchError(bundleverify.ErrTrustRootMismatch), "the bundle is intact: only the root lacks its parts")
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

// TestVerifyRequiresSCTWhenRootListsCTLogs: with CT logs that did not sign the certificate's SCT, the
// bundle fails; with no CT logs in the root, no SCT is required.
func TestVerifyRequiresSCTWhenRootListsCTLogs(t *testing.T) {
	prod := readVectorFile(t, prodRoot)
	var staging map[string]any
	if err := json.Unmarshal(readVectorFile(t, stagingRoot), &staging); err != nil {
		t.Fatal(err)
	}
	g := NewWithT(t)

	req := provenanceRequest(t)
	req.TrustRoot = editRoot(t, prod, func(r map[string]any) { r["ctlogs"] = staging["ctlogs"] })
	g.Expect(req.TrustRoot.RequireSCT()).To(BeTrue())
	_, err := verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("signed certificate timestamp")))

	req.TrustRoot = editRoot(t, prod, func(r map[string]any) { r["ctlogs"] = []any{} })
	g.Expect(req.TrustRoot.RequireSCT()).To(BeFalse())
	_, err = verify(req)
	g.Expect(err).NotTo(HaveOccurred())
}

func TestVerifyRequiresTransparencyLogEntryWhenKeyless(t *testing.T) {
	g := NewWithT(t)
	// A Rekor v2 bundle with an RFC 3161 timestamp: without its log entry it still has an observer
	// timestamp, so only the log requirement can reject it.
	req := bundleverify.Request{
		Bundle:    readVectorFile(t, "sigstore-python/staging-rekor-v2.txt.sigstore.json"),
		Artifact:  readVectorFile(t, "sigstore-python/staging-rekor-v2.txt"),
		Identity:  bundleverify.Identity{CertificateIdentity: "jku@goto.fi", CertificateOIDCIssuer: "https://github.com/login/oauth"},
		TrustRoot: loadRoot(t, filepath.Join(vectorsDir, stagingRoot)),
	}
	_, err := verify(req)
	g.Expect(err).NotTo(HaveOccurred())

	req.Bundle = editJSON(t, req.Bundle, func(b map[string]any) {
		b["verificationMaterial"].(map[string]any)["tlogEntries"] = []any{}
	})
	_, err = verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("log")))
}

func TestVerifyRejectsSignerKindMismatch(t *testing.T) {
	g := NewWithT(t)
	req := keyRequest(t)
	req.PublicKey = nil
	req.Identity = bundleverify.Identity{CertificateIdentity: provenanceSAN, CertificateOIDCIssuer: githubIssuer}
	_, err := verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("signed with a public key")))

	req = provenanceRequest(t)
	req.Identity = bundleverify.Identity{}
	req.PublicKey = readVectorFile(t, "sigstore-go/publish_key.pub")
	_, err = verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("signed with a certificate")))
}

func TestVerifyRejectsMalformedBundle(t *testing.T) {
	g := NewWithT(t)
	req := provenanceRequest(t)
	req.Bundle = []byte(`{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}`)
	_, err := verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(err).To(MatchError(ContainSubstring("parsing bundle")))
}

func TestVerifyRejectsInvalidRequest(t *testing.T) {
	key := readVectorFile(t, "sigstore-go/publish_key.pub")
	for name, tc := range map[string]struct {
		edit func(*bundleverify.Request)
		want string
	}{
		"no bundle":   {func(r *bundleverify.Request) { r.Bundle = nil }, "Bundle is required"},
		"no root":     {func(r *bundleverify.Request) { r.TrustRoot = nil }, "TrustRoot is required"},
		"no artifact": {func(r *bundleverify.Request) { r.ArtifactDigest = "" }, "one of Artifact and ArtifactDigest"},
		"artifact and digest": {func(r *bundleverify.Request) { r.Artifact = []byte("x") },
			"Artifact and ArtifactDigest are mutually exclusive"},
		"md5 digest":   {func(r *bundleverify.Request) { r.ArtifactDigest = "md5:d41d8cd98f00b204e9800998ecf8427e" }, "want sha256:HEX or sha512:HEX"},
		"short digest": {func(r *bundleverify.Request) { r.ArtifactDigest = "sha256:abcd" }, "want 64 hex characters"},
		"no signer":    {func(r *bundleverify.Request) { r.Identity = bundleverify.Identity{} }, "one of Identity and PublicKey"},
		"identity and key": {func(r *bundleverify.Request) { r.PublicKey = key },
			"Identity and PublicKey are mutually exclusive"},
		"identity and identity regexp": {func(r *bundleverify.Request) { r.Identity.CertificateIdentityRegexp = ".*" },
			"CertificateIdentity and CertificateIdentityRegexp are mutually exclusive"},
		"issuer and issuer regexp": {func(r *bundleverify.Request) { r.Identity.CertificateOIDCIssuerRegexp = ".*" },
			"CertificateOIDCIssuer and CertificateOIDCIssuerRegexp are mutually exclusive"},
		"no issuer": {func(r *bundleverify.Request) { r.Identity.CertificateOIDCIssuer = "" },
			"one of CertificateOIDCIssuer and CertificateOIDCIssuerRegexp"},
		"no identity": {func(r *bundleverify.Request) { r.Identity.CertificateIdentity = "" },
			"one of CertificateIdentity and CertificateIdentityRegexp"},
		"bad regexp": {func(r *bundleverify.Request) {
			r.Identity.CertificateIdentity, r.Identity.CertificateIdentityRegexp = "", "(unclosed"
		}, `CertificateIdentityRegexp "(unclosed"`},
		"bad key": {func(r *bundleverify.Request) {
			r.Identity, r.PublicKey = bundleverify.Identity{}, []byte("not a key")
		}, "PublicKey"},
		"a key the verifier cannot use, refused as the policy compiler refuses it": {func(r *bundleverify.Request) {
			n := new(big.Int).Lsh(big.NewInt(1), 8191)
			der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n.Add(n, big.NewInt(1)), E: 65537})
			if err != nil {
				t.Fatal(err)
			}
			r.Identity, r.PublicKey = bundleverify.Identity{}, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}, "RSA key of 8192 bits is not accepted"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			req := provenanceRequest(t)
			tc.edit(&req)
			_, err := verify(req)
			g.Expect(err).To(MatchError(bundleverify.ErrInvalidRequest))
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

func TestVerifyHonoursCancelledContext(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := bundleverify.Verify(ctx, provenanceRequest(t))
	g.Expect(err).To(MatchError(context.Canceled))
}

func TestParseDigest(t *testing.T) {
	g := NewWithT(t)
	alg, raw, err := bundleverify.ParseDigest(emptyImageDigest)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(alg).To(Equal("sha256"))
	g.Expect(raw).To(HaveLen(32))
	alg, raw, err = bundleverify.ParseDigest(provenanceDigest)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(alg).To(Equal("sha512"))
	g.Expect(raw).To(HaveLen(64))
	_, _, err = bundleverify.ParseDigest("sha256:" + emptyImageDigest[len("sha256:"):len(emptyImageDigest)-1] + "g")
	g.Expect(err).To(MatchError(bundleverify.ErrInvalidRequest))
	g.Expect(bundleverify.IsDigest("sha512:00")).To(BeTrue())
	g.Expect(bundleverify.IsDigest("artifact.txt")).To(BeFalse())
}

func editRoot(t *testing.T, rootJSON []byte, edit func(map[string]any)) *trust.Root {
	t.Helper()
	r, err := trust.FromJSON(editJSON(t, rootJSON, edit), "edited root")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func editJSON(t *testing.T, data []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
