package trust

import (
	"context"
	"sync"
	"time"
)

// Refresh periods of PublicGoodCache.
const (
	// DefaultRefresh is how long a root that TUF delivered is kept.
	DefaultRefresh = 24 * time.Hour
	// DefaultFallbackRetry is how soon TUF is tried again while the embedded snapshot stands in for it.
	DefaultFallbackRetry = 10 * time.Minute
)

// PublicGoodCache loads the public-good trust root once (PublicGood) and refreshes it: after Refresh once
// TUF delivered it, after FallbackRetry while the embedded snapshot stands in for TUF (never sooner than
// Refresh when Options.Offline asks for the snapshot). It is safe for concurrent use; the zero value
// with Options set is ready.
type PublicGoodCache struct {
	Options PublicGoodOptions
	// Refresh and FallbackRetry default to DefaultRefresh and DefaultFallbackRetry.
	Refresh, FallbackRetry time.Duration
	// Warn, if set, is told why TUF failed (the snapshot is used meanwhile).
	Warn func(err error)
	// Now is the clock (default time.Now).
	Now func() time.Time

	// load is PublicGood; tests of this package replace it.
	load func(ctx context.Context, opts PublicGoodOptions) (*Root, error)

	mu    sync.Mutex
	root  *Root
	until time.Time // when to load again
}

// Get returns the current public-good root. The error is set only when no root at all could be had. A
// root that TUF delivered is never replaced by the older embedded snapshot when a later TUF update
// fails: it is kept, and TUF tried again after FallbackRetry.
func (c *PublicGoodCache) Get(ctx context.Context) (*Root, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if c.root != nil && now().Before(c.until) {
		return c.root, nil
	}
	load := PublicGood
	if c.load != nil {
		load = c.load
	}
	r, err := load(ctx, c.Options)
	if err != nil && c.Warn != nil {
		c.Warn(err)
	}
	switch {
	case r == nil && c.root == nil:
		return nil, err
	case r == nil, r.Source == SourceEmbedded && c.root.isTUF():
		// Keep what we have (a broken build, or a fallback after TUF worked).
		c.until = now().Add(c.retry())
		return c.root, nil
	case r.Source == SourceEmbedded && !c.Options.Offline:
		c.root, c.until = r, now().Add(c.retry())
	default:
		c.root, c.until = r, now().Add(c.refresh())
	}
	return c.root, nil
}

func (r *Root) isTUF() bool { return r != nil && r.Source == SourceTUF }

func (c *PublicGoodCache) retry() time.Duration {
	if c.FallbackRetry > 0 {
		return c.FallbackRetry
	}
	return DefaultFallbackRetry
}

func (c *PublicGoodCache) refresh() time.Duration {
	if c.Refresh > 0 {
		return c.Refresh
	}
	return DefaultRefresh
}
