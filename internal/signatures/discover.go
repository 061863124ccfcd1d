package signatures

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/registry"
)

// Limits of what is examined for one digest.
const (
	DefaultMaxSignatures   = 64
	DefaultMaxAttestations = 64
	// DefaultMaxLayerSize caps one signature or attestation layer (or bundle).
	DefaultMaxLayerSize = 16 << 20
)

// annotationBundlePredicate is set by cosign on bundle referrers: it tells signatures from attestations
// without fetching them.
const annotationBundlePredicate = "dev.sigstore.bundle.predicateType"

// ErrImageNotFound reports an image digest the registry does not show.
var ErrImageNotFound = errors.New("image not found in the registry")

// ErrTooMany reports more signatures or attestations than sigwatch examines for one digest.
var ErrTooMany = errors.New("too many signatures")

// Registry is the registry access discovery needs (internal/registry.Client implements it).
type Registry interface {
	Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error)
	Manifest(ctx context.Context, repo name.Repository, digest v1.Hash) ([]byte, types.MediaType, error)
	Blob(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, error)
	Referrers(ctx context.Context, repo name.Repository, digest v1.Hash, artifactType string) ([]v1.Descriptor, error)
}

// Discoverer finds signatures and attestations.
type Discoverer struct {
	Registry        Registry
	MaxSignatures   int
	MaxAttestations int
	MaxLayerSize    int64
}

// Where says where an image's signatures live.
type Where struct {
	Image imageref.Image
	// SignatureRepository holds the legacy tags (and bundles) when not beside the image.
	SignatureRepository string
}

// State is what exists for a digest, learned without reading any signature: the bundle referrers and
// the digests of the `.sig` and `.att` tags (HEAD requests). When State.Key is unchanged, so are the
// signatures.
type State struct {
	Where     Where
	Referrers []Located
	SigTag    *Located // nil: no .sig tag
	AttTag    *Located // nil: no .att tag, or not asked for
	// Attestations records whether attestations were asked for.
	Attestations bool
}

// Located is a descriptor and the repository it was found in.
type Located struct {
	Repo       name.Repository
	Descriptor v1.Descriptor
}

// Key identifies the set of signature manifests.
func (s *State) Key() string {
	var parts []string
	for _, r := range s.Referrers {
		parts = append(parts, "r:"+r.Descriptor.Digest.String())
	}
	sort.Strings(parts)
	if s.SigTag != nil {
		parts = append(parts, "s:"+s.SigTag.Descriptor.Digest.String())
	}
	if s.AttTag != nil {
		parts = append(parts, "a:"+s.AttTag.Descriptor.Digest.String())
	}
	if s.Attestations && len(parts) > 0 {
		// Fetch returns attestation bundles only when asked: the same manifests are other candidates.
		parts = append(parts, "attestations")
	}
	return strings.Join(parts, ",")
}

func (d *Discoverer) limits() (int, int, int64) {
	ms, ma, ml := d.MaxSignatures, d.MaxAttestations, d.MaxLayerSize
	if ms <= 0 {
		ms = DefaultMaxSignatures
	}
	if ma <= 0 {
		ma = DefaultMaxAttestations
	}
	if ml <= 0 {
		ml = DefaultMaxLayerSize
	}
	return ms, ma, ml
}

func (w Where) repositories() (image, sigs name.Repository, err error) {
	image, err = name.NewRepository(w.Image.Repository)
	if err != nil {
		return image, sigs, fmt.Errorf("image %s: %w", w.Image, err)
	}
	sigs = image
	if w.SignatureRepository != "" {
		if sigs, err = name.NewRepository(w.SignatureRepository); err != nil {
			return image, sigs, fmt.Errorf("signatureRepository %s: %w", w.SignatureRepository, err)
		}
	}
	return image, sigs, nil
}

// tagFor is cosign's tag for a digest's signatures (suffix "sig") or attestations ("att").
func tagFor(repo name.Repository, digest, suffix string) name.Tag {
	return repo.Tag(strings.Replace(digest, ":", "-", 1) + "." + suffix)
}

// State learns what exists for the digest: the bundle referrers (in the image's repository and, if set,
// the signature repository) and the `.sig` tag; the `.att` tag only when attestations are wanted.
// Registry errors are returned as they are (callers classify them with the registry package).
func (d *Discoverer) State(ctx context.Context, w Where, attestations bool) (*State, error) {
	imageRepo, sigRepo, err := w.repositories()
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(w.Image.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", w.Image, err)
	}
	// The image itself first: a registry that hides what a client may not read answers 404, and an
	// image that cannot be seen must not look unsigned.
	if _, err := d.Registry.Head(ctx, imageRepo.Digest(w.Image.Digest)); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s (or not readable with the credentials given)", ErrImageNotFound, w.Image)
		}
		return nil, fmt.Errorf("looking up %s: %w", w.Image, err)
	}
	st := &State{Where: w, Attestations: attestations}
	repos := []name.Repository{imageRepo}
	if sigRepo.Name() != imageRepo.Name() {
		repos = append(repos, sigRepo)
	}
	for _, repo := range repos {
		descs, err := d.Registry.Referrers(ctx, repo, h, "")
		if errors.Is(err, registry.ErrTooMany) {
			return nil, fmt.Errorf("%w: the referrers of %s in %s exceed the cap", ErrTooMany, w.Image, repo)
		}
		if err != nil {
			return nil, fmt.Errorf("listing the signature referrers of %s: %w", w.Image, err)
		}
		for _, desc := range descs {
			if mayBeBundle(desc) {
				st.Referrers = append(st.Referrers, Located{Repo: repo, Descriptor: desc})
			}
		}
	}
	if st.SigTag, err = d.headTag(ctx, tagFor(sigRepo, w.Image.Digest, "sig")); err != nil {
		return nil, err
	}
	if attestations {
		if st.AttTag, err = d.headTag(ctx, tagFor(sigRepo, w.Image.Digest, "att")); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// mayBeBundle reports whether a referrer may hold a Sigstore bundle. Registries report the manifest's
// artifactType (cosign sets the bundle type and a predicate-type annotation); some (go-containerregistry's
// own registry among them) report the config media type instead, the OCI empty type for cosign's
// bundles. Those are read and checked for a bundle layer; other artifacts (SBOMs, ...) are not fetched.
func mayBeBundle(d v1.Descriptor) bool {
	return d.ArtifactType == MediaTypeBundleV03 ||
		d.Annotations[annotationBundlePredicate] != "" ||
		d.ArtifactType == string(types.OCIEmptyJSON)
}

func (d *Discoverer) headTag(ctx context.Context, tag name.Tag) (*Located, error) {
	desc, err := d.Registry.Head(ctx, tag)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", tag, err)
	}
	return &Located{Repo: tag.Repository, Descriptor: *desc}, nil
}

// Fetch reads the signatures (and, when State asked for them, the attestations) that State found. A
// candidate that cannot be read is returned with Err set; an unavailable registry fails the whole fetch.
func (d *Discoverer) Fetch(ctx context.Context, st *State) ([]Candidate, error) {
	maxSigs, maxAtts, _ := d.limits()
	var out []Candidate
	for _, r := range st.Referrers {
		if pt := r.Descriptor.Annotations[annotationBundlePredicate]; pt != "" && pt != CosignSignPredicate && !st.Attestations {
			continue // an attestation bundle, and nobody asked for attestations
		}
		c, err := d.bundleCandidate(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if st.SigTag != nil {
		cs, err := d.tagCandidates(ctx, *st.SigTag, KindSignature)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	if st.AttTag != nil {
		cs, err := d.tagCandidates(ctx, *st.AttTag, KindAttestation)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	var sigs, atts int
	for _, c := range out {
		if c.Kind == KindSignature {
			sigs++
		} else {
			atts++
		}
	}
	if sigs > maxSigs {
		return nil, fmt.Errorf("%w: %d signatures for %s, more than the %d examined", ErrTooMany, sigs, st.Where.Image, maxSigs)
	}
	if atts > maxAtts {
		return nil, fmt.Errorf("%w: %d attestations for %s, more than the %d examined", ErrTooMany, atts, st.Where.Image, maxAtts)
	}
	return out, nil
}

// readFailure turns an error reading one signature into a candidate error, or returns it when the
// registry is unavailable (the whole verification is then undecided).
func readFailure(err error) (error, bool) {
	if registry.IsUnavailable(err) {
		return err, false
	}
	return err, true
}

func (d *Discoverer) bundleCandidate(ctx context.Context, r Located) (Candidate, error) {
	_, _, maxLayer := d.limits()
	c := Candidate{Kind: KindSignature, Format: sigwatchv1alpha1.SignatureFormatBundle, ManifestDigest: r.Descriptor.Digest.String()}
	m, err := d.manifest(ctx, r.Repo, r.Descriptor.Digest)
	if err != nil {
		if e, perCandidate := readFailure(err); perCandidate {
			c.Err = e
			return c, nil
		}
		return c, err
	}
	var layer *v1.Descriptor
	for i := range m.Layers {
		if strings.HasPrefix(string(m.Layers[i].MediaType), "application/vnd.dev.sigstore.bundle") {
			layer = &m.Layers[i]
			break
		}
	}
	if layer == nil {
		c.Err = fmt.Errorf("referrer %s holds no Sigstore bundle layer", c.ManifestDigest)
		return c, nil
	}
	data, err := d.Registry.Blob(ctx, r.Repo, layer.Digest, maxLayer)
	if err != nil {
		if e, perCandidate := readFailure(err); perCandidate {
			c.Err = fmt.Errorf("bundle of referrer %s: %w", c.ManifestDigest, e)
			return c, nil
		}
		return c, err
	}
	b := &bundle.Bundle{}
	if err := b.UnmarshalJSON(data); err != nil {
		c.Err = fmt.Errorf("bundle of referrer %s does not parse: %w", c.ManifestDigest, err)
		return c, nil
	}
	if c.Statement, err = statementOf(b); err != nil {
		c.Err = fmt.Errorf("bundle of referrer %s: %w", c.ManifestDigest, err)
		return c, nil
	}
	c.Bundle = b
	if c.Statement != nil && c.Statement.PredicateType != CosignSignPredicate {
		c.Kind = KindAttestation
	}
	return c, nil
}

func (d *Discoverer) manifest(ctx context.Context, repo name.Repository, digest v1.Hash) (*v1.Manifest, error) {
	body, _, err := d.Registry.Manifest(ctx, repo, digest)
	if err != nil {
		return nil, fmt.Errorf("manifest %s@%s: %w", repo, digest, err)
	}
	m, err := v1.ParseManifest(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("manifest %s@%s does not parse: %w", repo, digest, err)
	}
	return m, nil
}

// tagCandidates reads the layers of a legacy `.sig` or `.att` manifest: one signature per layer.
func (d *Discoverer) tagCandidates(ctx context.Context, tag Located, kind Kind) ([]Candidate, error) {
	maxSigs, maxAtts, maxLayer := d.limits()
	limit := maxSigs
	if kind == KindAttestation {
		limit = maxAtts
	}
	digest := tag.Descriptor.Digest.String()
	m, err := d.manifest(ctx, tag.Repo, tag.Descriptor.Digest)
	if err != nil {
		if e, perCandidate := readFailure(err); perCandidate {
			return []Candidate{{Kind: kind, Format: sigwatchv1alpha1.SignatureFormatLegacy, ManifestDigest: digest, Err: e}}, nil
		}
		return nil, err
	}
	if len(m.Layers) > limit {
		return nil, fmt.Errorf("%w: the manifest %s holds %d layers, more than the %d examined", ErrTooMany, digest, len(m.Layers), limit)
	}
	out := make([]Candidate, 0, len(m.Layers))
	for _, layer := range m.Layers {
		c := Candidate{Kind: kind, Format: sigwatchv1alpha1.SignatureFormatLegacy, ManifestDigest: digest}
		data, err := d.Registry.Blob(ctx, tag.Repo, layer.Digest, maxLayer)
		if err != nil {
			if e, perCandidate := readFailure(err); perCandidate {
				c.Err = fmt.Errorf("layer %s of %s: %w", layer.Digest, digest, e)
				out = append(out, c)
				continue
			}
			return nil, err
		}
		envelope := kind == KindAttestation || layer.MediaType == MediaTypeDSSE
		c.Bundle, c.Err = LegacyToBundle(data, layer.Annotations, envelope)
		switch {
		case c.Err != nil:
		case envelope:
			c.Statement, c.Err = statementOf(c.Bundle)
		default:
			c.Payload = data
		}
		if c.Err != nil {
			c.Bundle = nil // Bundle is nil when Err is set
		}
		out = append(out, c)
	}
	return out, nil
}
