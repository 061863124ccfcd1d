package trust

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// firstRetry is how long the error of a first load that failed stands before the next caller tries again.
const firstRetry = 30 * time.Second

// Refresh periods of PublicGoodCache.
const (
	// DefaultRefresh is how long a root that TUF delivered is kept.
	DefaultRefresh = 24 * time.Hour
	// DefaultFallbackRetry is how soon TUF is tried again while the embedded snapshot stands in for it.
	DefaultFallbackRetry = 10 * time.Minute
)

// PublicGoodCache loads the public-good trust root once (PublicGood) and refreshes it: after Refresh once
// TUF delivered it, after FallbackRetry while the embedded snapshot stands in for TUF (never sooner than
// Refresh when Options.Offline asks for the snapshot). Only the first load is waited for: later
// refreshes run in the background while Get keeps answering with the current root. It is safe for
// concurrent use; the zero value with Options set is ready.
type PublicGoodCache struct {
	Options PublicGoodOptions
	// Refresh and FallbackRetry default to DefaultRefresh and DefaultFallbackRetry.
	Refresh, FallbackRetry time.Duration
	// MaxAge, if set, bounds how old a root standing in for a current one (TUF failed) may be and still
	// be used: the last root from TUF counts from when TUF delivered it, the embedded snapshot from its
	// own date (SnapshotDate). Past it, Get fails (TrustedRootUnavailable) instead of trusting material
	// that may have been rotated out. A current root, and the snapshot asked for with Options.Offline,
	// are never too old.
	MaxAge time.Duration
	// Warn, if set, is told why TUF failed (the snapshot is used meanwhile).
	Warn func(err error)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Loader, if set, loads the root instead of PublicGood: a private Sigstore's TUF repository (FromTUF),
	// which has no snapshot to fall back to. A failure keeps the last root it delivered, bounded by
	// MaxAge, as for the public-good root. Name then names it in messages ("public-good" when unset).
	Loader func(ctx context.Context) (*Root, error)
	Name   string

	// load is PublicGood; tests of this package replace it. background runs a refresh (default: in a
	// goroutine); tests run it inline.
	load       func(ctx context.Context, opts PublicGoodOptions) (*Root, error)
	background func(func())

	mu         sync.Mutex
	root       *Root
	delivered  time.Time // when TUF last delivered root (zero for the snapshot)
	until      time.Time // when to load again
	lastErr    error     // why the last TUF attempt failed (nil: it did not)
	refreshing bool
}

// PublicGoodStatus describes the public-good root in use, for conditions and metrics.
type PublicGoodStatus struct {
	// Source is SourceTUF or SourceEmbedded ("" before the first load).
	Source string
	// Fallback is set when the embedded snapshot, or an older root from TUF, stands in because TUF
	// failed; FallbackReason says why.
	Fallback       bool
	FallbackReason string
	// Age is how old the root in use is (see PublicGoodCache.MaxAge).
	Age time.Duration
}

// Get returns the current public-good root. The error is set only when no root could be had, or the one
// there is is older than MaxAge. A root that TUF delivered is never replaced by the older embedded
// snapshot when a later TUF update fails: it is kept, and TUF tried again after FallbackRetry.
func (c *PublicGoodCache) Get(ctx context.Context) (*Root, error) {
	c.mu.Lock()
	if c.root == nil {
		// A first load that failed is not tried again by every caller (a repository that is down would
		// hold each for its timeout): its error stands until firstRetry has passed.
		if c.lastErr != nil && c.now().Before(c.until) {
			err := c.lastErr
			c.mu.Unlock()
			return nil, err
		}
		if err := c.loadLocked(ctx); err != nil {
			c.mu.Unlock()
			return nil, err
		}
	}
	due := !c.now().Before(c.until) && !c.refreshing
	c.refreshing = c.refreshing || due
	r, err := c.root, c.tooOldLocked()
	if st := c.statusLocked(); st.Fallback {
		fallback := *r
		fallback.Fallback = st.FallbackReason
		r = &fallback
	}
	c.mu.Unlock()
	if due {
		run := c.background
		if run == nil {
			run = func(f func()) { go f() }
		}
		run(func() {
			// Not the caller's context: the refresh outlives the verification that noticed it was due.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c.mu.Lock()
			defer c.mu.Unlock()
			_ = c.loadLocked(ctx)
			c.refreshing = false
		})
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// tooOldLocked says why the root in use may not be used any more (nil when it may).
func (c *PublicGoodCache) tooOldLocked() error {
	st := c.statusLocked()
	if c.MaxAge <= 0 || !st.Fallback || st.Age <= c.MaxAge {
		return nil // a current root is never too old: only one standing in for it is
	}
	why := "TUF delivered nothing newer"
	if st.FallbackReason != "" {
		why = st.FallbackReason
	}
	return fmt.Errorf("the %s trust root in use (%s) is %s old, more than the %s allowed: %s",
		c.name(), st.Source, st.Age.Round(time.Hour), c.MaxAge, why)
}

// loadLocked loads the root once. Called with c.mu held; the lock is released while TUF is asked, so
// that Get keeps answering, and taken again to store the result.
func (c *PublicGoodCache) loadLocked(ctx context.Context) error {
	load := PublicGood
	switch {
	case c.load != nil:
		load = c.load
	case c.Loader != nil:
		load = func(ctx context.Context, _ PublicGoodOptions) (*Root, error) { return c.Loader(ctx) }
	}
	first := c.root == nil
	if !first {
		c.mu.Unlock()
	}
	r, err := load(ctx, c.Options)
	if !first {
		c.mu.Lock()
	}
	if err != nil && c.Warn != nil {
		c.Warn(err)
	}
	c.lastErr = err
	now := c.now()
	switch {
	case r == nil && c.root == nil:
		c.until = now.Add(firstRetry)
		return err
	case r == nil, r.Source == SourceEmbedded && c.root.isTUF():
		// Keep what we have (a broken build, or a fallback after TUF worked).
		c.until = now.Add(c.retry())
	case r.Source == SourceEmbedded && !c.Options.Offline:
		c.root, c.delivered, c.until = r, time.Time{}, now.Add(c.retry())
	default:
		c.root, c.until = r, now.Add(c.refresh())
		if r.isTUF() {
			c.delivered = now
		}
	}
	return nil
}

// Status describes the root in use.
func (c *PublicGoodCache) Status() PublicGoodStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusLocked()
}

func (c *PublicGoodCache) statusLocked() PublicGoodStatus {
	if c.root == nil {
		return PublicGoodStatus{}
	}
	st := PublicGoodStatus{Source: c.root.Source, Fallback: c.lastErr != nil && !c.Options.Offline}
	if st.Fallback {
		st.FallbackReason = c.lastErr.Error()
		if c.root.isTUF() {
			st.FallbackReason = fmt.Sprintf("%v; the root TUF delivered at %s is kept", c.lastErr, c.delivered.UTC().Format(time.RFC3339))
		}
	}
	if c.root.isTUF() {
		st.Age = c.now().Sub(c.delivered)
	} else {
		st.Age = c.now().Sub(SnapshotDate(c.root))
	}
	return st
}

// SnapshotDate is the date of a trust root's newest material: the latest start of validity of its
// logs, certificate authorities and timestamp authorities.
func SnapshotDate(r *Root) time.Time {
	var latest time.Time
	later := func(t time.Time) {
		if t.After(latest) {
			latest = t
		}
	}
	for _, l := range r.Material.RekorLogs() {
		later(l.ValidityPeriodStart)
	}
	for _, l := range r.Material.CTLogs() {
		later(l.ValidityPeriodStart)
	}
	for _, ca := range r.Material.FulcioCertificateAuthorities() {
		if f, ok := ca.(*root.FulcioCertificateAuthority); ok {
			later(f.ValidityPeriodStart)
		}
	}
	for _, ta := range r.Material.TimestampingAuthorities() {
		if s, ok := ta.(*root.SigstoreTimestampingAuthority); ok {
			later(s.ValidityPeriodStart)
		}
	}
	return latest
}

func (c *PublicGoodCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// isTUF reports whether a TUF repository delivered the root (anything but the embedded snapshot).
func (r *Root) isTUF() bool { return r != nil && r.Source != SourceEmbedded }

func (c *PublicGoodCache) name() string {
	if c.Name != "" {
		return c.Name
	}
	return "public-good"
}

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
