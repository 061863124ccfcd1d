package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

func TestHead(t *testing.T) {
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	img := testregistry.RandomImage(t, 256)
	reg.PushTag(t, "app", "v1", img)
	digest := mustDigest(t, img)

	cases := []struct {
		name    string
		ref     string
		wantErr error
	}{
		{name: "existing tag", ref: repo.Tag("v1").String()},
		{name: "existing digest", ref: repo.Digest(digest.String()).String()},
		{name: "missing tag", ref: repo.Tag("nope").String(), wantErr: ErrNotFound},
		{name: "missing repository", ref: reg.Repository(t, "other").Tag("v1").String(), wantErr: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c, _ := newTestClient(Options{})
			ref := parseRef(t, tc.ref)

			desc, err := c.Head(context.Background(), ref)

			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(IsUnavailable(err)).To(BeFalse())
				g.Expect(err.Error()).To(ContainSubstring(tc.ref))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(desc.Digest).To(Equal(digest))
			g.Expect(desc.MediaType).To(Equal(types.DockerManifestSchema2))
			g.Expect(desc.Size).To(BeNumerically("==", len(mustManifest(t, img))))
		})
	}
}

func TestHeadIsNotCountedAsGet(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.PushTag(t, "app", "v1", testregistry.RandomImage(t, 256))
	c, _ := newTestClient(Options{})
	reg.TakeRequestLog()

	_, err := c.Head(context.Background(), repo.Tag("v1"))

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reg.TakeRequestLog()).To(ContainElement("HEAD /v2/app/manifests/v1"))
	g.Expect(c.Requests()).To(HaveKeyWithValue(RequestKey{Method: http.MethodHead, Code: http.StatusOK}, 1))
}

func TestManifestByDigest(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	img := testregistry.RandomImage(t, 256)
	reg.PushTag(t, "app", "v1", img)
	c, _ := newTestClient(Options{})

	b, mt, err := c.Manifest(context.Background(), repo, mustDigest(t, img), 0)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b).To(Equal(mustManifest(t, img)))
	g.Expect(mt).To(Equal(types.DockerManifestSchema2))
}

func TestManifestNotFound(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.PushTag(t, "app", "v1", testregistry.RandomImage(t, 256))
	c, _ := newTestClient(Options{})
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}

	_, _, err := c.Manifest(context.Background(), repo, missing, 0)

	g.Expect(err).To(MatchError(ErrNotFound))
	g.Expect(err.Error()).To(ContainSubstring(repo.Digest(missing.String()).String()))
}

func TestManifestDigestMismatch(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	asked := testregistry.RandomImage(t, 256)
	reg.PushTag(t, "app", "v1", asked)
	other, err := random.Image(256, 1)
	g.Expect(err).NotTo(HaveOccurred())
	askedDigest := mustDigest(t, asked)
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodGet, "/manifests/"+askedDigest.String()) {
			return false
		}
		w.Header().Set("Content-Type", string(types.DockerManifestSchema2))
		w.Header().Set("Docker-Content-Digest", askedDigest.String())
		_, _ = w.Write(mustManifest(t, other))
		return true
	})
	c, _ := newTestClient(Options{})

	_, _, err = c.Manifest(context.Background(), repo, askedDigest, 0)

	g.Expect(err).To(MatchError(ErrDigestMismatch))
	g.Expect(IsUnavailable(err)).To(BeFalse())
	g.Expect(err.Error()).To(ContainSubstring(repo.Digest(askedDigest.String()).String()))
}

func TestManifestTooLarge(t *testing.T) {
	const limit = 1 << 10
	const served = 64 << 20 // far more than socket buffers hold, so reading it all would show
	cases := []struct {
		name          string
		contentLength bool
	}{
		{name: "with Content-Length", contentLength: true},
		{name: "chunked body", contentLength: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			reg := testregistry.Start(t, false)
			repo := reg.Repository(t, "app")
			img := testregistry.RandomImage(t, 256)
			reg.PushTag(t, "app", "v1", img)
			digest := mustDigest(t, img)
			written := make(chan int64, 1)
			reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
				if !isPath(r, http.MethodGet, "/manifests/"+digest.String()) {
					return false
				}
				written <- serveBytes(w, served, tc.contentLength)
				return true
			})
			c, _ := newTestClient(Options{MaxManifestSize: limit})

			_, _, err := c.Manifest(context.Background(), repo, digest, 0)

			g.Expect(err).To(MatchError(ErrTooLarge))
			g.Expect(IsUnavailable(err)).To(BeFalse())
			g.Expect(err.Error()).To(ContainSubstring(repo.Digest(digest.String()).String()))
			g.Eventually(written, 10*time.Second).Should(Receive(BeNumerically("<", served/2)))
		})
	}
}

// serveBytes writes up to n bytes in chunks until the client goes away and returns how many it wrote.
func serveBytes(w http.ResponseWriter, n int64, contentLength bool) int64 {
	w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
	if contentLength {
		w.Header().Set("Content-Length", fmt.Sprint(n))
	}
	w.WriteHeader(http.StatusOK)
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	var total int64
	for total < n {
		k, err := w.Write(chunk)
		total += int64(k)
		if err != nil {
			return total
		}
		w.(http.Flusher).Flush()
	}
	return total
}

func TestBlob(t *testing.T) {
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	img := testregistry.RandomImage(t, 64<<10)
	reg.PushTag(t, "app", "v1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	layerSize, err := layers[0].Size()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		opts    Options
		limit   int64
		fault   bool
		wantErr error
	}{
		{name: "within limits", opts: Options{}, limit: layerSize},
		{name: "larger than MaxBlobSize", opts: Options{MaxBlobSize: 16 << 10}, wantErr: ErrTooLarge},
		{name: "larger than the caller's limit", opts: Options{}, limit: layerSize - 1, wantErr: ErrTooLarge},
		{name: "body does not match the digest", opts: Options{}, fault: true, wantErr: ErrDigestMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			reg.ClearIntercepts()
			if tc.fault {
				reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
					if !isPath(r, http.MethodGet, "/blobs/"+layerDigest.String()) {
						return false
					}
					_, _ = w.Write([]byte("not the layer"))
					return true
				})
			}
			c, _ := newTestClient(tc.opts)

			b, err := c.Blob(context.Background(), repo, layerDigest, tc.limit)

			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(err.Error()).To(ContainSubstring(repo.Digest(layerDigest.String()).String()))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(b).To(HaveLen(int(layerSize)))
		})
	}
}

func TestRetryAfter429(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.PushTag(t, "app", "v1", testregistry.RandomImage(t, 256))
	var once sync.Once
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodHead, "/manifests/v1") {
			return false
		}
		limited := false
		once.Do(func() {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			limited = true
		})
		return limited
	})
	var mu sync.Mutex
	var heads []int
	c, sleeps := newTestClient(Options{Observer: func(method string, code int) {
		if method == http.MethodHead {
			mu.Lock()
			heads = append(heads, code)
			mu.Unlock()
		}
	}})

	_, err := c.Head(context.Background(), repo.Tag("v1"))

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sleeps.recorded()).To(Equal([]time.Duration{time.Second}))
	g.Expect(heads).To(Equal([]int{http.StatusTooManyRequests, http.StatusOK}))
	g.Expect(c.Requests()).To(And(
		HaveKeyWithValue(RequestKey{Method: http.MethodHead, Code: http.StatusTooManyRequests}, 1),
		HaveKeyWithValue(RequestKey{Method: http.MethodHead, Code: http.StatusOK}, 1),
	))
}

func TestRetryAfterBeyondCapGivesUp(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodHead, "/manifests/v1") {
			return false
		}
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	c, sleeps := newTestClient(Options{})

	_, err := c.Head(context.Background(), repo.Tag("v1"))

	g.Expect(IsUnavailable(err)).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("rate limited"))
	g.Expect(sleeps.recorded()).To(BeEmpty())
	g.Expect(c.Requests()).To(HaveKeyWithValue(RequestKey{Method: http.MethodHead, Code: http.StatusTooManyRequests}, 1))
}

func TestUnavailable503(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodHead, "/manifests/v1") {
			return false
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	c, sleeps := newTestClient(Options{MaxRetries: 3})

	_, err := c.Head(context.Background(), repo.Tag("v1"))

	g.Expect(IsUnavailable(err)).To(BeTrue())
	g.Expect(err).NotTo(MatchError(ErrNotFound))
	g.Expect(err.Error()).To(ContainSubstring(repo.Tag("v1").String()))
	g.Expect(c.Requests()).To(HaveKeyWithValue(RequestKey{Method: http.MethodHead, Code: http.StatusServiceUnavailable}, 4))
	g.Expect(sleeps.recorded()).To(Equal([]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}))
}

func TestConnectionRefused(t *testing.T) {
	g := NewWithT(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	addr := l.Addr().String()
	g.Expect(l.Close()).To(Succeed())
	ref := parseRef(t, addr+"/app:v1")
	c, sleeps := newTestClient(Options{})

	_, err = c.Head(context.Background(), ref)

	g.Expect(IsUnavailable(err)).To(BeTrue())
	g.Expect(err.Error()).To(And(ContainSubstring(ref.String()), ContainSubstring("connection refused")))
	g.Expect(sleeps.recorded()).To(BeEmpty())
	// One HTTPS and one HTTP ping, neither retried.
	g.Expect(c.Requests()).To(Equal(map[RequestKey]int{{Method: http.MethodGet, Code: 0}: 2}))
}

func TestRequestTimeout(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodHead, "/manifests/v1") {
			return false
		}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	})
	c, _ := newTestClient(Options{RequestTimeout: 200 * time.Millisecond})
	start := time.Now()

	_, err := c.Head(context.Background(), repo.Tag("v1"))

	g.Expect(IsUnavailable(err)).To(BeTrue())
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(time.Since(start)).To(BeNumerically("<", 5*time.Second))
	g.Expect(c.Requests()).To(HaveKeyWithValue(RequestKey{Method: http.MethodHead, Code: 0}, 1))
}

func TestAuthFailureIsUnavailable(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/v2/app/") {
			return false
		}
		w.WriteHeader(http.StatusForbidden)
		return true
	})
	c, _ := newTestClient(Options{})

	_, err := c.Head(context.Background(), repo.Tag("v1"))

	g.Expect(IsUnavailable(err)).To(BeTrue())
	g.Expect(err).NotTo(MatchError(ErrNotFound))
	g.Expect(err.Error()).To(And(ContainSubstring("access denied"), ContainSubstring(repo.Tag("v1").String())))
}

func TestKeychainCredentials(t *testing.T) {
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.PushTag(t, "app", "v1", testregistry.RandomImage(t, 256))
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if user, pass, ok := r.BasicAuth(); ok && user == "robot" && pass == "secret" {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})

	cases := []struct {
		name     string
		keychain authn.Keychain
		wantOK   bool
	}{
		{name: "right credentials", keychain: staticKeychain{user: "robot", pass: "secret"}, wantOK: true},
		{name: "wrong credentials", keychain: staticKeychain{user: "robot", pass: "guess"}},
		{name: "anonymous", keychain: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c, _ := newTestClient(Options{Keychain: tc.keychain})

			_, err := c.Head(context.Background(), repo.Tag("v1"))

			if tc.wantOK {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(IsUnavailable(err)).To(BeTrue())
			g.Expect(err.Error()).To(ContainSubstring("access denied"))
			g.Expect(err.Error()).NotTo(ContainSubstring("guess"))
		})
	}
}

type staticKeychain struct{ user, pass string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
}

func TestHTTPSUnlessInsecure(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	reg.PushTag(t, "app", "v1", testregistry.RandomImage(t, 256))
	reg.TakeRequestLog()
	c, _ := newTestClient(Options{Insecure: []string{"registry.local:5000"}})

	_, err := c.Head(context.Background(), repo.Tag("v1"))

	g.Expect(IsUnavailable(err)).To(BeTrue())
	g.Expect(err.Error()).To(And(ContainSubstring(repo.Tag("v1").String()), ContainSubstring("not listed as insecure")))
	g.Expect(reg.TakeRequestLog()).To(BeEmpty(), "no plain HTTP request reached the registry")
	g.Expect(c.Requests()).To(Equal(map[RequestKey]int{{Method: http.MethodGet, Code: 0}: 1}), "one failed HTTPS ping")
}

func TestReferrers(t *testing.T) {
	const otherType = "application/vnd.example.sbom+json"
	cases := []struct {
		name         string
		referrersAPI bool
	}{
		{name: "referrers API", referrersAPI: true},
		{name: "referrers tag fallback", referrersAPI: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			reg := testregistry.Start(t, tc.referrersAPI)
			repo := reg.Repository(t, "app")
			img := testregistry.RandomImage(t, 256)
			reg.PushTag(t, "app", "v1", img)
			digest := mustDigest(t, img)
			sig1 := reg.PushReferrer(t, "app", img, bundleType, "one")
			sbom := reg.PushReferrer(t, "app", img, otherType, "sbom")
			unsigned := testregistry.RandomImage(t, 256)
			reg.PushTag(t, "app", "v2", unsigned)
			c, _ := newTestClient(Options{})
			ctx := context.Background()
			reg.TakeRequestLog()

			bundles, err := c.Referrers(ctx, repo, digest, bundleType)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(bundles).To(HaveLen(1))
			g.Expect(bundles[0].Digest).To(Equal(sig1))
			g.Expect(bundles[0].ArtifactType).To(Equal(bundleType))
			fallbackTag := "GET /v2/app/manifests/sha256-" + digest.Hex
			if tc.referrersAPI {
				g.Expect(reg.TakeRequestLog()).NotTo(ContainElement(fallbackTag))
			} else {
				g.Expect(reg.TakeRequestLog()).To(ContainElement(fallbackTag))
			}

			all, err := c.Referrers(ctx, repo, digest, "")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(digestsOf(all)).To(ConsistOf(sig1, sbom))

			none, err := c.Referrers(ctx, repo, mustDigest(t, unsigned), bundleType)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(none).To(BeEmpty())

			before := Fingerprint(bundles)
			again, err := c.Referrers(ctx, repo, digest, bundleType)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(Fingerprint(again)).To(Equal(before), "unchanged listing, same fingerprint")

			sig2 := reg.PushReferrer(t, "app", img, bundleType, "two")
			after, err := c.Referrers(ctx, repo, digest, bundleType)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(digestsOf(after)).To(ConsistOf(sig1, sig2))
			g.Expect(Fingerprint(after)).NotTo(Equal(before), "new signature, new fingerprint")
		})
	}
}

func TestReferrersTooMany(t *testing.T) {
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers API %v", referrersAPI), func(t *testing.T) {
			g := NewWithT(t)
			reg := testregistry.Start(t, referrersAPI)
			repo := reg.Repository(t, "app")
			img := testregistry.RandomImage(t, 256)
			reg.PushTag(t, "app", "v1", img)
			for i := range 3 {
				reg.PushReferrer(t, "app", img, bundleType, fmt.Sprint(i))
			}
			c, _ := newTestClient(Options{MaxReferrers: 2})

			_, err := c.Referrers(context.Background(), repo, mustDigest(t, img), bundleType)

			g.Expect(err).To(MatchError(ErrTooMany))
			g.Expect(IsUnavailable(err)).To(BeFalse())
			g.Expect(err.Error()).To(ContainSubstring(repo.Digest(mustDigest(t, img).String()).String()))
		})
	}
}

func TestReferrersPaginated(t *testing.T) {
	subject := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}
	first := v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: bundleType, Size: 1,
		Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("2", 64)}}
	second := first
	second.Digest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("3", 64)}

	cases := []struct {
		name    string
		link    string
		want    []v1.Hash
		wantErr string
	}{
		{name: "relative next link", link: `</v2/app/referrers/` + subject.String() + `?page=2>; rel="next"`, want: []v1.Hash{first.Digest, second.Digest}},
		{name: "no link", want: []v1.Hash{first.Digest}},
		{name: "link to another host", link: `<https://elsewhere.example/v2/app/referrers/x?page=2>; rel="next"`, wantErr: "leaves the registry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			reg := testregistry.Start(t, true)
			reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
				if !isPath(r, http.MethodGet, "/referrers/"+subject.String()) {
					return false
				}
				page := []v1.Descriptor{first}
				if r.URL.Query().Get("page") == "2" {
					page = []v1.Descriptor{second}
				} else if tc.link != "" {
					w.Header().Set("Link", tc.link)
				}
				writeIndex(t, w, page)
				return true
			})
			c, _ := newTestClient(Options{})

			descs, err := c.Referrers(context.Background(), reg.Repository(t, "app"), subject, bundleType)

			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(digestsOf(descs)).To(Equal(tc.want))
		})
	}
}

func writeIndex(t *testing.T, w http.ResponseWriter, descs []v1.Descriptor) {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs}
	b, err := json.Marshal(idx)
	if err != nil {
		t.Error(err)
	}
	w.Header().Set("Content-Type", string(types.OCIImageIndex))
	_, _ = w.Write(b)
}

func digestsOf(descs []v1.Descriptor) []v1.Hash {
	var out []v1.Hash
	for _, d := range descs {
		out = append(out, d.Digest)
	}
	return out
}

func TestFingerprint(t *testing.T) {
	a := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}}
	b := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}}
	cases := []struct {
		name  string
		x, y  []v1.Descriptor
		equal bool
	}{
		{name: "order does not matter", x: []v1.Descriptor{a, b}, y: []v1.Descriptor{b, a}, equal: true},
		{name: "duplicates do not matter", x: []v1.Descriptor{a, a}, y: []v1.Descriptor{a}, equal: true},
		{name: "nil and empty are equal", x: nil, y: []v1.Descriptor{}, equal: true},
		{name: "a new referrer changes it", x: []v1.Descriptor{a}, y: []v1.Descriptor{a, b}},
		{name: "a replaced referrer changes it", x: []v1.Descriptor{a}, y: []v1.Descriptor{b}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Fingerprint(tc.x) == Fingerprint(tc.y)).To(Equal(tc.equal))
			g.Expect(Fingerprint(tc.x)).To(HavePrefix("sha256:"))
		})
	}
}

func TestErrorsNameTheImage(t *testing.T) {
	g := NewWithT(t)
	c, _ := newTestClient(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ref := parseRef(t, "127.0.0.1:1/app:v1")
	digest := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}

	_, headErr := c.Head(ctx, ref)
	_, _, manifestErr := c.Manifest(ctx, ref.Context(), digest, 0)
	_, blobErr := c.Blob(ctx, ref.Context(), digest, 0)
	_, referrersErr := c.Referrers(ctx, ref.Context(), digest, "")

	for _, err := range []error{headErr, manifestErr, blobErr, referrersErr} {
		g.Expect(err).To(MatchError(ContainSubstring("127.0.0.1:1/app")))
		g.Expect(IsUnavailable(err)).To(BeTrue())
		g.Expect(errors.Is(err, context.Canceled)).To(BeTrue())
	}
}
