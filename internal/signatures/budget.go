package signatures

import (
	"context"
	"fmt"

	"golang.org/x/sync/semaphore"
)

// Budget bounds the bytes of signatures and attestations that all verifications of a process hold at
// once. A Fetch reserves what it is about to read, in one piece and before reading any of it, and holds
// the reservation until its candidates are judged; with a single reservation per fetch, fetches never
// wait on each other while holding part of the budget. Reservations are served in order of arrival.
type Budget struct {
	sem  *semaphore.Weighted
	size int64
}

// NewBudget returns a Budget of size bytes.
func NewBudget(size int64) *Budget { return &Budget{sem: semaphore.NewWeighted(size), size: size} }

// Size is the budget's size in bytes.
func (b *Budget) Size() int64 { return b.size }

// reserve waits until n bytes are free (or ctx is done) and returns the function that gives them back.
// A nil Budget reserves nothing.
func (b *Budget) reserve(ctx context.Context, n int64) (func(), error) {
	if b == nil || n <= 0 {
		return func() {}, nil
	}
	if n > b.size {
		return nil, fmt.Errorf("%w: %d bytes to read, more than the %d bytes held by all verifications at once", ErrTooLarge, n, b.size)
	}
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("waiting for %d bytes of the signature memory budget: %w", n, err)
	}
	var done bool
	return func() {
		if !done {
			done = true
			b.sem.Release(n)
		}
	}, nil
}
