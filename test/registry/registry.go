// Package registry runs an in-process OCI registry (go-containerregistry's pkg/registry) on 127.0.0.1 for
// tests, with or without the OCI 1.1 referrers API, and lets tests stop it, restart it on the same
// address, inject faults, count and log the requests it receives, and push images and referrers.
package registry

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxLogged bounds the request log, so that a registry serving for a long time (the demo) does not grow
// without end: reaching it, the log forgets its older half.
const maxLogged = 1 << 16

// Interceptor may answer a request itself (returning true) instead of the registry. Returning false
// passes the request on, to the next interceptor or to the registry.
type Interceptor func(w http.ResponseWriter, r *http.Request) bool

// Registry is a running in-process registry.
type Registry struct {
	// Host is "127.0.0.1:PORT"; it stays the same across Stop and Start.
	Host string

	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
	hooks   []Interceptor
	counts  map[string]int
	log     []string // "METHOD /path?query", oldest first
}

// Start starts a registry; referrers says whether it serves the OCI 1.1 referrers API. It stops when the
// test ends.
func Start(t testing.TB, referrers bool) *Registry {
	t.Helper()
	r, err := Serve(referrers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Serve starts a registry on a free port of 127.0.0.1, outside tests (the demo); Stop stops it.
func Serve(referrers bool) (*Registry, error) {
	var opts []ggcrregistry.Option
	if referrers {
		opts = append(opts, ggcrregistry.WithReferrersSupport(true))
	}
	opts = append(opts, ggcrregistry.Logger(nullLogger()))
	r := &Registry{handler: ggcrregistry.New(opts...), counts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	r.Host = ln.Addr().String()
	r.serve(ln)
	return r, nil
}

func (r *Registry) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.serveHTTP)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.counts[req.Method]++
	r.counts[req.Method+" "+kindOf(req.URL.Path)]++
	if len(r.log) == maxLogged {
		r.log = append(r.log[:0], r.log[maxLogged/2:]...)
	}
	r.log = append(r.log, req.Method+" "+req.URL.RequestURI())
	hooks := append([]Interceptor(nil), r.hooks...)
	r.mu.Unlock()
	for _, h := range hooks {
		if h(w, req) {
			return
		}
	}
	r.handler.ServeHTTP(w, req)
}

// Stop closes the listener and every connection: clients then get "connection refused".
func (r *Registry) Stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart serves again on the same address, with the same content.
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	ln, err := net.Listen("tcp", r.Host)
	if err != nil {
		t.Fatalf("listening again on %s: %v", r.Host, err)
	}
	r.serve(ln)
}

// Intercept adds a hook that sees every request first. Hooks run in the order they were added, after the
// request has been counted and logged; the first that answers ends the request.
func (r *Registry) Intercept(h Interceptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, h)
}

// ClearIntercepts removes every hook.
func (r *Registry) ClearIntercepts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = nil
}

// Requests returns how many requests the registry received (whatever the answer) for a method ("GET"),
// or a method and a kind of path ("GET manifests", "HEAD manifests", "GET blobs", "GET referrers").
func (r *Registry) Requests(methodAndKind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[methodAndKind]
}

// Counts returns a copy of every request count since the start or the last ResetCounts, keyed as Requests
// takes them: by method ("GET") and by method and kind ("GET manifests").
func (r *Registry) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

func kindOf(path string) string {
	for _, k := range []string{"manifests", "blobs", "referrers", "tags"} {
		if strings.Contains(path, "/"+k+"/") {
			return k
		}
	}
	return "other"
}

// ResetCounts zeroes the request counts. It leaves the request log alone.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.counts)
}

// TakeRequestLog returns the requests received since the previous call (or since the start), oldest
// first, each as "METHOD /path?query" ("HEAD /v2/app/manifests/v1"), whatever the answer, and forgets
// them. A test calls it once to forget the requests of its setup, then again to see what the code
// under test sent. The log keeps at most the last 65536 requests.
func (r *Registry) TakeRequestLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.log
	r.log = nil
	return seen
}

// Repo returns "HOST/path".
func (r *Registry) Repo(path string) string { return r.Host + "/" + path }

// Repository returns HOST/path as a name.Repository, or fails the test. It is not marked insecure, so
// that a client under test decides itself whether it may use plain HTTP.
func (r *Registry) Repository(t testing.TB, path string) name.Repository {
	t.Helper()
	repo, err := name.NewRepository(r.Repo(path))
	if err != nil {
		t.Fatalf("repository: %v", err)
	}
	return repo
}

// RandomImage returns a random image with one layer of layerSize bytes, or fails the test.
func RandomImage(t testing.TB, layerSize int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, 1)
	if err != nil {
		t.Fatalf("random image: %v", err)
	}
	return img
}

// PushRandomImage pushes a small random image to HOST/repo and returns its digest reference.
func (r *Registry) PushRandomImage(t testing.TB, repo string) name.Digest {
	t.Helper()
	return r.Push(t, repo, RandomImage(t, 256))
}

// Push pushes an image to HOST/repo (tag "latest") and returns its digest reference.
func (r *Registry) Push(t testing.TB, repo string, img v1.Image) name.Digest {
	t.Helper()
	return r.PushTag(t, repo, "latest", img)
}

// PushTag pushes an image to HOST/repo:tag and returns its digest reference.
func (r *Registry) PushTag(t testing.TB, repo, tag string, img v1.Image) name.Digest {
	t.Helper()
	ref, err := name.NewTag(r.Repo(repo)+":"+tag, name.Insecure)
	if err != nil {
		t.Fatalf("tag: %v", err)
	}
	if err := remote.Write(ref, img, remote.WithContext(context.Background())); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return r.digestRef(t, repo, img)
}

// PushReferrer pushes to HOST/repo, untagged, an OCI artifact whose subject is subject and whose config
// media type is artifactType, and returns its digest. go-containerregistry's registry reports the config
// media type as the artifactType of referrers, and so does its client in the referrers tag (the fallback
// when the registry does not serve the referrers API). note, an annotation, makes artifacts of the same
// type and subject distinct.
func (r *Registry) PushReferrer(t testing.TB, repo string, subject v1.Image, artifactType, note string) v1.Hash {
	t.Helper()
	desc, err := describe(subject)
	if err != nil {
		t.Fatalf("describing the subject: %v", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.MediaType(artifactType))
	img = mutate.Annotations(img, map[string]string{"note": note}).(v1.Image)
	img = mutate.Subject(img, desc).(v1.Image)
	ref := r.digestRef(t, repo, img)
	if err := remote.Write(ref, img, remote.WithContext(context.Background())); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return h
}

// describe returns the descriptor of img: media type, digest and size of its manifest.
func describe(img v1.Image) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: size}, nil
}

// digestRef returns HOST/repo@digest of img.
func (r *Registry) digestRef(t testing.TB, repo string, img v1.Image) name.Digest {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	d, err := name.NewDigest(r.Repo(repo)+"@"+h.String(), name.Insecure)
	if err != nil {
		t.Fatalf("digest ref: %v", err)
	}
	return d
}

// FailManifests makes every manifest request (GET or HEAD) whose path contains match answer status.
func (r *Registry) FailManifests(match string, status int) {
	r.Intercept(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.Contains(req.URL.Path, "/manifests/") && strings.Contains(req.URL.Path, match) {
			http.Error(w, fmt.Sprintf(`{"errors":[{"code":"UNAVAILABLE","message":"injected %d"}]}`, status), status)
			return true
		}
		return false
	})
}

// Blob reads a blob of repo (any registry) as stored, or fails the test.
func Blob(t testing.TB, repo name.Repository, h v1.Hash) []byte {
	t.Helper()
	l, err := remote.Layer(repo.Digest(h.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
