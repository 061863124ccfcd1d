package signatures

import (
	"bytes"
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
	// DefaultMaxLayerSize caps one attestation layer or bundle (SBOM attestations run to MiBs).
	DefaultMaxLayerSize = 16 << 20
	// DefaultMaxSignatureSize caps one signature layer or bundle: cosign's are a few KiB.
	DefaultMaxSignatureSize = 1 << 20
	// DefaultMaxBytes caps the layers and bundles one fetch reads, all together.
	DefaultMaxBytes = 32 << 20
	// maxReferrerManifest caps the manifest of a bundle referrer (cosign's is under 1 KiB).
	maxReferrerManifest = 64 << 10
	// maxTagManifest caps a `.sig` or `.att` manifest, whose layer annotations carry the certificates
	// and log entries (a few KiB per signature).
	maxTagManifest = 1 << 20
)

// annotationBundlePredicate is set by cosign on bundle referrers: it tells signatures from attestations
// without fetching them (the registry client keeps it, and nothing else, of a listing's annotations).
const annotationBundlePredicate = registry.AnnotationBundlePredicate

// ErrImageNotFound reports an image digest the registry does not show.
var ErrImageNotFound = errors.New("image not found in the registry")

// ErrTooMany reports more signatures or attestations than sigwatch examines for one digest.
var ErrTooMany = errors.New("too many signatures")

// ErrTooLarge reports signatures and attestations of a digest that, together, are larger than sigwatch
// reads for one verification, or than the budget of all verifications.
var ErrTooLarge = errors.New("signatures too large")

// Registry is the registry access discovery needs (internal/registry.Client implements it).
type Registry interface {
	Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error)
	Manifest(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, types.MediaType, error)
	Blob(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, error)
	Referrers(ctx context.Context, repo name.Repository, digest v1.Hash, artifactType string) ([]v1.Descriptor, error)
}

// Discoverer finds signatures and attestations. Zero limits are the defaults above.
type Discoverer struct {
	Registry        Registry
	MaxSignatures   int
	MaxAttestations int
	// MaxLayerSize caps one attestation layer or bundle; MaxSignatureSize one signature's.
	MaxLayerSize     int64
	MaxSignatureSize int64
	// MaxBytes caps the layers and bundles one fetch reads together.
	MaxBytes int64
	// Budget, if set, is shared by every Discoverer of the process: what a fetch reads is reserved in it
	// before the first byte is read.
	Budget *Budget
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

type limits struct {
	signatures, attestations             int
	layer, signature, total, tagManifest int64
}

func (d *Discoverer) limits() limits {
	l := limits{d.MaxSignatures, d.MaxAttestations, d.MaxLayerSize, d.MaxSignatureSize, d.MaxBytes, maxTagManifest}
	if l.signatures <= 0 {
		l.signatures = DefaultMaxSignatures
	}
	if l.attestations <= 0 {
		l.attestations = DefaultMaxAttestations
	}
	if l.layer <= 0 {
		l.layer = DefaultMaxLayerSize
	}
	if l.signature <= 0 {
		l.signature = DefaultMaxSignatureSize
	}
	if l.total <= 0 {
		l.total = DefaultMaxBytes
	}
	return l
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
		// Other artifacts (SBOMs, scans) do not count; referrers that may be signatures or attestations
		// do, before any is read.
		if lim := d.limits(); len(st.Referrers) > lim.signatures+lim.attestations {
			return nil, fmt.Errorf("%w: %d referrers of %s may be signatures or attestations, more than the %d examined", ErrTooMany, len(st.Referrers), w.Image, lim.signatures+lim.attestations)
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

// Fetch reads the signatures (and, when State asked for them, the attestations) that State found, and
// gives back its memory budget reservation before returning; see FetchHeld.
func (d *Discoverer) Fetch(ctx context.Context, st *State) ([]Candidate, error) {
	cands, release, err := d.FetchHeld(ctx, st)
	release()
	return cands, err
}

// FetchHeld reads the signatures (and, when State asked for them, the attestations) that State found.
// It reads every manifest first, counts the candidates and adds up the sizes their manifests give, and
// only then, within the limits and after reserving that many bytes in the Budget, reads the layers and
// bundles, each capped at its descriptor's size. The caller calls release (never nil) once it is done
// with the candidates.
//
// A candidate that cannot be used is returned with Err set: Unreadable as well when a read failed (see
// Candidate). An unavailable registry fails the whole fetch.
func (d *Discoverer) FetchHeld(ctx context.Context, st *State) (cands []Candidate, release func(), err error) {
	lim := d.limits()
	nothing := func() {}
	var plan []planned
	for _, r := range st.Referrers {
		if pt := r.Descriptor.Annotations[annotationBundlePredicate]; pt != "" && pt != CosignSignPredicate && !st.Attestations {
			continue // an attestation bundle, and nobody asked for attestations
		}
		p, err := d.planBundle(ctx, r, st.Attestations, lim)
		if err != nil {
			return nil, nothing, err
		}
		plan = append(plan, p)
	}
	for _, tag := range []struct {
		at   *Located
		kind Kind
	}{{st.SigTag, KindSignature}, {st.AttTag, KindAttestation}} {
		if tag.at == nil {
			continue
		}
		ps, err := d.planTag(ctx, *tag.at, tag.kind, lim)
		if err != nil {
			return nil, nothing, err
		}
		plan = append(plan, ps...)
	}

	var sigs, atts int
	var total int64
	for _, p := range plan {
		if p.c.Kind == KindSignature {
			sigs++
		} else {
			atts++
		}
		if p.read {
			total += p.layer.Size
		}
	}
	if sigs > lim.signatures {
		return nil, nothing, fmt.Errorf("%w: %d signatures for %s, more than the %d examined", ErrTooMany, sigs, st.Where.Image, lim.signatures)
	}
	if atts > lim.attestations {
		return nil, nothing, fmt.Errorf("%w: %d attestations for %s, more than the %d examined", ErrTooMany, atts, st.Where.Image, lim.attestations)
	}
	if total > lim.total {
		return nil, nothing, fmt.Errorf("%w: the signatures and attestations of %s come to %d bytes, more than the %d read for one image", ErrTooLarge, st.Where.Image, total, lim.total)
	}
	release, err = d.Budget.reserve(ctx, total)
	if err != nil {
		return nil, nothing, fmt.Errorf("%s: %w", st.Where.Image, err)
	}
	out := make([]Candidate, 0, len(plan))
	for _, p := range plan {
		if p.read {
			if err := d.read(ctx, &p); err != nil {
				release()
				return nil, nothing, err
			}
		}
		out = append(out, p.c)
	}
	return out, release, nil
}

// planned is one candidate: settled (c.Err set from its manifest), or a layer to read.
type planned struct {
	c     Candidate
	read  bool
	repo  name.Repository
	layer v1.Descriptor
	// what the layer is: a Sigstore bundle, or a legacy layer (a DSSE envelope or a simple-signing payload).
	bundle, envelope bool
}

// readFailure turns an error reading one signature into a candidate error (undecided, not invalid), or
// returns it when the registry is unavailable (the whole verification is then undecided).
func readFailure(c *Candidate, err error) error {
	if registry.IsUnavailable(err) {
		return err
	}
	c.Err, c.Unreadable = err, true
	return nil
}

// sized checks a layer descriptor's size before anything is read: it must be given, and within limit.
func sized(c *Candidate, what string, size, limit int64) bool {
	switch {
	case size <= 0:
		c.Err = fmt.Errorf("%s has no size in its manifest", what)
	case size > limit:
		c.Err = fmt.Errorf("%s is %d bytes, more than the %d examined", what, size, limit)
	default:
		return true
	}
	return false
}

func (d *Discoverer) planBundle(ctx context.Context, r Located, attestations bool, lim limits) (planned, error) {
	p := planned{c: Candidate{Kind: KindSignature, Format: sigwatchv1alpha1.SignatureFormatBundle, ManifestDigest: r.Descriptor.Digest.String()}, repo: r.Repo, bundle: true}
	if pt := r.Descriptor.Annotations[annotationBundlePredicate]; pt != "" && pt != CosignSignPredicate {
		p.c.Kind = KindAttestation // counted as one; what it is comes from the signed statement
	}
	if r.Descriptor.Size > maxReferrerManifest {
		p.c.Err = fmt.Errorf("referrer %s is a manifest of %d bytes, more than the %d examined", p.c.ManifestDigest, r.Descriptor.Size, maxReferrerManifest)
		return p, nil
	}
	m, err := d.manifest(ctx, r.Repo, r.Descriptor.Digest, min(r.Descriptor.Size, maxReferrerManifest))
	if err != nil {
		return p, readFailure(&p.c, err)
	}
	var layer *v1.Descriptor
	for i := range m.Layers {
		if strings.HasPrefix(string(m.Layers[i].MediaType), "application/vnd.dev.sigstore.bundle") {
			layer = &m.Layers[i]
			break
		}
	}
	if layer == nil {
		p.c.Err = fmt.Errorf("referrer %s holds no Sigstore bundle layer", p.c.ManifestDigest)
		return p, nil
	}
	limit := lim.signature
	if attestations && (p.c.Kind == KindAttestation || r.Descriptor.Annotations[annotationBundlePredicate] == "") {
		limit = lim.layer
	}
	p.layer, p.read = *layer, sized(&p.c, "the bundle of referrer "+p.c.ManifestDigest, layer.Size, limit)
	return p, nil
}

func (d *Discoverer) manifest(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) (*v1.Manifest, error) {
	body, _, err := d.Registry.Manifest(ctx, repo, digest, limit)
	if err != nil {
		return nil, fmt.Errorf("manifest %s@%s: %w", repo, digest, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("manifest %s@%s does not parse: %w", repo, digest, err)
	}
	return m, nil
}

// planTag reads a legacy `.sig` or `.att` manifest: one candidate per layer.
func (d *Discoverer) planTag(ctx context.Context, tag Located, kind Kind, lim limits) ([]planned, error) {
	limit, layerLimit := lim.signatures, lim.signature
	if kind == KindAttestation {
		limit, layerLimit = lim.attestations, lim.layer
	}
	digest := tag.Descriptor.Digest.String()
	one := planned{c: Candidate{Kind: kind, Format: sigwatchv1alpha1.SignatureFormatLegacy, ManifestDigest: digest}, repo: tag.Repo}
	manifestLimit := lim.tagManifest
	if s := tag.Descriptor.Size; s > 0 {
		manifestLimit = min(s, manifestLimit)
	}
	if tag.Descriptor.Size > lim.tagManifest {
		one.c.Err = fmt.Errorf("the manifest %s is %d bytes, more than the %d examined", digest, tag.Descriptor.Size, lim.tagManifest)
		return []planned{one}, nil
	}
	m, err := d.manifest(ctx, tag.Repo, tag.Descriptor.Digest, manifestLimit)
	if err != nil {
		return []planned{one}, readFailure(&one.c, err)
	}
	if len(m.Layers) > limit {
		return nil, fmt.Errorf("%w: the manifest %s holds %d layers, more than the %d examined", ErrTooMany, digest, len(m.Layers), limit)
	}
	out := make([]planned, 0, len(m.Layers))
	for _, layer := range m.Layers {
		p := one
		p.layer = layer
		p.envelope = kind == KindAttestation || layer.MediaType == MediaTypeDSSE
		p.read = sized(&p.c, fmt.Sprintf("layer %s of %s", layer.Digest, digest), layer.Size, layerLimit)
		out = append(out, p)
	}
	return out, nil
}

// read reads a planned layer, capped at its descriptor's size, and turns it into a candidate.
func (d *Discoverer) read(ctx context.Context, p *planned) error {
	c := &p.c
	data, err := d.Registry.Blob(ctx, p.repo, p.layer.Digest, p.layer.Size)
	if err != nil {
		what := fmt.Sprintf("layer %s of %s", p.layer.Digest, c.ManifestDigest)
		if p.bundle {
			what = "bundle of referrer " + c.ManifestDigest
		}
		return readFailure(c, fmt.Errorf("%s: %w", what, err))
	}
	if p.bundle {
		b := &bundle.Bundle{}
		if err := b.UnmarshalJSON(data); err != nil {
			c.Err = fmt.Errorf("bundle of referrer %s does not parse: %w", c.ManifestDigest, err)
			return nil
		}
		if c.Statement, err = statementOf(b); err != nil {
			c.Err = fmt.Errorf("bundle of referrer %s: %w", c.ManifestDigest, err)
			return nil
		}
		c.Bundle, c.Kind = b, KindSignature
		if c.Statement != nil && c.Statement.PredicateType != CosignSignPredicate {
			c.Kind = KindAttestation
		}
		return nil
	}
	c.Bundle, c.Err = LegacyToBundle(data, p.layer.Annotations, p.envelope)
	switch {
	case c.Err != nil:
	case p.envelope:
		c.Statement, c.Err = statementOf(c.Bundle)
	default:
		c.Payload = data
	}
	if c.Err != nil {
		c.Bundle = nil // Bundle is nil when Err is set
	}
	return nil
}
