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
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sigwatch/sigwatch/internal/imageref"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// Fuzz targets for the signature formats a registry hands sigwatch: legacy `.sig`/`.att` layers and
// their annotations, Sigstore bundle JSON, DSSE envelopes and the in-toto statements inside them, and
// simple-signing payloads. Each checks what the binding to an image digest depends on. `go test` runs
// their seeds; `make fuzz` runs each for FUZZTIME.

const (
	fuzzDigestA       = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	fuzzDigestB       = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	fuzzInToto        = "application/vnd.in-toto+json"
	fuzzSLSAPredicate = "https://slsa.dev/provenance/v1"
	fuzzBundleV01     = "application/vnd.dev.sigstore.bundle+json;version=0.1"
)

// fuzzVectorDirs are where the real Sigstore test vectors are: the copy the bundleverify tests use, then
// the shared folder they were copied from. Seeds from there are left out when neither exists.
var fuzzVectorDirs = []string{"../bundleverify/testdata", "../../../shared/vectors"}

// fuzzVectorBundle is one real bundle and, for message signatures, the artifact it signs (if known).
type fuzzVectorBundle struct {
	path     string
	data     []byte
	artifact []byte
}

// fuzzVectorBundles returns the real bundles of the vectors.
func fuzzVectorBundles(tb testing.TB) []fuzzVectorBundle {
	tb.Helper()
	for _, dir := range fuzzVectorDirs {
		var paths []string
		for _, glob := range []string{"public-good-bundles/*/*.sigstore", "public-good-bundles/*/*.sigstore.json",
			"public-good-bundles/sigstore-go/bundle-*.json", "cosign-new-bundle/*.sigstore.json"} {
			m, _ := filepath.Glob(filepath.Join(dir, glob))
			paths = append(paths, m...)
		}
		var out []fuzzVectorBundle
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			vb := fuzzVectorBundle{path: p, data: data}
			artifact := strings.TrimSuffix(strings.TrimSuffix(p, ".json"), ".sigstore")
			if a, err := os.ReadFile(artifact); err == nil && artifact != p {
				vb.artifact = a
			}
			out = append(out, vb)
		}
		if len(out) > 0 {
			return out
		}
	}
	tb.Log("no Sigstore test vectors found; seeding from the package's own signatures only")
	return nil
}

// fuzzVectorStatements returns the in-toto statements of the vectors: statement.json and the DSSE
// payloads of the bundles.
func fuzzVectorStatements(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, dir := range fuzzVectorDirs {
		if data, err := os.ReadFile(filepath.Join(dir, "public-good-bundles/sigstore-js/statement.json")); err == nil {
			out = append(out, data)
			break
		}
	}
	for _, vb := range fuzzVectorBundles(tb) {
		if pb := fuzzLooseBundle(vb.data); pb.GetDsseEnvelope() != nil {
			out = append(out, pb.GetDsseEnvelope().GetPayload())
		}
	}
	return out
}

// fuzzLooseBundle reads bundle JSON without sigstore-go's validation (for deriving seeds).
func fuzzLooseBundle(data []byte) *protobundle.Bundle {
	pb := &protobundle.Bundle{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, pb); err != nil {
		return &protobundle.Bundle{}
	}
	return pb
}

// fuzzLegacy is one legacy `.sig` or `.att` layer with its annotations.
type fuzzLegacy struct {
	layer       []byte
	annotations map[string]string
	envelope    bool
}

// fuzzLegacyFromBundle writes a real bundle as cosign's legacy layer and annotations would carry it:
// the certificate and chain as PEM, the first log entry as a Rekor bundle annotation, the first RFC 3161
// timestamp, and the message signature (over the artifact) or the DSSE envelope as the layer.
func fuzzLegacyFromBundle(vb fuzzVectorBundle) fuzzLegacy {
	pb := fuzzLooseBundle(vb.data)
	ann := map[string]string{}
	vm := pb.GetVerificationMaterial()
	var certs [][]byte
	if c := vm.GetCertificate(); c != nil {
		certs = append(certs, c.GetRawBytes())
	}
	for _, c := range vm.GetX509CertificateChain().GetCertificates() {
		certs = append(certs, c.GetRawBytes())
	}
	if len(certs) > 0 {
		ann[AnnotationCertificate] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0]}))
		var chain []byte
		for _, c := range certs[1:] {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
		}
		ann[AnnotationChain] = string(chain)
	}
	if entries := vm.GetTlogEntries(); len(entries) > 0 {
		e := entries[0]
		var rb rekorBundle
		rb.SignedEntryTimestamp = e.GetInclusionPromise().GetSignedEntryTimestamp()
		rb.Payload.Body = base64.StdEncoding.EncodeToString(e.GetCanonicalizedBody())
		rb.Payload.IntegratedTime = e.GetIntegratedTime()
		rb.Payload.LogIndex = e.GetLogIndex()
		rb.Payload.LogID = hex.EncodeToString(e.GetLogId().GetKeyId())
		if data, err := json.Marshal(rb); err == nil {
			ann[AnnotationBundle] = string(data)
		}
	}
	if ts := vm.GetTimestampVerificationData().GetRfc3161Timestamps(); len(ts) > 0 {
		if data, err := json.Marshal(rfc3161Annotation{SignedRFC3161Timestamp: ts[0].GetSignedTimestamp()}); err == nil {
			ann[AnnotationTimestamp] = string(data)
		}
	}
	if env := pb.GetDsseEnvelope(); env != nil {
		layer, _ := json.Marshal(fuzzEnvelopeJSON(env))
		ann[AnnotationSignature] = ""
		return fuzzLegacy{layer: layer, annotations: ann, envelope: true}
	}
	ann[AnnotationSignature] = base64.StdEncoding.EncodeToString(pb.GetMessageSignature().GetSignature())
	layer := vb.artifact
	if layer == nil {
		layer = vb.data
	}
	return fuzzLegacy{layer: layer, annotations: ann}
}

func fuzzEnvelopeJSON(env *protodsse.Envelope) dsseJSON {
	e := dsseJSON{PayloadType: env.GetPayloadType(), Payload: env.GetPayload()}
	for _, s := range env.GetSignatures() {
		e.Signatures = append(e.Signatures, struct {
			KeyID string `json:"keyid"`
			Sig   []byte `json:"sig"`
		}{s.GetKeyid(), s.GetSig()})
	}
	return e
}

// fuzzOwn is what this package's tests sign with test/sigstore: legacy layers and bundles, key and
// keyless, logged and timestamped.
type fuzzOwn struct {
	legacy     []fuzzLegacy
	bundles    [][]byte
	statements [][]byte
	payloads   [][]byte
}

var (
	fuzzOwnOnce sync.Once
	fuzzOwnSigs fuzzOwn
	fuzzOwnErr  error
)

// fuzzOwnSignatures signs once per process, into an in-process registry, as the package's tests do.
func fuzzOwnSignatures(tb testing.TB) fuzzOwn {
	tb.Helper()
	fuzzOwnOnce.Do(func() { fuzzOwnSigs, fuzzOwnErr = signFuzzSeeds() })
	if fuzzOwnErr != nil {
		tb.Fatalf("signing the seed signatures: %v", fuzzOwnErr)
	}
	return fuzzOwnSigs
}

func signFuzzSeeds() (fuzzOwn, error) {
	var out fuzzOwn
	reg, err := testregistry.Serve(true)
	if err != nil {
		return out, err
	}
	defer reg.Stop()
	key, err := sigstore.NewKeySigner(nil)
	if err != nil {
		return out, err
	}
	stack, err := sigstore.NewStack()
	if err != nil {
		return out, err
	}
	signers := []struct {
		s    sigstore.Signer
		opts sigstore.SignOptions
	}{
		{key, sigstore.SignOptions{}},
		{&sigstore.KeylessSigner{Stack: stack, Identity: sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")},
			sigstore.SignOptions{Timestamp: true, Annotations: map[string]string{"env": "prod"}}},
		{&sigstore.KeylessSigner{Stack: stack, Identity: sigstore.GitHubActions("yourorg/app", "release.yml", "refs/heads/main")},
			sigstore.SignOptions{EmptyChain: true, EntryKind: sigstore.KindIntoto}},
	}
	w := &sigstore.Writer{Registry: reg.Host}
	ctx := context.Background()
	for _, s := range signers {
		img, err := w.PushRandomImage(ctx, "app")
		if err != nil {
			return out, err
		}
		res, err := w.SignLegacy(ctx, img, s.s, s.opts)
		if err != nil {
			return out, err
		}
		l, err := fuzzLastLayer(res.Manifest)
		if err != nil {
			return out, err
		}
		out.legacy = append(out.legacy, l)
		out.payloads = append(out.payloads, res.Payload)

		res, err = w.AttestLegacy(ctx, img, s.s, fuzzSLSAPredicate, map[string]any{"builder": map[string]string{"id": "ci"}}, s.opts)
		if err != nil {
			return out, err
		}
		if l, err = fuzzLastLayer(res.Manifest); err != nil {
			return out, err
		}
		l.envelope = true
		out.legacy = append(out.legacy, l)
		out.statements = append(out.statements, res.Payload)

		for _, sign := range []func() (*sigstore.Result, error){
			func() (*sigstore.Result, error) { return w.SignBundle(ctx, img, s.s, s.opts) },
			func() (*sigstore.Result, error) {
				return w.AttestBundle(ctx, img, s.s, fuzzSLSAPredicate, map[string]string{"buildType": "x"}, s.opts)
			},
		} {
			res, err := sign()
			if err != nil {
				return out, err
			}
			out.bundles = append(out.bundles, res.Bundle)
			out.statements = append(out.statements, res.Payload)
		}
	}
	return out, nil
}

// fuzzLastLayer reads the last layer of the legacy manifest m and its annotations.
func fuzzLastLayer(m name.Digest) (fuzzLegacy, error) {
	desc, err := remote.Get(m)
	if err != nil {
		return fuzzLegacy{}, err
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return fuzzLegacy{}, err
	}
	l := manifest.Layers[len(manifest.Layers)-1]
	layer, err := remote.Layer(m.Context().Digest(l.Digest.String()))
	if err != nil {
		return fuzzLegacy{}, err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return fuzzLegacy{}, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		return fuzzLegacy{}, err
	}
	return fuzzLegacy{layer: buf.Bytes(), annotations: l.Annotations}, nil
}

// fuzzSimpleSigning is a cosign simple-signing payload.
func fuzzSimpleSigning(repo, digest, typ string) []byte {
	var ss simpleSigning
	ss.Critical.Identity.DockerReference = repo
	ss.Critical.Image.DockerManifestDigest = digest
	ss.Critical.Type = typ
	data, _ := json.Marshal(ss)
	return data
}

// fuzzStatement is an in-toto statement about digests.
func fuzzStatement(predicateType string, digests ...string) []byte {
	st := Statement{Type: "https://in-toto.io/Statement/v1", PredicateType: predicateType, Predicate: json.RawMessage(`{}`)}
	for _, d := range digests {
		st.Subject = append(st.Subject, Subject{Name: "app", Digest: map[string]string{"sha256": strings.TrimPrefix(d, "sha256:")}})
	}
	data, _ := json.Marshal(st)
	return data
}

// FuzzLegacyToBundle: a legacy layer with its annotations either fails to convert or becomes a valid
// v0.1 bundle that says exactly what the annotations say: a message signature over sha256(layer) with
// the decoded signature annotation, or the layer's DSSE envelope; the leaf certificate of the
// certificate annotation first, then only intermediates (never a self-signed root, which must come from
// the trust root); one log entry per Rekor bundle annotation, one timestamp per timestamp annotation.
// The bundle survives sigstore-go's JSON round trip, and its binding follows the payload or statement.
func FuzzLegacyToBundle(f *testing.F) {
	add := func(l fuzzLegacy) {
		a := l.annotations
		f.Add(l.layer, a[AnnotationSignature], a[AnnotationCertificate], a[AnnotationChain], a[AnnotationBundle], a[AnnotationTimestamp], l.envelope)
	}
	for _, l := range fuzzOwnSignatures(f).legacy {
		add(l)
		stripped := fuzzLegacy{layer: l.layer, annotations: map[string]string{AnnotationSignature: l.annotations[AnnotationSignature]}, envelope: l.envelope}
		add(stripped)
	}
	for _, vb := range fuzzVectorBundles(f) {
		add(fuzzLegacyFromBundle(vb))
	}
	add(fuzzLegacy{layer: []byte(`{"payloadType":"` + fuzzInToto + `","payload":"e30=","signatures":[{"keyid":"k1","sig":"AQ=="},{"sig":"Ag=="}]}`), envelope: true})
	add(fuzzLegacy{layer: fuzzSimpleSigning("registry.example/app", fuzzDigestA, CosignSignatureType), annotations: map[string]string{AnnotationSignature: "AQ=="}})

	f.Fuzz(func(t *testing.T, layer []byte, sig, cert, chain, rekor, timestamp string, envelope bool) {
		ann := map[string]string{}
		for k, v := range map[string]string{AnnotationSignature: sig, AnnotationCertificate: cert, AnnotationChain: chain,
			AnnotationBundle: rekor, AnnotationTimestamp: timestamp} {
			if v != "" {
				ann[k] = v
			}
		}
		b, err := LegacyToBundle(layer, ann, envelope)
		if err != nil {
			if b != nil {
				t.Fatalf("LegacyToBundle failed (%v) and returned a bundle", err)
			}
			return
		}
		if b.GetMediaType() != fuzzBundleV01 {
			t.Fatalf("media type %q, want %q", b.GetMediaType(), fuzzBundleV01)
		}
		checkLegacyContent(t, b, layer, sig, envelope)
		checkLegacyMaterial(t, b, cert, chain, rekor, timestamp)
		checkBundleRoundTrip(t, b)

		c := Candidate{Kind: KindSignature, Bundle: b}
		if envelope {
			c.Kind = KindAttestation
			st, err := statementOf(b)
			if err != nil {
				return
			}
			c.Statement = st
			checkStatementBinding(t, &c, b.GetDsseEnvelope().GetPayload())
			return
		}
		c.Payload = layer
		checkPayloadBinding(t, &c)
	})
}

func checkLegacyContent(t *testing.T, b *bundle.Bundle, layer []byte, sig string, envelope bool) {
	t.Helper()
	if !envelope {
		ms := b.GetMessageSignature()
		sum := sha256.Sum256(layer)
		want, _ := base64.StdEncoding.DecodeString(sig)
		switch {
		case ms == nil || b.GetDsseEnvelope() != nil:
			t.Fatal("a simple-signing layer must become a message signature")
		case ms.GetMessageDigest().GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 || !bytes.Equal(ms.GetMessageDigest().GetDigest(), sum[:]):
			t.Fatalf("message digest %v, want sha256 of the layer", ms.GetMessageDigest())
		case len(want) == 0 || !bytes.Equal(ms.GetSignature(), want):
			t.Fatalf("signature %x, want the decoded annotation %x", ms.GetSignature(), want)
		}
		return
	}
	env := b.GetDsseEnvelope()
	if env == nil || b.GetMessageSignature() != nil {
		t.Fatal("a DSSE layer must become a DSSE envelope")
	}
	var ref dsseJSON
	if err := json.Unmarshal(layer, &ref); err != nil {
		t.Fatalf("the layer converted, but it does not parse as an envelope: %v", err)
	}
	if env.GetPayloadType() != ref.PayloadType || !bytes.Equal(env.GetPayload(), ref.Payload) || len(env.GetSignatures()) != len(ref.Signatures) || len(ref.Signatures) == 0 {
		t.Fatalf("envelope %v, want what the layer holds", env)
	}
	for i, s := range ref.Signatures {
		if env.GetSignatures()[i].GetKeyid() != s.KeyID || !bytes.Equal(env.GetSignatures()[i].GetSig(), s.Sig) {
			t.Fatalf("envelope signature %d is %v, want %+v", i, env.GetSignatures()[i], s)
		}
	}
}

func checkLegacyMaterial(t *testing.T, b *bundle.Bundle, cert, chain, rekor, timestamp string) {
	t.Helper()
	vm := b.GetVerificationMaterial()
	if cert == "" {
		if vm.GetPublicKey() == nil {
			t.Fatal("no certificate annotation: the verification material must be a public key")
		}
	} else {
		certs := vm.GetX509CertificateChain().GetCertificates()
		leaf := fuzzPEMCertificates(cert)
		if len(certs) == 0 || len(leaf) == 0 || !bytes.Equal(certs[0].GetRawBytes(), leaf[0]) {
			t.Fatal("the chain must start with the certificate annotation's certificate")
		}
		given := fuzzPEMCertificates(chain)
		for _, c := range certs[1:] {
			parsed, err := x509.ParseCertificate(c.GetRawBytes())
			if err != nil {
				t.Fatalf("chain certificate does not parse: %v", err)
			}
			if parsed.CheckSignatureFrom(parsed) == nil {
				t.Fatalf("a self-signed certificate (%s) was taken from the signature into the chain", parsed.Subject)
			}
			if !slices.ContainsFunc(given, func(g []byte) bool { return bytes.Equal(g, c.GetRawBytes()) }) {
				t.Fatal("a chain certificate that the chain annotation does not hold")
			}
		}
	}
	entries := vm.GetTlogEntries()
	switch {
	case rekor == "" && len(entries) != 0:
		t.Fatalf("%d log entries without a Rekor bundle annotation", len(entries))
	case rekor != "" && len(entries) != 1:
		t.Fatalf("%d log entries from one Rekor bundle annotation", len(entries))
	case rekor != "" && entries[0].GetInclusionPromise() == nil:
		t.Fatal("the log entry of a Rekor bundle annotation must carry its SET as inclusion promise")
	}
	stamps := vm.GetTimestampVerificationData().GetRfc3161Timestamps()
	if (timestamp == "") != (len(stamps) == 0) || len(stamps) > 1 {
		t.Fatalf("%d timestamps from timestamp annotation %q", len(stamps), timestamp)
	}
}

// fuzzPEMCertificates returns the DER of every CERTIFICATE block in s.
func fuzzPEMCertificates(s string) [][]byte {
	var out [][]byte
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block.Bytes)
		}
	}
}

// checkBundleRoundTrip: what sigstore-go writes it reads back the same, validation included.
func checkBundleRoundTrip(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	data, err := b.MarshalJSON()
	if err != nil {
		t.Fatalf("bundle does not marshal: %v", err)
	}
	var again bundle.Bundle
	if err := again.UnmarshalJSON(data); err != nil {
		t.Fatalf("bundle does not read back: %v\n%s", err, data)
	}
	if !proto.Equal(b.Bundle, again.Bundle) {
		t.Fatalf("bundle reads back different:\n%v\n%v", b.Bundle, again.Bundle)
	}
}

// FuzzBundleJSON: bundle JSON either does not parse or parses into a bundle that round-trips; its
// candidate is built as discovery builds it; a message signature binds to nothing; a DSSE statement binds
// exactly the subjects it names, read as a plain in-toto parser reads them.
func FuzzBundleJSON(f *testing.F) {
	for _, b := range fuzzOwnSignatures(f).bundles {
		f.Add(b, fuzzDigestA)
	}
	for _, vb := range fuzzVectorBundles(f) {
		f.Add(vb.data, "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4")
	}
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), fuzzDigestB)
	f.Fuzz(func(t *testing.T, data []byte, digest string) {
		var b bundle.Bundle
		if err := b.UnmarshalJSON(data); err != nil {
			return
		}
		checkBundleRoundTrip(t, &b)
		c := Candidate{Kind: KindSignature, Bundle: &b}
		st, err := statementOf(&b)
		env := b.GetDsseEnvelope()
		switch {
		case env == nil && (st != nil || err != nil):
			t.Fatalf("a message signature has no statement, got %v, %v", st, err)
		case err != nil:
			if env.GetPayloadType() == fuzzInToto && fuzzPlainStatementOK(env.GetPayload()) {
				t.Fatalf("statementOf refuses a statement a plain in-toto parser reads: %v", err)
			}
			return
		case env == nil:
			for _, d := range fuzzProbes(digest) {
				if c.CheckBinding(d) == nil {
					t.Fatalf("a message signature bound to %s", d)
				}
			}
			return
		}
		c.Statement = st
		if st.PredicateType != CosignSignPredicate {
			c.Kind = KindAttestation
		}
		checkStatementBinding(t, &c, env.GetPayload(), digest)
	})
}

// FuzzStatement: a DSSE envelope of any payload type and payload, carried in a bundle or in a legacy
// `.att` layer, gives the same statement both ways; the statement is what a plain in-toto parser reads
// (or is refused when that parser refuses it, or it names more than MaxSubjects subjects); and it binds
// only to its sha256 subjects, only when its type (and for a signature, its predicate type) is right.
func FuzzStatement(f *testing.F) {
	own := fuzzOwnSignatures(f)
	for _, st := range append(append([][]byte{}, own.statements...), fuzzVectorStatements(f)...) {
		f.Add(fuzzInToto, st, false, fuzzDigestA)
		f.Add(fuzzInToto, st, true, fuzzDigestA)
	}
	f.Add(fuzzInToto, fuzzStatement(CosignSignPredicate, fuzzDigestA), false, fuzzDigestA)
	f.Add(fuzzInToto, fuzzStatement(CosignSignPredicate, fuzzDigestB, strings.ToUpper(fuzzDigestA)), false, fuzzDigestA)
	f.Add(fuzzInToto, fuzzStatement(fuzzSLSAPredicate, fuzzDigestA), true, fuzzDigestB)
	f.Add(fuzzInToto, []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"x","subject":null}`), true, fuzzDigestA)
	f.Add(MediaTypeSimpleSigning, fuzzSimpleSigning("r/app", fuzzDigestA, CosignSignatureType), false, fuzzDigestA)
	f.Fuzz(func(t *testing.T, payloadType string, payload []byte, attestation bool, digest string) {
		env := &protodsse.Envelope{PayloadType: payloadType, Payload: payload, Signatures: []*protodsse.Signature{{Sig: []byte("sig")}}}
		pb := &protobundle.Bundle{
			MediaType: MediaTypeBundleV03,
			VerificationMaterial: &protobundle.VerificationMaterial{
				Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "key"}},
			},
			Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env},
		}
		b, err := bundle.NewBundle(pb)
		if err != nil {
			t.Fatalf("a DSSE bundle with a key: %v", err)
		}
		st, err := statementOf(b)
		plainOK := fuzzPlainStatementOK(payload)
		if payloadType != fuzzInToto {
			if err == nil {
				t.Fatalf("a DSSE payload of type %q was read as an in-toto statement", payloadType)
			}
			return
		}

		// The same envelope as a legacy .att layer.
		layer, err2 := json.Marshal(fuzzEnvelopeJSON(env))
		if err2 != nil {
			t.Fatal(err2)
		}
		lb, err2 := LegacyToBundle(layer, map[string]string{}, true)
		if err2 != nil {
			t.Fatalf("the envelope as a .att layer does not convert: %v", err2)
		}
		lst, lerr := statementOf(lb)
		if (err == nil) != (lerr == nil) || (err == nil && !fuzzSameStatement(st, lst)) {
			t.Fatalf("bundle and .att layer read the statement differently: %+v (%v) and %+v (%v)", st, err, lst, lerr)
		}

		if err != nil {
			if plainOK {
				t.Fatalf("statementOf refuses a statement a plain in-toto parser reads: %v", err)
			}
			return
		}
		c := Candidate{Kind: KindSignature, Bundle: b, Statement: st}
		if attestation {
			c.Kind = KindAttestation
		}
		checkStatementBinding(t, &c, payload, digest)
	})
}

// FuzzCheckBindingPayload: a simple-signing payload binds to at most one digest, only one that it
// names, and only when it is of the cosign type; every refusal is ErrBinding.
func FuzzCheckBindingPayload(f *testing.F) {
	for _, p := range fuzzOwnSignatures(f).payloads {
		f.Add(p, fuzzDigestA)
	}
	for _, typ := range []string{CosignSignatureType, "", "atomic container signature"} {
		f.Add(fuzzSimpleSigning("registry.example/app", fuzzDigestA, typ), fuzzDigestA)
		f.Add(fuzzSimpleSigning("registry.example/app", strings.ToUpper(fuzzDigestA), typ), fuzzDigestA)
	}
	f.Add([]byte(`{"critical":{"type":"cosign container image signature"},"optional":{"docker-manifest-digest":"`+fuzzDigestA+`"}}`), fuzzDigestA)
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"`+fuzzDigestA+`"},"type":"cosign container image signature"},"critical":{"type":"x"}}`), fuzzDigestA)
	f.Add([]byte(`{"Critical":{"Image":{"Docker-Manifest-Digest":"`+fuzzDigestB+`"},"TYPE":"cosign container image signature"}}`), fuzzDigestB)
	f.Add([]byte("not json"), fuzzDigestA)
	f.Add([]byte{}, fuzzDigestA)
	f.Fuzz(func(t *testing.T, payload []byte, digest string) {
		c := Candidate{Kind: KindSignature, Payload: payload}
		checkPayloadBinding(t, &c, digest)
	})
}

// fuzzProbes are the digests a candidate's binding is asked about: fixed ones, the fuzzed one and
// those named anywhere in the content, all valid (image digests always are).
func fuzzProbes(extra ...string) []string {
	probes := []string{fuzzDigestA, fuzzDigestB}
	for _, d := range extra {
		if imageref.ValidDigest(d) && !slices.Contains(probes, d) {
			probes = append(probes, d)
		}
	}
	return probes
}

// fuzzStrings returns every string (keys and values) in a JSON document, decoded; nil if it does not
// parse.
func fuzzStrings(data []byte) []string {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				out = append(out, k)
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// checkPayloadBinding checks the binding of a candidate with a simple-signing payload.
func checkPayloadBinding(t *testing.T, c *Candidate, extra ...string) {
	t.Helper()
	strs := fuzzStrings(c.Payload)
	var named []string
	for _, s := range strs {
		named = append(named, s, "sha256:"+s)
	}
	bound := 0
	for _, d := range fuzzProbes(append(extra, named...)...) {
		err := c.CheckBinding(d)
		if err != nil {
			if c.Err == nil && !errors.Is(err, ErrBinding) {
				t.Fatalf("a binding failure that is not ErrBinding: %v", err)
			}
			continue
		}
		bound++
		if !slices.Contains(strs, d) {
			t.Fatalf("the payload %q is bound to %s, which it does not name", c.Payload, d)
		}
		if !slices.Contains(strs, CosignSignatureType) {
			t.Fatalf("the payload %q is bound to %s, but is not of the cosign type", c.Payload, d)
		}
	}
	if bound > 1 {
		t.Fatalf("the payload %q is bound to %d digests", c.Payload, bound)
	}
}

// fuzzPlainStatement reads an in-toto statement as a plain parser does (encoding/json into the
// statement type), keeping the subjects' raw sha256 values.
func fuzzPlainStatement(payload []byte) (*Statement, bool) {
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, false
	}
	return &st, true
}

// fuzzPlainStatementOK reports whether a plain parser reads the statement and it has at most
// MaxSubjects subjects (sigwatch refuses more).
func fuzzPlainStatementOK(payload []byte) bool {
	st, ok := fuzzPlainStatement(payload)
	return ok && len(st.Subject) <= MaxSubjects
}

func fuzzSameStatement(a, b *Statement) bool {
	return a.Type == b.Type && a.PredicateType == b.PredicateType && slices.Equal(a.SubjectDigests(), b.SubjectDigests())
}

// checkStatementBinding checks the binding of a candidate with a statement read from payload.
func checkStatementBinding(t *testing.T, c *Candidate, payload []byte, extra ...string) {
	t.Helper()
	st := c.Statement
	plain, ok := fuzzPlainStatement(payload)
	switch {
	case !ok:
		t.Fatalf("statementOf read %+v from a payload a plain parser refuses: %q", st, payload)
	case len(plain.Subject) > MaxSubjects:
		t.Fatalf("statementOf read %d subjects, more than MaxSubjects", len(st.Subject))
	case plain.Type != st.Type || plain.PredicateType != st.PredicateType || !slices.Equal(plain.SubjectDigests(), st.SubjectDigests()):
		t.Fatalf("statementOf read %+v, a plain in-toto parser %+v, from %q", st, plain, payload)
	}

	typeOK := slices.Contains(inTotoStatementTypes, st.Type) && (c.Kind == KindAttestation || st.PredicateType == CosignSignPredicate)
	subjects := st.SubjectDigests()
	for _, d := range fuzzProbes(append(extra, subjects...)...) {
		err := c.CheckBinding(d)
		if err != nil {
			if !errors.Is(err, ErrBinding) {
				t.Fatalf("a binding failure that is not ErrBinding: %v", err)
			}
			if typeOK && slices.Contains(subjects, d) {
				t.Fatalf("a statement of the right type about %s is not bound to it: %v", d, err)
			}
			continue
		}
		if !typeOK {
			t.Fatalf("a statement of type %q, predicate type %q (kind %d) is bound to %s", st.Type, st.PredicateType, c.Kind, d)
		}
		hexDigest := strings.TrimPrefix(d, "sha256:")
		if !slices.ContainsFunc(plain.Subject, func(s Subject) bool {
			v := s.Digest["sha256"]
			return len(v) == len(hexDigest) && strings.EqualFold(v, hexDigest)
		}) {
			t.Fatalf("the statement is bound to %s, which none of its subjects names: %q", d, payload)
		}
	}
}
