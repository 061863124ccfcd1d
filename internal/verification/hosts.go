package verification

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of the per-host bounds (see Options).
const (
	minSlowHostTimeout = 10 * time.Second
	defaultSlowHostTTL = 10 * time.Minute
	// maxSlowHosts bounds the slow hosts remembered; the oldest mark goes first.
	maxSlowHosts = 1024
)

// slowHostTimeout is the default deadline of a verification on a slow host: a quarter of the normal one,
// at least minSlowHostTimeout, never more than the normal one.
func slowHostTimeout(normal time.Duration) time.Duration {
	return min(max(normal/4, minSlowHostTimeout), normal)
}

// hostOf returns the registry host ("host[:port]") of a normalized repository.
func hostOf(repository string) string {
	host, _, _ := strings.Cut(repository, "/")
	return host
}

// hostsRead returns the registry hosts whose slots a verification of req takes: the image's only. A
// policy's signature repository is shared by every image the policy covers: if it took slots too,
// tarpit images on one host would hold the shared host's slots and defer every other image of the
// policy. None when no policy asks for anything.
func hostsRead(req Request) []string {
	if len(req.Policies) == 0 {
		return nil
	}
	return []string{hostOf(req.Image.Repository)}
}

// hostLimits keeps a slow registry from holding every verification worker. It bounds the verifications
// in flight per registry host, and those of the hosts that were slow recently together; and it gives a
// slow host's verifications a shorter deadline. Slowness is charged to the image's host: anyone who
// can run a pod chooses it, while signature repositories are chosen by policy writers, and a tarpit
// image must not drag a policy's shared signature host down with it.
//
// A host that answers promptly does not get its verifications deferred for being busy: when its slots
// are full but every verification in flight on it started less than wait ago, a verification waits (at
// most wait) for a slot instead. Only a host whose verifications are slow to finish, or one marked
// slow, has its further verifications deferred at once.
type hostLimits struct {
	max           int // per host, and for the slow hosts together; 0: no bound
	normal, short time.Duration
	wait          time.Duration
	now           func() time.Time
	mu            sync.Mutex
	inFlight      map[string]int
	started       map[string][]time.Time // start times of the verifications in flight, by host
	freed         chan struct{}          // closed (and replaced) whenever slots are given back
	slowInFlight  int
	slow          *expiring[struct{}] // image hosts that were slow, for the TTL since the last time
}

// defaultHostWait is how long a verification may wait for a slot of a busy host that answers promptly.
const defaultHostWait = time.Second

func newHostLimits(opts Options) *hostLimits {
	short := opts.SlowHostTimeout
	if short <= 0 {
		short = slowHostTimeout(opts.Timeout)
	}
	ttl := opts.SlowHostTTL
	if ttl <= 0 {
		ttl = defaultSlowHostTTL
	}
	wait := opts.HostWait
	if wait == 0 {
		wait = defaultHostWait
	}
	return &hostLimits{max: opts.MaxPerHost, normal: opts.Timeout, short: min(short, opts.Timeout), wait: max(0, wait), now: opts.Clock,
		inFlight: map[string]int{}, started: map[string][]time.Time{}, freed: make(chan struct{}),
		slow: newExpiring[struct{}](maxSlowHosts, ttl, opts.Clock)}
}

// isSlow reports whether the image host was slow within the TTL.
func (l *hostLimits) isSlow(imageHost string) bool {
	_, ok := l.slow.get(imageHost)
	return ok
}

// timeout is the deadline of a verification of an image on imageHost.
func (l *hostLimits) timeout(imageHost string) time.Duration {
	if l.isSlow(imageHost) {
		return l.short
	}
	return l.normal
}

// deferral says why a verification reading hosts (the first one the image's) may not start now, or "".
// The caller holds l.mu.
func (l *hostLimits) deferral(hosts []string, slow bool) string {
	if l.max <= 0 || len(hosts) == 0 {
		return ""
	}
	for _, h := range hosts {
		if l.inFlight[h] >= l.max {
			return fmt.Sprintf("deferred: registry %s has %d verifications in flight, the most one registry may have", h, l.inFlight[h])
		}
	}
	if slow && l.slowInFlight >= l.max {
		return fmt.Sprintf("deferred: registry %s was slow recently, and the slow registries have %d verifications in flight, the most they may have together", hosts[0], l.slowInFlight)
	}
	return ""
}

// prompt reports whether a verification of hosts may wait for a slot rather than be deferred: waiting
// is allowed, the image host is not marked slow, and every verification in flight on the full hosts
// started less than l.wait ago (a host that answers promptly frees a slot within milliseconds). The
// caller holds l.mu.
func (l *hostLimits) prompt(hosts []string, slow bool, now time.Time) bool {
	if l.wait <= 0 || slow {
		return false
	}
	for _, h := range hosts {
		if l.inFlight[h] < l.max {
			continue
		}
		for _, at := range l.started[h] {
			if now.Sub(at) >= l.wait {
				return false
			}
		}
	}
	return true
}

// wouldDefer is what acquire would say now without waiting, taking nothing: "" also when it would
// wait for a slot of a prompt host.
func (l *hostLimits) wouldDefer(hosts []string) string {
	if l.max <= 0 || len(hosts) == 0 {
		return ""
	}
	slow := l.isSlow(hosts[0])
	l.mu.Lock()
	defer l.mu.Unlock()
	why := l.deferral(hosts, slow)
	if why != "" && l.prompt(hosts, slow, l.now()) {
		return ""
	}
	return why
}

// acquire takes a slot on every host (the first one the image's), all or none. When one is full it
// waits for a slot while the host is prompt (see prompt), at most l.wait; otherwise, or then, it
// returns why, and the verification is deferred. release gives the slots back.
func (l *hostLimits) acquire(ctx context.Context, hosts []string) (release func(), deferred string) {
	if l.max <= 0 || len(hosts) == 0 {
		return func() {}, ""
	}
	slow := l.isSlow(hosts[0])
	var timer *time.Timer
	for {
		l.mu.Lock()
		now := l.now()
		why := l.deferral(hosts, slow)
		if why == "" {
			release := l.take(hosts, slow, now)
			l.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return release, ""
		}
		if !l.prompt(hosts, slow, now) {
			l.mu.Unlock()
			return nil, why
		}
		freed := l.freed
		l.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(l.wait)
			defer timer.Stop()
		}
		select {
		case <-freed:
		case <-timer.C:
			return nil, why
		case <-ctx.Done():
			return nil, why
		}
	}
}

// take takes the slots. The caller holds l.mu.
func (l *hostLimits) take(hosts []string, slow bool, now time.Time) func() {
	for _, h := range hosts {
		l.inFlight[h]++
		l.started[h] = append(l.started[h], now)
	}
	if slow {
		l.slowInFlight++
	}
	return sync.OnceFunc(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, h := range hosts {
			if l.inFlight[h]--; l.inFlight[h] <= 0 {
				delete(l.inFlight, h)
			}
			starts := l.started[h]
			if i := slices.Index(starts, now); i >= 0 {
				starts = slices.Delete(starts, i, i+1)
			}
			if len(starts) == 0 {
				delete(l.started, h)
			} else {
				l.started[h] = starts
			}
		}
		if slow {
			l.slowInFlight--
		}
		close(l.freed)
		l.freed = make(chan struct{})
	})
}

// observe marks the image host slow (again) when its verification hit its own deadline (not its
// caller's). A verification that reached its verdict, however slowly, does not: a registry that takes 20
// seconds to answer honestly must not be pushed under the shorter deadline by its own answers. Only
// time clears the mark: an attacker chooses which of its images answer promptly, so a prompt answer
// proves nothing about the next one.
func (l *hostLimits) observe(imageHost string, verification, caller context.Context) {
	if errors.Is(verification.Err(), context.DeadlineExceeded) && caller.Err() == nil {
		l.slow.add(imageHost, struct{}{})
	}
}
