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
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// Fuzz targets for what a registry answers: referrers listings and referrers tag indexes, manifests
// and their digests, and Retry-After. The listing and manifest targets go through the public API
// against one httptest server per target that serves the fuzzed bytes. `go test` runs their seeds;
// `make fuzz` runs each for FUZZTIME.

const (
	fuzzMaxReferrers    = 3
	fuzzMaxManifestSize = 4096
	fuzzBundleType      = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// fuzzSubject is the image digest whose referrers are listed.
var fuzzSubject = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}

// fuzzReply is what the fuzz server answers.
type fuzzReply struct {
	status      int
	contentType string
	link        string // Link header of a referrers page; Location of a redirect
	body        []byte
	tagSchema   bool   // the referrers API answers 404: the client falls back to the sha256-<hex> tag
	headDigest  string // Docker-Content-Digest of a manifest HEAD ("" for none)
}

// fuzzHeaderValue reports whether v can be sent as an HTTP/1.1 header value (no control characters
// but tab; no leading or trailing space, which the client trims). A registry that sends another breaks
// the response, which the client rightly reports as unavailable: such inputs are not listings.
func fuzzHeaderValue(v string) bool {
	for _, r := range []byte(v) {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(v) == v
}

// fuzzServer is an httptest registry on 127.0.0.1 whose answer is swapped per input.
type fuzzServer struct {
	srv       *httptest.Server
	transport *http.Transport
	mu        sync.Mutex
	reply     fuzzReply
}

func newFuzzServer(f *testing.F) *fuzzServer {
	s := &fuzzServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	f.Cleanup(s.srv.Close)
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	f.Cleanup(s.transport.CloseIdleConnections)
	return s
}

func (s *fuzzServer) set(r fuzzReply) {
	s.mu.Lock()
	s.reply = r
	s.mu.Unlock()
}

func (s *fuzzServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	reply := s.reply
	s.mu.Unlock()
	tagPath := "/manifests/" + fuzzSubject.Algorithm + "-" + fuzzSubject.Hex
	switch {
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
		return
	case strings.Contains(r.URL.Path, "/referrers/"):
		if reply.tagSchema {
			http.NotFound(w, r)
			return
		}
	case strings.HasSuffix(r.URL.Path, tagPath):
		if !reply.tagSchema {
			http.NotFound(w, r)
			return
		}
		reply.status = http.StatusOK
		sum := sha256.Sum256(reply.body)
		reply.headDigest = "sha256:" + hex.EncodeToString(sum[:])
	case strings.Contains(r.URL.Path, "/manifests/"):
	default:
		http.NotFound(w, r)
		return
	}
	if reply.contentType != "" {
		w.Header().Set("Content-Type", reply.contentType)
	}
	if reply.headDigest != "" {
		w.Header().Set("Docker-Content-Digest", reply.headDigest)
	}
	if reply.link != "" {
		if reply.status >= 300 && reply.status < 400 {
			w.Header().Set("Location", reply.link)
		} else {
			w.Header().Set("Link", reply.link)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(reply.body)))
	w.WriteHeader(reply.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(reply.body)
	}
}

// client returns a fresh Client for the server (no cached listing or token carries over between
// inputs), over a shared connection pool, without retries.
func (s *fuzzServer) client() *Client {
	return New(Options{Insecure: []string{"127.0.0.1:*"}, MaxRetries: -1, RequestTimeout: 10 * time.Second,
		MaxReferrers: fuzzMaxReferrers, MaxManifestSize: fuzzMaxManifestSize, Transport: s.transport})
}

func (s *fuzzServer) repo(t *testing.T) name.Repository {
	repo, err := name.NewRepository(strings.TrimPrefix(s.srv.URL, "http://") + "/app")
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// fuzzStatuses are the statuses a fuzz input picks from.
var fuzzStatuses = []int{http.StatusOK, http.StatusOK, http.StatusOK, http.StatusOK, http.StatusNotFound, http.StatusBadRequest,
	http.StatusNotAcceptable, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusFound, http.StatusTemporaryRedirect}

// fuzzSeeds are listings and manifests as real registries serve them, made once per process.
type fuzzSeeds struct {
	listings  []fuzzSeedReply // referrers API pages and referrers tag indexes
	manifests []fuzzSeedReply // image and referrer manifests
}

type fuzzSeedReply struct {
	contentType string
	body        []byte
	tagSchema   bool
}

var (
	fuzzSeedsOnce sync.Once
	fuzzSeedsVal  fuzzSeeds
	fuzzSeedsErr  error
)

// fuzzRegistrySeeds pushes an image with bundle referrers (signed with test/sigstore, and cosign's own
// referrer bundle from the vectors) and an SBOM into go-containerregistry's registry, with and without
// the referrers API, and records what it serves.
func fuzzRegistrySeeds(tb testing.TB) fuzzSeeds {
	tb.Helper()
	fuzzSeedsOnce.Do(func() {
		for _, referrersAPI := range []bool{true, false} {
			if fuzzSeedsErr = fuzzRecordRegistry(referrersAPI, &fuzzSeedsVal); fuzzSeedsErr != nil {
				return
			}
		}
	})
	if fuzzSeedsErr != nil {
		tb.Fatalf("recording the seed listings: %v", fuzzSeedsErr)
	}
	return fuzzSeedsVal
}

func fuzzRecordRegistry(referrersAPI bool, out *fuzzSeeds) error {
	reg, err := testregistry.Serve(referrersAPI)
	if err != nil {
		return err
	}
	defer reg.Stop()
	ctx := context.Background()
	w := &sigstore.Writer{Registry: reg.Host}
	img, err := w.PushRandomImage(ctx, "app")
	if err != nil {
		return err
	}
	key, err := sigstore.NewKeySigner(nil)
	if err != nil {
		return err
	}
	var referrers []name.Digest
	res, err := w.SignBundle(ctx, img, key, sigstore.SignOptions{})
	if err != nil {
		return err
	}
	referrers = append(referrers, res.Manifest)
	if res, err = w.AttestBundle(ctx, img, key, "https://slsa.dev/provenance/v1", map[string]string{"buildType": "x"}, sigstore.SignOptions{}); err != nil {
		return err
	}
	referrers = append(referrers, res.Manifest)
	for _, dir := range []string{"../bundleverify/testdata", "../../../shared/vectors"} {
		data, err := os.ReadFile(filepath.Join(dir, "cosign-new-bundle/oci-attestation.sigstore.json"))
		if err != nil {
			continue
		}
		ref, err := w.PushBundleReferrer(ctx, img, img.Context(), data, "https://slsa.dev/provenance/v0.2")
		if err != nil {
			return err
		}
		referrers = append(referrers, ref)
		break
	}

	get := func(path string) (fuzzSeedReply, error) {
		resp, err := http.Get("http://" + reg.Host + path)
		if err != nil {
			return fuzzSeedReply{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return fuzzSeedReply{}, fmt.Errorf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return fuzzSeedReply{contentType: resp.Header.Get("Content-Type"), body: body}, nil
	}
	hexDigest := strings.TrimPrefix(img.DigestStr(), "sha256:")
	if referrersAPI {
		l, err := get("/v2/app/referrers/" + img.DigestStr())
		if err != nil {
			return err
		}
		out.listings = append(out.listings, l)
	} else {
		l, err := get("/v2/app/manifests/sha256-" + hexDigest)
		if err != nil {
			return err
		}
		l.tagSchema = true
		out.listings = append(out.listings, l)
	}
	for _, d := range append(referrers, img) {
		m, err := get("/v2/app/manifests/" + d.DigestStr())
		if err != nil {
			return err
		}
		out.manifests = append(out.manifests, m)
	}
	return nil
}

// fuzzIndex is an OCI image index of descs, as registry_test's writeIndex writes it.
func fuzzIndex(descs ...v1.Descriptor) []byte {
	b, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
	return b
}

func fuzzDescriptor(hexDigit, artifactType string) v1.Descriptor {
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: artifactType, Size: 1,
		Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(hexDigit, 64)}}
}

// FuzzReferrers: whatever a registry answers to a referrers request (the API or the referrers tag),
// a listing that succeeds holds at most MaxReferrers descriptors, each of the artifact type asked for,
// sorted by digest, each one the registry listed (with only annotations it sent, and none of the
// unsigned data, URLs or platforms), and every one it listed: nothing is dropped silently. A listing
// over MaxReferrers is ErrTooMany, a redirected listing an error, and an error names the image.
func FuzzReferrers(f *testing.F) {
	s := newFuzzServer(f)
	seeds := fuzzRegistrySeeds(f)
	for _, l := range seeds.listings {
		for _, at := range []string{"", fuzzBundleType, string(types.OCIEmptyJSON)} {
			f.Add(uint8(0), l.contentType, "", l.body, l.tagSchema, at)
		}
	}
	page := fuzzIndex(fuzzDescriptor("2", fuzzBundleType))
	many := fuzzIndex(fuzzDescriptor("2", fuzzBundleType), fuzzDescriptor("3", fuzzBundleType), fuzzDescriptor("4", fuzzBundleType),
		fuzzDescriptor("5", fuzzBundleType), fuzzDescriptor("6", "application/vnd.example.sbom+json"))
	oci := string(types.OCIImageIndex)
	for _, link := range []string{"", `</v2/app/referrers/` + fuzzSubject.String() + `?page=2>; rel="next"`,
		`<https://elsewhere.example/v2/app/referrers/x?page=2>; rel="next"`, `</v2/app/referrers/x>; rel=next, <y>; rel="prev"`} {
		f.Add(uint8(0), oci, link, page, false, fuzzBundleType)
	}
	f.Add(uint8(0), oci, "", many, false, fuzzBundleType)
	f.Add(uint8(0), oci, "", many, true, "")
	f.Add(uint8(0), oci+"; charset=utf-8", "", many, false, "application/vnd.example.sbom+json")
	f.Add(uint8(0), "application/json", "", page, false, "")
	f.Add(uint8(0), oci, "", []byte(`{"manifests":[{"digest":"sha256:`+strings.Repeat("a", 64)+`","data":"AAAA","urls":["https://x"],"platform":{"os":"linux"},"annotations":{"a":"b"}}]}`), false, "")
	f.Add(uint8(0), oci, "", []byte(`{"manifests":[{}]}`), false, "")
	f.Add(uint8(9), oci, "/v2/app/referrers/"+fuzzSubject.String(), page, false, "")
	f.Add(uint8(7), oci, "", page, false, "")

	f.Fuzz(func(t *testing.T, statusPick uint8, contentType, link string, body []byte, tagSchema bool, artifactType string) {
		status := fuzzStatuses[int(statusPick)%len(fuzzStatuses)]
		if !fuzzHeaderValue(contentType) || !fuzzHeaderValue(link) {
			return
		}
		s.set(fuzzReply{status: status, contentType: contentType, link: link, body: body, tagSchema: tagSchema})
		repo := s.repo(t)
		descs, err := s.client().Referrers(context.Background(), repo, fuzzSubject, artifactType)

		served, parses := fuzzParseIndex(body)
		var wanted []fuzzServedDescriptor
		for _, d := range served {
			if artifactType == "" || d.ArtifactType == artifactType {
				wanted = append(wanted, d)
			}
		}
		mt, _, mtErr := mime.ParseMediaType(contentType)
		isIndex := mtErr == nil && mt == string(types.OCIImageIndex)
		answered := isIndex && (tagSchema || status == http.StatusOK)

		if err != nil {
			if descs != nil {
				t.Fatalf("an error (%v) and a listing", err)
			}
			if !strings.Contains(err.Error(), repo.Digest(fuzzSubject.String()).String()) {
				t.Fatalf("the error does not name the image: %v", err)
			}
			if answered && parses && len(body) <= fuzzMaxManifestSize && len(wanted) > fuzzMaxReferrers && !errors.Is(err, ErrTooMany) {
				t.Fatalf("%d referrers of the type asked for, more than MaxReferrers %d: want ErrTooMany, got %v", len(wanted), fuzzMaxReferrers, err)
			}
			return
		}
		if !tagSchema && status >= 300 && status < 400 && link != "" {
			t.Fatalf("a redirected listing (%d to %q) was followed", status, link)
		}
		if len(descs) > fuzzMaxReferrers {
			t.Fatalf("%d referrers, more than MaxReferrers %d", len(descs), fuzzMaxReferrers)
		}
		if !slices.IsSortedFunc(descs, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) }) {
			t.Fatalf("the listing is not sorted by digest: %v", descs)
		}
		for _, d := range descs {
			if artifactType != "" && d.ArtifactType != artifactType {
				t.Fatalf("a referrer of type %q in a listing of %q", d.ArtifactType, artifactType)
			}
			if d.Data != nil || d.URLs != nil || d.Platform != nil {
				t.Fatalf("a listing descriptor keeps the registry's unsigned data, URLs or platform: %+v", d)
			}
			if !slices.ContainsFunc(served, func(sd fuzzServedDescriptor) bool { return sd.matches(d) }) {
				t.Fatalf("a referrer the registry did not list: %+v", d)
			}
		}
		if answered && parses && len(body) <= fuzzMaxManifestSize {
			for _, sd := range wanted {
				if !slices.ContainsFunc(descs, sd.matches) {
					t.Fatalf("the registry listed %+v, the listing (%d of %d) dropped it", sd, len(descs), len(wanted))
				}
			}
		}
		fp := Fingerprint(descs)
		if _, err := v1.NewHash(fp); err != nil || fp != Fingerprint(slices.Clone(descs)) {
			t.Fatalf("fingerprint %q: %v", fp, err)
		}
	})
}

// fuzzServedDescriptor is a descriptor of an index as the registry sent it.
type fuzzServedDescriptor struct {
	MediaType    types.MediaType   `json:"mediaType"`
	Size         int64             `json:"size"`
	Digest       v1.Hash           `json:"digest"`
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
}

// matches reports whether d is this descriptor, with at most its annotations.
func (sd fuzzServedDescriptor) matches(d v1.Descriptor) bool {
	if d.MediaType != sd.MediaType || d.Size != sd.Size || d.Digest != sd.Digest || d.ArtifactType != sd.ArtifactType {
		return false
	}
	for k, v := range d.Annotations {
		if sv, ok := sd.Annotations[k]; !ok || sv != v {
			return false
		}
	}
	return true
}

func fuzzParseIndex(body []byte) ([]fuzzServedDescriptor, bool) {
	var idx struct {
		Manifests []fuzzServedDescriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, false
	}
	return idx.Manifests, true
}

// FuzzManifest: a manifest read by digest is exactly the bytes served, hashes to the digest asked
// for and fits the limit, or is refused (ErrDigestMismatch, ErrTooLarge); one that does hash and fit is
// never refused. Its media type is the Content-Type, or the manifest's own when the header is generic.
// A HEAD of a digest reports that digest or fails, and a registry reporting another is
// ErrDigestMismatch.
func FuzzManifest(f *testing.F) {
	s := newFuzzServer(f)
	seeds := fuzzRegistrySeeds(f)
	for _, m := range append(append([]fuzzSeedReply{}, seeds.manifests...), seeds.listings...) {
		f.Add(m.body, m.contentType, true, "", int64(0))
		f.Add(m.body, "", true, "sha256:"+strings.Repeat("0", 64), int64(len(m.body)))
		f.Add(m.body, "application/octet-stream", false, "", int64(len(m.body)-1))
	}
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), "text/plain; charset=utf-8", true, "sha256:x", int64(-1))
	f.Add([]byte{}, "", true, "md5:00", int64(1))
	f.Fuzz(func(t *testing.T, body []byte, contentType string, matching bool, headDigest string, limit int64) {
		if !fuzzHeaderValue(contentType) || !fuzzHeaderValue(headDigest) {
			return
		}
		sum := sha256.Sum256(body)
		digest := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		if !matching {
			other := sha256.Sum256(append([]byte("other"), body...))
			digest.Hex = hex.EncodeToString(other[:])
		}
		s.set(fuzzReply{status: http.StatusOK, contentType: contentType, body: body, headDigest: headDigest})
		repo := s.repo(t)
		c := s.client()

		b, mt, err := c.Manifest(context.Background(), repo, digest, limit)
		effective := int64(fuzzMaxManifestSize)
		if limit > 0 && limit < effective {
			effective = limit
		}
		switch {
		case err != nil:
			if b != nil {
				t.Fatalf("an error (%v) and a manifest", err)
			}
			if int64(len(body)) > effective && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes over the limit %d: want ErrTooLarge, got %v", len(body), effective, err)
			}
			if int64(len(body)) <= effective && !matching && !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("a body of another digest: want ErrDigestMismatch, got %v", err)
			}
			if int64(len(body)) <= effective && matching {
				t.Fatalf("a manifest that hashes to its digest and fits the limit was refused: %v", err)
			}
			if !strings.Contains(err.Error(), repo.Digest(digest.String()).String()) {
				t.Fatalf("the error does not name the manifest: %v", err)
			}
		case !matching:
			t.Fatal("a manifest of another digest was accepted")
		case !bytes.Equal(b, body):
			t.Fatal("the manifest returned is not the bytes served")
		case int64(len(b)) > effective:
			t.Fatalf("a manifest of %d bytes over the limit %d", len(b), effective)
		default:
			ct, _, ctErr := mime.ParseMediaType(contentType)
			var own struct {
				MediaType types.MediaType `json:"mediaType"`
			}
			_ = json.Unmarshal(body, &own)
			if mt != own.MediaType && (ctErr != nil || types.MediaType(ct) != mt) {
				t.Fatalf("media type %q is neither the Content-Type %q nor the manifest's own %q", mt, contentType, own.MediaType)
			}
			if (mt == "application/octet-stream" || mt == "text/plain") && own.MediaType != mt {
				t.Fatalf("the generic Content-Type %q was taken over the manifest's own %q", mt, own.MediaType)
			}
		}

		desc, err := c.Head(context.Background(), repo.Digest(digest.String()))
		if err != nil {
			if headDigest == "" {
				t.Fatalf("a HEAD without Docker-Content-Digest of a digest reference failed: %v", err)
			}
			if h, perr := v1.NewHash(headDigest); perr == nil && h != digest && !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("the registry reports %s for %s: want ErrDigestMismatch, got %v", h, digest, err)
			}
			return
		}
		if desc.Digest != digest {
			t.Fatalf("HEAD of %s reports %s", digest, desc.Digest)
		}
		if desc.Size < 0 {
			t.Fatalf("HEAD reports a negative size %d", desc.Size)
		}
	})
}

// FuzzRetryAfter: a Retry-After (seconds or an HTTP date) is never a negative wait, nor one of more
// than a day in seconds; the wait before a retry is never negative, never over MaxRetryWait and never
// past the request's deadline; without a usable Retry-After it is a positive backoff that does not
// shrink from one attempt to the next.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, h := range []string{"1", "0", " 7 ", now.Add(90 * time.Second).Format(http.TimeFormat), now.Add(-time.Minute).Format(http.TimeFormat),
		"", "-3", "soon", "99999999999", "86400", "86401", "+5", "1e3", "Mon, 02 Jan 2006 15:04:05 GMT", "Monday, 02-Jan-06 15:04:05 GMT",
		"Mon Jan  2 15:04:05 2006", "9223372036854775807", "Fri, 31 Dec 9999 23:59:59 GMT"} {
		f.Add(h, uint8(0), int64(30*time.Second), int64(0), now.Unix())
		f.Add(h, uint8(3), int64(time.Second), int64(10*time.Second), now.Unix())
	}
	f.Add("", uint8(200), int64(24*time.Hour), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, header string, attempt uint8, maxWait, deadlineIn, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		d, ok := parseRetryAfter(header, now)
		switch {
		case !ok && d != 0:
			t.Fatalf("parseRetryAfter(%q) = %v, false", header, d)
		case d < 0:
			t.Fatalf("parseRetryAfter(%q) = %v, a negative wait", header, d)
		}
		if _, err := strconv.ParseInt(strings.TrimSpace(header), 10, 64); err == nil && d > 24*time.Hour {
			t.Fatalf("parseRetryAfter(%q) = %v, more than a day", header, d)
		}

		// A configured MaxRetryWait is positive and reasonable (at most a day).
		if maxWait <= 0 || maxWait > int64(24*time.Hour) {
			maxWait = int64(30 * time.Second)
		}
		rt := &retryTransport{maxWait: time.Duration(maxWait), now: func() time.Time { return now }}
		ctx := context.Background()
		if deadlineIn > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, now.Add(time.Duration(deadlineIn)))
			defer cancel()
		}
		wait, ok := rt.wait(ctx, int(attempt), header)
		switch {
		case !ok && wait != 0:
			t.Fatalf("wait(%d, %q) = %v, false", attempt, header, wait)
		case wait < 0:
			t.Fatalf("wait(%d, %q) = %v, a negative wait", attempt, header, wait)
		case wait > time.Duration(maxWait):
			t.Fatalf("wait(%d, %q) = %v, over MaxRetryWait %v", attempt, header, wait, time.Duration(maxWait))
		}
		if deadline, has := ctx.Deadline(); ok && has && now.Add(wait).After(deadline) {
			t.Fatalf("wait(%d, %q) = %v, past the deadline", attempt, header, wait)
		}
		if parsed, usable := parseRetryAfter(header, now); usable && ok && wait != parsed {
			t.Fatalf("wait(%d, %q) = %v, but the registry asked for %v", attempt, header, wait, parsed)
		}
		if _, usable := parseRetryAfter(header, now); !usable && deadlineIn <= 0 {
			next, nextOK := rt.wait(ctx, int(attempt)+1, header)
			if !ok || wait <= 0 || !nextOK || next < wait {
				t.Fatalf("backoff without Retry-After: attempt %d waits %v (%v), attempt %d waits %v (%v)", attempt, wait, ok, int(attempt)+1, next, nextOK)
			}
		}
	})
}
