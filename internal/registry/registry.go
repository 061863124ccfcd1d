// Package registry reads OCI registries for signature discovery: manifest HEADs, manifests and blobs by
// digest, and referrers listings. Every read is bounded (sizes, counts, time), hash-checked, retried a
// bounded number of times on 429 and 5xx, and counted per HTTP method and status code.
//
// Plain HTTP is used only for registries that match Options.Insecure; go-containerregistry's own
// heuristics (plain HTTP for localhost, loopback and RFC 1918 addresses) are overridden.
package registry

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
)

const (
	defaultRequestTimeout  = 10 * time.Second
	defaultMaxRetries      = 3
	defaultMaxRetryWait    = 30 * time.Second
	defaultMaxManifestSize = 4 << 20
	defaultMaxBlobSize     = 16 << 20
	// defaultMaxReferrers bounds a listing of every artifact type (SBOMs, scans, signatures): what is
	// kept of each descriptor is small, and callers bound what they read of them.
	defaultMaxReferrers = 1024

	// firstBackoff is the wait before the first retry when the registry sends no Retry-After; it
	// doubles on each further retry, up to MaxRetryWait.
	firstBackoff = 500 * time.Millisecond

	// authCacheSize bounds how many repositories keep an authenticated transport (a pinged registry
	// and, for token auth, a bearer token) between calls.
	authCacheSize = 256
	// authCacheTTL makes rotated pull credentials take effect without a restart.
	authCacheTTL = 5 * time.Minute
)

// Options configures a Client. The zero value is usable: anonymous access, HTTPS only, default limits.
type Options struct {
	// Keychain resolves credentials per repository. Nil means anonymous access (authn.DefaultKeychain is
	// not assumed).
	Keychain authn.Keychain

	// Insecure lists registry hosts that may be reached over plain HTTP, as "host" or "host:port"
	// patterns where '*' matches any run of characters other than '.' and ':' (one DNS label, or the
	// port): "127.0.0.1:*", "registry.local:5000", "*.svc.cluster.local:5000". A pattern without a port
	// matches only the host without a port. HTTPS is still tried first. Empty: HTTPS everywhere.
	Insecure []string

	// RequestTimeout bounds each HTTP request, body included (default 10s). Retries get a fresh timeout.
	RequestTimeout time.Duration

	// MaxRetries is how often a request answered with 429, 500, 502, 503 or 504 is repeated (default 3;
	// negative: never). Transport errors (refused connections, timeouts) are not retried.
	MaxRetries int

	// MaxRetryWait caps the wait before a retry (default 30s). A Retry-After asking for longer, or
	// beyond the context's deadline, ends the retries at once.
	MaxRetryWait time.Duration

	// MaxManifestSize is the largest manifest or referrers listing read, in bytes (default 4 MiB).
	MaxManifestSize int64

	// MaxBlobSize is the largest blob read, in bytes (default 16 MiB).
	MaxBlobSize int64

	// MaxReferrers is the most referrer descriptors a listing may hold after filtering by artifact type
	// (default 1024); a longer listing fails with ErrTooMany.
	MaxReferrers int

	// Transport is the base transport (default: a clone of http.DefaultTransport).
	Transport http.RoundTripper

	// Observer, if set, is called once per HTTP response with its method and status code, and with code
	// 0 when a request got no response (transport error). Token and ping requests are included, but not
	// the losing half of the HTTPS/HTTP probe of an Insecure host (the HTTPS ping of a plain-HTTP
	// registry, or the ping the other scheme beat): it is no failure of the registry. It must be safe
	// for concurrent use.
	Observer func(method string, code int)

	// UserAgent is prepended to go-containerregistry's User-Agent header.
	UserAgent string

	// Clock times retries, Retry-After and the cache of authenticated transports (default: the real
	// clock).
	Clock clock.Clock
}

// RequestKey identifies a counter of Client.Requests: an HTTP method and a status code (0 for a
// request that got no response).
type RequestKey struct {
	Method string
	Code   int
}

// Client reads registries as configured by Options. It is safe for concurrent use.
type Client struct {
	opts     Options
	insecure hostMatcher
	base     http.RoundTripper // retrying, counting transport under the auth transports

	// auth caches authenticated transports by repository name.
	auth *lru.Cache
	// tagIndexes caches referrers fallback indexes by repository and manifest digest.
	tagIndexes *lru.Cache

	// now and sleep come from Options.Clock; tests that must not wait replace sleep.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	requests map[RequestKey]int
}

// authEntry is an authenticated transport and when it was made.
type authEntry struct {
	rt      http.RoundTripper
	created time.Time
}

// New returns a Client for opts, with defaults filled in.
func New(opts Options) *Client {
	opts = withDefaults(opts)
	c := &Client{
		opts:       opts,
		insecure:   newHostMatcher(opts.Insecure),
		auth:       lru.New(authCacheSize),
		tagIndexes: lru.New(4096),
		now:        opts.Clock.Now,
		sleep:      sleepOn(opts.Clock),
		requests:   map[RequestKey]int{},
	}
	c.base = transport.NewUserAgent(&retryTransport{
		inner:      opts.Transport,
		insecure:   c.insecure,
		timeout:    opts.RequestTimeout,
		maxRetries: opts.MaxRetries,
		maxWait:    opts.MaxRetryWait,
		now:        func() time.Time { return c.now() },
		sleep:      func(ctx context.Context, d time.Duration) error { return c.sleep(ctx, d) },
		observe:    c.observe,
	}, opts.UserAgent)
	return c
}

func withDefaults(o Options) Options {
	if o.Keychain == nil {
		o.Keychain = anonymous{}
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = defaultRequestTimeout
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = defaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	if o.MaxRetryWait <= 0 {
		o.MaxRetryWait = defaultMaxRetryWait
	}
	if o.MaxManifestSize <= 0 {
		o.MaxManifestSize = defaultMaxManifestSize
	}
	if o.MaxBlobSize <= 0 {
		o.MaxBlobSize = defaultMaxBlobSize
	}
	if o.MaxReferrers <= 0 {
		o.MaxReferrers = defaultMaxReferrers
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			o.Transport = t.Clone() // a connection pool of its own
		}
	}
	return o
}

// anonymous is the keychain used when Options.Keychain is nil.
type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

// Requests returns a copy of the request counters: how many HTTP responses were seen per method and
// status code, retries and token requests included.
func (c *Client) Requests() map[RequestKey]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[RequestKey]int, len(c.requests))
	for k, v := range c.requests {
		out[k] = v
	}
	return out
}

func (c *Client) observe(method string, code int) {
	c.mu.Lock()
	c.requests[RequestKey{Method: method, Code: code}]++
	c.mu.Unlock()
	if c.opts.Observer != nil {
		c.opts.Observer(method, code)
	}
}

// Credentials are the registry credentials of one request, for example the pull secrets of the pods
// that run an image. The zero value means Options.Keychain.
type Credentials struct {
	// Keychain resolves the credentials per repository (nil: Options.Keychain).
	Keychain authn.Keychain
	// ID names the credentials Keychain holds (for example a hash of the pull secrets and their resource
	// versions). It keys the cache of authenticated transports: requests with other credentials never
	// reuse a transport, so it must differ whenever the credentials do. With an empty ID, nothing is
	// cached for Keychain (every request authenticates).
	ID string
}

// Reader reads registries with one set of credentials. Get one from Client.With; it is cheap and safe
// for concurrent use.
type Reader struct {
	*Client
	creds Credentials
}

// With returns a Reader whose requests use creds.
func (c *Client) With(creds Credentials) *Reader { return &Reader{Client: c, creds: creds} }

// client returns an HTTP client authenticated with creds for pulling from repo, pinging the registry and
// fetching a token when no recent one is cached.
func (c *Client) client(ctx context.Context, creds Credentials, repo name.Repository) (*http.Client, error) {
	keychain := c.opts.Keychain
	if creds.Keychain != nil {
		keychain = creds.Keychain
	}
	key := authKey(creds, repo)
	// A keychain without an ID cannot be told from another: its transports are never cached.
	cacheable := creds.Keychain == nil || creds.ID != ""
	if v, ok := c.auth.Get(key); ok && cacheable {
		e := v.(authEntry)
		if c.now().Sub(e.created) < authCacheTTL {
			return httpClient(e.rt, c.insecure), nil
		}
		c.auth.Remove(key)
	}
	repo = c.secure(repo)
	auth, err := keychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("resolving credentials for %s: %w", repo, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, c.base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("authenticating to %s: %w", repo, classifySetup(err))
	}
	if cacheable {
		c.auth.Add(key, authEntry{rt: rt, created: c.now()})
	}
	return httpClient(rt, c.insecure), nil
}

// maxRedirects bounds the redirects followed for one request.
const maxRedirects = 3

// httpClient returns a client over rt that follows redirects of reads (GET and HEAD) a bounded number of
// times, and only to HTTPS (or to a host listed as insecure). Registries send blob downloads to their
// storage, and some (registry.k8s.io) send every request to the registry behind them; what comes back
// is checked against its digest all the same. Credentials are not sent to another host.
func httpClient(rt http.RoundTripper, insecure hostMatcher) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		first := via[0]
		switch {
		case first.Method != http.MethodGet && first.Method != http.MethodHead:
			return fmt.Errorf("refusing to follow a redirect of %s %s", first.Method, first.URL.Redacted())
		case len(via) > maxRedirects:
			return fmt.Errorf("refusing to follow more than %d redirects for %s", maxRedirects, first.URL.Redacted())
		case req.URL.Scheme != "https" && !insecure.match(req.URL.Host):
			return fmt.Errorf("refusing to follow a redirect to %s: not HTTPS", req.URL.Redacted())
		}
		return nil
	}}
}

// forget drops the cached transport of repo for creds, so that the next call authenticates again.
func (c *Client) forget(creds Credentials, repo name.Repository) {
	c.auth.Remove(authKey(creds, repo))
}

// authKey keys the cache of authenticated transports by credentials and repository. The default
// keychain's transports are never shared with a request's own credentials, whatever their ID.
func authKey(creds Credentials, repo name.Repository) string {
	if creds.Keychain == nil {
		return "default|" + repo.Name()
	}
	return "creds:" + creds.ID + "|" + repo.Name()
}

// Head is Reader.Head with Options.Keychain.
func (c *Client) Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	return c.With(Credentials{}).Head(ctx, ref)
}

// Manifest is Reader.Manifest with Options.Keychain.
func (c *Client) Manifest(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, types.MediaType, error) {
	return c.With(Credentials{}).Manifest(ctx, repo, digest, limit)
}

// Blob is Reader.Blob with Options.Keychain.
func (c *Client) Blob(ctx context.Context, repo name.Repository, digest v1.Hash, limit int64) ([]byte, error) {
	return c.With(Credentials{}).Blob(ctx, repo, digest, limit)
}

// Referrers is Reader.Referrers with Options.Keychain.
func (c *Client) Referrers(ctx context.Context, repo name.Repository, digest v1.Hash, artifactType string) ([]v1.Descriptor, error) {
	return c.With(Credentials{}).Referrers(ctx, repo, digest, artifactType)
}

// secure returns repo marked insecure exactly when its registry matches Options.Insecure. The mark
// only lets the ping fall back to HTTP; retryTransport refuses HTTP to every other host, which also
// overrides go-containerregistry's plain-HTTP heuristic for loopback and private addresses.
func (c *Client) secure(repo name.Repository) name.Repository {
	if !c.insecure.match(repo.RegistryStr()) {
		return repo
	}
	reg, err := name.NewRegistry(repo.RegistryStr(), name.Insecure)
	if err != nil {
		return repo
	}
	repo.Registry = reg
	return repo
}

// apiURL returns the HTTPS URL of a registry API path in repo; the auth transport switches it to HTTP
// when the ping found the registry only speaks HTTP (allowed only for Insecure hosts).
func apiURL(repo name.Repository, kind, id string) string {
	return fmt.Sprintf("https://%s/v2/%s/%s/%s", repo.RegistryStr(), repo.RepositoryStr(), kind, id)
}
