package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

// retryTransport sits under go-containerregistry's auth transports, so it sees every real request,
// pings and token requests included. It refuses plain HTTP to hosts that are not Insecure, gives each
// attempt its own timeout, reports every response to observe (and every request that got none, but the
// losing half of a scheme probe), and retries GET and HEAD requests
// answered with 429 or a temporary 5xx, honouring Retry-After.
type retryTransport struct {
	inner      http.RoundTripper
	insecure   hostMatcher
	timeout    time.Duration
	maxRetries int
	maxWait    time.Duration
	now        func() time.Time
	sleep      func(ctx context.Context, d time.Duration) error
	observe    func(method string, code int)
}

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !t.insecure.match(req.URL.Host) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: the host is not listed as insecure", req.URL.Host)
	}
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead
	for attempt := 0; ; attempt++ {
		resp, err := t.once(req)
		if err != nil {
			return nil, err
		}
		if !idempotent || attempt >= t.maxRetries || !retryable(resp.StatusCode) {
			return resp, nil
		}
		wait, ok := t.wait(req.Context(), attempt, resp.Header.Get("Retry-After"))
		if !ok {
			return resp, nil
		}
		discard(resp)
		if err := t.sleep(req.Context(), wait); err != nil {
			return nil, fmt.Errorf("waiting to retry %s %s after status %d: %w", req.Method, req.URL.Redacted(), resp.StatusCode, err)
		}
	}
}

// once sends one attempt under its own timeout, which ends when the response body is closed.
func (t *retryTransport) once(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	out := req.Clone(ctx)
	// Bodies are counted and capped as they arrive: a registry must not send a few KiB of gzip that
	// the transport would quietly inflate (an explicit Accept-Encoding turns that off).
	out.Header.Set("Accept-Encoding", "identity")
	resp, err := t.inner.RoundTrip(out)
	if err != nil {
		cancel()
		if !t.schemeProbe(req, err) {
			t.observe(req.Method, 0)
		}
		return nil, err
	}
	t.observe(req.Method, resp.StatusCode)
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// schemeProbe reports whether a request that got no response was the losing half of the scheme probe
// of a host listed as insecure, rather than a failure of the registry: go-containerregistry pings such a
// host over HTTPS and plain HTTP at once and keeps the scheme that answers. The HTTPS ping of a registry
// that speaks plain HTTP meets a plain-HTTP answer to its TLS handshake, and the ping that the other
// scheme beat is cancelled; neither is a request the registry failed. Counting them made every healthy
// plain-HTTP registry show code 0 ("no response") requests.
func (t *retryTransport) schemeProbe(req *http.Request, err error) bool {
	if req.Method != http.MethodGet || req.URL.Path != "/v2/" || !t.insecure.match(req.URL.Host) {
		return false
	}
	var header tls.RecordHeaderError
	if req.URL.Scheme == "https" && errors.As(err, &header) && string(header.RecordHeader[:]) == "HTTP/" {
		return true
	}
	return errors.Is(req.Context().Err(), context.Canceled)
}

// wait returns how long to wait before retry number attempt+1: Retry-After when the registry sent one,
// else an exponential backoff. It returns false when the wait exceeds maxWait or the context's deadline.
func (t *retryTransport) wait(ctx context.Context, attempt int, retryAfter string) (time.Duration, bool) {
	d, ok := parseRetryAfter(retryAfter, t.now())
	if !ok {
		d = firstBackoff << attempt
		if d > t.maxWait || d <= 0 {
			d = t.maxWait
		}
	}
	if d > t.maxWait {
		return 0, false
	}
	if deadline, ok := ctx.Deadline(); ok && t.now().Add(d).After(deadline) {
		return 0, false
	}
	return d, true
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > int64(time.Hour/time.Second)*24 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	when, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(when.Sub(now), 0), true
}

// retryable reports whether a status is worth another attempt.
func retryable(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// discard reads a little of a response body, so the connection can be reused, and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// cancelOnClose ends a request's timeout context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// sleepOn returns a function that waits on clk for d or until ctx is done.
func sleepOn(clk clock.Clock) func(ctx context.Context, d time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		timer := clk.NewTimer(d)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C():
			return nil
		}
	}
}
