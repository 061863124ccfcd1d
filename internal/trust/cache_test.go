package trust

import (
	"context"
	"errors"
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
		Now:  func() time.Time { return now },
		Warn: func(err error) { warnings = append(warnings, err) },
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
	g.Expect(get().Source).To(Equal(SourceTUF), "TUF is tried again soon after a fallback")
	g.Expect(calls).To(Equal(2))

	now = now.Add(DefaultRefresh - time.Second)
	get()
	g.Expect(calls).To(Equal(2), "a root from TUF is kept a day")
	now = now.Add(time.Second)
	get()
	g.Expect(calls).To(Equal(3))

	// TUF fails after it worked: the newer TUF root is kept, not rolled back to the embedded snapshot,
	// and TUF is tried again soon.
	tufWorks = false
	now = now.Add(DefaultRefresh)
	g.Expect(get().Source).To(Equal(SourceTUF), "no rollback to the older snapshot")
	g.Expect(calls).To(Equal(4))
	g.Expect(warnings).To(HaveLen(2))
	now = now.Add(DefaultFallbackRetry)
	get()
	g.Expect(calls).To(Equal(5), "retried after FallbackRetry, not a day")

	offline := &PublicGoodCache{Options: PublicGoodOptions{Offline: true}, Now: func() time.Time { return now }}
	r, err := offline.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Source).To(Equal(SourceEmbedded), "offline: the real loader gives the snapshot")
	until := offline.until
	now = now.Add(DefaultFallbackRetry)
	_, _ = offline.Get(context.Background())
	g.Expect(offline.until).To(Equal(until), "offline asks for the snapshot: no early retry")
	g.Expect(until).To(Equal(now.Add(-DefaultFallbackRetry).Add(DefaultRefresh)))

	none := &PublicGoodCache{load: func(context.Context, PublicGoodOptions) (*Root, error) { return nil, errors.New("broken build") }}
	_, err = none.Get(context.Background())
	g.Expect(err).To(MatchError("broken build"), "no root at all is an error")
}
