package signatures

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// legacyLayer is one stored layer of a legacy .sig or .att manifest and what the Writer says it wrote.
type legacyLayer struct {
	data        []byte
	annotations map[string]string
	res         *sigstore.Result
}

// keyless is a local Sigstore and a CI identity signing with it.
type keyless struct {
	stack  *sigstore.Stack
	signer *sigstore.KeylessSigner
}

func newKeyless(t *testing.T) keyless {
	t.Helper()
	stack := must[*sigstore.Stack](t)(sigstore.NewStack())
	return keyless{stack: stack, signer: &sigstore.KeylessSigner{Stack: stack,
		Identity: sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")}}
}

// readLayer reads the only (or last) layer of the legacy manifest m.
func readLayer(t *testing.T, m name.Digest, res *sigstore.Result) legacyLayer {
	t.Helper()
	desc := must[*remote.Descriptor](t)(remote.Get(m))
	manifest := must[*v1.Manifest](t)(v1.ParseManifest(bytes.NewReader(desc.Manifest)))
	l := manifest.Layers[len(manifest.Layers)-1]
	return legacyLayer{data: testregistry.Blob(t, m.Context(), l.Digest), annotations: l.Annotations, res: res}
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// signLegacy writes a legacy signature of a fresh image with s and returns its stored layer.
func signLegacy(t *testing.T, e *env, s sigstore.Signer, opts sigstore.SignOptions) (name.Digest, legacyLayer) {
	t.Helper()
	img, _ := e.image(t, "app")
	res, err := e.writer.SignLegacy(context.Background(), img, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return img, readLayer(t, res.Manifest, res)
}

// attestLegacy writes a legacy attestation of a fresh image with s and returns its stored layer.
func attestLegacy(t *testing.T, e *env, s sigstore.Signer, opts sigstore.SignOptions) (name.Digest, legacyLayer) {
	t.Helper()
	img, _ := e.image(t, "app")
	res, err := e.writer.AttestLegacy(context.Background(), img, s, slsaPredicate, map[string]string{"builder": "ci"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return img, readLayer(t, res.Manifest, res)
}

func TestLegacyToBundleSignature(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, true)
	_, l := signLegacy(t, e, e.key, sigstore.SignOptions{})

	b, err := LegacyToBundle(l.data, l.annotations, false)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.GetMediaType()).To(Equal("application/vnd.dev.sigstore.bundle+json;version=0.1"))
	ms := b.GetMessageSignature()
	g.Expect(ms).NotTo(BeNil(), "a simple-signing layer becomes a message signature")
	sum := sha256.Sum256(l.data)
	g.Expect(ms.GetMessageDigest().GetAlgorithm()).To(Equal(protocommon.HashAlgorithm_SHA2_256))
	g.Expect(ms.GetMessageDigest().GetDigest()).To(Equal(sum[:]), "the digest of the stored payload")
	g.Expect(ms.GetSignature()).To(Equal(l.res.Signature), "the decoded signature annotation")
	g.Expect(b.GetDsseEnvelope()).To(BeNil())
	g.Expect(b.GetVerificationMaterial().GetPublicKey()).NotTo(BeNil(), "no certificate: a key signature")
	g.Expect(b.GetVerificationMaterial().GetTlogEntries()).To(BeEmpty())
	g.Expect(b.GetVerificationMaterial().GetTimestampVerificationData()).To(BeNil())
}

func TestLegacyToBundleAttestation(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, true)
	_, l := attestLegacy(t, e, e.key, sigstore.SignOptions{})

	b, err := LegacyToBundle(l.data, l.annotations, true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.GetMediaType()).To(Equal("application/vnd.dev.sigstore.bundle+json;version=0.1"))
	env := b.GetDsseEnvelope()
	g.Expect(env).NotTo(BeNil(), "a .att layer becomes a DSSE envelope")
	g.Expect(env.GetPayloadType()).To(Equal(inTotoPayloadType))
	g.Expect(env.GetPayload()).To(Equal(l.res.Payload))
	g.Expect(env.GetSignatures()).To(HaveLen(1))
	g.Expect(env.GetSignatures()[0].GetSig()).To(Equal(l.res.Signature))
	g.Expect(b.GetMessageSignature()).To(BeNil())
	g.Expect(b.GetVerificationMaterial().GetPublicKey()).NotTo(BeNil())

	// Every signature and its keyid are kept.
	two := []byte(`{"payloadType":"` + inTotoPayloadType + `","payload":"e30=","signatures":[{"keyid":"k1","sig":"AQ=="},{"sig":"Ag=="}]}`)
	b, err = LegacyToBundle(two, map[string]string{}, true)
	g.Expect(err).NotTo(HaveOccurred())
	sigs := b.GetDsseEnvelope().GetSignatures()
	g.Expect(sigs).To(HaveLen(2))
	g.Expect(sigs[0].GetKeyid()).To(Equal("k1"))
	g.Expect(sigs[0].GetSig()).To(Equal([]byte{1}))
	g.Expect(sigs[1].GetKeyid()).To(BeEmpty())
	g.Expect(sigs[1].GetSig()).To(Equal([]byte{2}))
	g.Expect(b.GetDsseEnvelope().GetPayload()).To(Equal([]byte("{}")))
}

func TestLegacyToBundleTransparencyLogAndTimestamp(t *testing.T) {
	for _, kind := range []string{"signature", "attestation"} {
		t.Run(kind, func(t *testing.T) {
			g := NewWithT(t)
			e, k := newEnv(t, true), newKeyless(t)
			sign, wantKind := signLegacy, sigstore.KindHashedRekord
			if kind == "attestation" {
				sign, wantKind = attestLegacy, sigstore.KindDSSE
			}
			_, l := sign(t, e, k.signer, sigstore.SignOptions{Timestamp: true})
			g.Expect(l.res.LogEntry).NotTo(BeNil())

			b, err := LegacyToBundle(l.data, l.annotations, kind == "attestation")
			g.Expect(err).NotTo(HaveOccurred())
			vm := b.GetVerificationMaterial()
			g.Expect(vm.GetTlogEntries()).To(HaveLen(1))
			te, want := vm.GetTlogEntries()[0], l.res.LogEntry
			g.Expect(te.GetLogIndex()).To(Equal(want.LogIndex))
			g.Expect(te.GetLogId().GetKeyId()).To(Equal(want.LogID))
			g.Expect(hex.EncodeToString(te.GetLogId().GetKeyId())).To(Equal(k.stack.LogID()))
			g.Expect(te.GetIntegratedTime()).To(Equal(want.IntegratedTime))
			g.Expect(te.GetKindVersion().GetKind()).To(Equal(wantKind))
			g.Expect(te.GetKindVersion().GetVersion()).To(Equal(want.APIVersion))
			g.Expect(te.GetCanonicalizedBody()).To(Equal(want.Body))
			g.Expect(te.GetInclusionPromise().GetSignedEntryTimestamp()).To(Equal(want.SET), "the SET is the inclusion promise")
			g.Expect(te.GetInclusionProof()).To(BeNil(), "legacy annotations carry no inclusion proof")

			ts := vm.GetTimestampVerificationData().GetRfc3161Timestamps()
			g.Expect(ts).To(HaveLen(1))
			g.Expect(ts[0].GetSignedTimestamp()).To(Equal(l.res.Timestamp))

			chain := vm.GetX509CertificateChain().GetCertificates()
			g.Expect(chain).To(HaveLen(2), "leaf and intermediate; the root is dropped")
			g.Expect(chain[0].GetRawBytes()).To(Equal(l.res.Certificate.Raw))
			g.Expect(chain[1].GetRawBytes()).To(Equal(k.stack.Intermediate.Raw))
		})
	}
}

func TestLegacyToBundleVerificationMaterial(t *testing.T) {
	e, k := newEnv(t, true), newKeyless(t)
	_, l := signLegacy(t, e, k.signer, sigstore.SignOptions{Tlog: sigstore.TlogOff})
	leaf, intermediate, root := l.res.Certificate, k.stack.Intermediate, k.stack.Root
	cases := []struct {
		name       string
		cert       string // "" for none
		chain      string
		wantKey    bool
		wantChains []*x509.Certificate
	}{
		{name: "no certificate: public key", wantKey: true},
		{name: "no certificate, a stray chain: public key", chain: certPEM(intermediate) + certPEM(root), wantKey: true},
		{name: "certificate, chain of intermediate and root", cert: certPEM(leaf), chain: certPEM(intermediate) + certPEM(root),
			wantChains: []*x509.Certificate{leaf, intermediate}},
		{name: "certificate, empty chain (cosign v3)", cert: certPEM(leaf), wantChains: []*x509.Certificate{leaf}},
		{name: "certificate, chain of the root only", cert: certPEM(leaf), chain: certPEM(root), wantChains: []*x509.Certificate{leaf}},
		{name: "certificate, chain of the intermediate only", cert: certPEM(leaf), chain: certPEM(intermediate),
			wantChains: []*x509.Certificate{leaf, intermediate}},
		{name: "certificate followed by a block that is not a certificate", cert: certPEM(leaf) + "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
			wantChains: []*x509.Certificate{leaf}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ann := map[string]string{AnnotationSignature: l.annotations[AnnotationSignature]}
			if tc.cert != "" {
				ann[AnnotationCertificate] = tc.cert
			}
			if tc.chain != "" {
				ann[AnnotationChain] = tc.chain
			}
			b, err := LegacyToBundle(l.data, ann, false)
			g.Expect(err).NotTo(HaveOccurred())
			vm := b.GetVerificationMaterial()
			if tc.wantKey {
				g.Expect(vm.GetPublicKey()).NotTo(BeNil())
				g.Expect(vm.GetX509CertificateChain()).To(BeNil())
				vc, err := b.VerificationContent()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(vc.Certificate()).To(BeNil())
				return
			}
			g.Expect(vm.GetPublicKey()).To(BeNil())
			var got [][]byte
			for _, c := range vm.GetX509CertificateChain().GetCertificates() {
				got = append(got, c.GetRawBytes())
			}
			var want [][]byte
			for _, c := range tc.wantChains {
				want = append(want, c.Raw)
			}
			g.Expect(got).To(Equal(want))
			vc, err := b.VerificationContent()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(vc.Certificate().Raw).To(Equal(leaf.Raw), "the leaf is the signing certificate")
		})
	}
}

// TestLegacyToBundleVerifiesWithSigstoreGo: what the conversion produces is what sigstore-go needs to
// verify a cosign legacy keyless signature: the payload's digest, the leaf and chain, the SET as
// inclusion promise and the RFC 3161 timestamp.
func TestLegacyToBundleVerifiesWithSigstoreGo(t *testing.T) {
	for _, kind := range []string{"signature", "attestation"} {
		t.Run(kind, func(t *testing.T) {
			g := NewWithT(t)
			e, k := newEnv(t, true), newKeyless(t)
			sign := signLegacy
			if kind == "attestation" {
				sign = attestLegacy
			}
			img, l := sign(t, e, k.signer, sigstore.SignOptions{Timestamp: true})
			b, err := LegacyToBundle(l.data, l.annotations, kind == "attestation")
			g.Expect(err).NotTo(HaveOccurred())

			tr := must[*root.TrustedRoot](t)(k.stack.TrustedRoot())
			v, err := verify.NewVerifier(tr, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1), verify.WithSignedTimestamps(1))
			g.Expect(err).NotTo(HaveOccurred())
			san := must[verify.SubjectAlternativeNameMatcher](t)(verify.NewSANMatcher(k.signer.Identity.Subject, ""))
			issuer := must[verify.IssuerMatcher](t)(verify.NewIssuerMatcher(k.signer.Identity.Issuer, ""))
			id := must[verify.CertificateIdentity](t)(verify.NewCertificateIdentity(san, issuer, certificate.Extensions{}))
			artifact := verify.WithArtifact(bytes.NewReader(l.data))
			if kind == "attestation" {
				artifact = verify.WithArtifactDigest("sha256", must[[]byte](t)(hex.DecodeString(hexOf(img.DigestStr()))))
			}
			res, err := v.Verify(b, verify.NewPolicy(artifact, verify.WithCertificateIdentity(id)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Signature.Certificate.SubjectAlternativeName).To(Equal(k.signer.Identity.Subject))
			g.Expect(res.VerifiedTimestamps).To(ContainElement(HaveField("Type", "Tlog")), "the SET's integrated time")
			g.Expect(res.VerifiedTimestamps).To(ContainElement(HaveField("Type", "TimestampAuthority")), "the RFC 3161 timestamp")

			// The tampered SET no longer verifies: the inclusion promise is really the annotation's.
			_, tampered := sign(t, e, k.signer, sigstore.SignOptions{TamperSET: true})
			b, err = LegacyToBundle(tampered.data, tampered.annotations, kind == "attestation")
			g.Expect(err).NotTo(HaveOccurred())
			v, err = verify.NewVerifier(tr, verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1))
			g.Expect(err).NotTo(HaveOccurred())
			if kind == "signature" {
				artifact = verify.WithArtifact(bytes.NewReader(tampered.data))
			}
			_, err = v.Verify(b, verify.NewPolicy(artifact, verify.WithoutIdentitiesUnsafe()))
			g.Expect(err).To(MatchError(ContainSubstring("transparency log")))
		})
	}
}

func TestLegacyToBundleRejects(t *testing.T) {
	e, k := newEnv(t, true), newKeyless(t)
	_, sig := signLegacy(t, e, k.signer, sigstore.SignOptions{Timestamp: true})
	_, att := attestLegacy(t, e, k.signer, sigstore.SignOptions{Timestamp: true})
	leaf, intermediate := certPEM(sig.res.Certificate), certPEM(k.stack.Intermediate)

	// rekor is the signature's Rekor bundle annotation, changed.
	rekor := func(change func(bundle, payload map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(sig.annotations[AnnotationBundle]), &m); err != nil {
			t.Fatal(err)
		}
		change(m, m["Payload"].(map[string]any))
		return string(must[[]byte](t)(json.Marshal(m)))
	}

	cases := []struct {
		name     string
		envelope bool
		layer    []byte // default: the stored layer
		set      map[string]string
		drop     []string
		wantErr  []string
	}{
		{name: "signature annotation missing", drop: []string{AnnotationSignature},
			wantErr: []string{"annotation dev.cosignproject.cosign/signature is missing or not base64"}},
		{name: "signature annotation empty", set: map[string]string{AnnotationSignature: ""},
			wantErr: []string{"annotation dev.cosignproject.cosign/signature is missing or not base64"}},
		{name: "signature annotation not base64", set: map[string]string{AnnotationSignature: "%%not base64%%"},
			wantErr: []string{"annotation dev.cosignproject.cosign/signature is missing or not base64"}},
		{name: "signature annotation in URL-safe base64", set: map[string]string{AnnotationSignature: base64.RawURLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe})},
			wantErr: []string{"annotation dev.cosignproject.cosign/signature is missing or not base64"}},

		{name: "certificate not PEM", set: map[string]string{AnnotationCertificate: "not a certificate"},
			wantErr: []string{"annotation dev.sigstore.cosign/certificate is not one PEM certificate"}},
		{name: "certificate annotation holding two certificates", set: map[string]string{AnnotationCertificate: leaf + intermediate},
			wantErr: []string{"annotation dev.sigstore.cosign/certificate is not one PEM certificate"}},
		{name: "certificate annotation holding a public key", set: map[string]string{AnnotationCertificate: string(e.key.PublicKeyPEM())},
			wantErr: []string{"annotation dev.sigstore.cosign/certificate is not one PEM certificate"}},
		{name: "certificate whose DER does not parse", set: map[string]string{AnnotationCertificate: garbagePEM("CERTIFICATE")},
			wantErr: []string{"annotation dev.sigstore.cosign/certificate is not one PEM certificate"}},
		{name: "chain not PEM", set: map[string]string{AnnotationChain: "not a chain"},
			wantErr: []string{"annotation dev.sigstore.cosign/chain", "no PEM certificate found"}},
		{name: "chain holding a certificate whose DER does not parse", set: map[string]string{AnnotationChain: intermediate + garbagePEM("CERTIFICATE")},
			wantErr: []string{"annotation dev.sigstore.cosign/chain", "parsing certificate"}},

		{name: "Rekor bundle not JSON", set: map[string]string{AnnotationBundle: "{not json"},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle is not a Rekor bundle"}},
		{name: "Rekor bundle with a SET that is not base64", set: map[string]string{AnnotationBundle: `{"SignedEntryTimestamp":"%%","Payload":{}}`},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle is not a Rekor bundle"}},
		{name: "Rekor entry body not base64", set: map[string]string{AnnotationBundle: rekor(func(_, p map[string]any) { p["body"] = "%%" })},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle: entry body is not base64"}},
		{name: "Rekor logID not hex", set: map[string]string{AnnotationBundle: rekor(func(_, p map[string]any) { p["logID"] = "not-hex" })},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle: logID is not hex"}},
		{name: "Rekor entry body not JSON", set: map[string]string{AnnotationBundle: rekor(func(_, p map[string]any) { p["body"] = b64([]byte("not json")) })},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle: entry body has no kind"}},
		{name: "Rekor entry body without kind", set: map[string]string{AnnotationBundle: rekor(func(_, p map[string]any) { p["body"] = b64([]byte(`{"apiVersion":"0.0.1"}`)) })},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle: entry body has no kind"}},
		{name: "Rekor entry body empty", set: map[string]string{AnnotationBundle: rekor(func(_, p map[string]any) { p["body"] = "" })},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle: the entry has no body or no logID"}},
		{name: "Rekor entry without a logID", set: map[string]string{AnnotationBundle: rekor(func(_, p map[string]any) { p["logID"] = "" })},
			wantErr: []string{"annotation dev.sigstore.cosign/bundle: the entry has no body or no logID"}},
		{name: "Rekor entry of an unknown kind", set: map[string]string{AnnotationBundle: rekor(func(_, p map[string]any) {
			p["body"] = b64([]byte(`{"kind":"nonsense","apiVersion":"9.9.9","spec":{}}`))
		})}, wantErr: []string{"building bundle from legacy signature", "nonsense"}},
		{name: "Rekor bundle without SET", set: map[string]string{AnnotationBundle: rekor(func(b, _ map[string]any) { delete(b, "SignedEntryTimestamp") })},
			wantErr: []string{"building bundle from legacy signature", "inclusion promise"}},

		{name: "timestamp not JSON", set: map[string]string{AnnotationTimestamp: "not json"},
			wantErr: []string{"annotation dev.sigstore.cosign/rfc3161timestamp is not an RFC 3161 timestamp"}},
		{name: "timestamp JSON without SignedRFC3161Timestamp", set: map[string]string{AnnotationTimestamp: `{"other":"AQ=="}`},
			wantErr: []string{"annotation dev.sigstore.cosign/rfc3161timestamp is not an RFC 3161 timestamp"}},
		{name: "timestamp that is not base64", set: map[string]string{AnnotationTimestamp: `{"SignedRFC3161Timestamp":"%%"}`},
			wantErr: []string{"annotation dev.sigstore.cosign/rfc3161timestamp is not an RFC 3161 timestamp"}},

		{name: "envelope not JSON", envelope: true, layer: []byte("not json"),
			wantErr: []string{"DSSE envelope does not parse"}},
		{name: "envelope without signatures", envelope: true,
			layer:   []byte(`{"payloadType":"` + inTotoPayloadType + `","payload":"e30=","signatures":[]}`),
			wantErr: []string{"DSSE envelope has no signature"}},
		{name: "envelope whose payload is not base64", envelope: true,
			layer:   []byte(`{"payloadType":"` + inTotoPayloadType + `","payload":"%%","signatures":[{"sig":"AQ=="}]}`),
			wantErr: []string{"DSSE envelope does not parse"}},
		{name: "envelope whose signature is not base64", envelope: true,
			layer:   []byte(`{"payloadType":"` + inTotoPayloadType + `","payload":"e30=","signatures":[{"sig":"%%"}]}`),
			wantErr: []string{"DSSE envelope does not parse"}},
		{name: "envelope with a bad certificate", envelope: true, set: map[string]string{AnnotationCertificate: "not a certificate"},
			wantErr: []string{"annotation dev.sigstore.cosign/certificate is not one PEM certificate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			base := sig
			if tc.envelope {
				base = att
			}
			ann := map[string]string{}
			for k, v := range base.annotations {
				ann[k] = v
			}
			for _, k := range tc.drop {
				delete(ann, k)
			}
			for k, v := range tc.set {
				ann[k] = v
			}
			layer := base.data
			if tc.layer != nil {
				layer = tc.layer
			}
			b, err := LegacyToBundle(layer, ann, tc.envelope)
			if len(tc.wantErr) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(b).NotTo(BeNil())
				return
			}
			g.Expect(b).To(BeNil())
			for _, want := range tc.wantErr {
				g.Expect(err).To(MatchError(ContainSubstring(want)))
			}
		})
	}

	// The unchanged layers convert: every failure above is the changed annotation's.
	g := NewWithT(t)
	_, err := LegacyToBundle(sig.data, sig.annotations, false)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = LegacyToBundle(att.data, att.annotations, true)
	g.Expect(err).NotTo(HaveOccurred())
}

func garbagePEM(typ string) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: []byte("not DER")}))
}
