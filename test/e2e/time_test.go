//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/signatures"
)

// certificateLifetime is how long Fulcio's certificates are valid (hard-coded in Fulcio).
const certificateLifetime = 10 * time.Minute

// TestExpiredCertificateStillVerifies verifies, once its certificate has expired, the image signed first
// by TestMain: the certificate's validity is checked at the time the timestamp authority certified, never
// at "now", so a re-verification long after signing still passes. It waits for Fulcio's ten-minute
// certificate to expire (the other packages' tests run meanwhile).
func TestExpiredCertificateStillVerifies(t *testing.T) {
	t.Parallel() // runs after the package's other tests, while the certificate ages
	g := NewWithT(t)
	expiry := s.agingSignedAt.Add(certificateLifetime + 5*time.Second)
	if wait := time.Until(expiry); wait > 0 {
		t.Logf("waiting %s for the certificate of %s to expire", wait.Round(time.Second), s.aging)
		time.Sleep(wait)
	}
	cert := signingCertificate(t, s.aging)
	g.Expect(time.Now()).To(BeTemporally(">", cert.NotAfter), "the certificate has expired")
	pr := verify(t, imageOf(t, s.aging.String()), compile(t, "release-on-main", releasePolicySpec(releaseIdentity())))
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
}

// signingCertificate reads the certificate of the first bundle referrer of img.
func signingCertificate(t *testing.T, img name.Digest) *x509.Certificate {
	t.Helper()
	idx, err := remote.Referrers(img)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) == 0 {
		t.Fatalf("no referrer of %s: %v", img, err)
	}
	ref, err := remote.Image(img.Context().Digest(m.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := ref.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %v", err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle.Bundle{}
	if err := b.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		t.Fatalf("no certificate in the bundle: %v", err)
	}
	return vc.Certificate()
}

// TestRejectsTimestampOutsideCertificateValidity builds a signature from the real services in an order
// cosign never uses: the timestamp authority stamps the signature, and only then does Fulcio certify the
// key. The timestamp falls before the certificate's validity, so the signature is rejected; the same
// pieces in cosign's order verify (the control), so the rejection is for that reason.
func TestRejectsTimestampOutsideCertificateValidity(t *testing.T) {
	optional := releasePolicySpec(releaseIdentity())
	optional.Authorities[0].TransparencyLog = &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogOptional}
	p := compile(t, "release-tsa-only", optional)

	t.Run("control: certificate, then signature and timestamp", func(t *testing.T) {
		img, err := s.push(context.Background(), "yourorg/ordered:v1")
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		handSign(t, img, false)
		NewWithT(t).Expect(verify(t, imageOf(t, img.String()), p).Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
	})
	t.Run("timestamp before the certificate", func(t *testing.T) {
		img, err := s.push(context.Background(), "yourorg/backdated:v1")
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		handSign(t, img, true)
		pr := verify(t, imageOf(t, img.String()), p)
		NewWithT(t).Expect(pr.Reason).To(Equal(sigwatchv1alpha1.InvalidSignatureReason))
		NewWithT(t).Expect(pr.Message).To(ContainSubstring("certificate"))
	})
}

// handSign signs img as the release workflow with the stack's Fulcio and timestamp authority (no log
// entry), as a cosign v3 bundle; stampFirst asks for the timestamp before the certificate.
func handSign(t *testing.T, img name.Digest, stampFirst bool) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	statement := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"%s"}}],"predicateType":"%s","predicate":{}}`,
		strings.TrimPrefix(img.DigestStr(), "sha256:"), signatures.CosignSignPredicate)
	const payloadType = "application/vnd.in-toto+json"
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(statement), statement)
	digest := sha256.Sum256([]byte(pae))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	g.Expect(err).NotTo(HaveOccurred())

	var chain []*x509.Certificate
	var stamp []byte
	if stampFirst {
		stamp = tsaTimestamp(t, sig)
		time.Sleep(2 * time.Second) // certificates have a resolution of one second
		chain = fulcioCertificate(t, key)
	} else {
		chain = fulcioCertificate(t, key)
		stamp = tsaTimestamp(t, sig)
	}
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: chain[0].Raw}},
			TimestampVerificationData: &protobundle.TimestampVerificationData{
				Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: stamp}}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: []byte(statement), PayloadType: payloadType, Signatures: []*protodsse.Signature{{Sig: sig}}}},
	}
	b, err := bundle.NewBundle(pb)
	g.Expect(err).NotTo(HaveOccurred())
	data, err := b.MarshalJSON()
	g.Expect(err).NotTo(HaveOccurred())
	_, err = writer(s.reg).PushBundleReferrer(ctx, img, img.Context(), data, signatures.CosignSignPredicate)
	g.Expect(err).NotTo(HaveOccurred())
}

// fulcioCertificate asks the stack's Fulcio for a certificate of key, for a token of the release workflow.
func fulcioCertificate(t *testing.T, key *ecdsa.PrivateKey) []*x509.Certificate {
	t.Helper()
	g := NewWithT(t)
	token, err := s.stack.OIDC.Token(releaseClaims, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	g.Expect(err).NotTo(HaveOccurred())
	sub := sha256.Sum256([]byte(releaseClaims.Subject)) // proof of possession: the token's sub, signed
	pop, err := ecdsa.SignASN1(rand.Reader, key, sub[:])
	g.Expect(err).NotTo(HaveOccurred())
	body, _ := json.Marshal(map[string]any{
		"credentials": map[string]string{"oidcIdentityToken": token},
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]string{"algorithm": "ECDSA", "content": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))},
			"proofOfPossession": base64.StdEncoding.EncodeToString(pop),
		},
	})
	resp, err := http.Post(s.stack.FulcioURL+"/api/v2/signingCert", "application/json", bytes.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(data))
	// {"signedCertificateDetachedSct" or "signedCertificateEmbeddedSct": {"chain": {"certificates": [PEM...]}}}
	var resp2 map[string]struct {
		Chain struct {
			Certificates []string `json:"certificates"`
		} `json:"chain"`
	}
	g.Expect(json.Unmarshal(data, &resp2)).To(Succeed(), string(data))
	var pems []string
	for _, v := range resp2 {
		pems = append(pems, v.Chain.Certificates...)
	}
	var chain []*x509.Certificate
	for _, p := range pems {
		block, _ := pem.Decode([]byte(p))
		g.Expect(block).NotTo(BeNil())
		c, err := x509.ParseCertificate(block.Bytes)
		g.Expect(err).NotTo(HaveOccurred())
		chain = append(chain, c)
	}
	g.Expect(chain).NotTo(BeEmpty())
	return chain
}

// tsaTimestamp asks the stack's timestamp authority for an RFC 3161 timestamp of sig.
func tsaTimestamp(t *testing.T, sig []byte) []byte {
	t.Helper()
	g := NewWithT(t)
	req, err := timestamp.CreateRequest(bytes.NewReader(sig), &timestamp.RequestOptions{Hash: crypto.SHA256, Certificates: true})
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := http.Post(s.stack.TSAURL, "application/timestamp-query", bytes.NewReader(req))
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(data))
	_, err = timestamp.ParseResponse(data)
	g.Expect(err).NotTo(HaveOccurred(), hex.EncodeToString(data[:min(len(data), 32)]))
	return data
}
