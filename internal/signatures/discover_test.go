package signatures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

var registryModes = []struct {
	name      string
	referrers bool
}{{"referrers API", true}, {"fallback tag", false}}

func digestOf(t *testing.T, d name.Digest) v1.Hash {
	t.Helper()
	return must[v1.Hash](t)(v1.NewHash(d.DigestStr()))
}

func referrerDigests(st *State) []string {
	var out []string
	for _, r := range st.Referrers {
		out = append(out, r.Descriptor.Digest.String())
	}
	return out
}

func TestDiscoverBundleReferrers(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			e := newEnv(t, mode.referrers)
			img, where := e.image(t, "app")
			sig := must[*sigstore.Result](t)(e.writer.SignBundle(ctx, img, e.key, sigstore.SignOptions{}))
			att := must[*sigstore.Result](t)(e.writer.AttestBundle(ctx, img, e.key, slsaPredicate, map[string]string{"builder": "ci"}, sigstore.SignOptions{}))
			d := e.discoverer()

			st, err := d.State(ctx, where, false)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(referrerDigests(st)).To(ConsistOf(sig.Manifest.DigestStr(), att.Manifest.DigestStr()),
				"State lists every bundle referrer, whatever it holds")
			for _, r := range st.Referrers {
				g.Expect(r.Repo.Name()).To(Equal(img.Context().Name()))
			}
			g.Expect(st.SigTag).To(BeNil())
			g.Expect(st.AttTag).To(BeNil())
			g.Expect(st.Attestations).To(BeFalse())

			// Without attestations, the attestation bundle is told by its annotation and not read.
			e.reg.ResetCounts()
			cands, err := d.Fetch(ctx, st)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cands).To(HaveLen(1))
			g.Expect(e.reg.Requests("GET manifests")).To(Equal(1), "only the signature's referrer is read")
			g.Expect(e.reg.Requests("GET blobs")).To(Equal(1), "only the signature's bundle is read")
			c := cands[0]
			g.Expect(c.Err).NotTo(HaveOccurred())
			g.Expect(c.Kind).To(Equal(KindSignature))
			g.Expect(c.Format).To(Equal(sigwatchv1alpha1.SignatureFormatBundle))
			g.Expect(c.ManifestDigest).To(Equal(sig.Manifest.DigestStr()))
			g.Expect(c.Payload).To(BeNil())
			g.Expect(c.Bundle).NotTo(BeNil())
			g.Expect(c.Bundle.GetDsseEnvelope().GetPayload()).To(Equal(sig.Payload))
			g.Expect(c.Statement.PredicateType).To(Equal(CosignSignPredicate))
			g.Expect(c.Statement.SubjectDigests()).To(Equal([]string{img.DigestStr()}))
			g.Expect(c.CheckBinding(img.DigestStr())).To(Succeed())

			st, err = d.State(ctx, where, true)
			g.Expect(err).NotTo(HaveOccurred())
			cands, err = d.Fetch(ctx, st)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cands).To(HaveLen(2))
			byDigest := map[string]Candidate{}
			for _, c := range cands {
				g.Expect(c.Err).NotTo(HaveOccurred())
				byDigest[c.ManifestDigest] = c
			}
			a := byDigest[att.Manifest.DigestStr()]
			g.Expect(a.Kind).To(Equal(KindAttestation))
			g.Expect(a.Format).To(Equal(sigwatchv1alpha1.SignatureFormatBundle))
			g.Expect(a.Statement.PredicateType).To(Equal(slsaPredicate))
			g.Expect(a.Statement.Predicate).To(BeNil(), "the predicate is not read before the signature is checked")
			g.Expect(string(must[json.RawMessage](t)(a.Predicate()))).To(MatchJSON(`{"builder":"ci"}`))
			g.Expect(a.CheckBinding(img.DigestStr())).To(Succeed())
			g.Expect(byDigest[sig.Manifest.DigestStr()].Kind).To(Equal(KindSignature))
		})
	}
}

func TestDiscoverLegacyTags(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newEnv(t, true)
	img, where := e.image(t, "app")
	sig1 := must[*sigstore.Result](t)(e.writer.SignLegacy(ctx, img, e.key, sigstore.SignOptions{}))
	sig2 := must[*sigstore.Result](t)(e.writer.SignLegacy(ctx, img, e.key, sigstore.SignOptions{Annotations: map[string]string{"n": "2"}}))
	att := must[*sigstore.Result](t)(e.writer.AttestLegacy(ctx, img, e.key, slsaPredicate, map[string]string{"builder": "ci"}, sigstore.SignOptions{}))
	d := e.discoverer()

	st, err := d.State(ctx, where, true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Referrers).To(BeEmpty())
	g.Expect(st.SigTag).NotTo(BeNil())
	g.Expect(st.SigTag.Descriptor.Digest.String()).To(Equal(sig2.Manifest.DigestStr()), "the .sig tag now holds both layers")
	g.Expect(st.SigTag.Repo.Name()).To(Equal(img.Context().Name()))
	g.Expect(st.AttTag).NotTo(BeNil())
	g.Expect(st.AttTag.Descriptor.Digest.String()).To(Equal(att.Manifest.DigestStr()))

	cands, err := d.Fetch(ctx, st)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cands).To(HaveLen(3))
	for i, want := range []*sigstore.Result{sig1, sig2} {
		c := cands[i]
		g.Expect(c.Err).NotTo(HaveOccurred())
		g.Expect(c.Kind).To(Equal(KindSignature))
		g.Expect(c.Format).To(Equal(sigwatchv1alpha1.SignatureFormatLegacy))
		g.Expect(c.ManifestDigest).To(Equal(sig2.Manifest.DigestStr()))
		g.Expect(c.Payload).To(Equal(want.Payload), "one candidate per layer, in layer order")
		g.Expect(c.Statement).To(BeNil())
		g.Expect(c.Bundle.GetMessageSignature().GetSignature()).To(Equal(want.Signature))
		g.Expect(c.CheckBinding(img.DigestStr())).To(Succeed())
	}
	a := cands[2]
	g.Expect(a.Err).NotTo(HaveOccurred())
	g.Expect(a.Kind).To(Equal(KindAttestation))
	g.Expect(a.Format).To(Equal(sigwatchv1alpha1.SignatureFormatLegacy))
	g.Expect(a.ManifestDigest).To(Equal(att.Manifest.DigestStr()))
	g.Expect(a.Payload).To(BeNil())
	g.Expect(a.Statement.PredicateType).To(Equal(slsaPredicate))
	g.Expect(a.Bundle.GetDsseEnvelope().GetPayload()).To(Equal(att.Payload))
	g.Expect(a.CheckBinding(img.DigestStr())).To(Succeed())

	st, err = d.State(ctx, where, false)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.AttTag).To(BeNil(), "the .att tag is not looked up unless attestations are asked for")
	cands, err = d.Fetch(ctx, st)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cands).To(HaveLen(2))
	for _, c := range cands {
		g.Expect(c.Kind).To(Equal(KindSignature))
	}
}

func TestDiscoverSignatureRepository(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			e := newEnv(t, mode.referrers)
			img, where := e.image(t, "app")
			elsewhere := sigstore.SignOptions{SignatureRepository: "signatures"}
			legacy := must[*sigstore.Result](t)(e.writer.SignLegacy(ctx, img, e.key, elsewhere))
			att := must[*sigstore.Result](t)(e.writer.AttestLegacy(ctx, img, e.key, slsaPredicate, map[string]string{}, elsewhere))
			remoteBundle := must[*sigstore.Result](t)(e.writer.SignBundle(ctx, img, e.key, elsewhere))
			localBundle := must[*sigstore.Result](t)(e.writer.SignBundle(ctx, img, e.key, sigstore.SignOptions{}))
			d := e.discoverer()
			sigRepo := e.reg.Repo("signatures")

			// Beside the image, only the local bundle.
			st, err := d.State(ctx, where, true)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(referrerDigests(st)).To(Equal([]string{localBundle.Manifest.DigestStr()}))
			g.Expect(st.SigTag).To(BeNil())
			g.Expect(st.AttTag).To(BeNil())

			where.SignatureRepository = sigRepo
			st, err = d.State(ctx, where, true)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(st.Where).To(Equal(where))
			g.Expect(st.SigTag).NotTo(BeNil())
			g.Expect(st.SigTag.Repo.Name()).To(Equal(sigRepo))
			g.Expect(st.SigTag.Descriptor.Digest.String()).To(Equal(legacy.Manifest.DigestStr()))
			g.Expect(st.AttTag).NotTo(BeNil())
			g.Expect(st.AttTag.Repo.Name()).To(Equal(sigRepo))
			g.Expect(st.AttTag.Descriptor.Digest.String()).To(Equal(att.Manifest.DigestStr()))
			repoOf := map[string]string{}
			for _, r := range st.Referrers {
				repoOf[r.Descriptor.Digest.String()] = r.Repo.Name()
			}
			g.Expect(repoOf).To(Equal(map[string]string{
				localBundle.Manifest.DigestStr():  img.Context().Name(),
				remoteBundle.Manifest.DigestStr(): sigRepo,
			}), "the referrers of both repositories, each read where it was found")

			cands, err := d.Fetch(ctx, st)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cands).To(HaveLen(4))
			for _, c := range cands {
				g.Expect(c.Err).NotTo(HaveOccurred())
				g.Expect(c.CheckBinding(img.DigestStr())).To(Succeed())
			}

			// The image's own repository named as the signature repository is listed once.
			where.SignatureRepository = img.Context().Name()
			st, err = d.State(ctx, where, true)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(referrerDigests(st)).To(Equal([]string{localBundle.Manifest.DigestStr()}))
		})
	}
}

func TestDiscoverNoSignatures(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t, mode.referrers)
			_, where := e.image(t, "app")
			// Another image's signatures are not this one's.
			other, _ := e.image(t, "app")
			_, err := e.writer.SignLegacy(context.Background(), other, e.key, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			_, err = e.writer.SignBundle(context.Background(), other, e.key, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())

			st, cands := discover(t, e.discoverer(), where, true)
			g.Expect(st.Referrers).To(BeEmpty())
			g.Expect(st.SigTag).To(BeNil())
			g.Expect(st.AttTag).To(BeNil())
			g.Expect(st.Key()).To(BeEmpty())
			g.Expect(cands).To(BeEmpty())
		})
	}
}

// answer makes the registry answer status to requests of method whose path contains every one of
// match.
func answer(e *env, method string, status int, match ...string) {
	e.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != method {
			return false
		}
		for _, m := range match {
			if !strings.Contains(r.URL.Path, m) {
				return false
			}
		}
		code := map[int]string{http.StatusNotFound: "MANIFEST_UNKNOWN", http.StatusForbidden: "DENIED"}[status]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected"}]}`, code)
		return true
	})
}

func tagPath(img name.Digest, suffix string) string {
	return "/manifests/" + strings.Replace(img.DigestStr(), ":", "-", 1) + suffix
}

func TestStateFailures(t *testing.T) {
	cases := []struct {
		name string
		// prepare changes the registry or where; img is pushed and signed (legacy signature).
		prepare      func(e *env, img name.Digest, w *Where)
		attestations bool
		wantIs       error
		unavailable  bool
		wantErr      string
	}{
		{name: "digest not in the repository", prepare: func(_ *env, _ name.Digest, w *Where) {
			w.Image.Digest = digestA
		}, wantIs: ErrImageNotFound, wantErr: "or not readable with the credentials given"},
		{name: "repository does not exist", prepare: func(e *env, _ name.Digest, w *Where) {
			w.Image.Repository = e.reg.Repo("nowhere")
		}, wantIs: ErrImageNotFound, wantErr: "/nowhere@sha256:"},
		{name: "registry hides the image (404 on HEAD)", prepare: func(e *env, img name.Digest, _ *Where) {
			answer(e, http.MethodHead, http.StatusNotFound, "/manifests/"+img.DigestStr())
		}, wantIs: ErrImageNotFound},
		{name: "registry denies the image (403 on HEAD): unavailable, not missing", prepare: func(e *env, img name.Digest, _ *Where) {
			answer(e, http.MethodHead, http.StatusForbidden, "/manifests/"+img.DigestStr())
		}, unavailable: true, wantErr: "looking up"},
		{name: "registry denies the .sig tag: unavailable, not unsigned", prepare: func(e *env, img name.Digest, _ *Where) {
			answer(e, http.MethodHead, http.StatusForbidden, tagPath(img, ".sig"))
		}, unavailable: true, wantErr: ".sig"},
		{name: "registry denies the .att tag, attestations asked for", attestations: true, prepare: func(e *env, img name.Digest, _ *Where) {
			answer(e, http.MethodHead, http.StatusForbidden, tagPath(img, ".att"))
		}, unavailable: true, wantErr: ".att"},
		{name: "registry denies the referrers listing", prepare: func(e *env, img name.Digest, _ *Where) {
			answer(e, http.MethodGet, http.StatusForbidden, "/referrers/"+img.DigestStr())
		}, unavailable: true, wantErr: "listing the signature referrers of"},
		{name: "registry is down", prepare: func(e *env, _ name.Digest, _ *Where) {
			e.reg.Stop()
		}, unavailable: true},
		{name: "digest not sha256:<hex>", prepare: func(_ *env, _ name.Digest, w *Where) {
			w.Image.Digest = "sha256:xyz"
		}, wantErr: "image "},
		{name: "image repository not a repository name", prepare: func(_ *env, _ name.Digest, w *Where) {
			w.Image.Repository = "Not A/Repository"
		}, wantErr: "image Not A/Repository"},
		{name: "signature repository not a repository name", prepare: func(_ *env, _ name.Digest, w *Where) {
			w.SignatureRepository = "Not A/Repository"
		}, wantErr: "signatureRepository Not A/Repository"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t, true)
			img, where := e.image(t, "app")
			_, err := e.writer.SignLegacy(context.Background(), img, e.key, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			tc.prepare(e, img, &where)

			st, err := e.discoverer().State(context.Background(), where, tc.attestations)
			g.Expect(st).To(BeNil())
			g.Expect(err).To(HaveOccurred())
			if tc.wantIs != nil {
				g.Expect(err).To(MatchError(tc.wantIs))
			} else {
				g.Expect(errors.Is(err, ErrImageNotFound)).To(BeFalse(), "%v", err)
			}
			g.Expect(registry.IsUnavailable(err)).To(Equal(tc.unavailable), "%v", err)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			}
		})
	}

	t.Run("the .att tag is not looked up unless asked for", func(t *testing.T) {
		g := NewWithT(t)
		e := newEnv(t, true)
		img, where := e.image(t, "app")
		answer(e, http.MethodHead, http.StatusForbidden, tagPath(img, ".att"))
		_, err := e.discoverer().State(context.Background(), where, false)
		g.Expect(err).NotTo(HaveOccurred())
	})
}

func TestStateKey(t *testing.T) {
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			e := newEnv(t, mode.referrers)
			img, where := e.image(t, "app")
			d := e.discoverer() // one client throughout, as the engine keeps one
			key := func(attestations bool) string {
				t.Helper()
				st, err := d.State(ctx, where, attestations)
				g.Expect(err).NotTo(HaveOccurred())
				return st.Key()
			}
			seen := map[string]string{}
			changes := func(what string, attestations bool) string {
				t.Helper()
				k := key(attestations)
				for before, k0 := range seen {
					g.Expect(k).NotTo(Equal(k0), "the key after %s equals the key after %s", what, before)
				}
				seen[what] = k
				g.Expect(key(attestations)).To(Equal(k), "nothing changed since %s", what)
				return k
			}

			changes("nothing", true)
			_, err := e.writer.SignBundle(ctx, img, e.key, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			changes("a bundle signature", true)
			_, err = e.writer.SignLegacy(ctx, img, e.key, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			changes("a legacy signature", true)
			_, err = e.writer.SignLegacy(ctx, img, e.key, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			changes("a second legacy signature (same tag, new manifest)", true)
			withoutAtt := key(false)
			_, err = e.writer.AttestLegacy(ctx, img, e.key, slsaPredicate, map[string]string{}, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(key(false)).To(Equal(withoutAtt), "the .att tag does not count when attestations are not asked for")
			changes("a legacy attestation", true)
			_, err = e.writer.AttestBundle(ctx, img, e.key, slsaPredicate, map[string]string{}, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			changes("a bundle attestation", true)
			g.Expect(key(false)).NotTo(Equal(withoutAtt), "a new referrer changes the key whatever it holds")

			// Another image's signature changes nothing.
			other, _ := e.image(t, "app")
			_, err = e.writer.SignBundle(ctx, other, e.key, sigstore.SignOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(key(true)).To(Equal(seen["a bundle attestation"]))
		})
	}
}

func TestStateKeyIgnoresReferrerOrder(t *testing.T) {
	g := NewWithT(t)
	repo := must[name.Repository](t)(name.NewRepository("registry.example/app"))
	loc := func(d string) Located {
		return Located{Repo: repo, Descriptor: v1.Descriptor{Digest: must[v1.Hash](t)(v1.NewHash(d))}}
	}
	a := &State{Referrers: []Located{loc(digestA), loc(digestB)}}
	b := &State{Referrers: []Located{loc(digestB), loc(digestA)}}
	g.Expect(a.Key()).To(Equal(b.Key()))
	sig, att := loc(digestA), loc(digestB)
	g.Expect((&State{SigTag: &sig}).Key()).NotTo(Equal((&State{AttTag: &sig}).Key()), "a .sig and an .att of the same digest differ")
	g.Expect((&State{SigTag: &sig, AttTag: &att}).Key()).NotTo(Equal((&State{SigTag: &att, AttTag: &sig}).Key()))
	g.Expect((&State{Referrers: []Located{sig}}).Key()).NotTo(Equal((&State{SigTag: &sig}).Key()), "a referrer and a .sig tag of the same digest differ")
}

// TestStateKeyReflectsAttestations: the Key's contract is "when State.Key is unchanged, so are the
// signatures", and Fetch reads attestation bundles only when State asked for attestations.
func TestStateKeyReflectsAttestations(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newEnv(t, true)
	img, where := e.image(t, "app")
	_, err := e.writer.SignBundle(ctx, img, e.key, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.writer.AttestBundle(ctx, img, e.key, slsaPredicate, map[string]string{}, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	d := e.discoverer()
	without, withoutCands := discover(t, d, where, false)
	with, withCands := discover(t, d, where, true)
	g.Expect(withoutCands).NotTo(HaveLen(len(withCands)), "the precondition: the candidates differ")
	g.Expect(with.Key()).NotTo(Equal(without.Key()))
}

func TestDiscoverReferrerKinds(t *testing.T) {
	bundleLayer := func(t *testing.T, img name.Digest) rawLayer {
		return rawLayer{mediaType: MediaTypeBundleV03, data: bundleJSON(t, statementJSON(t, CosignSignPredicate, img.DigestStr()))}
	}
	other := func(mt string) rawLayer {
		return rawLayer{mediaType: types.MediaType(mt), data: []byte(`{"spdxVersion":"SPDX-2.3"}`)}
	}
	cases := []struct {
		name         string
		artifactType string
		config       types.MediaType
		annotations  map[string]string
		layers       func(t *testing.T, img name.Digest) []rawLayer
		listed       bool
		wantErr      string // of the candidate; "" for a readable bundle
		// only restricts the case to one registry mode.
		only string
	}{
		{name: "SBOM referrer: not listed, not read", config: "application/spdx+json",
			layers: func(*testing.T, name.Digest) []rawLayer { return []rawLayer{other("application/spdx+json")} }},
		{name: "SBOM artifact with an empty config: not listed", only: "fallback tag",
			artifactType: "application/spdx+json", config: types.OCIEmptyJSON,
			layers: func(*testing.T, name.Digest) []rawLayer { return []rawLayer{other("application/spdx+json")} }},
		// go-containerregistry's registry reports the config media type as artifactType: the SBOM looks
		// like a cosign bundle until its layers are read.
		{name: "SBOM artifact with an empty config, as go-containerregistry's registry lists it", only: "referrers API",
			artifactType: "application/spdx+json", config: types.OCIEmptyJSON,
			layers: func(*testing.T, name.Digest) []rawLayer { return []rawLayer{other("application/spdx+json")} }, listed: true,
			wantErr: "holds no Sigstore bundle layer"},
		{name: "bundle type without a bundle layer", config: MediaTypeBundleV03,
			layers: func(*testing.T, name.Digest) []rawLayer { return []rawLayer{other("application/octet-stream")} }, listed: true,
			wantErr: "holds no Sigstore bundle layer"},
		{name: "bundle type without any layer", config: MediaTypeBundleV03,
			layers: func(*testing.T, name.Digest) []rawLayer { return nil }, listed: true,
			wantErr: "holds no Sigstore bundle layer"},
		{name: "empty config with a bundle layer", config: types.OCIEmptyJSON,
			layers: func(t *testing.T, img name.Digest) []rawLayer { return []rawLayer{bundleLayer(t, img)} }, listed: true},
		{name: "predicate annotation, bundle layer after another layer", config: "application/x-unknown",
			annotations: map[string]string{annotationBundlePredicate: CosignSignPredicate},
			layers: func(t *testing.T, img name.Digest) []rawLayer {
				return []rawLayer{other("application/octet-stream"), bundleLayer(t, img)}
			}, listed: true},
		{name: "unknown type and no annotation, even with a bundle layer: not listed", config: "application/x-unknown",
			layers: func(t *testing.T, img name.Digest) []rawLayer { return []rawLayer{bundleLayer(t, img)} }},
	}
	for _, mode := range registryModes {
		t.Run(mode.name, func(t *testing.T) {
			e := newEnv(t, mode.referrers)
			for _, tc := range cases {
				if tc.only != "" && tc.only != mode.name {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					g := NewWithT(t)
					img, where := e.image(t, "app")
					h := pushReferrer(t, img, tc.artifactType, tc.config, tc.annotations, tc.layers(t, img)...)
					d := e.discoverer()
					st, err := d.State(context.Background(), where, true)
					g.Expect(err).NotTo(HaveOccurred())
					if !tc.listed {
						g.Expect(st.Referrers).To(BeEmpty())
						e.reg.ResetCounts()
						cands, err := d.Fetch(context.Background(), st)
						g.Expect(err).NotTo(HaveOccurred())
						g.Expect(cands).To(BeEmpty())
						g.Expect(e.reg.Requests("GET")).To(BeZero(), "nothing is read")
						return
					}
					g.Expect(referrerDigests(st)).To(Equal([]string{h.String()}))
					cands, err := d.Fetch(context.Background(), st)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(cands).To(HaveLen(1))
					c := cands[0]
					g.Expect(c.ManifestDigest).To(Equal(h.String()))
					g.Expect(c.Format).To(Equal(sigwatchv1alpha1.SignatureFormatBundle))
					if tc.wantErr != "" {
						g.Expect(c.Err).To(MatchError(ContainSubstring(tc.wantErr)))
						g.Expect(c.Err).To(MatchError(ContainSubstring(h.String())), "the error names the referrer")
						g.Expect(c.Bundle).To(BeNil())
						g.Expect(c.CheckBinding(img.DigestStr())).To(MatchError(c.Err))
						return
					}
					g.Expect(c.Err).NotTo(HaveOccurred())
					g.Expect(c.CheckBinding(img.DigestStr())).To(Succeed())
				})
			}
		})
	}
}

func TestFetchBundleCandidates(t *testing.T) {
	cases := []struct {
		name      string
		bundle    func(t *testing.T, img name.Digest) []byte
		predicate string // the referrer's annotation
		wantIs    error
		wantErr   string
		// For a readable candidate:
		wantKind    Kind
		wantBinding string // "" when bound to the image
	}{
		{name: "not JSON", bundle: func(*testing.T, name.Digest) []byte { return []byte("{not json") },
			wantErr: "does not parse"},
		{name: "JSON of another kind", bundle: func(*testing.T, name.Digest) []byte { return []byte(`{"payloadType":"x","signatures":[]}`) },
			wantErr: "does not parse"},
		{name: "media type of no bundle", bundle: func(t *testing.T, img name.Digest) []byte {
			return bundleJSON(t, statementJSON(t, CosignSignPredicate, img.DigestStr()), func(b *protobundle.Bundle) { b.MediaType = "application/json" })
		}, wantIs: bundle.ErrUnsupportedMediaType, wantErr: "does not parse"},
		{name: "media type of an unsupported bundle version", bundle: func(t *testing.T, img name.Digest) []byte {
			return bundleJSON(t, statementJSON(t, CosignSignPredicate, img.DigestStr()), func(b *protobundle.Bundle) {
				b.MediaType = "application/vnd.dev.sigstore.bundle.v0.9+json"
			})
		}, wantIs: bundle.ErrUnsupportedMediaType},
		{name: "no verification material", bundle: func(t *testing.T, img name.Digest) []byte {
			return bundleJSON(t, statementJSON(t, CosignSignPredicate, img.DigestStr()), func(b *protobundle.Bundle) { b.VerificationMaterial = nil })
		}, wantIs: bundle.ErrMissingVerificationMaterial},
		{name: "no content", bundle: func(t *testing.T, _ name.Digest) []byte {
			return bundleJSON(t, nil, func(b *protobundle.Bundle) { b.Content = nil })
		}, wantIs: bundle.ErrMissingBundleContent},
		{name: "DSSE payload that is not in-toto", bundle: func(t *testing.T, img name.Digest) []byte {
			return bundleJSON(t, statementJSON(t, CosignSignPredicate, img.DigestStr()), func(b *protobundle.Bundle) {
				b.GetDsseEnvelope().PayloadType = "text/plain"
			})
		}, wantErr: `DSSE payload type "text/plain" is not in-toto`},
		{name: "in-toto statement that is not JSON", bundle: func(t *testing.T, _ name.Digest) []byte {
			return bundleJSON(t, []byte("not json"))
		}, wantErr: "in-toto statement does not parse"},

		{name: "signature about the image", bundle: func(t *testing.T, img name.Digest) []byte {
			return bundleJSON(t, statementJSON(t, CosignSignPredicate, img.DigestStr()))
		}, wantKind: KindSignature},
		{name: "signature about another digest", bundle: func(t *testing.T, _ name.Digest) []byte {
			return bundleJSON(t, statementJSON(t, CosignSignPredicate, digestB))
		}, wantKind: KindSignature, wantBinding: "the statement's subject is " + digestB},
		{name: "attestation annotated as a signature: the statement decides", predicate: CosignSignPredicate,
			bundle: func(t *testing.T, img name.Digest) []byte {
				return bundleJSON(t, statementJSON(t, slsaPredicate, img.DigestStr()))
			}, wantKind: KindAttestation},
		{name: "message signature", bundle: func(t *testing.T, _ name.Digest) []byte {
			return bundleJSON(t, nil, toMessageSignature)
		}, wantKind: KindSignature, wantBinding: "neither a payload nor a statement"},
	}
	e := newEnv(t, true)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			img, where := e.image(t, "app")
			predicate := tc.predicate
			if predicate == "" {
				predicate = CosignSignPredicate
			}
			h := e.pushBundle(t, img, tc.bundle(t, img), predicate)
			_, cands := discover(t, e.discoverer(), where, true)
			g.Expect(cands).To(HaveLen(1))
			c := cands[0]
			g.Expect(c.ManifestDigest).To(Equal(h.String()))
			g.Expect(c.Format).To(Equal(sigwatchv1alpha1.SignatureFormatBundle))
			if tc.wantIs != nil || tc.wantErr != "" {
				if tc.wantIs != nil {
					g.Expect(c.Err).To(MatchError(tc.wantIs))
				}
				g.Expect(c.Err).To(MatchError(ContainSubstring(tc.wantErr)))
				g.Expect(c.Err).To(MatchError(ContainSubstring("bundle of referrer " + h.String())))
				g.Expect(c.CheckBinding(img.DigestStr())).To(MatchError(c.Err), "an unreadable candidate is never bound")
				return
			}
			g.Expect(c.Err).NotTo(HaveOccurred())
			g.Expect(c.Bundle).NotTo(BeNil())
			g.Expect(c.Kind).To(Equal(tc.wantKind))
			err := c.CheckBinding(img.DigestStr())
			if tc.wantBinding == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(ErrBinding))
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantBinding)))
			}
		})
	}
}

func TestFetchLegacyCandidates(t *testing.T) {
	envelope := func(payloadType string, payload []byte) []byte {
		return []byte(fmt.Sprintf(`{"payloadType":%q,"payload":%q,"signatures":[{"sig":"AQ=="}]}`, payloadType, b64(payload)))
	}
	sigAnn := map[string]string{AnnotationSignature: "AQ=="}
	attAnn := map[string]string{AnnotationSignature: "", AnnotationPredicate: slsaPredicate}
	cases := []struct {
		name   string
		suffix string
		layer  func(t *testing.T, img name.Digest) rawLayer
		// wantErr is a substring of the candidate's error; "" for a readable candidate.
		wantErr     string
		wantKind    Kind
		wantBinding string // for a readable candidate, "" when bound to the image
	}{
		{name: "signature layer without signature annotation", suffix: "sig", wantKind: KindSignature,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeSimpleSigning, map[string]string{}, simpleSigningJSON(t, img.Context().Name(), img.DigestStr(), cosignType)}
			}, wantErr: "annotation dev.cosignproject.cosign/signature is missing or not base64"},
		{name: "signature layer with a signature that is not base64", suffix: "sig", wantKind: KindSignature,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeSimpleSigning, map[string]string{AnnotationSignature: "%%"}, simpleSigningJSON(t, img.Context().Name(), img.DigestStr(), cosignType)}
			}, wantErr: "annotation dev.cosignproject.cosign/signature is missing or not base64"},
		{name: "signature layer with a certificate that does not parse", suffix: "sig", wantKind: KindSignature,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeSimpleSigning, map[string]string{AnnotationSignature: "AQ==", AnnotationCertificate: garbagePEM("CERTIFICATE")},
					simpleSigningJSON(t, img.Context().Name(), img.DigestStr(), cosignType)}
			}, wantErr: "annotation dev.sigstore.cosign/certificate is not one PEM certificate"},
		{name: "signature layer about the image", suffix: "sig", wantKind: KindSignature,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeSimpleSigning, sigAnn, simpleSigningJSON(t, img.Context().Name(), img.DigestStr(), cosignType)}
			}},
		{name: "signature layer about another digest", suffix: "sig", wantKind: KindSignature,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeSimpleSigning, sigAnn, simpleSigningJSON(t, img.Context().Name(), digestB, cosignType)}
			}, wantBinding: "the payload signs " + digestB},
		{name: "signature layer whose payload is not JSON", suffix: "sig", wantKind: KindSignature,
			layer: func(*testing.T, name.Digest) rawLayer {
				return rawLayer{MediaTypeSimpleSigning, sigAnn, []byte("not json")}
			}, wantBinding: "simple-signing payload does not parse"},
		{name: "DSSE layer under the .sig tag: a statement, which must be a cosign signature", suffix: "sig", wantKind: KindSignature,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeDSSE, attAnn, envelope(inTotoPayloadType, statementJSON(t, slsaPredicate, img.DigestStr()))}
			}, wantBinding: `predicate type "` + slsaPredicate + `" is not a cosign signature`},
		{name: "attestation layer about the image", suffix: "att", wantKind: KindAttestation,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeDSSE, attAnn, envelope(inTotoPayloadType, statementJSON(t, slsaPredicate, img.DigestStr()))}
			}},
		{name: "attestation layer about another digest", suffix: "att", wantKind: KindAttestation,
			layer: func(t *testing.T, _ name.Digest) rawLayer {
				return rawLayer{MediaTypeDSSE, attAnn, envelope(inTotoPayloadType, statementJSON(t, slsaPredicate, digestB))}
			}, wantBinding: "the statement's subject is " + digestB},
		{name: "attestation layer of another media type is still an envelope", suffix: "att", wantKind: KindAttestation,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{"application/octet-stream", attAnn, envelope(inTotoPayloadType, statementJSON(t, slsaPredicate, img.DigestStr()))}
			}},
		{name: "attestation layer that is not an envelope", suffix: "att", wantKind: KindAttestation,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeDSSE, attAnn, statementJSON(t, slsaPredicate, img.DigestStr())}
			}, wantErr: "DSSE envelope has no signature"},
		{name: "attestation layer that is not JSON", suffix: "att", wantKind: KindAttestation,
			layer: func(*testing.T, name.Digest) rawLayer {
				return rawLayer{MediaTypeDSSE, attAnn, []byte("not json")}
			}, wantErr: "DSSE envelope does not parse"},
		{name: "attestation layer whose payload is not in-toto", suffix: "att", wantKind: KindAttestation,
			layer: func(t *testing.T, img name.Digest) rawLayer {
				return rawLayer{MediaTypeDSSE, attAnn, envelope(MediaTypeSimpleSigning, simpleSigningJSON(t, img.Context().Name(), img.DigestStr(), cosignType))}
			}, wantErr: `DSSE payload type "application/vnd.dev.cosign.simplesigning.v1+json" is not in-toto`},
		{name: "attestation layer whose statement is not JSON", suffix: "att", wantKind: KindAttestation,
			layer: func(*testing.T, name.Digest) rawLayer {
				return rawLayer{MediaTypeDSSE, attAnn, envelope(inTotoPayloadType, []byte("not json"))}
			}, wantErr: "in-toto statement does not parse"},
	}
	e := newEnv(t, true)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			img, where := e.image(t, "app")
			h := pushLegacyTag(t, img.Context(), img, tc.suffix, tc.layer(t, img))
			_, cands := discover(t, e.discoverer(), where, true)
			g.Expect(cands).To(HaveLen(1))
			c := cands[0]
			g.Expect(c.Kind).To(Equal(tc.wantKind))
			g.Expect(c.Format).To(Equal(sigwatchv1alpha1.SignatureFormatLegacy))
			g.Expect(c.ManifestDigest).To(Equal(h.String()))
			if tc.wantErr != "" {
				g.Expect(c.Err).To(MatchError(ContainSubstring(tc.wantErr)))
				g.Expect(c.CheckBinding(img.DigestStr())).To(MatchError(c.Err), "an unreadable candidate is never bound")
				return
			}
			g.Expect(c.Err).NotTo(HaveOccurred())
			g.Expect(c.Bundle).NotTo(BeNil())
			err := c.CheckBinding(img.DigestStr())
			if tc.wantBinding == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ErrBinding))
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantBinding)))
		})
	}

	t.Run("a bad layer does not spoil the others", func(t *testing.T) {
		g := NewWithT(t)
		img, where := e.image(t, "app")
		payload := simpleSigningJSON(t, img.Context().Name(), img.DigestStr(), cosignType)
		pushLegacyTag(t, img.Context(), img, "sig",
			rawLayer{MediaTypeSimpleSigning, map[string]string{}, []byte(`{"critical":{}}`)},
			rawLayer{MediaTypeSimpleSigning, sigAnn, payload})
		_, cands := discover(t, e.discoverer(), where, false)
		g.Expect(cands).To(HaveLen(2))
		g.Expect(cands[0].Err).To(MatchError(ContainSubstring(AnnotationSignature)))
		g.Expect(cands[1].Err).NotTo(HaveOccurred())
		g.Expect(cands[1].Payload).To(Equal(payload))
		g.Expect(cands[1].CheckBinding(img.DigestStr())).To(Succeed())
	})
}

// TestFetchBindsWriterSignatures: signatures written by the cosign-compatible Writer for another digest,
// in both formats, are found and refused by CheckBinding, as is a .sig manifest copied from another image.
func TestFetchBindsWriterSignatures(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newEnv(t, true)
	img, where := e.image(t, "app")
	other, _ := e.image(t, "app")
	wrong := sigstore.SignOptions{Digest: other.DigestStr()}
	_, err := e.writer.SignLegacy(ctx, img, e.key, wrong)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.writer.SignBundle(ctx, img, e.key, wrong)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.writer.AttestLegacy(ctx, img, e.key, slsaPredicate, map[string]string{}, wrong)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = e.writer.AttestBundle(ctx, img, e.key, slsaPredicate, map[string]string{}, wrong)
	g.Expect(err).NotTo(HaveOccurred())

	_, cands := discover(t, e.discoverer(), where, true)
	g.Expect(cands).To(HaveLen(4))
	for _, c := range cands {
		g.Expect(c.Err).NotTo(HaveOccurred())
		err := c.CheckBinding(img.DigestStr())
		g.Expect(err).To(MatchError(ErrBinding), "%s %v", c.Format, c.Kind)
		g.Expect(err).To(MatchError(ContainSubstring(other.DigestStr())), "the error names what it is bound to")
		g.Expect(c.CheckBinding(other.DigestStr())).To(Succeed())
	}

	// A genuine signature of other, stored under img's .sig tag.
	victim, victimWhere := e.image(t, "victim")
	res, err := e.writer.SignLegacy(ctx, other, e.key, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	l := readLayer(t, res.Manifest, res)
	pushLegacyTag(t, victim.Context(), victim, "sig", rawLayer{MediaTypeSimpleSigning, l.annotations, l.data})
	_, cands = discover(t, e.discoverer(), victimWhere, false)
	g.Expect(cands).To(HaveLen(1))
	g.Expect(cands[0].CheckBinding(victim.DigestStr())).To(MatchError(ContainSubstring("the payload signs " + other.DigestStr())))
}

type writeFunc = func(t *testing.T, e *env, img name.Digest)

func TestFetchCaps(t *testing.T) {
	ctx := context.Background()
	legacySig := func(t *testing.T, e *env, img name.Digest) {
		must[*sigstore.Result](t)(e.writer.SignLegacy(ctx, img, e.key, sigstore.SignOptions{}))
	}
	bundleSig := func(t *testing.T, e *env, img name.Digest) {
		must[*sigstore.Result](t)(e.writer.SignBundle(ctx, img, e.key, sigstore.SignOptions{}))
	}
	legacyAtt := func(t *testing.T, e *env, img name.Digest) {
		must[*sigstore.Result](t)(e.writer.AttestLegacy(ctx, img, e.key, slsaPredicate, map[string]string{}, sigstore.SignOptions{}))
	}
	bundleAtt := func(t *testing.T, e *env, img name.Digest) {
		must[*sigstore.Result](t)(e.writer.AttestBundle(ctx, img, e.key, slsaPredicate, map[string]string{}, sigstore.SignOptions{}))
	}
	cases := []struct {
		name            string
		maxSigs, maxAtt int
		writes          []writeFunc
		attestations    bool
		wantErr         string // "" for success
		want            int
	}{
		{name: "two legacy signatures, cap 1: one manifest with too many layers", maxSigs: 1,
			writes: []writeFunc{legacySig, legacySig}, wantErr: "holds 2 layers, more than the 1 examined"},
		{name: "a bundle and a legacy signature, cap 1", maxSigs: 1,
			writes: []writeFunc{bundleSig, legacySig}, wantErr: "2 signatures for"},
		{name: "two bundle signatures, cap 1", maxSigs: 1,
			writes: []writeFunc{bundleSig, bundleSig}, wantErr: "2 signatures for"},
		{name: "a bundle and a legacy signature, cap 2", maxSigs: 2,
			writes: []writeFunc{bundleSig, legacySig}, want: 2},
		{name: "two legacy attestations, cap 1", maxAtt: 1, attestations: true,
			writes: []writeFunc{legacyAtt, legacyAtt}, wantErr: "holds 2 layers, more than the 1 examined"},
		{name: "a bundle and a legacy attestation, cap 1", maxAtt: 1, attestations: true,
			writes: []writeFunc{bundleAtt, legacyAtt}, wantErr: "2 attestations for"},
		{name: "attestations over the cap, not asked for", maxAtt: 1,
			writes: []writeFunc{bundleAtt, legacyAtt, legacyAtt, legacySig}, want: 1},
		{name: "attestations do not count against the signature cap", maxSigs: 1, maxAtt: 2, attestations: true,
			writes: []writeFunc{bundleAtt, legacyAtt, legacySig}, want: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t, true)
			img, where := e.image(t, "app")
			for _, w := range tc.writes {
				w(t, e, img)
			}
			d := e.discoverer(func(d *Discoverer) { d.MaxSignatures, d.MaxAttestations = tc.maxSigs, tc.maxAtt })
			st, err := d.State(ctx, where, tc.attestations)
			g.Expect(err).NotTo(HaveOccurred())
			cands, err := d.Fetch(ctx, st)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cands).To(HaveLen(tc.want))
				return
			}
			g.Expect(err).To(MatchError(ErrTooMany))
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			g.Expect(cands).To(BeNil())
		})
	}

	t.Run("default caps: 64 layers are examined, 65 are too many", func(t *testing.T) {
		g := NewWithT(t)
		e := newEnv(t, true)
		img, where := e.image(t, "app")
		layers := make([]rawLayer, DefaultMaxSignatures+1)
		for i := range layers {
			layers[i] = rawLayer{MediaTypeSimpleSigning, map[string]string{AnnotationSignature: "AQ=="},
				[]byte(fmt.Sprintf(`{"critical":{"image":{"docker-manifest-digest":%q}},"optional":{"n":"%d"}}`, img.DigestStr(), i))}
		}
		pushLegacyTag(t, img.Context(), img, "sig", layers[:DefaultMaxSignatures]...)
		_, cands := discover(t, e.discoverer(), where, false)
		g.Expect(cands).To(HaveLen(DefaultMaxSignatures))

		pushLegacyTag(t, img.Context(), img, "sig", layers...)
		d := e.discoverer()
		st, err := d.State(ctx, where, false)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = d.Fetch(ctx, st)
		g.Expect(err).To(MatchError(ErrTooMany))
		g.Expect(err).To(MatchError(ContainSubstring("holds 65 layers, more than the 64 examined")))
	})

	t.Run("more referrers than the registry client lists", func(t *testing.T) {
		g := NewWithT(t)
		e := newEnv(t, true)
		e.opts.MaxReferrers = 1
		img, where := e.image(t, "app")
		bundleSig(t, e, img)
		bundleSig(t, e, img)
		_, err := e.discoverer().State(ctx, where, false)
		g.Expect(err).To(MatchError(ErrTooMany))
		g.Expect(err).To(MatchError(ContainSubstring("the referrers of " + where.Image.String())))
	})
}

func TestFetchLayerSizeLimit(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := newEnv(t, true)
	img, where := e.image(t, "app")
	legacy := must[*sigstore.Result](t)(e.writer.SignLegacy(ctx, img, e.key, sigstore.SignOptions{}))
	bundled := must[*sigstore.Result](t)(e.writer.SignBundle(ctx, img, e.key, sigstore.SignOptions{}))
	small, large := int64(len(legacy.Payload)), int64(len(bundled.Bundle))
	g.Expect(small).To(BeNumerically("<", large), "the test needs the legacy layer to be the smaller")

	fetch := func(limit int64) map[sigwatchv1alpha1.SignatureFormat]Candidate {
		t.Helper()
		_, cands := discover(t, e.discoverer(func(d *Discoverer) { d.MaxSignatureSize = limit }), where, false)
		g.Expect(cands).To(HaveLen(2))
		out := map[sigwatchv1alpha1.SignatureFormat]Candidate{}
		for _, c := range cands {
			out[c.Format] = c
		}
		return out
	}

	got := fetch(large)
	g.Expect(got[sigwatchv1alpha1.SignatureFormatBundle].Err).NotTo(HaveOccurred(), "a bundle of exactly the limit")
	g.Expect(got[sigwatchv1alpha1.SignatureFormatLegacy].Err).NotTo(HaveOccurred())

	got = fetch(large - 1)
	b := got[sigwatchv1alpha1.SignatureFormatBundle]
	// Refused from the size its manifest gives, before anything is read: settled, not unreadable.
	g.Expect(b.Err).To(MatchError(ContainSubstring(fmt.Sprintf("the bundle of referrer %s is %d bytes, more than the %d examined", bundled.Manifest.DigestStr(), large, large-1))))
	g.Expect(b.Unreadable).To(BeFalse())
	g.Expect(b.Bundle).To(BeNil())
	g.Expect(b.Kind).To(Equal(KindSignature))
	g.Expect(got[sigwatchv1alpha1.SignatureFormatLegacy].Err).NotTo(HaveOccurred(), "the limit is per layer")

	got = fetch(small)
	g.Expect(got[sigwatchv1alpha1.SignatureFormatLegacy].Err).NotTo(HaveOccurred(), "a layer of exactly the limit")
	g.Expect(got[sigwatchv1alpha1.SignatureFormatLegacy].Payload).To(Equal(legacy.Payload))

	got = fetch(small - 1)
	l := got[sigwatchv1alpha1.SignatureFormatLegacy]
	g.Expect(l.Err).To(MatchError(ContainSubstring(fmt.Sprintf("of %s is %d bytes, more than the %d examined", legacy.Manifest.DigestStr(), small, small-1))))
	g.Expect(l.Unreadable).To(BeFalse())
	g.Expect(l.Payload).To(BeNil())
	g.Expect(l.Kind).To(Equal(KindSignature))
	g.Expect(l.CheckBinding(img.DigestStr())).To(MatchError(ContainSubstring("more than the")))
}

func TestFetchRegistryFailures(t *testing.T) {
	type written struct {
		img            name.Digest
		referrer, sig  name.Digest
		att, sigLayer1 string
	}
	cases := []struct {
		name    string
		inject  func(e *env, w written)
		wantErr string // of the whole Fetch; then it must be unavailable
		// Otherwise the candidate of wantFormat/wantKind fails with wantIs, the others are readable.
		wantFormat sigwatchv1alpha1.SignatureFormat
		wantKind   Kind
		wantIs     error
	}{
		{name: "referrer gone between State and Fetch", inject: func(e *env, w written) {
			answer(e, http.MethodGet, http.StatusNotFound, "/manifests/"+w.referrer.DigestStr())
		}, wantFormat: sigwatchv1alpha1.SignatureFormatBundle, wantKind: KindSignature, wantIs: registry.ErrNotFound},
		{name: ".sig manifest gone between State and Fetch", inject: func(e *env, w written) {
			answer(e, http.MethodGet, http.StatusNotFound, "/manifests/"+w.sig.DigestStr())
		}, wantFormat: sigwatchv1alpha1.SignatureFormatLegacy, wantKind: KindSignature, wantIs: registry.ErrNotFound},
		{name: ".att manifest gone between State and Fetch", inject: func(e *env, w written) {
			answer(e, http.MethodGet, http.StatusNotFound, "/manifests/"+w.att)
		}, wantFormat: sigwatchv1alpha1.SignatureFormatLegacy, wantKind: KindAttestation, wantIs: registry.ErrNotFound},
		{name: "a signature layer that does not match its digest", inject: func(e *env, w written) {
			e.reg.Intercept(func(rw http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+w.sigLayer1) {
					_, _ = rw.Write([]byte(`{"critical":{}}`))
					return true
				}
				return false
			})
		}, wantFormat: sigwatchv1alpha1.SignatureFormatLegacy, wantKind: KindSignature, wantIs: registry.ErrDigestMismatch},
		{name: "registry denies the blobs", inject: func(e *env, _ written) {
			answer(e, http.MethodGet, http.StatusForbidden, "/blobs/")
		}, wantErr: "access denied"},
		{name: "registry denies a signature layer", inject: func(e *env, w written) {
			answer(e, http.MethodGet, http.StatusForbidden, "/blobs/"+w.sigLayer1)
		}, wantErr: "access denied"},
		{name: "registry denies the referrer manifest", inject: func(e *env, w written) {
			answer(e, http.MethodGet, http.StatusForbidden, "/manifests/"+w.referrer.DigestStr())
		}, wantErr: "access denied"},
		{name: "registry denies the .att manifest", inject: func(e *env, w written) {
			answer(e, http.MethodGet, http.StatusForbidden, "/manifests/"+w.att)
		}, wantErr: "access denied"},
		{name: "registry down after State", inject: func(e *env, _ written) { e.reg.Stop() }, wantErr: "connect"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			e := newEnv(t, true)
			img, where := e.image(t, "app")
			ref := must[*sigstore.Result](t)(e.writer.SignBundle(ctx, img, e.key, sigstore.SignOptions{}))
			sig := must[*sigstore.Result](t)(e.writer.SignLegacy(ctx, img, e.key, sigstore.SignOptions{}))
			att := must[*sigstore.Result](t)(e.writer.AttestLegacy(ctx, img, e.key, slsaPredicate, map[string]string{}, sigstore.SignOptions{}))
			d := e.discoverer()
			st, err := d.State(ctx, where, true)
			g.Expect(err).NotTo(HaveOccurred())

			layer := sha256Hash(sig.Payload)
			tc.inject(e, written{img: img, referrer: ref.Manifest, sig: sig.Manifest, att: att.Manifest.DigestStr(), sigLayer1: layer.String()})
			cands, err := d.Fetch(ctx, st)
			if tc.wantErr != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(registry.IsUnavailable(err)).To(BeTrue(), "%v", err)
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				g.Expect(cands).To(BeNil())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cands).To(HaveLen(3))
			failed := 0
			for _, c := range cands {
				if c.Format == tc.wantFormat && c.Kind == tc.wantKind {
					failed++
					g.Expect(c.Err).To(MatchError(tc.wantIs))
					g.Expect(c.Unreadable).To(BeTrue(), "a failed read leaves the candidate undecided")
					g.Expect(c.Bundle).To(BeNil())
					g.Expect(c.CheckBinding(img.DigestStr())).To(MatchError(tc.wantIs))
					continue
				}
				g.Expect(c.Err).NotTo(HaveOccurred())
				g.Expect(c.Unreadable).To(BeFalse())
				g.Expect(c.CheckBinding(img.DigestStr())).To(Succeed())
			}
			g.Expect(failed).To(Equal(1))
		})
	}
}

func TestFetchReferrerManifestThatDoesNotParse(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, true)
	img, where := e.image(t, "app")
	// Serve, under the referrer's digest, a body of that digest that is not a manifest.
	body := []byte(`{"layers":"not a list"}`)
	fake := sha256Hash(body)
	st := &State{Where: where, Referrers: []Located{{Repo: img.Context(), Descriptor: v1.Descriptor{Digest: fake}}}}
	e.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/manifests/"+fake.String()) {
			w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
			_, _ = w.Write(body)
			return true
		}
		return false
	})
	cands, err := e.discoverer().Fetch(context.Background(), st)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cands).To(HaveLen(1))
	g.Expect(cands[0].Err).To(MatchError(ContainSubstring("does not parse")))
	g.Expect(cands[0].ManifestDigest).To(Equal(fake.String()))
}

// TestCandidateWithErrHasNoBundle: Candidate.Bundle is documented as "nil when Err is set".
func TestCandidateWithErrHasNoBundle(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, true)
	img, where := e.image(t, "app")
	e.pushBundle(t, img, bundleJSON(t, []byte("not json")), CosignSignPredicate)
	pushLegacyTag(t, img.Context(), img, "att", rawLayer{MediaTypeDSSE, map[string]string{},
		[]byte(`{"payloadType":"text/plain","payload":"e30=","signatures":[{"sig":"AQ=="}]}`)})
	_, cands := discover(t, e.discoverer(), where, true)
	g.Expect(cands).To(HaveLen(2))
	for _, c := range cands {
		g.Expect(c.Err).To(HaveOccurred())
		g.Expect(c.Bundle).To(BeNil(), "%s: %v", c.Format, c.Err)
	}
}
