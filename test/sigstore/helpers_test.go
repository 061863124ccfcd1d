package sigstore

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/sigwatch/sigwatch/internal/signatures"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// startRegistry serves an in-memory OCI registry on 127.0.0.1, with or without the referrers API, and
// returns a Writer for it.
func startRegistry(t testing.TB, referrersAPI bool) *Writer {
	t.Helper()
	srv := httptest.NewServer(registry.New(
		registry.WithReferrersSupport(referrersAPI),
		registry.Logger(log.New(io.Discard, "", 0)),
	))
	t.Cleanup(srv.Close)
	return &Writer{Registry: strings.TrimPrefix(srv.URL, "http://")}
}

func pushImage(t testing.TB, w *Writer, repo string) name.Digest {
	t.Helper()
	img, err := w.PushRandomImage(context.Background(), repo+":v1")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// layer is one layer of a legacy signature manifest.
type layer struct {
	mediaType   string
	annotations map[string]string
	blob        []byte
}

// readLegacy returns the manifest at tag and its layers.
func readLegacy(t testing.TB, tag name.Tag) (*v1.Manifest, []layer) {
	t.Helper()
	m := readManifest(t, tag)
	var out []layer
	for _, l := range m.Layers {
		out = append(out, layer{mediaType: string(l.MediaType), annotations: l.Annotations, blob: testregistry.Blob(t, tag.Context(), l.Digest)})
	}
	return m, out
}

// referrer is a bundle referrer of an image.
type referrer struct {
	manifest *v1.Manifest
	bundle   []byte
}

// readReferrers returns the referrers of img in repo, found as a verifier finds them.
func readReferrers(t testing.TB, repo name.Repository, img name.Digest) []referrer {
	t.Helper()
	idx, err := remote.Referrers(repo.Digest(img.DigestStr()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []referrer
	for _, d := range im.Manifests {
		m := readManifest(t, repo.Digest(d.Digest.String()))
		r := referrer{manifest: m}
		if len(m.Layers) > 0 {
			r.bundle = testregistry.Blob(t, repo, m.Layers[0].Digest)
		}
		out = append(out, r)
	}
	return out
}

func readManifest(t testing.TB, ref name.Reference) *v1.Manifest {
	t.Helper()
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// checker verifies signatures with sigstore-go as sigwatch does.
type checker struct {
	tr *root.TrustedRoot
	// pub is the trusted public key of key signatures.
	pub crypto.PublicKey
	// identity is the expected keyless identity.
	identity *Identity
	// tlog and tsa say which observers to require: the transparency log, a signed timestamp, or (key
	// signatures) neither.
	tlog, tsa bool
}

func (c checker) verifier(t testing.TB) *verify.Verifier {
	t.Helper()
	var opts []verify.VerifierOption
	if c.tlog {
		opts = append(opts, verify.WithTransparencyLog(1))
	}
	if c.tlog || c.tsa {
		opts = append(opts, verify.WithObserverTimestamps(1))
	}
	var material root.TrustedMaterial = c.tr
	if c.pub != nil {
		sv, err := signature.LoadVerifier(c.pub, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		key := root.NewExpiringKey(sv, ValidFrom, ValidUntil)
		keys := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
		material = root.TrustedMaterialCollection{c.tr, keys}
		if !c.tlog && !c.tsa {
			opts = append(opts, verify.WithNoObserverTimestamps())
		}
	}
	v, err := verify.NewVerifier(material, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (c checker) policy(t testing.TB, artifact verify.ArtifactPolicyOption) verify.PolicyBuilder {
	t.Helper()
	if c.identity == nil {
		return verify.NewPolicy(artifact, verify.WithKey())
	}
	san, err := verify.NewSANMatcher(c.identity.Subject, "")
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := verify.NewIssuerMatcher(c.identity.Issuer, "")
	if err != nil {
		t.Fatal(err)
	}
	ext := c.identity.Extensions()
	ext.Issuer = ""
	id, err := verify.NewCertificateIdentity(san, issuer, ext)
	if err != nil {
		t.Fatal(err)
	}
	return verify.NewPolicy(artifact, verify.WithCertificateIdentity(id))
}

// verifyLegacy converts a legacy layer with signatures.LegacyToBundle and verifies it: a simple-signing
// payload as the artifact, an attestation's statement against the image digest.
func (c checker) verifyLegacy(t testing.TB, l layer, img name.Digest) (*verify.VerificationResult, error) {
	t.Helper()
	envelope := l.mediaType == MediaTypeDSSE
	b, err := signatures.LegacyToBundle(l.blob, l.annotations, envelope)
	if err != nil {
		return nil, err
	}
	artifact := verify.WithArtifact(bytes.NewReader(l.blob))
	if envelope {
		artifact = digestArtifact(t, img)
	}
	return c.verifier(t).Verify(b, c.policy(t, artifact))
}

// verifyBundle parses a bundle layer and verifies it against the image digest.
func (c checker) verifyBundle(t testing.TB, data []byte, img name.Digest) (*verify.VerificationResult, error) {
	t.Helper()
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return c.verifier(t).Verify(&b, c.policy(t, digestArtifact(t, img)))
}

func digestArtifact(t testing.TB, img name.Digest) verify.ArtifactPolicyOption {
	t.Helper()
	raw, err := hex.DecodeString(strings.TrimPrefix(img.DigestStr(), "sha256:"))
	if err != nil {
		t.Fatal(err)
	}
	return verify.WithArtifactDigest("sha256", raw)
}
