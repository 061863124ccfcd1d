package registry

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	. "github.com/onsi/gomega"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// observed records what Options.Observer is told.
type observed struct {
	mu    sync.Mutex
	codes map[RequestKey]int
}

func (o *observed) observe(method string, code int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.codes == nil {
		o.codes = map[RequestKey]int{}
	}
	o.codes[RequestKey{Method: method, Code: code}]++
}

func (o *observed) get() map[RequestKey]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[RequestKey]int{}
	for k, v := range o.codes {
		out[k] = v
	}
	return out
}

func noResponse(codes map[RequestKey]int) int {
	n := 0
	for k, v := range codes {
		if k.Code == 0 {
			n += v
		}
	}
	return n
}

// TestPlainHTTPRegistryHasNoFailedRequests: reading a healthy plain-HTTP registry listed as insecure
// counts no request without a response. The HTTPS half of go-containerregistry's scheme probe meets a
// plain-HTTP answer: it used to be counted as code 0, which the documented "registry trouble" query
// reads as an outage.
func TestPlainHTTPRegistryHasNoFailedRequests(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, false)
	img := testregistry.RandomImage(t, 256)
	reg.PushTag(t, "app", "v1", img)
	repo := reg.Repository(t, "app")
	var seen observed
	c, _ := newTestClient(Options{Observer: seen.observe})

	desc, err := c.Head(context.Background(), repo.Tag("v1"))
	g.Expect(err).NotTo(HaveOccurred())
	_, _, err = c.Manifest(context.Background(), repo, desc.Digest, 0)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(noResponse(c.Requests())).To(BeZero(), "requests: %v", c.Requests())
	g.Expect(noResponse(seen.get())).To(BeZero(), "observed: %v", seen.get())
	g.Expect(seen.get()).To(HaveKey(RequestKey{Method: http.MethodGet, Code: http.StatusOK}), "the plain-HTTP ping and the manifest are counted")
	g.Expect(seen.get()).To(HaveKeyWithValue(RequestKey{Method: http.MethodHead, Code: http.StatusOK}, 1))
}

// TestUntrustedTLSRegistryPingIsCounted: the excuse is narrow. A registry listed as insecure that speaks
// HTTPS with a certificate the manager does not trust fails its HTTPS ping for a reason worth seeing:
// that ping is counted as a request without a response.
func TestUntrustedTLSRegistryPingIsCounted(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	var seen observed
	c, _ := newTestClient(Options{Observer: seen.observe})
	ref, err := name.ParseReference(host + "/app:v1")
	g.Expect(err).NotTo(HaveOccurred())

	_, err = c.Head(context.Background(), ref)

	g.Expect(IsUnavailable(err)).To(BeTrue(), "%v", err)
	g.Expect(seen.get()).To(HaveKeyWithValue(RequestKey{Method: http.MethodGet, Code: 0}, 1), "the HTTPS ping failed the TLS handshake: %v", seen.get())
}

// TestSchemeProbeOnlyForInsecurePings: what schemeProbe excuses, case by case.
func TestSchemeProbeOnlyForInsecurePings(t *testing.T) {
	plainAnswer := tlsRecordHeaderError("HTTP/")
	cases := []struct {
		name      string
		method    string
		url       string
		err       error
		cancelled bool
		want      bool
	}{
		{"HTTPS ping of an insecure host answered in plain HTTP", http.MethodGet, "https://127.0.0.1:5000/v2/", plainAnswer, false, true},
		{"the ping the other scheme beat", http.MethodGet, "http://127.0.0.1:5000/v2/", context.Canceled, true, true},
		{"a host not listed as insecure", http.MethodGet, "https://registry.example.com/v2/", plainAnswer, false, false},
		{"not a ping", http.MethodGet, "https://127.0.0.1:5000/v2/app/manifests/v1", plainAnswer, false, false},
		{"a HEAD", http.MethodHead, "https://127.0.0.1:5000/v2/", plainAnswer, false, false},
		{"another TLS record", http.MethodGet, "https://127.0.0.1:5000/v2/", tlsRecordHeaderError("\x15\x03\x01\x00\x02"), false, false},
		{"a plain-HTTP ping that got no answer", http.MethodGet, "http://127.0.0.1:5000/v2/", errConnRefused, false, false},
		{"an HTTPS ping that got no answer", http.MethodGet, "https://127.0.0.1:5000/v2/", errConnRefused, false, false},
	}
	tr := &retryTransport{insecure: newHostMatcher([]string{"127.0.0.1:*"})}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			req, err := http.NewRequestWithContext(ctx, tc.method, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.schemeProbe(req, tc.err); got != tc.want {
				t.Errorf("schemeProbe = %v, want %v", got, tc.want)
			}
		})
	}
}

var errConnRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// tlsRecordHeaderError is what crypto/tls returns when the first bytes of an answer are not a TLS record.
func tlsRecordHeaderError(header string) error {
	e := tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}
	copy(e.RecordHeader[:], header)
	return e
}
