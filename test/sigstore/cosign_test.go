//go:build integration

package sigstore

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/sigwatch/sigwatch/test/cosign"
)

// requireCosign skips the test when the cosign binary (`make cosign`) is missing.
func requireCosign(t *testing.T) {
	t.Helper()
	if _, err := cosign.Binary(); err != nil {
		t.Skipf("skipping the check with the real cosign: %v", err)
	}
}

// TestCosignVerifiesKeySignature has the real cosign (v3.1.3, offline) verify a legacy signature made with
// a key by Writer.
func TestCosignVerifiesKeySignature(t *testing.T) {
	requireCosign(t)
	f := newFixture(t)
	w := startRegistry(t, true)
	img := pushImage(t, w, "app")
	key := mustKeySigner(t, nil)
	if _, err := w.SignLegacy(context.Background(), img, key, SignOptions{Annotations: map[string]string{"env": "test"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(pub, key.PublicKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	root := writeTrustedRoot(t, f.stack, dir)
	cosign.Run(t, dir, nil, "verify", "--key", pub, "--trusted-root", root,
		"--insecure-ignore-tlog=true", "--allow-insecure-registry", "--allow-http-registry", "-a", "env=test", img.String())
}

// TestCosignVerifiesKeyless has the real cosign verify keyless signatures and attestations from Writer,
// legacy and bundle, against the stack's trusted root: the certificate, its GitHub claims, the SET and
// inclusion proof of the log entry, and the timestamp.
func TestCosignVerifiesKeyless(t *testing.T) {
	requireCosign(t)
	f := newFixture(t)
	w := startRegistry(t, true)
	dir := t.TempDir()
	root := writeTrustedRoot(t, f.stack, dir)
	identity := []string{
		"--trusted-root", root,
		"--certificate-identity", f.identity.Subject,
		"--certificate-oidc-issuer", f.identity.Issuer,
		"--certificate-github-workflow-repository", f.identity.Repository,
		"--certificate-github-workflow-ref", f.identity.Ref,
		"--certificate-github-workflow-sha", f.identity.SHA,
		"--certificate-github-workflow-trigger", f.identity.Trigger,
		"--certificate-github-workflow-name", f.identity.WorkflowName,
		"--insecure-ignore-sct",
		"--allow-insecure-registry", "--allow-http-registry",
	}
	for _, tc := range []struct {
		kind string
		opts SignOptions
	}{
		{"sign/legacy", SignOptions{Timestamp: true}},
		{"sign/bundle", SignOptions{Timestamp: true}},
		{"attest/legacy", SignOptions{}}, // cosign v3.1.3 cannot verify its own legacy attestation timestamps: TestCosignTimestamps
		{"attest/bundle", SignOptions{Timestamp: true}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			img := pushImage(t, w, "app")
			ctx := context.Background()
			args := []string{"verify"}
			var err error
			switch tc.kind {
			case "sign/legacy":
				_, err = w.SignLegacy(ctx, img, f.keyless, tc.opts)
				args = append(args, "--new-bundle-format=false")
			case "sign/bundle":
				_, err = w.SignBundle(ctx, img, f.keyless, tc.opts)
				args = append(args, "--new-bundle-format=true")
			case "attest/legacy":
				_, err = w.AttestLegacy(ctx, img, f.keyless, slsaProvenanceV1, provenance, tc.opts)
				args = []string{"verify-attestation", "--type", slsaProvenanceV1, "--new-bundle-format=false"}
			case "attest/bundle":
				_, err = w.AttestBundle(ctx, img, f.keyless, slsaProvenanceV1, provenance, tc.opts)
				args = []string{"verify-attestation", "--type", slsaProvenanceV1, "--new-bundle-format=true"}
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.opts.Timestamp {
				args = append(args, "--use-signed-timestamps")
			}
			args = append(append(args, identity...), img.String())
			cosign.Run(t, dir, nil, args...)
		})
	}
}

func writeTrustedRoot(t *testing.T, s *Stack, dir string) string {
	t.Helper()
	data, err := s.TrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCosignTimestamps shows what the real cosign v3.1.3 timestamps when it writes the legacy format
// (--new-bundle-format=false) with a TSA (this stack's, over HTTP): the signature, also for an
// attestation, since cosign v3 signs through sigstore-go and unpacks the bundle into annotations. cosign
// v2 timestamped an attestation's whole envelope, which is what cosign v3.1.3's own legacy verification
// still expects, so it rejects what it wrote. Writer writes what cosign v3.1.3 writes.
func TestCosignTimestamps(t *testing.T) {
	requireCosign(t)
	f := newFixture(t)
	tsa := httptest.NewServer(f.stack.TimestampHandler(nil))
	t.Cleanup(tsa.Close)
	w := startRegistry(t, true)
	dir := t.TempDir()
	key := cosign.GenerateKeyPair(t, dir)
	predicate := filepath.Join(dir, "predicate.json")
	if err := os.WriteFile(predicate, provenance, 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--key", key.PrivateKeyPath, "--use-signing-config=false", "--tlog-upload=false",
		"--new-bundle-format=false", "--timestamp-server-url", tsa.URL, "--allow-http-registry", "--allow-insecure-registry", "--yes"}
	tr := f.checker.tr.TimestampingAuthorities()[0]

	for _, attest := range []bool{false, true} {
		t.Run(fmt.Sprintf("attest=%t", attest), func(t *testing.T) {
			g := NewWithT(t)
			img := pushImage(t, w, "app")
			suffix := ".sig"
			args := append([]string{"sign"}, common...)
			if attest {
				suffix = ".att"
				args = append([]string{"attest"}, common...)
				args = append(args, "--type", slsaProvenanceV1, "--predicate", predicate)
			}
			cosign.Run(t, dir, nil, append(args, img.String())...)

			_, layers := readLegacy(t, img.Context().Tag(tagPrefix(img)+suffix))
			g.Expect(layers).To(HaveLen(1))
			var ts struct{ SignedRFC3161Timestamp []byte }
			g.Expect(json.Unmarshal([]byte(layers[0].annotations[AnnotationTimestamp]), &ts)).To(Succeed())
			sig := signatureOf(t, layers[0])
			_, err := tr.Verify(ts.SignedRFC3161Timestamp, sig)
			g.Expect(err).NotTo(HaveOccurred(), "the timestamp is over the signature")
			if attest {
				_, err = tr.Verify(ts.SignedRFC3161Timestamp, layers[0].blob)
				g.Expect(err).To(HaveOccurred(), "the timestamp is not over the envelope")
			}

			// sigstore-go, through LegacyToBundle, accepts it with the timestamp as the only observer.
			c := checker{tr: f.checker.tr, pub: mustPublicKey(t, key.PublicKeyPEM), tsa: true}
			_, err = c.verifyLegacy(t, layers[0], img)
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
}

// signatureOf returns the signature of a legacy layer: the annotation, or the DSSE envelope's.
func signatureOf(t *testing.T, l layer) []byte {
	t.Helper()
	if l.mediaType != MediaTypeDSSE {
		sig, err := base64.StdEncoding.DecodeString(l.annotations[AnnotationSignature])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	var env struct {
		Signatures []struct{ Sig []byte } `json:"signatures"`
	}
	if err := json.Unmarshal(l.blob, &env); err != nil || len(env.Signatures) != 1 {
		t.Fatalf("not a DSSE envelope with one signature: %s", l.blob)
	}
	return env.Signatures[0].Sig
}

func mustPublicKey(t *testing.T, pemBytes []byte) crypto.PublicKey {
	t.Helper()
	k, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
