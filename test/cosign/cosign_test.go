//go:build integration

// This test signs and attests an image with the real cosign v3.1.3 (through this package) and pins down what cosign
// writes to the registry, for whoever writes a verifier. Observed with go-containerregistry v0.22.1's in-process
// registry, a random image pushed with Docker v2 media types, a key pair from `cosign generate-key-pair` (ECDSA
// P-256) and the flags of commonFlags (--key, --use-signing-config=false, --tlog-upload=false). Below, <hex> is the
// hex of the image digest, <image repo> the image's repository ("127.0.0.1:PORT/app") and <sig repo> the repository
// the signature goes to: <image repo>, or COSIGN_REPOSITORY when that is set (then nothing at all is written to
// <image repo>: no tag, no referrer).
//
// A. Sigstore bundle format, --new-bundle-format=true (cosign v3's default); `cosign sign` and `cosign attest` alike.
//
// Every invocation adds one untagged OCI 1.1 referrer manifest to <sig repo> (nothing is deduplicated: signing twice
// gives two referrers):
//
//	mediaType    application/vnd.oci.image.manifest.v1+json
//	artifactType application/vnd.dev.sigstore.bundle.v0.3+json
//	config       mediaType application/vnd.oci.empty.v1+json, size 2 ("{}"),
//	             artifactType application/vnd.dev.sigstore.bundle.v0.3+json (cosign sets it on the config too)
//	layers       exactly one, mediaType application/vnd.dev.sigstore.bundle.v0.3+json, no layer annotations
//	subject      the image's descriptor (its own mediaType, digest sha256:<hex>, size)
//	annotations  dev.sigstore.bundle.content      = dsse-envelope
//	             dev.sigstore.bundle.predicateType = https://sigstore.dev/cosign/sign/v1 (sign) or the attestation's type
//	             org.opencontainers.image.created  = RFC 3339 UTC time, in seconds
//
// Finding it: a registry with the referrers API lists it at GET /v2/<sig repo>/referrers/sha256:<hex>. Without the
// API, cosign (through go-containerregistry) maintains the referrers fallback tag "sha256-<hex>" (no suffix) in
// <sig repo>: an OCI image index (application/vnd.oci.image.index.v1+json) whose manifests[] give mediaType, size,
// digest and artifactType application/vnd.dev.sigstore.bundle.v0.3+json, but no annotations. remote.Referrers handles
// both. Beware a quirk of go-containerregistry's test registry (pkg/registry), not of cosign: its referrers API
// reports each referrer's artifactType as the manifest's config.mediaType, application/vnd.oci.empty.v1+json, not its
// artifactType (it does copy the manifest annotations), so filtering on artifactType (remote.WithFilter) finds
// nothing there. A verifier should fetch each referrer manifest and check its artifactType and layer media type.
//
// The layer is a Sigstore bundle v0.3 (protojson; the whitespace is not stable):
//
//	mediaType            application/vnd.dev.sigstore.bundle.v0.3+json
//	verificationMaterial {"publicKey": {"hint": base64(sha256(PKIX DER of the public key))}} and nothing else:
//	                     no tlogEntries, no timestampVerificationData, no certificate (--tlog-upload=false, no TSA)
//	dsseEnvelope         payloadType application/vnd.in-toto+json, payload base64(in-toto statement),
//	                     signatures [{"sig": base64}] (no keyid): ASN.1 ECDSA over SHA-256 of DSSE's PAE(payloadType, payload)
//
// The in-toto statement is
//
//	sign:   {"_type": "https://in-toto.io/Statement/v1",
//	         "subject": [{"digest": {"sha256": "<hex>"}, "annotations": {the -a key=value pairs; {} if none}}],
//	         "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}    (no subject name)
//	attest: {"_type": "https://in-toto.io/Statement/v0.1",
//	         "subject": [{"name": "<image repo>", "digest": {"sha256": "<hex>"}}],
//	         "predicateType": "<type>", "predicate": <the predicate file's JSON>}
//
// where --type slsaprovenance1 gives https://slsa.dev/provenance/v1 and a URI is used verbatim.
//
// B. Legacy format, --new-bundle-format=false. No referrer and no fallback tag are written.
//
// sign writes the tag "sha256-<hex>.sig" in <sig repo>, an OCI image manifest (application/vnd.oci.image.manifest.v1+json)
// without subject, artifactType or manifest annotations; config mediaType application/vnd.oci.image.config.v1+json.
// Its layers (one per distinct signature; signing again with the same key adds none) are
//
//	mediaType   application/vnd.dev.cosign.simplesigning.v1+json
//	annotations dev.cosignproject.cosign/signature = base64 ASN.1 ECDSA signature over SHA-256 of the layer blob
//	            and nothing else: no dev.sigstore.cosign/bundle (Rekor), no certificate, chain or RFC 3161 timestamp
//	blob        {"critical": {"identity": {"docker-reference": "<image repo>"},
//	                          "image": {"docker-manifest-digest": "sha256:<hex>"},
//	                          "type": "cosign container image signature"},
//	             "optional": {the -a key=value pairs}, or null if none}
//
// attest writes the tag "sha256-<hex>.att" in <sig repo>, the same kind of manifest, and appends one layer per
// invocation (attesting twice gives two layers):
//
//	mediaType   application/vnd.dsse.envelope.v1+json
//	annotations dev.cosignproject.cosign/signature = "" (empty) and predicateType = <type>
//	blob        a DSSE envelope {"payload": base64(statement), "payloadType": "application/vnd.in-toto+json",
//	            "signatures": [{"sig": base64}]}, the statement being the attest one of A.
package cosign

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

const (
	bundleMediaType       = "application/vnd.dev.sigstore.bundle.v0.3+json"
	simpleSigningType     = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseMediaType         = "application/vnd.dsse.envelope.v1+json"
	inTotoPayloadType     = "application/vnd.in-toto+json"
	ociManifestType       = "application/vnd.oci.image.manifest.v1+json"
	ociIndexType          = "application/vnd.oci.image.index.v1+json"
	ociEmptyType          = "application/vnd.oci.empty.v1+json"
	ociConfigType         = "application/vnd.oci.image.config.v1+json"
	cosignSignPredicate   = "https://sigstore.dev/cosign/sign/v1"
	slsaProvenanceV1      = "https://slsa.dev/provenance/v1"
	signatureAnnotation   = "dev.cosignproject.cosign/signature"
	bundleContentKey      = "dev.sigstore.bundle.content"
	bundlePredicateKey    = "dev.sigstore.bundle.predicateType"
	ociCreatedAnnotation  = "org.opencontainers.image.created"
	legacyAttPredicateKey = "predicateType"
)

var slsaPredicate = []byte(`{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{"ref":"main"}},` +
	`"runDetails":{"builder":{"id":"https://example.com/builder"}}}`)

func TestSignAndAttest(t *testing.T) {
	key := GenerateKeyPair(t, t.TempDir())
	pub := parsePublicKey(t, key.PublicKeyPEM)

	cases := []struct {
		name      string
		attest    bool // cosign attest --type slsaprovenance1, else cosign sign -a env=test
		newBundle bool
		sigRepo   bool // COSIGN_REPOSITORY=<registry>/signatures
	}{
		{name: "sign/bundle", newBundle: true},
		{name: "sign/legacy"},
		{name: "attest/bundle", attest: true, newBundle: true},
		{name: "attest/legacy", attest: true},
		{name: "sign/bundle/COSIGN_REPOSITORY", newBundle: true, sigRepo: true},
		{name: "sign/legacy/COSIGN_REPOSITORY", sigRepo: true},
		{name: "attest/bundle/COSIGN_REPOSITORY", attest: true, newBundle: true, sigRepo: true},
		{name: "attest/legacy/COSIGN_REPOSITORY", attest: true, sigRepo: true},
	}
	for _, referrersAPI := range []bool{true, false} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("referrersAPI=%t/%s", referrersAPI, tc.name), func(t *testing.T) {
				g := NewWithT(t)
				host := startRegistry(t, referrersAPI)
				imageRepo := mustRepo(t, host+"/app")
				image := pushRandomImage(t, imageRepo)

				sigRepo := imageRepo
				opts := SignOptions{NewBundleFormat: tc.newBundle}
				if tc.sigRepo {
					sigRepo = mustRepo(t, host+"/signatures")
					opts.SignatureRepository = sigRepo.String()
				}
				predicateType := cosignSignPredicate
				if tc.attest {
					predicateType = slsaProvenanceV1
					Attest(t, key, image.String(), "slsaprovenance1", slsaPredicate, opts)
				} else {
					opts.Annotations = map[string]string{"env": "test"}
					Sign(t, key, image.String(), opts)
				}

				// Nothing but the image is in its repository when the signature goes elsewhere.
				if tc.sigRepo {
					g.Expect(remote.List(imageRepo)).To(ConsistOf("v1"))
					g.Expect(referrers(t, imageRepo.Digest(image.DigestStr()))).To(BeEmpty())
				}

				subject := sigRepo.Digest(image.DigestStr())
				fallbackTag := strings.Replace(image.DigestStr(), ":", "-", 1)
				otherTags := []string{}
				if !tc.sigRepo {
					otherTags = append(otherTags, "v1")
				}

				if tc.newBundle {
					// One referrer, found through the referrers API or the fallback tag.
					refs := referrers(t, subject)
					g.Expect(refs).To(HaveLen(1))
					if referrersAPI {
						g.Expect(remote.List(sigRepo)).To(ConsistOf(otherTags))
						// go-containerregistry's registry reports config.mediaType as the artifactType.
						g.Expect(refs[0].ArtifactType).To(Equal(ociEmptyType))
						g.Expect(refs[0].Annotations).To(HaveKeyWithValue(bundlePredicateKey, predicateType))
					} else {
						g.Expect(remote.List(sigRepo)).To(ConsistOf(append(otherTags, fallbackTag)))
						g.Expect(refs[0].ArtifactType).To(Equal(bundleMediaType))
						g.Expect(refs[0].Annotations).To(BeEmpty())
						idx, err := remote.Get(sigRepo.Tag(fallbackTag))
						g.Expect(err).NotTo(HaveOccurred())
						g.Expect(string(idx.MediaType)).To(Equal(ociIndexType))
					}
					g.Expect(string(refs[0].MediaType)).To(Equal(ociManifestType))

					m, raw := manifest(t, sigRepo.Digest(refs[0].Digest.String()))
					t.Logf("referrer manifest: %s", raw)
					g.Expect(string(m.MediaType)).To(Equal(ociManifestType))
					g.Expect(m.ArtifactType).To(Equal(bundleMediaType))
					g.Expect(string(m.Config.MediaType)).To(Equal(ociEmptyType))
					g.Expect(m.Config.ArtifactType).To(Equal(bundleMediaType))
					g.Expect(m.Config.Size).To(BeEquivalentTo(2))
					g.Expect(m.Subject).NotTo(BeNil())
					g.Expect(m.Subject.Digest.String()).To(Equal(image.DigestStr()))
					g.Expect(m.Annotations).To(HaveLen(3))
					g.Expect(m.Annotations).To(HaveKeyWithValue(bundleContentKey, "dsse-envelope"))
					g.Expect(m.Annotations).To(HaveKeyWithValue(bundlePredicateKey, predicateType))
					g.Expect(time.Parse(time.RFC3339, m.Annotations[ociCreatedAnnotation])).To(BeTemporally("~", time.Now(), time.Minute))
					g.Expect(m.Layers).To(HaveLen(1))
					g.Expect(string(m.Layers[0].MediaType)).To(Equal(bundleMediaType))
					g.Expect(m.Layers[0].Annotations).To(BeEmpty())

					layer := testregistry.Blob(t, sigRepo, m.Layers[0].Digest)
					t.Logf("bundle: %s", layer)
					var b struct {
						MediaType            string                     `json:"mediaType"`
						VerificationMaterial map[string]json.RawMessage `json:"verificationMaterial"`
						DSSEEnvelope         dsseEnvelope               `json:"dsseEnvelope"`
					}
					g.Expect(json.Unmarshal(layer, &b)).To(Succeed())
					g.Expect(b.MediaType).To(Equal(bundleMediaType))
					// Only the key hint: no tlogEntries, timestampVerificationData or certificate.
					g.Expect(b.VerificationMaterial).To(HaveLen(1))
					g.Expect(b.VerificationMaterial).To(HaveKey("publicKey"))
					var pk struct{ Hint string }
					g.Expect(json.Unmarshal(b.VerificationMaterial["publicKey"], &pk)).To(Succeed())
					g.Expect(pk.Hint).To(Equal(keyHint(t, pub)))

					st := verifyDSSE(t, pub, b.DSSEEnvelope)
					expectStatement(g, st, tc.attest, imageRepo, image)
					return
				}

				// Legacy: a .sig or .att tag, no referrer, no fallback tag.
				suffix := ".sig"
				if tc.attest {
					suffix = ".att"
				}
				g.Expect(remote.List(sigRepo)).To(ConsistOf(append(otherTags, fallbackTag+suffix)))
				g.Expect(referrers(t, subject)).To(BeEmpty())

				m, raw := manifest(t, sigRepo.Tag(fallbackTag+suffix))
				t.Logf("%s manifest: %s", suffix, raw)
				g.Expect(string(m.MediaType)).To(Equal(ociManifestType))
				g.Expect(m.ArtifactType).To(BeEmpty())
				g.Expect(m.Subject).To(BeNil())
				g.Expect(m.Annotations).To(BeEmpty())
				g.Expect(string(m.Config.MediaType)).To(Equal(ociConfigType))
				g.Expect(m.Layers).To(HaveLen(1))
				layer := testregistry.Blob(t, sigRepo, m.Layers[0].Digest)
				t.Logf("layer: %s", layer)

				if !tc.attest {
					g.Expect(string(m.Layers[0].MediaType)).To(Equal(simpleSigningType))
					g.Expect(m.Layers[0].Annotations).To(HaveLen(1))
					sig, err := base64.StdEncoding.DecodeString(m.Layers[0].Annotations[signatureAnnotation])
					g.Expect(err).NotTo(HaveOccurred())
					digest := sha256.Sum256(layer)
					g.Expect(ecdsa.VerifyASN1(pub, digest[:], sig)).To(BeTrue(), "signature annotation does not verify")
					var payload struct {
						Critical struct {
							Identity struct {
								DockerReference string `json:"docker-reference"`
							} `json:"identity"`
							Image struct {
								DockerManifestDigest string `json:"docker-manifest-digest"`
							} `json:"image"`
							Type string `json:"type"`
						} `json:"critical"`
						Optional map[string]any `json:"optional"`
					}
					g.Expect(json.Unmarshal(layer, &payload)).To(Succeed())
					g.Expect(payload.Critical.Identity.DockerReference).To(Equal(imageRepo.String()))
					g.Expect(payload.Critical.Image.DockerManifestDigest).To(Equal(image.DigestStr()))
					g.Expect(payload.Critical.Type).To(Equal("cosign container image signature"))
					g.Expect(payload.Optional).To(Equal(map[string]any{"env": "test"}))
					return
				}

				g.Expect(string(m.Layers[0].MediaType)).To(Equal(dsseMediaType))
				g.Expect(m.Layers[0].Annotations).To(Equal(map[string]string{
					signatureAnnotation:   "",
					legacyAttPredicateKey: slsaProvenanceV1,
				}))
				var env dsseEnvelope
				g.Expect(json.Unmarshal(layer, &env)).To(Succeed())
				expectStatement(g, verifyDSSE(t, pub, env), true, imageRepo, image)
			})
		}
	}
}

// TestRepeated shows how signatures accumulate: every bundle is a new referrer, while the legacy .sig tag keeps one
// layer per key and the legacy .att tag gains a layer per attestation.
func TestRepeated(t *testing.T) {
	key := GenerateKeyPair(t, t.TempDir())
	for _, newBundle := range []bool{true, false} {
		t.Run(fmt.Sprintf("newBundleFormat=%t", newBundle), func(t *testing.T) {
			g := NewWithT(t)
			repo := mustRepo(t, startRegistry(t, false)+"/app")
			image := pushRandomImage(t, repo)
			opts := SignOptions{NewBundleFormat: newBundle}
			for range 2 {
				Sign(t, key, image.String(), opts)
				Attest(t, key, image.String(), "https://example.com/predicate/v1", []byte(`{"n":1}`), opts)
			}
			tag := strings.Replace(image.DigestStr(), ":", "-", 1)
			if newBundle {
				g.Expect(remote.List(repo)).To(ConsistOf("v1", tag))
				g.Expect(referrers(t, image)).To(HaveLen(4))
				return
			}
			g.Expect(remote.List(repo)).To(ConsistOf("v1", tag+".sig", tag+".att"))
			sig, _ := manifest(t, repo.Tag(tag+".sig"))
			g.Expect(sig.Layers).To(HaveLen(1))
			// Without -a, "optional" is null.
			var payload map[string]json.RawMessage
			g.Expect(json.Unmarshal(testregistry.Blob(t, repo, sig.Layers[0].Digest), &payload)).To(Succeed())
			g.Expect(payload).To(HaveKeyWithValue("optional", json.RawMessage("null")))
			att, _ := manifest(t, repo.Tag(tag+".att"))
			g.Expect(att.Layers).To(HaveLen(2))
		})
	}
}

func TestBinary(t *testing.T) {
	g := NewWithT(t)
	bin, err := Binary()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bin).To(HaveSuffix("/bin/cosign"))

	t.Setenv("COSIGN_BIN", "/nonexistent/cosign")
	_, err = Binary()
	g.Expect(err).To(MatchError(ContainSubstring("COSIGN_BIN=/nonexistent/cosign")))
}

type dsseEnvelope struct {
	Payload     string `json:"payload"`
	PayloadType string `json:"payloadType"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

type statement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Name        string            `json:"name"`
		Digest      map[string]string `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	} `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// verifyDSSE checks the envelope's single signature with pub and returns its in-toto statement.
func verifyDSSE(t *testing.T, pub *ecdsa.PublicKey, env dsseEnvelope) statement {
	t.Helper()
	g := NewWithT(t)
	g.Expect(env.PayloadType).To(Equal(inTotoPayloadType))
	g.Expect(env.Signatures).To(HaveLen(1))
	g.Expect(env.Signatures[0].KeyID).To(BeEmpty())
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	g.Expect(err).NotTo(HaveOccurred())
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	g.Expect(err).NotTo(HaveOccurred())
	pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(env.PayloadType), env.PayloadType, len(payload), payload)
	digest := sha256.Sum256([]byte(pae))
	g.Expect(ecdsa.VerifyASN1(pub, digest[:], sig)).To(BeTrue(), "DSSE signature does not verify")
	t.Logf("statement: %s", payload)
	var st statement
	g.Expect(json.Unmarshal(payload, &st)).To(Succeed())
	return st
}

func expectStatement(g Gomega, st statement, attest bool, imageRepo name.Repository, image name.Digest) {
	hex := strings.TrimPrefix(image.DigestStr(), "sha256:")
	g.Expect(st.Subject).To(HaveLen(1))
	g.Expect(st.Subject[0].Digest).To(Equal(map[string]string{"sha256": hex}))
	if attest {
		g.Expect(st.Type).To(Equal("https://in-toto.io/Statement/v0.1"))
		g.Expect(st.Subject[0].Name).To(Equal(imageRepo.String()))
		g.Expect(st.Subject[0].Annotations).To(BeEmpty())
		g.Expect(st.PredicateType).To(Equal(slsaProvenanceV1))
		g.Expect(st.Predicate).To(MatchJSON(slsaPredicate))
		return
	}
	g.Expect(st.Type).To(Equal("https://in-toto.io/Statement/v1"))
	g.Expect(st.Subject[0].Name).To(BeEmpty())
	g.Expect(st.Subject[0].Annotations).To(Equal(map[string]string{"env": "test"}))
	g.Expect(st.PredicateType).To(Equal(cosignSignPredicate))
	g.Expect(st.Predicate).To(MatchJSON(`{}`))
}

// startRegistry serves an in-memory OCI registry on 127.0.0.1 and returns its host:port.
func startRegistry(t *testing.T, referrersAPI bool) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(
		registry.WithReferrersSupport(referrersAPI),
		registry.Logger(log.New(io.Discard, "", 0)),
	))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func pushRandomImage(t *testing.T, repo name.Repository) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("v1"), img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return repo.Digest(d.String())
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func referrers(t *testing.T, subject name.Digest) []v1.Descriptor {
	t.Helper()
	idx, err := remote.Referrers(subject)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im.Manifests
}

func manifest(t *testing.T, ref name.Reference) (*v1.Manifest, []byte) {
	t.Helper()
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	return &m, desc.Manifest
}

func parsePublicKey(t *testing.T, pemBytes []byte) *ecdsa.PublicKey {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("cosign.pub is not a PUBLIC KEY PEM: %s", pemBytes)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("cosign.pub holds a %T, want ECDSA", k)
	}
	return pub
}

// keyHint is the bundle's publicKey.hint for pub: base64(sha256(PKIX DER)).
func keyHint(t *testing.T, pub *ecdsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:])
}
