package trust

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestPublicGoodCache(t *testing.T) {
	g := NewWithT(t)
	embedded, err := Embedded()
	g.Expect(err).NotTo(HaveOccurred())
	fromTUF := *embedded
	fromTUF.Source = SourceTUF

	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tufWorks := false
	calls := 0
	var warnings []error
	c := &PublicGoodCache{
		Now:        func() time.Time { return now },
		Warn:       func(err error) { warnings = append(warnings, err) },
		background: func(f func()) { f() }, // the refresh runs before Get returns, answering with the old root
		load: func(context.Context, PublicGoodOptions) (*Root, error) {
			calls++
			if tufWorks {
				return &fromTUF, nil
			}
			return embedded, errors.New("TUF update failed, using the embedded snapshot")
		},
	}
	get := func() *Root {
		r, err := c.Get(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		return r
	}

	g.Expect(get().Source).To(Equal(SourceEmbedded))
	g.Expect(warnings).To(HaveLen(1), "the fallback is said")
	now = now.Add(DefaultFallbackRetry - time.Second)
	get()
	g.Expect(calls).To(Equal(1), "the snapshot is reused for a while")

	now = now.Add(time.Second)
	tufWorks = true
	g.Expect(get().Source).To(Equal(SourceEmbedded), "a refresh is not waited for")
	g.Expect(calls).To(Equal(2), "TUF is tried again soon after a fallback")
	g.Expect(get().Source).To(Equal(SourceTUF))

	now = now.Add(DefaultRefresh - time.Second)
	get()
	g.Expect(calls).To(Equal(2), "a root from TUF is kept a day")
	now = now.Add(time.Second)
	get()
	g.Expect(calls).To(Equal(3))
	g.Expect(c.Status().Fallback).To(BeFalse())

	// TUF fails after it worked: the newer TUF root is kept, not rolled back to the embedded snapshot,
	// and TUF is tried again soon.
	tufWorks = false
	now = now.Add(DefaultRefresh)
	g.Expect(get().Source).To(Equal(SourceTUF), "no rollback to the older snapshot")
	g.Expect(calls).To(Equal(4))
	g.Expect(warnings).To(HaveLen(2))
	st := c.Status()
	g.Expect(st.Fallback).To(BeTrue(), "an older root standing in is a fallback too")
	g.Expect(st.FallbackReason).To(ContainSubstring("TUF update failed"))
	g.Expect(st.FallbackReason).To(ContainSubstring("the root TUF delivered at 2026-12-0"), "says which root stands in")
	g.Expect(st.Age).To(Equal(DefaultRefresh), "counted from when TUF last delivered it")
	now = now.Add(DefaultFallbackRetry)
	get()
	g.Expect(calls).To(Equal(5), "retried after FallbackRetry, not a day")

	offline := &PublicGoodCache{Options: PublicGoodOptions{Offline: true}, Now: func() time.Time { return now }}
	r, err := offline.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Source).To(Equal(SourceEmbedded), "offline: the real loader gives the snapshot")
	g.Expect(offline.Status().Fallback).To(BeFalse(), "asked for, not a fallback")
	until := offline.until
	now = now.Add(DefaultFallbackRetry)
	_, _ = offline.Get(context.Background())
	g.Expect(offline.until).To(Equal(until), "offline asks for the snapshot: no early retry")
	g.Expect(until).To(Equal(now.Add(-DefaultFallbackRetry).Add(DefaultRefresh)))

	none := &PublicGoodCache{load: func(context.Context, PublicGoodOptions) (*Root, error) { return nil, errors.New("broken build") }}
	_, err = none.Get(context.Background())
	g.Expect(err).To(MatchError("broken build"), "no root at all is an error")
}

// TestPublicGoodRefreshDoesNotBlock: while TUF is being asked (up to 30 s), verifications get the root in
// use at once.
func TestPublicGoodRefreshDoesNotBlock(t *testing.T) {
	g := NewWithT(t)
	embedded, err := Embedded()
	g.Expect(err).NotTo(HaveOccurred())
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	release := make(chan struct{})
	loads := make(chan struct{}, 4)
	first := true
	c := &PublicGoodCache{Now: clock, load: func(context.Context, PublicGoodOptions) (*Root, error) {
		loads <- struct{}{}
		if !first {
			<-release // TUF hangs
		}
		first = false
		return embedded, errors.New("TUF update failed")
	}}
	_, err = c.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	<-loads
	mu.Lock()
	now = now.Add(DefaultFallbackRetry)
	mu.Unlock()
	for range 3 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			r, err := c.Get(context.Background())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(r.Version).To(Equal(embedded.Version))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Get waited for the refresh")
		}
	}
	<-loads
	g.Consistently(loads).ShouldNot(Receive(), "one refresh at a time")
	close(release)
}

// TestPublicGoodMaxAge: past MaxAge, a root that TUF cannot refresh is not used; offline use is what the
// operator asked for and is not bounded.
func TestPublicGoodMaxAge(t *testing.T) {
	g := NewWithT(t)
	embedded, err := Embedded()
	g.Expect(err).NotTo(HaveOccurred())
	date := SnapshotDate(embedded)
	g.Expect(date.IsZero()).To(BeFalse())
	now := date.Add(24 * time.Hour)
	failing := func(context.Context, PublicGoodOptions) (*Root, error) {
		return embedded, errors.New("TUF update failed: blocked")
	}
	c := &PublicGoodCache{Now: func() time.Time { return now }, MaxAge: 30 * 24 * time.Hour, load: failing, background: func(f func()) { f() }}
	r, err := c.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Source).To(Equal(SourceEmbedded))
	g.Expect(r.Fallback).To(ContainSubstring("blocked"), "the root says it stands in, and why")
	g.Expect(r.Version).To(Equal(embedded.Version), "the same material: cached verdicts stay valid")
	g.Expect(c.Status().Age).To(Equal(24 * time.Hour))

	now = date.Add(31 * 24 * time.Hour)
	_, err = c.Get(context.Background())
	g.Expect(err).To(MatchError(ContainSubstring("more than the 720h0m0s allowed")))
	g.Expect(err).To(MatchError(ContainSubstring("blocked")), "and why TUF did not deliver a newer one")

	offline := &PublicGoodCache{Now: func() time.Time { return now }, MaxAge: time.Hour, Options: PublicGoodOptions{Offline: true}}
	_, err = offline.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())

	// A current root is never too old, however long ago TUF delivered it (refreshes are a day apart).
	fromTUF := *embedded
	fromTUF.Source = SourceTUF
	current := &PublicGoodCache{Now: func() time.Time { return now }, MaxAge: time.Hour, background: func(f func()) { f() },
		load: func(context.Context, PublicGoodOptions) (*Root, error) { return &fromTUF, nil }}
	_, err = current.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	now = now.Add(23 * time.Hour)
	_, err = current.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
}
