package sigstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

var provenance = []byte(`{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{"ref":"main"}},` +
	`"runDetails":{"builder":{"id":"https://example.com/builder"}}}`)

const slsaProvenanceV1 = "https://slsa.dev/provenance/v1"

// fixture is a stack, its trust root and signers.
type fixture struct {
	stack    *Stack
	checker  checker
	identity Identity
	keyless  *KeylessSigner
	key      *KeySigner
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	s := newStack(t)
	key, err := NewKeySigner(s)
	if err != nil {
		t.Fatal(err)
	}
	id := GitHubActions("acme/app", "release.yml", "refs/heads/main")
	return &fixture{
		stack:    s,
		checker:  checker{tr: trustedRoot(t, s)},
		identity: id,
		keyless:  &KeylessSigner{Stack: s, Identity: id},
		key:      key,
	}
}

// signerCase is one way of signing, and the checker that accepts it.
type signerCase struct {
	name    string
	signer  func(f *fixture) Signer
	opts    SignOptions
	checker func(f *fixture) checker
}

var signerCases = []signerCase{
	{
		name:   "keyless",
		signer: func(f *fixture) Signer { return f.keyless },
		checker: func(f *fixture) checker {
			return checker{tr: f.checker.tr, identity: &f.identity, tlog: true}
		},
	},
	{
		name:   "keyless/tlog+tsa",
		signer: func(f *fixture) Signer { return f.keyless },
		opts:   SignOptions{Timestamp: true},
		checker: func(f *fixture) checker {
			return checker{tr: f.checker.tr, identity: &f.identity, tlog: true, tsa: true}
		},
	},
	{
		name:   "keyless/tsa-only",
		signer: func(f *fixture) Signer { return f.keyless },
		opts:   SignOptions{Tlog: TlogOff, Timestamp: true},
		checker: func(f *fixture) checker {
			return checker{tr: f.checker.tr, identity: &f.identity, tsa: true}
		},
	},
	{
		name:   "key",
		signer: func(f *fixture) Signer { return f.key },
		checker: func(f *fixture) checker {
			return checker{tr: f.checker.tr, pub: f.key.PublicKey()}
		},
	},
	{
		name:   "key/tlog+tsa",
		signer: func(f *fixture) Signer { return f.key },
		opts:   SignOptions{Tlog: TlogOn, Timestamp: true},
		checker: func(f *fixture) checker {
			return checker{tr: f.checker.tr, pub: f.key.PublicKey(), tlog: true, tsa: true}
		},
	},
}

// TestWriteAndVerify writes every kind of signature with every signer, checks cosign's layout, reads it
// back as a verifier does and verifies it with sigstore-go.
func TestWriteAndVerify(t *testing.T) {
	f := newFixture(t)
	for _, referrersAPI := range []bool{true, false} {
		w := startRegistry(t, referrersAPI)
		n := 0
		for _, sc := range signerCases {
			for _, kind := range []string{"sign/legacy", "attest/legacy", "sign/bundle", "attest/bundle"} {
				n++
				repo := fmt.Sprintf("app%d", n)
				t.Run(fmt.Sprintf("referrersAPI=%t/%s/%s", referrersAPI, sc.name, kind), func(t *testing.T) {
					g := NewWithT(t)
					ctx := context.Background()
					img := pushImage(t, w, repo)
					c := sc.checker(f)
					signer := sc.signer(f)
					var res *Result
					var err error
					switch kind {
					case "sign/legacy":
						res, err = w.SignLegacy(ctx, img, signer, sc.opts)
					case "attest/legacy":
						res, err = w.AttestLegacy(ctx, img, signer, slsaProvenanceV1, provenance, sc.opts)
					case "sign/bundle":
						res, err = w.SignBundle(ctx, img, signer, sc.opts)
					case "attest/bundle":
						res, err = w.AttestBundle(ctx, img, signer, slsaProvenanceV1, json.RawMessage(provenance), sc.opts)
					}
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(res.LogEntry != nil).To(Equal(c.tlog))
					g.Expect(res.Timestamp != nil).To(Equal(sc.opts.Timestamp))
					g.Expect(res.Certificate != nil).To(Equal(c.identity != nil))

					attest := strings.HasPrefix(kind, "attest")
					if strings.HasSuffix(kind, "legacy") {
						l := expectLegacyLayout(t, img, res, attest, c)
						vr, err := c.verifyLegacy(t, l, img)
						g.Expect(err).NotTo(HaveOccurred())
						expectSigner(g, vr, c)
						return
					}
					r := expectBundleLayout(t, img, res, attest, c, referrersAPI)
					vr, err := c.verifyBundle(t, r.bundle, img)
					g.Expect(err).NotTo(HaveOccurred())
					expectSigner(g, vr, c)
					if attest {
						g.Expect(vr.Statement.PredicateType).To(Equal(slsaProvenanceV1))
					} else {
						g.Expect(vr.Statement.PredicateType).To(Equal(CosignSignPredicate))
					}
				})
			}
		}
	}
}

// expectSigner checks who signed and which observers vouched for the time.
func expectSigner(g Gomega, vr *verify.VerificationResult, c checker) {
	g.Expect(vr.Signature).NotTo(BeNil())
	if c.identity != nil {
		g.Expect(vr.Signature.Certificate).NotTo(BeNil())
		g.Expect(vr.Signature.Certificate.SubjectAlternativeName).To(Equal(c.identity.Subject))
		g.Expect(vr.VerifiedIdentity).NotTo(BeNil())
	} else {
		g.Expect(vr.Signature.Certificate).To(BeNil())
	}
	var observers []string
	for _, ts := range vr.VerifiedTimestamps {
		observers = append(observers, ts.Type)
	}
	var want []string
	if c.tlog {
		want = append(want, "Tlog")
	}
	if c.tsa {
		want = append(want, "TimestampAuthority")
	}
	g.Expect(observers).To(ConsistOf(want))
}

// expectLegacyLayout checks the .sig or .att manifest against what cosign writes and returns its layer.
func expectLegacyLayout(t *testing.T, img name.Digest, res *Result, attest bool, c checker) layer {
	t.Helper()
	g := NewWithT(t)
	tag := strings.Replace(img.DigestStr(), ":", "-", 1) + ".sig"
	if attest {
		tag = strings.Replace(tag, ".sig", ".att", 1)
	}
	g.Expect(remote.List(img.Context())).To(ConsistOf("v1", tag))
	m, layers := readLegacy(t, img.Context().Tag(tag))
	g.Expect(res.Manifest.DigestStr()).To(Equal(digestOf(t, img.Context().Tag(tag))))
	g.Expect(string(m.MediaType)).To(Equal("application/vnd.oci.image.manifest.v1+json"))
	g.Expect(string(m.Config.MediaType)).To(Equal("application/vnd.oci.image.config.v1+json"))
	g.Expect(m.Subject).To(BeNil())
	g.Expect(m.ArtifactType).To(BeEmpty())
	g.Expect(m.Annotations).To(BeEmpty())
	g.Expect(layers).To(HaveLen(1))
	l := layers[0]

	want := []string{AnnotationSignature}
	if attest {
		g.Expect(l.mediaType).To(Equal(MediaTypeDSSE))
		g.Expect(l.annotations).To(HaveKeyWithValue(AnnotationSignature, ""))
		g.Expect(l.annotations).To(HaveKeyWithValue(AnnotationPredicate, slsaProvenanceV1))
		want = append(want, AnnotationPredicate)
		// Byte for byte what cosign v3.1.3 writes: no keyid.
		g.Expect(string(l.blob)).To(Equal(`{"payload":"` + base64.StdEncoding.EncodeToString(res.Payload) +
			`","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"` + base64.StdEncoding.EncodeToString(res.Signature) + `"}]}`))
		expectAttestStatement(g, res.Payload, img)
	} else {
		g.Expect(l.mediaType).To(Equal(MediaTypeSimpleSigning))
		g.Expect(l.annotations[AnnotationSignature]).To(Equal(base64.StdEncoding.EncodeToString(res.Signature)))
		g.Expect(string(l.blob)).To(Equal(`{"critical":{"identity":{"docker-reference":"` + img.Context().Name() +
			`"},"image":{"docker-manifest-digest":"` + img.DigestStr() + `"},"type":"cosign container image signature"},"optional":null}`))
	}
	if c.identity != nil {
		want = append(want, AnnotationCertificate, AnnotationChain)
		g.Expect(l.annotations[AnnotationCertificate]).To(Equal(string(certificatePEM(res.Certificate))))
		// The intermediate and the root, as cosign writes them.
		g.Expect(strings.Count(l.annotations[AnnotationChain], "-----BEGIN CERTIFICATE-----")).To(Equal(2))
	}
	if res.LogEntry != nil {
		want = append(want, AnnotationBundle)
		var b CosignBundle
		g.Expect(json.Unmarshal([]byte(l.annotations[AnnotationBundle]), &b)).To(Succeed())
		g.Expect(b.SignedEntryTimestamp).To(Equal(res.LogEntry.SET))
		g.Expect(b.Payload.LogID).To(Equal(hex.EncodeToString(res.LogEntry.LogID)))
		g.Expect(b.Payload.IntegratedTime).To(Equal(res.LogEntry.IntegratedTime))
		g.Expect(b.Payload.LogIndex).To(Equal(res.LogEntry.LogIndex))
		kind := KindHashedRekord
		if attest {
			kind = KindDSSE
		}
		g.Expect(res.LogEntry.Kind).To(Equal(kind))
	}
	if res.Timestamp != nil {
		want = append(want, AnnotationTimestamp)
		var ts struct{ SignedRFC3161Timestamp []byte }
		g.Expect(json.Unmarshal([]byte(l.annotations[AnnotationTimestamp]), &ts)).To(Succeed())
		g.Expect(ts.SignedRFC3161Timestamp).To(Equal(res.Timestamp))
	}
	g.Expect(keys(l.annotations)).To(ConsistOf(want))
	return l
}

// expectBundleLayout checks the referrer against what cosign writes and returns it.
func expectBundleLayout(t *testing.T, img name.Digest, res *Result, attest bool, c checker, referrersAPI bool) referrer {
	t.Helper()
	g := NewWithT(t)
	fallback := strings.Replace(img.DigestStr(), ":", "-", 1)
	if referrersAPI {
		g.Expect(remote.List(img.Context())).To(ConsistOf("v1"))
	} else {
		g.Expect(remote.List(img.Context())).To(ConsistOf("v1", fallback))
	}
	refs := readReferrers(t, img.Context(), img)
	g.Expect(refs).To(HaveLen(1))
	r := refs[0]
	m := r.manifest
	g.Expect(digestOf(t, res.Manifest)).To(Equal(res.Manifest.DigestStr()))
	g.Expect(string(m.MediaType)).To(Equal("application/vnd.oci.image.manifest.v1+json"))
	g.Expect(m.ArtifactType).To(Equal(MediaTypeBundle))
	g.Expect(string(m.Config.MediaType)).To(Equal("application/vnd.oci.empty.v1+json"))
	g.Expect(m.Config.ArtifactType).To(Equal(MediaTypeBundle))
	g.Expect(m.Config.Size).To(BeEquivalentTo(2))
	g.Expect(m.Subject).NotTo(BeNil())
	g.Expect(m.Subject.Digest.String()).To(Equal(img.DigestStr()))
	g.Expect(string(m.Subject.MediaType)).To(Equal("application/vnd.docker.distribution.manifest.v2+json"))
	predicateType := CosignSignPredicate
	if attest {
		predicateType = slsaProvenanceV1
	}
	g.Expect(m.Annotations).To(HaveLen(3))
	g.Expect(m.Annotations).To(HaveKeyWithValue(AnnotationBundleContent, "dsse-envelope"))
	g.Expect(m.Annotations).To(HaveKeyWithValue(AnnotationBundlePredicate, predicateType))
	g.Expect(time.Parse(time.RFC3339, m.Annotations[AnnotationCreated])).To(BeTemporally("~", time.Now(), time.Minute))
	g.Expect(m.Layers).To(HaveLen(1))
	g.Expect(string(m.Layers[0].MediaType)).To(Equal(MediaTypeBundle))
	g.Expect(m.Layers[0].Annotations).To(BeEmpty())
	g.Expect(r.bundle).To(Equal(res.Bundle))

	var b struct {
		MediaType            string                     `json:"mediaType"`
		VerificationMaterial map[string]json.RawMessage `json:"verificationMaterial"`
		DSSEEnvelope         struct {
			Payload     []byte `json:"payload"`
			PayloadType string `json:"payloadType"`
			Signatures  []struct {
				Sig []byte `json:"sig"`
			} `json:"signatures"`
		} `json:"dsseEnvelope"`
	}
	g.Expect(json.Unmarshal(r.bundle, &b)).To(Succeed())
	g.Expect(b.MediaType).To(Equal(MediaTypeBundle))
	want := []string{"publicKey"}
	if c.identity != nil {
		want = []string{"certificate"}
	} else {
		var pk struct{ Hint string }
		g.Expect(json.Unmarshal(b.VerificationMaterial["publicKey"], &pk)).To(Succeed())
		g.Expect(pk.Hint).NotTo(BeEmpty())
	}
	if res.LogEntry != nil {
		want = append(want, "tlogEntries")
		g.Expect(res.LogEntry.Kind).To(Equal(KindDSSE))
	}
	if res.Timestamp != nil {
		want = append(want, "timestampVerificationData")
	}
	g.Expect(keys(b.VerificationMaterial)).To(ConsistOf(want))
	g.Expect(b.DSSEEnvelope.PayloadType).To(Equal(InTotoPayloadType))
	g.Expect(b.DSSEEnvelope.Payload).To(Equal(res.Payload))
	g.Expect(b.DSSEEnvelope.Signatures).To(HaveLen(1))
	if attest {
		expectAttestStatement(g, res.Payload, img)
	} else {
		g.Expect(res.Payload).To(MatchJSON(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` +
			strings.TrimPrefix(img.DigestStr(), "sha256:") + `"},"annotations":{}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`))
	}
	return r
}

func expectAttestStatement(g Gomega, payload []byte, img name.Digest) {
	g.Expect(payload).To(MatchJSON(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"` + img.Context().Name() +
		`","digest":{"sha256":"` + strings.TrimPrefix(img.DigestStr(), "sha256:") + `"}}],"predicateType":"` + slsaProvenanceV1 +
		`","predicate":` + string(provenance) + `}`))
}

func digestOf(t testing.TB, ref name.Reference) string {
	t.Helper()
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
