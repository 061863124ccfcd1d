//go:build e2e

package fault

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of fault the proxy injects.
const (
	fault5xx      = "5xx"
	fault429      = "429"
	faultReset    = "reset"
	faultStall    = "stall"
	faultTruncate = "truncate"
)

// proxy stands between the manager and the registry. While faulty, it answers a share of requests
// with a fault: 500/502/503, 429 with Retry-After, a reset connection, a 5-second stall before the real
// answer, or half of the real answer's body (cut off, or cut cleanly with a matching Content-Length).
type proxy struct {
	target *httputil.ReverseProxy
	server *http.Server
	Host   string

	faulty atomic.Bool
	share  float64

	mu       sync.Mutex
	rng      *rand.Rand
	requests int
	faults   map[string]int
}

func startProxy(upstream string, share float64) (*proxy, error) {
	u, err := url.Parse("http://" + upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{target: httputil.NewSingleHostReverseProxy(u), Host: ln.Addr().String(), share: share,
		rng: rand.New(rand.NewPCG(1, 2)), faults: map[string]int{}}
	p.server = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.server.Serve(ln) }()
	return p, nil
}

func (p *proxy) stop() { _ = p.server.Close() }

// pick counts the request and decides its fault ("" for none).
func (p *proxy) pick() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if !p.faulty.Load() || p.rng.Float64() >= p.share {
		return ""
	}
	kind := []string{fault5xx, fault429, faultReset, faultStall, faultTruncate}[p.rng.IntN(5)]
	p.faults[kind]++
	return kind
}

func (p *proxy) counts() (requests int, faults map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.faults {
		out[k] = v
	}
	return p.requests, out
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p.pick() {
	case fault5xx:
		w.WriteHeader([]int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[p.intn(3)])
	case fault429:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case faultReset:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			if tcp, ok := conn.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // RST, not FIN
			}
			_ = conn.Close()
		}
	case faultStall:
		select {
		case <-time.After(5 * time.Second):
			p.target.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	case faultTruncate:
		rec := &captured{header: http.Header{}}
		p.target.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		half := rec.body[:len(rec.body)/2]
		if p.intn(2) == 0 {
			// Cut cleanly: the headers announce the short body, which arrives whole, and is wrong
			// (it does not match its digest, or does not parse).
			w.Header().Set("Content-Length", strconv.Itoa(len(half)))
			w.WriteHeader(rec.code)
			_, _ = w.Write(half)
			return
		}
		// Cut off: the headers announce the whole body, and the connection ends halfway.
		w.Header().Set("Content-Length", strconv.Itoa(len(rec.body)))
		w.WriteHeader(rec.code)
		_, _ = w.Write(half)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
	default:
		p.target.ServeHTTP(w, r)
	}
}

func (p *proxy) intn(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.IntN(n)
}

// captured is a whole upstream answer.
type captured struct {
	header http.Header
	code   int
	body   []byte
}

func (r *captured) Header() http.Header { return r.header }
func (r *captured) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *captured) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.body = append(r.body, b...)
	return len(b), nil
}

var _ io.Writer = (*captured)(nil)
