package logmonitor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/mod/sumdb/tlog"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newMonitor(store *memStore, c *clock) *Monitor {
	var s Store
	if store != nil {
		s = store
	}
	return New(Options{Store: s, Clock: c.Now, Interval: time.Minute, RetryInterval: 10 * time.Second, StaleGrace: 5 * time.Minute})
}

func fill(l *testLog, n int, prefix string) []Entry {
	var out []Entry
	for i := range n {
		out = append(out, l.add(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return out
}

func with(lg Log, es ...Entry) []Entry {
	for i := range es {
		es[i].Log = lg
	}
	return es
}

func TestInclusionProvenAsTheLogGrows(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 300, "a")...) // more than one full tile
	tl.publish()
	store := newMemStore()
	m := newMonitor(store, c)

	res := m.Check(context.Background(), []Entry{es[0], es[299]})
	for _, r := range res {
		g.Expect(r.Status).To(Equal(InLog), r.Message)
		g.Expect(r.TreeSize).To(Equal(int64(300)))
	}
	g.Expect(res[1].Message).To(ContainSubstring("entry 299 proven in log log.example at tree size 300"))
	rec := store.get(tl.log())
	g.Expect(rec.Tree.N).To(Equal(int64(300)))
	g.Expect(rec.Inconsistency).To(BeNil())

	// The log grows; within the interval the old checkpoint is used, after it the new one is proven
	// consistent with it.
	with(tl.log(), fill(tl, 600, "b")...)
	tl.publish()
	g.Expect(m.Check(context.Background(), es[:1])[0].TreeSize).To(Equal(int64(300)))
	c.add(2 * time.Minute)
	r := m.Check(context.Background(), es[:1])[0]
	g.Expect(r.Status).To(Equal(InLog), r.Message)
	g.Expect(r.TreeSize).To(Equal(int64(900)))
	g.Expect(store.get(tl.log()).Tree.N).To(Equal(int64(900)))
	g.Expect(store.get(tl.log()).Checkpoint).To(Equal(tl.served))
}

func TestSameSizeOtherHashIsAFork(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	a := newTestLog(t, "log.example", nil)
	base := with(a.log(), fill(a, 10, "common")...)
	b := a.fork()
	fill(a, 5, "a")
	fill(b, 5, "b")
	trusted := a.publish()
	conflicting := b.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), base[:1])[0].Status).To(Equal(InLog))

	// The same log, as another server shows it: same key, same size, another tree.
	a.serveCheckpoint(conflicting)
	c.add(2 * time.Minute)
	r := m.Check(context.Background(), base[:1])[0]
	g.Expect(r.Status).To(Equal(Inconsistent), r.Message)
	g.Expect(r.Message).To(ContainSubstring("two checkpoints of size 15 with different root hashes"))
	inc := store.get(a.log()).Inconsistency
	g.Expect(inc).NotTo(BeNil())
	g.Expect(inc.Kind).To(Equal(Fork))
	g.Expect(inc.Trusted).To(Equal(trusted))
	g.Expect(inc.Conflicting).To(Equal(conflicting))
	// Both notes verify with the log's key: anyone can check the evidence.
	for _, n := range [][]byte{inc.Trusted, inc.Conflicting} {
		_, err := VerifyCheckpoint(a.log(), n)
		g.Expect(err).NotTo(HaveOccurred())
	}

	// It stays inconsistent even when the first view comes back.
	a.serveCheckpoint(trusted)
	c.add(2 * time.Minute)
	g.Expect(m.Check(context.Background(), base[:1])[0].Status).To(Equal(Inconsistent))
}

func TestLargerTreeThatIsNoExtensionIsAFork(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	a := newTestLog(t, "log.example", nil)
	base := with(a.log(), fill(a, 10, "common")...)
	b := a.fork()
	fill(a, 5, "a")
	fill(b, 300, "b")
	a.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), base[:1])[0].Status).To(Equal(InLog))

	// The split view is served from b's tiles, with b's (validly signed) checkpoint.
	split := with(b.log(), base[0])
	b.publish()
	c.add(2 * time.Minute)
	r := New(Options{Store: store, Clock: c.Now}).Check(context.Background(), split)[0]
	g.Expect(r.Status).To(Equal(Inconsistent), r.Message)
	g.Expect(r.Message).To(ContainSubstring("is not a prefix of the tree of size 310"))
	g.Expect(store.get(a.log()).Inconsistency.Kind).To(Equal(Fork))
}

func TestSmallerTreeIsARollback(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	older := tl.publish()
	fill(tl, 4, "b")
	tl.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))

	tl.serveCheckpoint(older) // an older signed tree head, served again
	c.add(2 * time.Minute)
	// At first it may be a mirror that lags: Unavailable, not yet evidence.
	r := m.Check(context.Background(), es[:1])[0]
	g.Expect(r.Status).To(Equal(Unavailable), r.Message)
	g.Expect(r.Message).To(ContainSubstring("serves a checkpoint of size 3, older than the one of size 7 verified at"))
	g.Expect(store.get(tl.log()).Inconsistency).To(BeNil())
	// Still served after the grace: a rollback.
	c.add(6 * time.Minute)
	r = m.Check(context.Background(), es[:1])[0]
	g.Expect(r.Status).To(Equal(Inconsistent), r.Message)
	g.Expect(r.Message).To(ContainSubstring("Rollback: a checkpoint of size 3, 8m0s after one of size 7 was verified"))
	g.Expect(store.get(tl.log()).Inconsistency.Kind).To(Equal(Rollback))
	g.Expect(store.get(tl.log()).Inconsistency.Trusted).NotTo(Equal(older))
	g.Expect(store.get(tl.log()).Inconsistency.Conflicting).To(Equal(older))
	g.Expect(store.get(tl.log()).Tree.N).To(Equal(int64(7)), "the trusted checkpoint stays the newer one")
}

func TestALagThatEndsIsNoRollback(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	older := tl.publish()
	fill(tl, 4, "b")
	seven := tl.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	tl.serveCheckpoint(older)
	c.add(2 * time.Minute)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(Unavailable))
	tl.add("c")
	tl.publish() // the mirror caught up, and the log grew
	c.add(2 * time.Minute)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	tl.serveCheckpoint(seven) // and lags again, one publication behind: it has reached what was settled
	c.add(4 * time.Minute)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(Unavailable))
	g.Expect(store.get(tl.log()).Inconsistency).To(BeNil())
}

// TestALaggingReplicaIsNoRollback: another replica keeps verifying newer checkpoints while this one's
// mirror lags one publication behind: never a rollback, since what it is shown is never older than a
// checkpoint verified StaleGrace ago.
func TestALaggingReplicaIsNoRollback(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	fresh := newTestLog(t, "log.example", nil)
	es := with(fresh.log(), fill(fresh, 3, "a")...)
	store := newMemStore()
	a, b := newMonitor(store, c), newMonitor(store, c)
	lagging := fresh.publish()
	for i := range 12 {
		fresh.add(fmt.Sprintf("more-%d", i))
		next := fresh.publish()
		g.Expect(a.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog)) // sees the log as it is
		fresh.serveCheckpoint(lagging)                                             // b's mirror, one behind
		r := b.Check(context.Background(), es[:1])[0]
		g.Expect(r.Status).NotTo(Equal(Inconsistent), "minute %d: %s", i, r.Message)
		fresh.serveCheckpoint(next)
		lagging = next
		c.add(time.Minute + time.Second)
	}
	g.Expect(store.get(fresh.log()).Inconsistency).To(BeNil())
}

// TestSmallerTreeThatIsNoPrefixIsAFork: an older checkpoint of another history is a fork at once.
func TestSmallerTreeThatIsNoPrefixIsAFork(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	a := newTestLog(t, "log.example", nil)
	es := with(a.log(), fill(a, 10, "common")...)
	b := a.fork()
	fill(a, 20, "a")
	fill(b, 5, "b")
	a.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	a.serveCheckpoint(b.sign(15, nil))
	c.add(2 * time.Minute)
	r := m.Check(context.Background(), es[:1])[0]
	g.Expect(r.Status).To(Equal(Inconsistent), r.Message)
	g.Expect(r.Message).To(ContainSubstring("not a prefix of the trusted one of size 30"))
	g.Expect(store.get(a.log()).Inconsistency.Kind).To(Equal(Fork))
}

// TestForkSeenByTheSameMonitor: tiles cached from the trusted view are never used to judge another
// view: the same monitor that proved the first history finds the split view a fork.
func TestForkSeenByTheSameMonitor(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	a := newTestLog(t, "log.example", nil)
	base := with(a.log(), fill(a, 300, "common")...)
	b := a.fork()
	fill(a, 220, "a")
	fill(b, 230, "b")
	a.publish()
	b.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), base[:1])[0].Status).To(Equal(InLog))
	g.Expect(m.Check(context.Background(), with(a.log(), a.add("x"))[0:1])[0].Status).NotTo(Equal(Inconsistent))
	c.add(2 * time.Minute)
	r := m.Check(context.Background(), with(b.log(), base[0]))[0]
	g.Expect(r.Status).To(Equal(Inconsistent), r.Message)
	g.Expect(store.get(a.log()).Inconsistency.Kind).To(Equal(Fork))
}

// TestADeletionByAnotherReplicaStartsOver: two replicas share the store; one sees the record deleted
// and makes it again; the other sees another record (its ID changed) and starts over too, rather than
// writing its old evidence back.
func TestADeletionByAnotherReplicaStartsOver(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	b := tl.fork()
	fill(tl, 3, "b")
	fill(b, 3, "c")
	tl.publish()
	store := newMemStore()
	a1, a2 := newMonitor(store, c), newMonitor(store, c)
	g.Expect(a1.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	g.Expect(a2.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	tl.serveCheckpoint(b.sign(6, nil))
	c.add(2 * time.Minute)
	g.Expect(a1.Check(context.Background(), es[:1])[0].Status).To(Equal(Inconsistent))
	g.Expect(a2.Check(context.Background(), es[:1])[0].Status).To(Equal(Inconsistent))

	store.delete(tl.log())
	tl.publish()
	c.add(2 * time.Minute)
	g.Expect(a1.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	c.add(2 * time.Minute)
	g.Expect(a2.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	g.Expect(store.get(tl.log()).Inconsistency).To(BeNil())
	c.add(2 * time.Minute)
	g.Expect(a1.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
}

// TestStoredEvidenceMustHoldUp: an inconsistency written into the store by hand, whose notes the log
// did not sign, is not adopted.
func TestStoredEvidenceMustHoldUp(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	tl.publish()
	other := newTestLog(t, "log.example", nil)
	fill(other, 3, "x")
	store := newMemStore()
	store.recs[tl.log().Name()] = Record{Log: tl.log(), ID: "uid-0",
		Inconsistency: &Inconsistency{Kind: Fork, Trusted: other.sign(3, nil), Conflicting: other.sign(2, nil)}}
	g.Expect(newMonitor(store, c).Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
}

// TestAnEntryNewerThanTheCheckpointIsLookedForAgain: an image signed after the log was last read is
// not reported missing: the log is read again.
func TestAnEntryNewerThanTheCheckpointIsLookedForAgain(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	tl.publish()
	m := newMonitor(newMemStore(), c)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	fresh := with(tl.log(), tl.add("signed just now"))
	tl.publish()
	c.add(10 * time.Second)
	r := m.Check(context.Background(), fresh)[0]
	g.Expect(r.Status).To(Equal(InLog), r.Message)
	g.Expect(r.TreeSize).To(Equal(int64(4)))
}

func TestForgedCheckpointIsUnavailableNotInconsistent(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	other := newTestLog(t, "log.example", nil) // the same origin, another key
	fill(other, 3, "x")

	for name, forged := range map[string][]byte{
		"signed with another key": other.sign(3, nil),
		"tampered size":           []byte(strings.Replace(string(tl.sign(3, nil)), "\n3\n", "\n4\n", 1)),
		"another origin":          []byte(strings.Replace(string(tl.sign(3, nil)), "log.example\n", "log.other\n", 1)),
		"not a note":              []byte("hello"),
		"too large":               []byte(strings.Repeat("x", MaxCheckpointBytes+1)),
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			tl.serveCheckpoint(forged)
			store := newMemStore()
			r := newMonitor(store, c).Check(context.Background(), es[:1])[0]
			g.Expect(r.Status).To(Equal(Unavailable), r.Message)
			g.Expect(r.Message).To(Or(ContainSubstring("does not verify"), ContainSubstring("more than")))
			g.Expect(store.get(tl.log()).Inconsistency).To(BeNil(), "a forged note proves nothing about the log")
			g.Expect(store.get(tl.log()).Problem).NotTo(BeEmpty())
		})
	}
}

func TestEntryNotInLog(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	fill(tl, 20, "a")
	tl.publish()
	m := newMonitor(nil, c)
	lg := tl.log()

	other := Entry{Log: lg, Index: 7, Leaf: LeafHash([]byte("an entry of another log"))}
	r := m.Check(context.Background(), []Entry{other})[0]
	g.Expect(r.Status).To(Equal(NotInLog), r.Message)
	g.Expect(r.Message).To(ContainSubstring("holds another entry at that index"))

	// An index the log's signed tree does not reach, even when read again: it cannot say what is there.
	beyond := Entry{Log: lg, Index: 20, Leaf: LeafHash([]byte("a-0"))}
	r = m.Check(context.Background(), []Entry{beyond})[0]
	g.Expect(r.Status).To(Equal(Unavailable), r.Message)
	g.Expect(r.Message).To(ContainSubstring("its current checkpoint (size 20) does not reach entry 20 yet"))
}

func TestPersistedCheckpointSurvivesARestart(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	a := newTestLog(t, "log.example", nil)
	es := with(a.log(), fill(a, 10, "common")...)
	b := a.fork()
	a.publish()
	store := newMemStore()
	g.Expect(newMonitor(store, c).Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))

	// A new process (a restart, another replica) continues from the store: growth is proven
	// consistent with what the first one verified.
	fill(a, 40, "a")
	a.publish()
	c.add(time.Second)
	r := newMonitor(store, c).Check(context.Background(), es[:1])[0]
	g.Expect(r.Status).To(Equal(InLog), r.Message)
	g.Expect(r.TreeSize).To(Equal(int64(50)))

	// And a third one, shown the other branch, sees the split view it has never seen before.
	fill(b, 60, "b")
	c.add(time.Second)
	split := with(b.log(), es[0])
	b.publish()
	r = newMonitor(store, c).Check(context.Background(), split)[0]
	g.Expect(r.Status).To(Equal(Inconsistent), r.Message)
}

func TestDeletedRecordStartsOver(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	older := tl.publish()
	fill(tl, 3, "b")
	tl.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	tl.serveCheckpoint(older)
	c.add(2 * time.Minute)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(Unavailable))

	c.add(6 * time.Minute)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(Inconsistent))

	// The operator looked into it and deletes the TransparencyLog: the next checkpoint is trusted on
	// first use.
	store.delete(tl.log())
	c.add(2 * time.Minute)
	r := m.Check(context.Background(), es[:1])[0]
	g.Expect(r.Status).To(Equal(InLog), r.Message)
	g.Expect(r.TreeSize).To(Equal(int64(3)))
	g.Expect(store.get(tl.log()).Inconsistency).To(BeNil())
}

func TestOutageIsUnavailableAndCostsOneRequestPerRetry(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	tl.publish()
	m := newMonitor(newMemStore(), c)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))

	tl.setDown(true)
	c.add(2 * time.Minute)
	before := tl.count("checkpoint")
	for range 50 {
		r := m.Check(context.Background(), es)[0]
		g.Expect(r.Status).To(Equal(Unavailable), r.Message)
		g.Expect(r.Message).To(ContainSubstring("HTTP 500"))
	}
	g.Expect(tl.count("checkpoint")-before).To(Equal(1), "a failed read is remembered for the retry interval")

	tl.setDown(false)
	c.add(11 * time.Second)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
}

func TestStoreUnreadableIsUnavailable(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	tl.publish()
	store := newMemStore()
	store.err = errors.New("the API server is away")
	r := newMonitor(store, c).Check(context.Background(), es[:1])[0]
	g.Expect(r.Status).To(Equal(Unavailable))
	g.Expect(r.Message).To(ContainSubstring("the API server is away"))
}

// TestCycleCostsPerLogAndTileNotPerEntry checks 2,000 entries of one log: the requests are one
// checkpoint and the tiles touched, and a second cycle against the same checkpoint costs none.
func TestCycleCostsPerLogAndTileNotPerEntry(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 2000, "a")...)
	tl.publish()
	m := newMonitor(newMemStore(), c)
	for _, r := range m.Check(context.Background(), es) {
		g.Expect(r.Status).To(Equal(InLog), r.Message)
	}
	// 2,000 leaves: 7 full and 1 partial level-0 tiles, 1 partial level-1 tile.
	g.Expect(tl.count("checkpoint")).To(Equal(1))
	g.Expect(tl.count("tile")).To(BeNumerically("<=", 9))
	tiles := tl.count("tile")
	for _, r := range m.Check(context.Background(), es) {
		g.Expect(r.Status).To(Equal(InLog))
	}
	g.Expect(tl.count("tile")).To(Equal(tiles))

	// The log grows by one entry: the next cycle proves consistency and every entry again in the new
	// tree, reading the new partial tiles only.
	tl.add("one more")
	tl.publish()
	c.add(2 * time.Minute)
	for _, r := range m.Check(context.Background(), es) {
		g.Expect(r.Status).To(Equal(InLog))
		g.Expect(r.TreeSize).To(Equal(int64(2001)))
	}
	g.Expect(tl.count("checkpoint")).To(Equal(2))
	g.Expect(tl.count("tile") - tiles).To(BeNumerically("<=", 2))
}

func TestPartialTileFallsBackToTheFullTile(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 300, "a")...)
	tl.publish()
	fill(tl, 300, "b") // the tiles of size 300 are full now; the log publishes no partial ones
	tl.noPart = true
	r := newMonitor(nil, c).Check(context.Background(), []Entry{es[290]})[0]
	g.Expect(r.Status).To(Equal(InLog), r.Message)
}

func TestCompare(t *testing.T) {
	h := func(b byte) tlog.Hash { var x tlog.Hash; x[0] = b; return x }
	ok := func(tlog.Tree, tlog.Tree) error { return nil }
	no := func(tlog.Tree, tlog.Tree) error { return ErrNotConsistent }
	broken := func(tlog.Tree, tlog.Tree) error { return errors.New("HTTP 503") }
	called := func(tlog.Tree, tlog.Tree) error { panic("the prover is only asked about a larger tree") }
	for _, tc := range []struct {
		name          string
		trusted, next tlog.Tree
		prove         ConsistencyProver
		want          Verdict
	}{
		{"same tree", tlog.Tree{N: 5, Hash: h(1)}, tlog.Tree{N: 5, Hash: h(1)}, called, Consistent},
		// What tessera's LogStateTracker.Update accepts, and sigwatch does not.
		{"same size, other hash", tlog.Tree{N: 5, Hash: h(1)}, tlog.Tree{N: 5, Hash: h(2)}, called, Fork},
		{"smaller, other hash", tlog.Tree{N: 5, Hash: h(1)}, tlog.Tree{N: 4, Hash: h(2)}, called, Rollback},
		{"smaller, empty", tlog.Tree{N: 5, Hash: h(1)}, tlog.Tree{N: 0}, called, Rollback},
		{"larger, proven", tlog.Tree{N: 5, Hash: h(1)}, tlog.Tree{N: 9, Hash: h(2)}, ok, Consistent},
		{"larger, not a prefix", tlog.Tree{N: 5, Hash: h(1)}, tlog.Tree{N: 9, Hash: h(2)}, no, Fork},
		{"larger, proof unreadable", tlog.Tree{N: 5, Hash: h(1)}, tlog.Tree{N: 9, Hash: h(2)}, broken, Unproven},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := Compare(tc.trusted, tc.next, tc.prove)
			NewWithT(t).Expect(got).To(Equal(tc.want))
		})
	}
}

func TestLogName(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Log{Origin: "log2025-1.rekor.sigstore.dev", ID: "abcdef0123456789"}.Name()).To(Equal("log2025-1.rekor.sigstore.dev-abcdef01"))
	g.Expect(Log{Origin: "rekor.sigstore.dev - 1193050959916656506", ID: "c0d23d6ad406973f"}.Name()).To(Equal("rekor.sigstore.dev-1193050959916656506-c0d23d6a"))
	g.Expect(Log{Origin: "127.0.0.1", ID: "0011223344"}.Name()).To(Equal("127.0.0.1-00112233"))
}

// BenchmarkCycle checks 2,000 entries of a log of 100,000, as a re-verification cycle of the scale
// benchmark's 2,000 images would, the log having grown by one checkpoint since the last cycle: it reports
// the requests to the log per cycle.
func BenchmarkCycle(b *testing.B) {
	t := &testing.T{}
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	b.Cleanup(tl.srv.Close)
	var es []Entry
	for i := range 100_000 {
		e := tl.add(fmt.Sprintf("entry-%d", i))
		if i%50 == 0 {
			es = append(es, e)
		}
	}
	es = with(tl.log(), es...)
	tl.publish()
	m := newMonitor(newMemStore(), c)
	m.Check(context.Background(), es) // the first cycle reads the full tiles once
	before := tl.count("checkpoint") + tl.count("tile")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for range 100 {
			tl.add(fmt.Sprintf("more-%d-%d", i, tl.n))
		}
		tl.publish()
		c.add(2 * time.Minute)
		b.StartTimer()
		for _, r := range m.Check(context.Background(), es) {
			if r.Status != InLog {
				b.Fatal(r.Message)
			}
		}
	}
	b.ReportMetric(float64(tl.count("checkpoint")+tl.count("tile")-before)/float64(b.N), "requests/cycle")
	b.ReportMetric(float64(len(es)), "entries/cycle")
	b.ReportMetric(float64(before), "requests/first-cycle")
}

// TestARollbackServedOnAndOffIsCaught: a growing log whose every other read is an ancient tree head is
// rolled back: the ancient one is smaller than a checkpoint verified more than the grace ago.
func TestARollbackServedOnAndOffIsCaught(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	tl := newTestLog(t, "log.example", nil)
	es := with(tl.log(), fill(tl, 3, "a")...)
	ancient := tl.publish()
	fill(tl, 3, "b")
	tl.publish()
	store := newMemStore()
	m := newMonitor(store, c)
	g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	caught := false
	for i := range 20 {
		tl.add(fmt.Sprintf("c-%d", i))
		current := tl.publish()
		if i%2 == 1 {
			tl.serveCheckpoint(ancient)
		}
		c.add(2 * time.Minute)
		if m.Check(context.Background(), es[:1])[0].Status == Inconsistent {
			caught = true
			break
		}
		tl.serveCheckpoint(current)
	}
	g.Expect(caught).To(BeTrue())
	g.Expect(store.get(tl.log()).Inconsistency.Kind).To(Equal(Rollback))
}
