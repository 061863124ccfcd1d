package signatures

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/registry"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

const (
	inTotoPayloadType = "application/vnd.in-toto+json"
	slsaPredicate     = "https://slsa.dev/provenance/v1"
)

// env is an in-process registry, a Writer for it, a key signer and a Discoverer reading the registry
// through sigwatch's own client.
type env struct {
	reg    *testregistry.Registry
	writer *sigstore.Writer
	key    *sigstore.KeySigner
	opts   registry.Options
}

func newEnv(t *testing.T, referrersAPI bool) *env {
	t.Helper()
	key, err := sigstore.NewKeySigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := testregistry.Start(t, referrersAPI)
	return &env{
		reg:    reg,
		writer: &sigstore.Writer{Registry: reg.Host},
		key:    key,
		// No retries: an injected failure is answered once.
		opts: registry.Options{Insecure: []string{"127.0.0.1:*"}, MaxRetries: -1},
	}
}

// discoverer returns a Discoverer with a fresh registry client (no cached referrers index).
func (e *env) discoverer(mutate ...func(*Discoverer)) *Discoverer {
	d := &Discoverer{Registry: registry.New(e.opts).With(registry.Credentials{})}
	for _, m := range mutate {
		m(d)
	}
	return d
}

// image pushes a random image to repo and returns it and where its signatures are.
func (e *env) image(t *testing.T, repo string) (name.Digest, Where) {
	t.Helper()
	d := e.reg.PushRandomImage(t, repo)
	return d, whereOf(t, d)
}

func whereOf(t *testing.T, d name.Digest) Where {
	t.Helper()
	img, err := imageref.Parse(d.String())
	if err != nil {
		t.Fatal(err)
	}
	return Where{Image: img}
}

// discover runs State and Fetch, failing the test on an error.
func discover(t *testing.T, d *Discoverer, w Where, attestations bool) (*State, []Candidate) {
	t.Helper()
	st, err := d.State(context.Background(), w, attestations)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	cands, err := d.Fetch(context.Background(), st)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return st, cands
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// rawLayer is one layer of a hand-made manifest.
type rawLayer struct {
	mediaType   types.MediaType
	annotations map[string]string
	data        []byte
}

// pushLegacyTag writes a cosign-style legacy manifest (OCI manifest, OCI image config) with the given
// layers under sha256-<hex>.<suffix> in repo, and returns its digest.
func pushLegacyTag(t *testing.T, repo name.Repository, img name.Digest, suffix string, layers ...rawLayer) v1.Hash {
	t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	var adds []mutate.Addendum
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(l.data, l.mediaType), Annotations: l.annotations, MediaType: l.mediaType})
	}
	m, err := mutate.Append(base, adds...)
	if err != nil {
		t.Fatal(err)
	}
	tag := repo.Tag(strings.Replace(img.DigestStr(), ":", "-", 1) + "." + suffix)
	if err := remote.Write(tag, m); err != nil {
		t.Fatalf("pushing %s: %v", tag, err)
	}
	return must[v1.Hash](t)(m.Digest())
}

// pushReferrer writes an OCI 1.1 referrer of img in img's repository, with the given artifact type,
// config media type, annotations and layers, and returns its digest.
func pushReferrer(t *testing.T, img name.Digest, artifactType string, config types.MediaType, annotations map[string]string, layers ...rawLayer) v1.Hash {
	t.Helper()
	repo := img.Context()
	subject, err := remote.Head(img)
	if err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer([]byte("{}"), config)
	blobs := []v1.Layer{cfg}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        descriptorOf(t, cfg, config),
		Annotations:   annotations,
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	}
	for _, l := range layers {
		sl := static.NewLayer(l.data, l.mediaType)
		blobs = append(blobs, sl)
		m.Layers = append(m.Layers, descriptorOf(t, sl, l.mediaType))
	}
	for _, b := range blobs {
		if err := remote.WriteLayer(repo, b); err != nil {
			t.Fatal(err)
		}
	}
	raw := must[[]byte](t)(json.Marshal(m))
	h := sha256Hash(raw)
	if err := remote.Put(repo.Digest(h.String()), rawManifest(raw)); err != nil {
		t.Fatalf("pushing a referrer of %s: %v", img, err)
	}
	return h
}

func descriptorOf(t *testing.T, l v1.Layer, mt types.MediaType) v1.Descriptor {
	t.Helper()
	return v1.Descriptor{MediaType: mt, Digest: must[v1.Hash](t)(l.Digest()), Size: must[int64](t)(l.Size())}
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// pushBundle pushes bundle JSON as cosign v3 does (artifact type, empty config, annotations).
func (e *env) pushBundle(t *testing.T, img name.Digest, data []byte, predicateType string) v1.Hash {
	t.Helper()
	ref, err := e.writer.PushBundleReferrer(context.Background(), img, img.Context(), data, predicateType)
	if err != nil {
		t.Fatal(err)
	}
	return must[v1.Hash](t)(v1.NewHash(ref.DigestStr()))
}

// statementJSON is an in-toto statement about digest.
func statementJSON(t *testing.T, predicateType string, digests ...string) []byte {
	t.Helper()
	var subjects []Subject
	for _, d := range digests {
		subjects = append(subjects, Subject{Name: "app", Digest: map[string]string{"sha256": strings.TrimPrefix(d, "sha256:")}})
	}
	return must[[]byte](t)(json.Marshal(Statement{Type: "https://in-toto.io/Statement/v1", PredicateType: predicateType,
		Subject: subjects, Predicate: json.RawMessage(`{}`)}))
}

// simpleSigningJSON is cosign's legacy payload for repo@digest.
func simpleSigningJSON(t *testing.T, repo, digest, typ string) []byte {
	t.Helper()
	var ss simpleSigning
	ss.Critical.Identity.DockerReference = repo
	ss.Critical.Image.DockerManifestDigest = digest
	ss.Critical.Type = typ
	return must[[]byte](t)(json.Marshal(ss))
}

// bundleJSON is a Sigstore bundle v0.3 of a DSSE envelope of payload (signature not valid: discovery
// does not verify), changed by mutate.
func bundleJSON(t *testing.T, payload []byte, mutate ...func(*protobundle.Bundle)) []byte {
	t.Helper()
	pb := &protobundle.Bundle{
		MediaType: MediaTypeBundleV03,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "key"}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			PayloadType: inTotoPayloadType, Payload: payload, Signatures: []*protodsse.Signature{{Sig: []byte("sig")}},
		}},
	}
	for _, m := range mutate {
		m(pb)
	}
	return must[[]byte](t)(protojson.Marshal(pb))
}
