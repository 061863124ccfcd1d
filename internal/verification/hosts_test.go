package verification

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/trust"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// tarpit makes a registry hold every request until released (or until the client gives up), and counts
// the requests it holds.
type tarpit struct {
	reg     *testregistry.Registry
	held    atomic.Int32
	release chan struct{}
	once    sync.Once
}

func newTarpit(t *testing.T) *tarpit {
	tp := &tarpit{reg: testregistry.Start(t, true), release: make(chan struct{})}
	t.Cleanup(tp.open)
	return tp
}

func (tp *tarpit) close() {
	tp.reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		tp.held.Add(1)
		defer tp.held.Add(-1)
		select {
		case <-tp.release:
		case <-r.Context().Done():
		}
		return false
	})
}

func (tp *tarpit) open() { tp.once.Do(func() { close(tp.release) }) }

// TestTarpitRegistryLeavesWorkersForOtherHosts: three workers verify images, as the SignedImage
// controller's do, with at most two verifications per registry host. A tarpit registry holds every
// request (as one that answers just before the request timeout, with long timeouts). Its first two
// images hold two workers; the third is deferred at once instead of holding the last worker, so an
// image on another registry is verified promptly meanwhile. Without the bound every worker waits on
// the tarpit and the other image waits for them.
func TestTarpitRegistryLeavesWorkersForOtherHosts(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true, func(o *Options) {
		o.MaxPerHost, o.Timeout = 2, 10*time.Minute
		o.Registry = registry.New(registry.Options{Insecure: []string{"127.0.0.1:*"}, RequestTimeout: 10 * time.Minute})
	})
	good := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(context.Background(), good, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	tp := newTarpit(t)
	var stalled []name.Digest
	for i := range 4 {
		stalled = append(stalled, tp.reg.PushRandomImage(t, fmt.Sprintf("evil/app%d", i)))
	}
	tp.close()
	pols := []*policy.Policy{releasePolicy(t)}

	type done struct {
		img imageref.Image
		res *Result
	}
	queue := make(chan imageref.Image, 4)
	results := make(chan done, 4)
	for range 3 {
		go func() {
			for img := range queue {
				results <- done{img, k.engine.Verify(context.Background(), Request{Image: img, Policies: pols})}
			}
		}()
	}
	t.Cleanup(func() { close(queue) })
	for _, d := range stalled[:3] {
		queue <- image(t, d)
	}
	queue <- image(t, good)

	got := map[string]*Result{}
	deadline := time.After(30 * time.Second) // generous: the other image takes well under a second
	for got[image(t, good).String()] == nil {
		select {
		case d := <-results:
			got[d.img.String()] = d.res
		case <-deadline:
			t.Fatalf("the image on another registry was not verified while the tarpit held the workers (%d tarpit requests held)", tp.held.Load())
		}
	}
	verified := got[image(t, good).String()]
	g.Expect(verified.Deferred).To(BeEmpty())
	g.Expect(verified.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified), verified.Policies[0].Message)
	g.Expect(got).To(HaveLen(2), "one tarpit image deferred, two held")
	for img, res := range got {
		if img != image(t, good).String() {
			g.Expect(res.Deferred).To(ContainSubstring("registry "+tp.reg.Host+" has 2 verifications in flight"), img)
			g.Expect(res.Policies).To(BeEmpty(), "a deferral has no verdict")
		}
	}
	g.Eventually(tp.held.Load, 30*time.Second).To(BeNumerically(">=", 2), "two tarpit verifications in flight")

	further := Request{Image: image(t, stalled[3]), Policies: pols}
	g.Expect(k.engine.Deferral(further)).To(ContainSubstring(tp.reg.Host))
	now := make(chan *Result, 1)
	go func() { now <- k.engine.Verify(context.Background(), further) }()
	select {
	case res := <-now:
		g.Expect(res.Deferred).To(ContainSubstring(tp.reg.Host), "a further one on the tarpit is deferred")
	case <-time.After(30 * time.Second):
		t.Fatal("a further verification on the tarpit waited instead of being deferred")
	}

	tp.open()
	for range 2 {
		select {
		case d := <-results:
			g.Expect(d.res.Deferred).To(BeEmpty())
			g.Expect(d.res.Policies[0].Reason).To(Equal(sigwatchv1alpha1.SignatureMissingReason), "the held ones reach their verdict")
		case <-time.After(time.Minute):
			t.Fatal("the held verifications did not finish once released")
		}
	}
	g.Expect(k.engine.Deferral(further)).To(BeEmpty(), "the slots are given back")
	res := k.engine.Verify(context.Background(), further)
	g.Expect(res.Deferred).To(BeEmpty())
	g.Expect(res.Policies[0].Reason).To(Equal(sigwatchv1alpha1.SignatureMissingReason))
}

// TestSlowHostGetsTheShortDeadline: a verification that hits its deadline on a tarpit marks the image's
// registry host slow: the next one there gets the short deadline (seen by the trust-root resolver, which
// runs under it), another host keeps the normal one, and after the TTL without being slow again the host
// has the normal deadline back.
func TestSlowHostGetsTheShortDeadline(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tr := embeddedRoot(t)
	var mu sync.Mutex
	var left time.Duration
	e, _ := newEngine(t, tr, func(o *Options) {
		o.Timeout, o.SlowHostTimeout, o.SlowHostTTL, o.Clock = 2*time.Second, 300*time.Millisecond, time.Hour, clk.Now
		o.Roots = func(ctx context.Context, _ *policy.Policy) (*trust.Root, error) {
			deadline, _ := ctx.Deadline()
			mu.Lock()
			defer mu.Unlock()
			left = time.Until(deadline)
			return tr, nil
		}
	})
	key, err := sigstore.NewKeySigner(nil)
	g.Expect(err).NotTo(HaveOccurred())
	pols := []*policy.Policy{keyPolicy(t, "key", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogDisabled)}
	deadlineOf := func(img name.Digest) (time.Duration, *Result) {
		res := e.Verify(context.Background(), Request{Image: image(t, img), Policies: pols})
		mu.Lock()
		defer mu.Unlock()
		return left, res
	}
	tp := newTarpit(t)
	stalled := tp.reg.PushRandomImage(t, "evil/app")
	other := testregistry.Start(t, true).PushRandomImage(t, "team/app")
	tp.close()

	d, res := deadlineOf(stalled)
	g.Expect(d).To(BeNumerically(">", 300*time.Millisecond), "the normal deadline at first")
	g.Expect(res.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyUnknown))
	g.Expect(res.Policies[0].Message).To(ContainSubstring("deadline exceeded"))

	d, _ = deadlineOf(stalled)
	g.Expect(d).To(BeNumerically("<=", 300*time.Millisecond), "the short deadline once the host was slow")
	d, _ = deadlineOf(other)
	g.Expect(d).To(BeNumerically(">", 300*time.Millisecond), "another host keeps the normal one")

	clk.Step(time.Hour)
	tp.open()
	d, _ = deadlineOf(stalled)
	g.Expect(d).To(BeNumerically(">", 300*time.Millisecond), "the normal deadline again after the TTL")
}

// TestSlowHostMarks: which verifications make a host slow, for how long, and what deadline its next
// verification gets (a fake clock; the normal deadline 60s, the short one 15s, the TTL 10m).
func TestSlowHostMarks(t *testing.T) {
	const normal, short = time.Minute, 15 * time.Second
	type verification struct {
		host    string
		at      time.Duration // since the start
		took    time.Duration
		outcome string // "done", "deadline" (its own deadline passed), "cancelled" (its caller's ended)
	}
	for _, tc := range []struct {
		name    string
		history []verification
		host    string
		at      time.Duration
		want    time.Duration
	}{
		{"never seen", nil, "ghcr.io", 0, normal},
		{"prompt", []verification{{"ghcr.io", 0, time.Second, "done"}}, "ghcr.io", time.Minute, normal},
		{"hit its deadline", []verification{{"evil.example", 0, normal, "deadline"}}, "evil.example", 2 * time.Minute, short},
		{"slow but reached its verdict", []verification{{"slow.example", 0, short + time.Second, "done"}}, "slow.example", time.Minute, normal},
		{"its caller gave up", []verification{{"ghcr.io", 0, 0, "cancelled"}}, "ghcr.io", time.Minute, normal},
		{"another host was slow", []verification{{"evil.example", 0, normal, "deadline"}}, "ghcr.io", time.Minute, normal},
		{"the host port counts", []verification{{"evil.example:5000", 0, normal, "deadline"}}, "evil.example:5001", time.Minute, normal},
		{"within the TTL", []verification{{"evil.example", 0, normal, "deadline"}}, "evil.example", 10*time.Minute + 59*time.Second, short},
		{"after the TTL", []verification{{"evil.example", 0, normal, "deadline"}}, "evil.example", 11*time.Minute + time.Second, normal},
		{"slow again renews it", []verification{{"evil.example", 0, normal, "deadline"}, {"evil.example", 9 * time.Minute, short, "deadline"}},
			"evil.example", 19 * time.Minute, short},
		{"a prompt one does not clear it", []verification{{"evil.example", 0, normal, "deadline"}, {"evil.example", 2 * time.Minute, time.Second, "done"}},
			"evil.example", 3 * time.Minute, short},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			clk := clocktesting.NewFakeClock(start)
			l := newHostLimits(Options{Timeout: normal, Clock: clk.Now})
			for _, v := range tc.history {
				clk.SetTime(start.Add(v.at))
				caller, cancelCaller := context.WithCancel(context.Background())
				deadline := time.Now().Add(time.Hour)
				switch v.outcome {
				case "deadline":
					deadline = time.Now().Add(-time.Second)
				case "cancelled":
					cancelCaller()
				}
				ctx, cancel := context.WithDeadline(caller, deadline)
				clk.Step(v.took)
				l.observe(v.host, ctx, caller)
				cancel()
				cancelCaller()
			}
			clk.SetTime(start.Add(tc.at))
			g.Expect(l.timeout(tc.host)).To(Equal(tc.want))
		})
	}
}

func TestSlowHostTimeoutDefault(t *testing.T) {
	g := NewWithT(t)
	for normal, want := range map[time.Duration]time.Duration{
		time.Minute: 15 * time.Second, 20 * time.Second: 10 * time.Second, 5 * time.Second: 5 * time.Second, 10 * time.Minute: 150 * time.Second,
	} {
		g.Expect(slowHostTimeout(normal)).To(Equal(want), "normal %v", normal)
	}
}

// TestSlowHostsAreBounded: the slow hosts remembered are bounded, whatever number of hosts are slow.
func TestSlowHostsAreBounded(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Now())
	l := newHostLimits(Options{Timeout: time.Minute, Clock: clk.Now})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for i := range 3 * maxSlowHosts {
		l.observe(fmt.Sprintf("evil%d.example", i), ctx, context.Background())
	}
	g.Expect(l.slow.len()).To(Equal(maxSlowHosts))
	g.Expect(l.timeout(fmt.Sprintf("evil%d.example", 3*maxSlowHosts-1))).To(Equal(15*time.Second), "the newest are kept")
}

// TestHostSlots: slots per registry host, taken all or none, on the image's host and the signature
// repository's; the slow hosts share one bound; what is given back can be taken again.
func TestHostSlots(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Now())
	l := newHostLimits(Options{Timeout: time.Minute, MaxPerHost: 2, HostWait: -1, Clock: clk.Now})
	req := func(repo, sigRepo string) Request {
		return Request{Image: imageref.Image{Repository: repo, Digest: "sha256:" + fmt.Sprintf("%064d", 0)},
			Policies: []*policy.Policy{{Name: "p", SignatureRepository: sigRepo}}}
	}
	take := func(r Request) (func(), string) { return l.acquire(context.Background(), hostsRead(r)) }

	g.Expect(hostsRead(req("ghcr.io/a/b", ""))).To(Equal([]string{"ghcr.io"}))
	g.Expect(hostsRead(req("docker.io/library/nginx", "ghcr.io/org/sigs"))).To(Equal([]string{"docker.io"}),
		"a shared signature repository takes no slots: tarpit images must not defer every image of the policy")
	g.Expect(hostsRead(Request{Image: imageref.Image{Repository: "ghcr.io/a/b"}})).To(BeEmpty(), "no policy: nothing is read")

	r1, why := take(req("ghcr.io/a/one", ""))
	g.Expect(why).To(BeEmpty())
	_, why = take(req("ghcr.io/a/two", ""))
	g.Expect(why).To(BeEmpty())
	_, why = take(req("ghcr.io/a/three", ""))
	g.Expect(why).To(Equal("deferred: registry ghcr.io has 2 verifications in flight, the most one registry may have"))
	_, why = take(req("docker.io/library/nginx", "ghcr.io/org/sigs"))
	g.Expect(why).To(BeEmpty(), "its signatures are on the busy host, its image is not")
	_, why = take(req("quay.io/x/y", ""))
	g.Expect(why).To(BeEmpty(), "another host is not held up")
	r1()
	r1() // giving back twice gives back once
	_, why = take(req("ghcr.io/a/three", ""))
	g.Expect(why).To(BeEmpty(), "room again")
	_, why = take(req("ghcr.io/a/four", ""))
	g.Expect(why).NotTo(BeEmpty(), "given back once only")

	// Two tarpits: each has room of its own, but together they have two slots.
	hit, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for _, h := range []string{"evil1.example", "evil2.example"} {
		l.observe(h, hit, context.Background())
	}
	_, why = take(req("evil1.example/a", ""))
	g.Expect(why).To(BeEmpty())
	slow2, why := take(req("evil2.example/a", ""))
	g.Expect(why).To(BeEmpty())
	_, why = take(req("evil1.example/b", ""))
	g.Expect(why).To(Equal("deferred: registry evil1.example was slow recently, and the slow registries have 2 verifications in flight, the most they may have together"))
	_, why = take(req("fast.example/a", ""))
	g.Expect(why).To(BeEmpty(), "a host that was not slow is not held up by the slow ones")
	slow2()
	_, why = take(req("evil1.example/b", ""))
	g.Expect(why).To(BeEmpty())

	unbounded := newHostLimits(Options{Timeout: time.Minute, Clock: clk.Now})
	for range 10 {
		_, why = unbounded.acquire(context.Background(), []string{"ghcr.io"})
		g.Expect(why).To(BeEmpty(), "MaxPerHost 0: no bound")
	}
}

// TestPromptHostWaitsForASlot: a busy host whose verifications in flight are young is waited for (a
// slot frees within milliseconds on a registry that answers); one whose verifications have been in
// flight for HostWait or longer, or that was slow recently, gets further verifications deferred at
// once; and a wait that finds no slot ends in a deferral after HostWait.
func TestPromptHostWaitsForASlot(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Now())
	l := newHostLimits(Options{Timeout: time.Minute, MaxPerHost: 1, HostWait: time.Hour, Clock: clk.Now})
	ctx := context.Background()
	hosts := []string{"ghcr.io"}

	first, why := l.acquire(ctx, hosts)
	g.Expect(why).To(BeEmpty())
	g.Expect(l.wouldDefer(hosts)).To(BeEmpty(), "full but prompt: a verification would wait, not be deferred")
	got := make(chan string, 1)
	go func() {
		release, why := l.acquire(ctx, hosts)
		if release != nil {
			defer release()
		}
		got <- why
	}()
	g.Consistently(got, 100*time.Millisecond).ShouldNot(Receive(), "it waits for the slot")
	first()
	g.Eventually(got, 10*time.Second).Should(Receive(BeEmpty()), "and gets it when given back")

	// In flight for HostWait or longer: the host is not prompt; the next is deferred at once.
	stuck, why := l.acquire(ctx, hosts)
	g.Expect(why).To(BeEmpty())
	clk.Step(time.Hour)
	deferred := make(chan string, 1)
	go func() { _, why := l.acquire(ctx, hosts); deferred <- why }()
	g.Eventually(deferred, 10*time.Second).Should(Receive(ContainSubstring("registry ghcr.io has 1 verifications in flight")),
		"deferred at once, not waited for (HostWait is an hour)")
	g.Expect(l.wouldDefer(hosts)).To(ContainSubstring("in flight"))
	stuck()

	// A host marked slow is never waited for.
	hit, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	l.observe("evil.example", hit, ctx)
	held, why := l.acquire(ctx, []string{"evil.example"})
	g.Expect(why).To(BeEmpty())
	_, why = l.acquire(ctx, []string{"evil.example"})
	g.Expect(why).To(ContainSubstring("evil.example"), "deferred at once")
	held()

	// A wait is bounded by HostWait, and by the caller's context.
	short := newHostLimits(Options{Timeout: time.Minute, MaxPerHost: 1, HostWait: 50 * time.Millisecond, Clock: time.Now})
	keep, _ := short.acquire(ctx, hosts)
	defer keep()
	_, why = short.acquire(ctx, hosts)
	g.Expect(why).To(ContainSubstring("in flight"), "no slot within HostWait: deferred")
	cancelled, stop := context.WithCancel(ctx)
	stop()
	long := newHostLimits(Options{Timeout: time.Minute, MaxPerHost: 1, HostWait: time.Hour, Clock: time.Now})
	keep2, _ := long.acquire(ctx, hosts)
	defer keep2()
	_, why = long.acquire(cancelled, hosts)
	g.Expect(why).NotTo(BeEmpty(), "the caller gave up")
}
