package sigstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
)

// write writes one signature of the given kind ("sign/legacy", "attest/legacy", "sign/bundle",
// "attest/bundle") and verifies it with c, returning the verification error.
func writeAndVerify(t *testing.T, w *Writer, img name.Digest, kind string, s Signer, opts SignOptions, c checker) (*Result, error) {
	t.Helper()
	ctx := context.Background()
	var res *Result
	var err error
	switch kind {
	case "sign/legacy":
		res, err = w.SignLegacy(ctx, img, s, opts)
	case "attest/legacy":
		res, err = w.AttestLegacy(ctx, img, s, slsaProvenanceV1, provenance, opts)
	case "sign/bundle":
		res, err = w.SignBundle(ctx, img, s, opts)
	case "attest/bundle":
		res, err = w.AttestBundle(ctx, img, s, slsaProvenanceV1, provenance, opts)
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	repo := img.Context()
	if opts.SignatureRepository != "" {
		if repo, err = w.Repository(opts.SignatureRepository); err != nil {
			t.Fatal(err)
		}
	}
	if strings.HasSuffix(kind, "/legacy") {
		suffix := ".sig"
		if strings.HasPrefix(kind, "attest") {
			suffix = ".att"
		}
		_, layers := readLegacy(t, repo.Tag(tagPrefix(img)+suffix))
		_, err = c.verifyLegacy(t, layers[len(layers)-1], img)
		return res, err
	}
	refs := readReferrers(t, repo, img)
	for _, r := range refs {
		if r.manifest.Subject != nil && bytes.Equal(r.bundle, res.Bundle) {
			_, err = c.verifyBundle(t, r.bundle, img)
			return res, err
		}
	}
	t.Fatalf("the bundle of %s was not found among %d referrers", img, len(refs))
	return nil, nil
}

var allKinds = []string{"sign/legacy", "attest/legacy", "sign/bundle", "attest/bundle"}

// TestCertifiedTime shows that a certificate is judged at the time the log (or a TSA) certifies, not now:
// a certificate that lived ten minutes in 2024 verifies today.
func TestCertifiedTime(t *testing.T) {
	f := newFixture(t)
	w := startRegistry(t, true)
	notBefore := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	signer := &KeylessSigner{Stack: f.stack, Identity: f.identity, NotBefore: notBefore, NotAfter: notBefore.Add(10 * time.Minute)}
	for _, kind := range allKinds {
		for _, observer := range []string{"tlog", "tsa"} {
			t.Run(kind+"/"+observer, func(t *testing.T) {
				g := NewWithT(t)
				img := pushImage(t, w, "app")
				opts := SignOptions{IntegratedTime: notBefore.Add(5 * time.Minute)}
				c := checker{tr: f.checker.tr, identity: &f.identity, tlog: true}
				if observer == "tsa" {
					opts = SignOptions{Tlog: TlogOff, Timestamp: true, TimestampTime: notBefore.Add(5 * time.Minute)}
					c = checker{tr: f.checker.tr, identity: &f.identity, tsa: true}
				}
				res, err := writeAndVerify(t, w, img, kind, signer, opts, c)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res.Certificate.NotAfter).To(Equal(notBefore.Add(10 * time.Minute)))
				if observer == "tlog" {
					g.Expect(res.LogEntry.IntegratedTime).To(Equal(notBefore.Add(5 * time.Minute).Unix()))
				}
			})
		}
	}
}

// TestDefaultCertificateValidity shows that a KeylessSigner's certificate is dated around the chosen
// integrated time, so that an old signature needs nothing but the time.
func TestDefaultCertificateValidity(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	w := startRegistry(t, true)
	at := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	res, err := writeAndVerify(t, w, pushImage(t, w, "app"), "sign/bundle", f.keyless, SignOptions{IntegratedTime: at},
		checker{tr: f.checker.tr, identity: &f.identity, tlog: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Certificate.NotBefore).To(Equal(at.Add(-time.Minute)))
	g.Expect(res.Certificate.NotAfter).To(Equal(at.Add(10 * time.Minute)))

	res, err = w.SignBundle(context.Background(), pushImage(t, w, "now"), f.keyless, SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Certificate.NotBefore).To(BeTemporally("~", time.Now().Add(-time.Minute), 5*time.Second))
	g.Expect(time.Unix(res.LogEntry.IntegratedTime, 0)).To(BeTemporally("~", time.Now(), 5*time.Second))
}

// TestTampered writes signatures that must not verify, each for its own reason.
func TestTampered(t *testing.T) {
	f := newFixture(t)
	w := startRegistry(t, false)
	other := GitHubActions("acme/other", "release.yml", "refs/heads/main")
	notBefore := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	expired := &KeylessSigner{Stack: f.stack, Identity: f.identity, NotBefore: notBefore, NotAfter: notBefore.Add(10 * time.Minute)}
	foreign := newStack(t)

	swapDigest := func(p []byte) []byte {
		return bytes.Replace(p, []byte(`"sha256`), []byte(`"sha512`), 1)
	}
	cases := []struct {
		name    string
		signer  Signer
		opts    SignOptions
		checker func() checker
		want    string // in the verification error
	}{
		{
			name:    "SET tampered",
			signer:  f.keyless,
			opts:    SignOptions{TamperSET: true},
			checker: func() checker { return checker{tr: f.checker.tr, identity: &f.identity, tlog: true} },
			want:    "not enough verified log entries",
		},
		{
			name:    "payload tampered",
			signer:  f.keyless,
			opts:    SignOptions{Payload: func(p []byte) []byte { return append(bytes.TrimSuffix(p, []byte("}")), []byte(`,"x":1}`)...) }},
			checker: func() checker { return checker{tr: f.checker.tr, identity: &f.identity, tlog: true} },
			want:    "does not match",
		},
		{
			name:    "payload tampered, key",
			signer:  f.key,
			opts:    SignOptions{Payload: swapDigest},
			checker: func() checker { return checker{tr: f.checker.tr, pub: f.key.PublicKey()} },
			want:    "failed to verify signature",
		},
		{
			name:    "certificate expired before the integrated time",
			signer:  expired,
			opts:    SignOptions{IntegratedTime: notBefore.Add(time.Hour)},
			checker: func() checker { return checker{tr: f.checker.tr, identity: &f.identity, tlog: true} },
			want:    "integrated time outside certificate validity",
		},
		{
			name:    "timestamp after the certificate expired",
			signer:  expired,
			opts:    SignOptions{Tlog: TlogOff, Timestamp: true, TimestampTime: notBefore.Add(time.Hour)},
			checker: func() checker { return checker{tr: f.checker.tr, identity: &f.identity, tsa: true} },
			want:    "leaf certificate verification failed",
		},
		{
			name:    "other identity",
			signer:  &KeylessSigner{Stack: f.stack, Identity: other},
			checker: func() checker { return checker{tr: f.checker.tr, identity: &f.identity, tlog: true} },
			want:    "no matching CertificateIdentity",
		},
		{
			name:    "other key",
			signer:  mustKeySigner(t, nil),
			checker: func() checker { return checker{tr: f.checker.tr, pub: f.key.PublicKey()} },
			want:    "failed to verify signature",
		},
		{
			name:    "untrusted CA and log",
			signer:  &KeylessSigner{Stack: foreign, Identity: f.identity},
			checker: func() checker { return checker{tr: f.checker.tr, identity: &f.identity, tlog: true} },
			want:    "not enough verified log entries",
		},
		{
			name:    "no transparency log entry",
			signer:  f.keyless,
			opts:    SignOptions{Tlog: TlogOff},
			checker: func() checker { return checker{tr: f.checker.tr, identity: &f.identity, tlog: true} },
			want:    "not enough verified log entries",
		},
	}
	for _, tc := range cases {
		for _, kind := range allKinds {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				g := NewWithT(t)
				img := pushImage(t, w, "app")
				_, err := writeAndVerify(t, w, img, kind, tc.signer, tc.opts, tc.checker())
				g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			})
		}
	}
}

// TestBoundToAnotherDigest signs for one digest and stores it with another image: the signature is
// valid, so what tells is the payload (legacy) or the statement's subject (bundle).
func TestBoundToAnotherDigest(t *testing.T) {
	f := newFixture(t)
	w := startRegistry(t, true)
	elsewhere := "sha256:" + strings.Repeat("ab", 32)
	c := checker{tr: f.checker.tr, identity: &f.identity, tlog: true}
	for _, kind := range allKinds {
		t.Run(kind, func(t *testing.T) {
			g := NewWithT(t)
			img := pushImage(t, w, "app")
			res, err := writeAndVerify(t, w, img, kind, f.keyless, SignOptions{Digest: elsewhere}, c)
			g.Expect(string(res.Payload)).To(ContainSubstring(strings.TrimPrefix(elsewhere, "sha256:")))
			g.Expect(string(res.Payload)).NotTo(ContainSubstring(strings.TrimPrefix(img.DigestStr(), "sha256:")))
			if kind == "sign/legacy" {
				// sigstore-go checks the signature over the payload; the binding is the caller's job.
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(HaveOccurred())
			if strings.HasSuffix(kind, "bundle") {
				// The referrer is still the image's, as a misplaced or replayed bundle would be.
				m := readManifest(t, res.Manifest)
				g.Expect(m.Subject.Digest.String()).To(Equal(img.DigestStr()))
			}
		})
	}
}

// TestAccumulate shows how repeated signatures accumulate, as with cosign: layers in the legacy
// manifests, referrers (listed by the fallback tag without the referrers API) for bundles.
func TestAccumulate(t *testing.T) {
	f := newFixture(t)
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%t", referrersAPI), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			w := startRegistry(t, referrersAPI)
			img := pushImage(t, w, "app")
			for range 2 {
				_, err := w.SignLegacy(ctx, img, f.key, SignOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				_, err = w.AttestLegacy(ctx, img, f.keyless, slsaProvenanceV1, provenance, SignOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				_, err = w.SignBundle(ctx, img, f.keyless, SignOptions{})
				g.Expect(err).NotTo(HaveOccurred())
			}
			_, sig := readLegacy(t, img.Context().Tag(tagPrefix(img)+".sig"))
			g.Expect(sig).To(HaveLen(2))
			_, att := readLegacy(t, img.Context().Tag(tagPrefix(img)+".att"))
			g.Expect(att).To(HaveLen(2))
			refs := readReferrers(t, img.Context(), img)
			g.Expect(refs).To(HaveLen(2))
			for _, l := range append(sig, att...) {
				c := checker{tr: f.checker.tr, pub: f.key.PublicKey()}
				if l.mediaType == MediaTypeDSSE {
					c = checker{tr: f.checker.tr, identity: &f.identity, tlog: true}
				}
				_, err := c.verifyLegacy(t, l, img)
				g.Expect(err).NotTo(HaveOccurred())
			}
			tags := []string{"v1", tagPrefix(img) + ".sig", tagPrefix(img) + ".att"}
			if !referrersAPI {
				tags = append(tags, tagPrefix(img))
				idx := readManifest(t, img.Context().Tag(tagPrefix(img)))
				g.Expect(string(idx.MediaType)).To(Equal("application/vnd.oci.image.index.v1+json"))
			}
			g.Expect(remote.List(img.Context())).To(ConsistOf(tags))
		})
	}
}

// TestConcurrentWrites signs one image from many goroutines: no layer and no referrer is lost.
func TestConcurrentWrites(t *testing.T) {
	f := newFixture(t)
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%t", referrersAPI), func(t *testing.T) {
			g := NewWithT(t)
			w := startRegistry(t, referrersAPI)
			img := pushImage(t, w, "app")
			const n = 8
			errs := make(chan error, 2*n)
			for range n {
				go func() {
					_, err := w.SignLegacy(context.Background(), img, f.key, SignOptions{})
					errs <- err
				}()
				go func() {
					_, err := w.SignBundle(context.Background(), img, f.key, SignOptions{})
					errs <- err
				}()
			}
			for range 2 * n {
				g.Expect(<-errs).NotTo(HaveOccurred())
			}
			_, layers := readLegacy(t, img.Context().Tag(tagPrefix(img)+".sig"))
			g.Expect(layers).To(HaveLen(n))
			g.Expect(readReferrers(t, img.Context(), img)).To(HaveLen(n))
		})
	}
}

// TestSignatureRepository stores signatures in another repository, as COSIGN_REPOSITORY does: nothing is
// written next to the image.
func TestSignatureRepository(t *testing.T) {
	f := newFixture(t)
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%t", referrersAPI), func(t *testing.T) {
			g := NewWithT(t)
			w := startRegistry(t, referrersAPI)
			img := pushImage(t, w, "app")
			opts := SignOptions{SignatureRepository: "signatures"}
			c := checker{tr: f.checker.tr, identity: &f.identity, tlog: true}
			for _, kind := range allKinds {
				_, err := writeAndVerify(t, w, img, kind, f.keyless, opts, c)
				g.Expect(err).NotTo(HaveOccurred(), kind)
			}
			g.Expect(remote.List(img.Context())).To(ConsistOf("v1"))
			g.Expect(readReferrers(t, img.Context(), img)).To(BeEmpty())
			sigRepo, err := w.Repository("signatures")
			g.Expect(err).NotTo(HaveOccurred())
			tags := []string{tagPrefix(img) + ".sig", tagPrefix(img) + ".att"}
			if !referrersAPI {
				tags = append(tags, tagPrefix(img))
			}
			g.Expect(remote.List(sigRepo)).To(ConsistOf(tags))
			g.Expect(readReferrers(t, sigRepo, img)).To(HaveLen(2))

			// A full repository name works too.
			_, err = writeAndVerify(t, w, img, "sign/bundle", f.keyless, SignOptions{SignatureRepository: w.Registry + "/signatures"}, c)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(readReferrers(t, sigRepo, img)).To(HaveLen(3))
		})
	}
}

func TestDeleteSignatures(t *testing.T) {
	f := newFixture(t)
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%t", referrersAPI), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			w := startRegistry(t, referrersAPI)
			img := pushImage(t, w, "app")
			kept, err := w.PushRandomImage(ctx, "app:other")
			g.Expect(err).NotTo(HaveOccurred())
			for _, i := range []name.Digest{img, kept} {
				for _, kind := range allKinds {
					_, err := writeAndVerify(t, w, i, kind, f.keyless, SignOptions{}, checker{tr: f.checker.tr, identity: &f.identity, tlog: true})
					g.Expect(err).NotTo(HaveOccurred())
				}
			}
			g.Expect(w.DeleteSignatures(ctx, img, "")).To(Succeed())
			g.Expect(readReferrers(t, img.Context(), img)).To(BeEmpty())
			tags, err := remote.List(img.Context())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tags).NotTo(ContainElement(HavePrefix(tagPrefix(img))))
			g.Expect(tags).To(ContainElement(tagPrefix(kept) + ".sig"))
			g.Expect(readReferrers(t, img.Context(), kept)).To(HaveLen(2))
			// Deleting again is not an error.
			g.Expect(w.DeleteSignatures(ctx, img, "")).To(Succeed())
		})
	}
}

// TestLegacyVariants covers what older or other cosign versions write: an empty chain annotation (cosign
// v3.1.3 keyless), an intoto log entry for an attestation (cosign v2).
func TestLegacyVariants(t *testing.T) {
	f := newFixture(t)
	w := startRegistry(t, true)
	c := checker{tr: f.checker.tr, identity: &f.identity, tlog: true}
	t.Run("empty chain", func(t *testing.T) {
		g := NewWithT(t)
		img := pushImage(t, w, "chain")
		for _, kind := range []string{"sign/legacy", "attest/legacy"} {
			_, err := writeAndVerify(t, w, img, kind, f.keyless, SignOptions{EmptyChain: true}, c)
			g.Expect(err).NotTo(HaveOccurred())
		}
		_, layers := readLegacy(t, img.Context().Tag(tagPrefix(img)+".sig"))
		g.Expect(layers[0].annotations).To(HaveKeyWithValue(AnnotationChain, ""))
	})
	t.Run("intoto entry", func(t *testing.T) {
		g := NewWithT(t)
		img := pushImage(t, w, "intoto")
		for _, kind := range []string{"attest/legacy", "attest/bundle"} {
			res, err := writeAndVerify(t, w, img, kind, f.keyless, SignOptions{EntryKind: KindIntoto}, c)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.LogEntry.Kind).To(Equal(KindIntoto))
			g.Expect(res.LogEntry.APIVersion).To(Equal("0.0.2"))
		}
	})
}

// TestTimestampEnvelope writes a legacy attestation timestamped as cosign v2 did: over the envelope.
func TestTimestampEnvelope(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	w := startRegistry(t, true)
	img := pushImage(t, w, "app")
	res, err := w.AttestLegacy(context.Background(), img, f.keyless, slsaProvenanceV1, provenance,
		SignOptions{Tlog: TlogOff, Timestamp: true, TimestampEnvelope: true})
	g.Expect(err).NotTo(HaveOccurred())
	_, layers := readLegacy(t, img.Context().Tag(tagPrefix(img)+".att"))
	tsa := f.checker.tr.TimestampingAuthorities()[0]
	_, err = tsa.Verify(res.Timestamp, layers[0].blob)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = tsa.Verify(res.Timestamp, res.Signature)
	g.Expect(err).To(HaveOccurred())
	// sigstore-go checks a timestamp against the signature, so through LegacyToBundle this one vouches
	// for nothing.
	_, err = checker{tr: f.checker.tr, identity: &f.identity, tsa: true}.verifyLegacy(t, layers[0], img)
	t.Logf("sigstore-go on a cosign v2 legacy attestation timestamp: %v", err)
}

func TestWriterErrors(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := startRegistry(t, true)
	img := pushImage(t, w, "app")
	key := mustKeySigner(t, nil)
	_, err := w.SignLegacy(ctx, img, key, SignOptions{Tlog: TlogOn})
	g.Expect(err).To(MatchError(ContainSubstring("needs a signer with a Stack")))
	_, err = w.SignBundle(ctx, img, key, SignOptions{Timestamp: true})
	g.Expect(err).To(MatchError(ContainSubstring("needs a signer with a Stack")))
	_, err = w.SignBundle(ctx, img, &KeylessSigner{Identity: GitHubActions("a/b", "c.yml", "refs/heads/main")}, SignOptions{})
	g.Expect(err).To(MatchError(ContainSubstring("needs a Stack")))
	_, err = w.SignBundle(ctx, img, &KeySigner{}, SignOptions{})
	g.Expect(err).To(MatchError(ContainSubstring("NewKeySigner")))
	_, err = w.AttestBundle(ctx, img, key, slsaProvenanceV1, []byte("{not json"), SignOptions{})
	g.Expect(err).To(MatchError(ContainSubstring("not JSON")))
	_, err = w.SignLegacy(ctx, img, key, SignOptions{Digest: "sha256:nothex"})
	g.Expect(err).NotTo(HaveOccurred(), "a legacy payload names any digest")
	_, err = w.SignBundle(ctx, img, key, SignOptions{Digest: "md5:abc"})
	g.Expect(err).To(MatchError(ContainSubstring("not a sha256 digest")))

	// A predicate given as a value is marshaled.
	res, err := w.AttestBundle(ctx, img, key, "https://example.com/v1", map[string]int{"n": 1}, SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	var st struct{ Predicate json.RawMessage }
	g.Expect(json.Unmarshal(res.Payload, &st)).To(Succeed())
	g.Expect(st.Predicate).To(MatchJSON(`{"n":1}`))
}

func TestClock(t *testing.T) {
	g := NewWithT(t)
	w := startRegistry(t, true)
	at := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	w.Clock = func() time.Time { return at }
	f := newFixture(t)
	img := pushImage(t, w, "app")
	res, err := w.SignBundle(context.Background(), img, f.keyless, SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.LogEntry.IntegratedTime).To(Equal(at.Unix()))
	g.Expect(readManifest(t, res.Manifest).Annotations).To(HaveKeyWithValue(AnnotationCreated, "2023-05-06T07:08:09Z"))
}

func mustKeySigner(t testing.TB, s *Stack) *KeySigner {
	t.Helper()
	k, err := NewKeySigner(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
