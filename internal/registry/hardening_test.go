package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	. "github.com/onsi/gomega"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// TestGzipIsNotInflated: a registry that answers with a gzip body (a few KiB on the wire for MiBs of
// content) must not have it inflated under the size checks: the client asks for identity encoding, and
// a gzip body is what it hashes, so it does not match the digest.
func TestGzipIsNotInflated(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	content := make([]byte, 8<<20)
	sum := sha256.Sum256(content)
	digest := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(content)
	_ = zw.Close()
	g.Expect(gz.Len()).To(BeNumerically("<", 64<<10), "a bomb: small on the wire")

	var mu sync.Mutex
	var acceptEncoding []string
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodGet, "/blobs/"+digest.String()) {
			return false
		}
		mu.Lock()
		acceptEncoding = append(acceptEncoding, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(gz.Bytes())
		return true
	})
	c, _ := newTestClient(Options{})
	b, err := c.Blob(context.Background(), repo, digest, 0)
	g.Expect(err).To(MatchError(ErrDigestMismatch), "the gzip body itself was hashed, not 8 MiB of inflated content")
	g.Expect(b).To(BeNil())
	g.Expect(acceptEncoding).To(ConsistOf("identity"))
}

// TestRedirectsAreBounded: registries redirect blob downloads to their storage, and some (registry.k8s.io)
// every read to the registry behind them; redirects are followed, but never to plain HTTP on a host not
// listed as insecure, and only a few times.
func TestRedirectsAreBounded(t *testing.T) {
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	img := testregistry.RandomImage(t, 1<<10)
	reg.PushTag(t, "app", "v1", img)
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()
	manifestDigest := mustDigest(t, img)

	redirect := func(from, to string, times int) {
		var mu sync.Mutex
		n := 0
		reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.HasSuffix(r.URL.Path, from) && r.URL.Query().Get("hop") == "" || r.URL.Query().Get("hop") != "" && n < times {
				n++
				http.Redirect(w, r, to+"?hop="+strings.Repeat("x", n), http.StatusTemporaryRedirect)
				return true
			}
			return false
		})
	}
	blobPath := "/v2/app/blobs/" + layerDigest.String()
	cases := []struct {
		name    string
		setup   func()
		read    func(c *Client) error
		wantErr string
	}{
		{name: "a blob redirected on the same (insecure) host is followed", setup: func() {
			redirect("/blobs/"+layerDigest.String(), blobPath, 1)
		}, read: func(c *Client) error { _, err := c.Blob(context.Background(), repo, layerDigest, 0); return err }},
		{name: "a blob redirected to plain HTTP elsewhere is refused", setup: func() {
			redirect("/blobs/"+layerDigest.String(), "http://storage.example"+blobPath, 1)
		}, read: func(c *Client) error { _, err := c.Blob(context.Background(), repo, layerDigest, 0); return err },
			wantErr: "not HTTPS"},
		{name: "a blob redirected more than three times is refused", setup: func() {
			redirect("/blobs/"+layerDigest.String(), blobPath, 10)
		}, read: func(c *Client) error { _, err := c.Blob(context.Background(), repo, layerDigest, 0); return err },
			wantErr: "more than 3 redirects"},
		{name: "a manifest redirected on the same (insecure) host is followed", setup: func() {
			redirect("/manifests/"+manifestDigest.String(), "/v2/app/manifests/"+manifestDigest.String(), 1)
		}, read: func(c *Client) error {
			_, _, err := c.Manifest(context.Background(), repo, manifestDigest, 0)
			return err
		}},
		{name: "a manifest redirected to plain HTTP elsewhere is refused", setup: func() {
			redirect("/manifests/"+manifestDigest.String(), "http://registry.example/v2/app/manifests/"+manifestDigest.String(), 1)
		}, read: func(c *Client) error {
			_, _, err := c.Manifest(context.Background(), repo, manifestDigest, 0)
			return err
		}, wantErr: "not HTTPS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			reg.ClearIntercepts()
			tc.setup()
			c, _ := newTestClient(Options{})
			err := tc.read(c)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
		})
	}
}

// TestErrorBodiesAreShortAndClean: a registry's error body is its own words; at most a short snippet
// without control characters reaches an error message (and from there a status or an Event).
func TestErrorBodiesAreShortAndClean(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	repo := reg.Repository(t, "app")
	digest := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	body := strings.Repeat("FAKE: image verified\r\n\x1b[31m", 2000)
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodGet, "/blobs/"+digest.String()) {
			return false
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(body))
		return true
	})
	c, _ := newTestClient(Options{MaxRetries: -1})
	_, err := c.Blob(context.Background(), repo, digest, 0)
	g.Expect(err).To(HaveOccurred())
	g.Expect(IsUnavailable(err)).To(BeTrue())
	msg := err.Error()
	g.Expect(len(msg)).To(BeNumerically("<", 600), msg)
	g.Expect(msg).To(ContainSubstring("500"))
	g.Expect(strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) })).To(Equal(-1), "no control characters: %q", msg)
}

func TestSnippet(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\r\n\tb", 10, "a b"},
		{"a    b", 10, "a b"},
		{"\x1b[31mred", 10, "[31mred"},
		{"0123456789abc", 10, "0123456789…"},
		{"ééééé", 5, "éé…"},
		{"bad\xffutf8", 20, "bad utf8"},
	}
	for _, tc := range cases {
		NewWithT(t).Expect(Snippet(tc.in, tc.n)).To(Equal(tc.want), "%q", tc.in)
	}
}

// TestListingKeepsOnlyWhatDiscoveryReads: a listing's descriptors are unsigned; of their annotations only
// the bundle predicate type is kept (and only when short), and data, URLs and platforms never.
func TestListingKeepsOnlyWhatDiscoveryReads(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, true)
	repo := reg.Repository(t, "app")
	subject := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	d1 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("01", 32)}
	d2 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("02", 32)}
	listing := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
		{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1.String() + `","size":700,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json",
		 "data":"` + strings.Repeat("QUFB", 1000) + `","urls":["https://evil.example/x"],"platform":{"os":"linux","architecture":"amd64"},
		 "annotations":{"dev.sigstore.bundle.predicateType":"https://sigstore.dev/cosign/sign/v1","junk":"` + strings.Repeat("y", 4000) + `","a":"b"}},
		{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d2.String() + `","size":700,"artifactType":"application/spdx+json",
		 "annotations":{"dev.sigstore.bundle.predicateType":"` + strings.Repeat("p", 600) + `"}}]}`
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !isPath(r, http.MethodGet, "/referrers/"+subject.String()) {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		_, _ = w.Write([]byte(listing))
		return true
	})
	c, _ := newTestClient(Options{})
	descs, err := c.Referrers(context.Background(), repo, subject, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(descs).To(HaveLen(2))
	g.Expect(descs[0].Annotations).To(Equal(map[string]string{AnnotationBundlePredicate: "https://sigstore.dev/cosign/sign/v1"}))
	g.Expect(descs[0].Data).To(BeNil())
	g.Expect(descs[0].URLs).To(BeNil())
	g.Expect(descs[0].Platform).To(BeNil())
	g.Expect(descs[1].Annotations).To(BeNil(), "a predicate type longer than any real one is not kept")
}
