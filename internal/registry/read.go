package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxReferrerPages bounds how many pages of a paginated referrers listing are read.
const maxReferrerPages = 16

// acceptManifests is the Accept header for manifest requests: the OCI and Docker v2 manifest and
// index types (cosign writes OCI manifests; images may be any of them).
const acceptManifests = string(types.OCIManifestSchema1) + "," + string(types.OCIImageIndex) + "," +
	string(types.DockerManifestSchema2) + "," + string(types.DockerManifestList)

// Head returns the descriptor of the manifest that ref (a tag or a digest) names, from a HEAD request,
// which registries such as Docker Hub do not count against pull quotas. Size is 0 when the registry
// sent no Content-Length. A missing manifest is ErrNotFound; for a digest reference, a registry that
// reports another digest gives ErrDigestMismatch.
func (c *Reader) Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	desc, err := c.head(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("HEAD manifest %s: %w", ref, err)
	}
	return desc, nil
}

func (c *Reader) head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	resp, err := c.do(ctx, ref.Context(), http.MethodHead, apiURL(ref.Context(), "manifests", ref.Identifier()), acceptManifests)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	var digest v1.Hash
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		if digest, err = v1.NewHash(h); err != nil {
			return nil, fmt.Errorf("registry sent an invalid Docker-Content-Digest: %w", err)
		}
	}
	if d, ok := ref.(name.Digest); ok {
		want, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, err
		}
		switch {
		case digest == (v1.Hash{}):
			digest = want
		case digest != want:
			return nil, fmt.Errorf("%w: the registry reports %s", ErrDigestMismatch, digest)
		}
	} else if digest == (v1.Hash{}) {
		return nil, fmt.Errorf("registry sent no Docker-Content-Digest header")
	}
	return &v1.Descriptor{
		MediaType: types.MediaType(resp.Header.Get("Content-Type")),
		Digest:    digest,
		Size:      max(resp.ContentLength, 0),
	}, nil
}

// Manifest returns the manifest with the given digest in repo and its media type. It reads at most
// limit bytes: Options.MaxManifestSize, or less when 0 < limit < MaxManifestSize (pass the size from the
// manifest's descriptor). A larger manifest is ErrTooLarge, detected from Content-Length before reading
// when the registry sends one; a body that does not hash to digest is ErrDigestMismatch.
func (c *Reader) Manifest(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, types.MediaType, error) {
	b, mt, err := c.manifest(ctx, repo, digest, limit)
	if err != nil {
		return nil, "", fmt.Errorf("GET manifest %s: %w", repo.Digest(digest.String()), err)
	}
	return b, mt, nil
}

func (c *Reader) manifest(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, types.MediaType, error) {
	if limit <= 0 || limit > c.opts.MaxManifestSize {
		limit = c.opts.MaxManifestSize
	}
	resp, err := c.do(ctx, repo, http.MethodGet, apiURL(repo, "manifests", digest.String()), acceptManifests)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp, limit)
	if err != nil {
		return nil, "", err
	}
	if err := verifyDigest(b, digest); err != nil {
		return nil, "", err
	}
	return b, manifestMediaType(resp.Header.Get("Content-Type"), b), nil
}

// Blob returns the blob with the given digest in repo, reading at most limit bytes: Options.MaxBlobSize,
// or less when 0 < limit < MaxBlobSize (pass the size from the layer descriptor). A larger blob is
// ErrTooLarge, a body that does not hash to digest is ErrDigestMismatch.
func (c *Reader) Blob(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, error) {
	b, err := c.blob(ctx, repo, digest, limit)
	if err != nil {
		return nil, fmt.Errorf("GET blob %s: %w", repo.Digest(digest.String()), err)
	}
	return b, nil
}

func (c *Reader) blob(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, error) {
	if limit <= 0 || limit > c.opts.MaxBlobSize {
		limit = c.opts.MaxBlobSize
	}
	resp, err := c.do(ctx, repo, http.MethodGet, apiURL(repo, "blobs", digest.String()), "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp, limit)
	if err != nil {
		return nil, err
	}
	if err := verifyDigest(b, digest); err != nil {
		return nil, err
	}
	return b, nil
}

// Referrers lists the manifests in repo whose subject is digest, keeping those whose artifactType
// equals artifactType (all when it is empty), sorted by digest. It uses the OCI 1.1 referrers API, and
// when the registry lacks it, the image index tagged sha256-<hex> (the referrers tag schema cosign and
// go-containerregistry write); a missing tag means no referrers. The listing is read up to
// Options.MaxManifestSize bytes per page (ErrTooLarge); more than Options.MaxReferrers kept
// descriptors is ErrTooMany. See Fingerprint for change detection.
func (c *Reader) Referrers(ctx context.Context, repo name.Repository, digest v1.Hash, artifactType string) ([]v1.Descriptor, error) {
	descs, err := c.referrers(ctx, repo, digest, artifactType)
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", repo.Digest(digest.String()), err)
	}
	slices.SortFunc(descs, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return descs, nil
}

func (c *Reader) referrers(ctx context.Context, repo name.Repository, digest v1.Hash, artifactType string) ([]v1.Descriptor, error) {
	u := apiURL(repo, "referrers", digest.String())
	if artifactType != "" {
		u += "?" + url.Values{"artifactType": {artifactType}}.Encode()
	}
	var kept []v1.Descriptor
	for page := 0; page < maxReferrerPages; page++ {
		resp, err := c.do(ctx, repo, http.MethodGet, u, string(types.OCIImageIndex),
			http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable)
		if err != nil {
			return nil, err
		}
		if !isIndex(resp) {
			discard(resp)
			if page > 0 {
				return nil, fmt.Errorf("page %d of the referrers listing is not an OCI image index (status %d)", page+1, resp.StatusCode)
			}
			return c.referrersTag(ctx, repo, digest, artifactType)
		}
		kept, err = c.readReferrers(resp, kept, artifactType)
		if err != nil {
			return nil, err
		}
		if u, err = nextPage(resp); err != nil || u == "" {
			return kept, err
		}
	}
	return nil, fmt.Errorf("%w: the listing has more than %d pages", ErrTooMany, maxReferrerPages)
}

// referrersTag reads the referrers tag schema: an OCI image index tagged sha256-<hex>.
func (c *Reader) referrersTag(ctx context.Context, repo name.Repository, digest v1.Hash, artifactType string) ([]v1.Descriptor, error) {
	tag := digest.Algorithm + "-" + digest.Hex
	// A HEAD first: registries that count manifest GETs against pull quotas do not count HEADs, and an
	// unchanged index (same digest) is not read again.
	desc, err := c.head(ctx, repo.Tag(tag))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up referrers tag %s: %w", tag, err)
	}
	cacheKey := repo.Name() + "@" + desc.Digest.String()
	if v, ok := c.tagIndexes.Get(cacheKey); ok {
		return filterReferrers(v.([]v1.Descriptor), artifactType), nil
	}
	resp, err := c.do(ctx, repo, http.MethodGet, apiURL(repo, "manifests", tag), string(types.OCIImageIndex),
		http.StatusOK, http.StatusNotFound)
	if err != nil {
		return nil, fmt.Errorf("reading referrers tag %s: %w", tag, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		discard(resp)
		return nil, nil
	}
	if !isIndex(resp) {
		discard(resp)
		return nil, fmt.Errorf("referrers tag %s holds %q, not an OCI image index", tag, resp.Header.Get("Content-Type"))
	}
	all, err := c.readReferrers(resp, nil, "")
	if err != nil {
		return nil, fmt.Errorf("reading referrers tag %s: %w", tag, err)
	}
	if resp.Header.Get("Docker-Content-Digest") == desc.Digest.String() {
		c.tagIndexes.Add(cacheKey, all)
	}
	return filterReferrers(all, artifactType), nil
}

func filterReferrers(all []v1.Descriptor, artifactType string) []v1.Descriptor {
	out := make([]v1.Descriptor, 0, len(all))
	for _, d := range all {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out
}

// readReferrers reads an image index from resp, closes it, and appends to kept the descriptors whose
// artifactType matches. Only what discovery reads is decoded: a listing is unsigned, and the data, URLs,
// platforms and annotations a registry adds to its descriptors are skipped, but for the one annotation
// that tells signatures from attestations (AnnotationBundlePredicate), kept when short.
func (c *Client) readReferrers(resp *http.Response, kept []v1.Descriptor, artifactType string) ([]v1.Descriptor, error) {
	defer resp.Body.Close()
	b, err := readLimited(resp, c.opts.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var idx struct {
		Manifests []struct {
			MediaType    types.MediaType `json:"mediaType"`
			Size         int64           `json:"size"`
			Digest       v1.Hash         `json:"digest"`
			ArtifactType string          `json:"artifactType"`
			Annotations  struct {
				Predicate string `json:"dev.sigstore.bundle.predicateType"`
			} `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("decoding the referrers index: %w", err)
	}
	for _, d := range idx.Manifests {
		if artifactType != "" && d.ArtifactType != artifactType {
			continue
		}
		if len(kept) == c.opts.MaxReferrers {
			return nil, fmt.Errorf("%w: more than %d", ErrTooMany, c.opts.MaxReferrers)
		}
		desc := v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest, ArtifactType: d.ArtifactType}
		if p := d.Annotations.Predicate; p != "" && len(p) <= maxListingAnnotationBytes {
			desc.Annotations = map[string]string{AnnotationBundlePredicate: p}
		}
		kept = append(kept, desc)
	}
	return kept, nil
}

// AnnotationBundlePredicate is the annotation cosign sets on bundle referrers: the predicate type of
// the statement inside, which tells signatures from attestations without fetching them.
const AnnotationBundlePredicate = "dev.sigstore.bundle.predicateType"

// maxListingAnnotationBytes bounds the predicate type kept from a listing.
const maxListingAnnotationBytes = 512

// Fingerprint returns a stable summary of a referrers listing for change detection: "sha256:" and the
// hex sha256 of the listing's manifest digests, sorted and joined by newlines. Order and duplicates
// do not matter; annotations and artifact types are covered by the digests of the manifests they
// come from.
func Fingerprint(descs []v1.Descriptor) string {
	digests := make([]string, 0, len(descs))
	for _, d := range descs {
		digests = append(digests, d.Digest.String())
	}
	slices.Sort(digests)
	digests = slices.Compact(digests)
	sum := sha256.Sum256([]byte(strings.Join(digests, "\n")))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// do sends a request for repo and returns the response when its status is one of ok (default 200).
// Other statuses and transport failures are returned as classified errors.
func (c *Reader) do(ctx context.Context, repo name.Repository, method, u, accept string, ok ...int) (*http.Response, error) {
	hc, err := c.client(ctx, c.creds, repo)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, classify(clean(err))
	}
	if len(ok) == 0 {
		ok = []int{http.StatusOK}
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			c.forget(c.creds, repo)
		}
		return nil, classify(clean(err))
	}
	return resp, nil
}

// readLimited reads at most limit bytes of a body, failing with ErrTooLarge, before reading, when the
// Content-Length is larger, and otherwise as soon as the body goes past limit.
func readLimited(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, resp.ContentLength, limit)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength) + 1) // no doubling past what was announced
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	b := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the response body: %w", errUnavailable, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// verifyDigest checks that b hashes to want.
func verifyDigest(b []byte, want v1.Hash) error {
	h, err := v1.Hasher(want.Algorithm)
	if err != nil {
		return err
	}
	h.Write(b)
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("%w: the body hashes to %s:%s", ErrDigestMismatch, want.Algorithm, got)
	}
	return nil
}

// manifestMediaType returns the media type of a manifest: the Content-Type header, or the manifest's
// own mediaType field when the header is missing or generic.
func manifestMediaType(contentType string, b []byte) types.MediaType {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt != "application/octet-stream" && mt != "text/plain" {
		return types.MediaType(mt)
	}
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &m)
	return m.MediaType
}

// isIndex reports whether resp is a 200 carrying an OCI image index.
func isIndex(resp *http.Response) bool {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return resp.StatusCode == http.StatusOK && err == nil && mt == string(types.OCIImageIndex)
}

// nextPage returns the absolute URL of the next page of a referrers listing from its Link header, or
// "" on the last page. The next page must be on the same host.
func nextPage(resp *http.Response) (string, error) {
	for _, header := range resp.Header.Values("Link") {
		for _, link := range strings.Split(header, ",") {
			target, params, _ := strings.Cut(link, ";")
			if !isNextRel(params) {
				continue
			}
			target = strings.Trim(strings.TrimSpace(target), "<>")
			next, err := resp.Request.URL.Parse(target)
			if err != nil {
				return "", fmt.Errorf("parsing the next page link %q: %w", target, err)
			}
			if next.Host != resp.Request.URL.Host {
				return "", fmt.Errorf("the next page link %q leaves the registry", target)
			}
			return next.String(), nil
		}
	}
	return "", nil
}

func isNextRel(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "rel") && strings.Trim(v, `"`) == "next" {
			return true
		}
	}
	return false
}
