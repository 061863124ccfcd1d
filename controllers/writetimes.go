package controllers

import (
	"sync"
	"time"
)

// writeTimes remembers when each object's status was last written: the policies' and revocations'
// counts are written at most every interval (countsWriteDelay), and a revocation change judges again the
// SignedImages written so recently that the cache may not show it yet. Safe for concurrent use.
type writeTimes[K comparable] struct {
	mu sync.Mutex
	at map[K]time.Time
}

// last is when key was last written (zero: not known).
func (w *writeTimes[K]) last(key K) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at[key]
}

// wrote records a write of key at at; a zero at forgets key.
func (w *writeTimes[K]) wrote(key K, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at.IsZero() {
		delete(w.at, key)
		return
	}
	if w.at == nil {
		w.at = map[K]time.Time{}
	}
	w.at[key] = at
}

// since are the keys written less than d before now; the older ones are forgotten.
func (w *writeTimes[K]) since(now time.Time, d time.Duration) map[K]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[K]bool{}
	for k, at := range w.at {
		if now.Sub(at) < d {
			out[k] = true
		} else {
			delete(w.at, k)
		}
	}
	return out
}
