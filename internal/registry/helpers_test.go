package registry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// testRegistry is go-containerregistry's in-process registry on loopback, behind a handler that
// records requests and can inject faults.
type testRegistry struct {
	srv  *httptest.Server
	host string

	mu    sync.Mutex
	fault func(w http.ResponseWriter, r *http.Request) bool // true: the fault answered
	seen  []string                                          // "METHOD /path?query"
}

func newTestRegistry(t testing.TB, referrers bool) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	reg := registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.seen = append(tr.seen, r.Method+" "+r.URL.RequestURI())
		fault := tr.fault
		tr.mu.Unlock()
		if fault != nil && fault(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// setFault installs f for the following requests; nil removes it.
func (tr *testRegistry) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.fault = f
}

// requests returns the requests the registry received so far and forgets them.
func (tr *testRegistry) requests() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	seen := tr.seen
	tr.seen = nil
	return seen
}

func (tr *testRegistry) repo(t testing.TB, path string) name.Repository {
	t.Helper()
	repo, err := name.NewRepository(tr.host + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// pushImage pushes a random image with one layer of layerSize bytes under tag.
func (tr *testRegistry) pushImage(t testing.TB, repo name.Repository, tag string, layerSize int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag(tag), img); err != nil {
		t.Fatal(err)
	}
	return img
}

// pushReferrer pushes an OCI artifact whose subject is subject and whose artifact type (config media
// type, which go-containerregistry's registry reports) is artifactType. note makes each one distinct.
func (tr *testRegistry) pushReferrer(t testing.TB, repo name.Repository, subject v1.Image, artifactType, note string) v1.Hash {
	t.Helper()
	d, err := subject.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := subject.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := subject.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.MediaType(artifactType))
	img = mutate.Annotations(img, map[string]string{"note": note}).(v1.Image)
	img = mutate.Subject(img, v1.Descriptor{MediaType: mt, Digest: d, Size: size}).(v1.Image)
	ad, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Digest(ad.String()), img); err != nil {
		t.Fatal(err)
	}
	return ad
}

// sleepRecorder replaces Client.sleep: it records waits and returns at once.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// newTestClient returns a Client that may use plain HTTP to loopback and does not really sleep.
func newTestClient(opts Options) (*Client, *sleepRecorder) {
	if opts.Insecure == nil {
		opts.Insecure = []string{"127.0.0.1:*"}
	}
	c := New(opts)
	s := &sleepRecorder{}
	c.sleep = s.sleep
	return c, s
}

func mustDigest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustManifest(t testing.TB, img v1.Image) []byte {
	t.Helper()
	b, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// isPath reports whether r is a method request for a path ending in suffix.
func isPath(r *http.Request, method, suffix string) bool {
	return r.Method == method && strings.HasSuffix(r.URL.Path, suffix)
}

func parseRef(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
