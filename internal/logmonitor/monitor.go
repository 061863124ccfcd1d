package logmonitor

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/lru"
)

// Record is what is persisted of a log: the last checkpoint verified and, once the log was shown
// inconsistent, the evidence.
type Record struct {
	Log Log
	// Checkpoint is the signed note of the last verified checkpoint (nil before the first).
	Checkpoint []byte
	// Tree is Checkpoint's tree.
	Tree tlog.Tree
	// VerifiedTime is when Checkpoint was verified; CheckedTime when the log was last read.
	VerifiedTime, CheckedTime time.Time
	// Inconsistency, once set, stays until the record is deleted.
	Inconsistency *Inconsistency
	// Problem says why the last read of the log failed ("" when it did not).
	Problem string
}

// Inconsistency is the proof that a log showed two views that cannot both be true.
type Inconsistency struct {
	// Kind is Fork or Rollback.
	Kind     Verdict
	Detected time.Time
	Message  string
	// Trusted and Conflicting are the two signed notes.
	Trusted, Conflicting []byte
}

// KindName is "Fork" or "Rollback".
func (i *Inconsistency) KindName() string {
	if i.Kind == Rollback {
		return "Rollback"
	}
	return "Fork"
}

// Store persists each log's Record (in a cluster: the TransparencyLog objects).
type Store interface {
	// Load returns the log's record, and false when there is none (never written, or deleted).
	Load(ctx context.Context, l Log) (Record, bool, error)
	// Save writes the log's record. A failure is the store's to report; the monitor keeps what it
	// verified in memory and saves again at the next read of the log.
	Save(ctx context.Context, r Record) error
}

// Options configure a Monitor.
type Options struct {
	// HTTP reads the logs (default: a client with a 30s timeout).
	HTTP *http.Client
	// Store persists what was verified of each log (nil: memory only).
	Store Store
	// Interval is how long a verified checkpoint is used before the log is read again (default 1m):
	// every entry checked meanwhile is proven against it, so a cycle over many images costs one
	// checkpoint per log.
	Interval time.Duration
	// RetryInterval is how long a failed read of a log is remembered before the log is read again
	// (default 15s, at most Interval): an outage costs the entries checked meanwhile nothing.
	RetryInterval time.Duration
	// Timeout bounds one read of a log: its checkpoint and the consistency proof (default 20s).
	Timeout time.Duration
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// MaxCachedTiles bounds the verified tiles kept (default 2048, 16 MiB at most): the full tiles of
	// the entries checked, so that a cycle reads only the tiles that changed.
	MaxCachedTiles int
	// Observe counts each request to a log: its kind (checkpoint, tile), and the HTTP status code (0
	// when none came back).
	Observe func(l Log, kind string, code int, err error)
}

// Monitor checks entries against their live logs. It is safe for concurrent use.
type Monitor struct {
	opts   Options
	flight singleflight.Group
	tiles  *lru.Cache
	mu     sync.Mutex
	logs   map[string]*logState
}

// New returns a Monitor.
func New(opts Options) *Monitor {
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 15 * time.Second
	}
	opts.RetryInterval = min(opts.RetryInterval, opts.Interval)
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxCachedTiles <= 0 {
		opts.MaxCachedTiles = 2048
	}
	return &Monitor{opts: opts, tiles: lru.New(opts.MaxCachedTiles), logs: map[string]*logState{}}
}

// logState is what the monitor holds of one log.
type logState struct {
	mu sync.Mutex
	// trusted is the last checkpoint verified (nil before the first).
	trusted *Checkpoint
	// verified is when trusted was verified; checked when the log was last read.
	verified, checked time.Time
	// bad is the evidence of an inconsistency: every entry of the log is Inconsistent while it is set.
	bad *Inconsistency
	// problem is why the last read failed.
	problem error
	// saved: a record of this log was written; one that is then gone was deleted, and the log starts over.
	saved bool
	// proven holds, per entry, the tree size it was last proven in.
	proven *lru.Cache
}

func (m *Monitor) state(l Log) *logState {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.logs[l.Name()]
	if !ok {
		st = &logState{proven: lru.New(16384)}
		m.logs[l.Name()] = st
	}
	return st
}

// Check proves each entry included in its log's current checkpoint, reading each log's checkpoint at
// most once per Interval and proving it consistent with the last one verified.
func (m *Monitor) Check(ctx context.Context, entries []Entry) []Result {
	out := make([]Result, len(entries))
	for i, e := range entries {
		out[i] = m.check(ctx, e)
	}
	return out
}

func (m *Monitor) check(ctx context.Context, e Entry) Result {
	st := m.state(e.Log)
	res := Result{Log: e.Log.Name(), Origin: e.Log.Origin, Index: e.Index}
	if err := m.refresh(ctx, e.Log, st); err != nil {
		res.Status, res.Message = Unavailable, err.Error()
		return res
	}
	st.mu.Lock()
	trusted, bad, problem := st.trusted, st.bad, st.problem
	st.mu.Unlock()
	switch {
	case bad != nil:
		res.Status = Inconsistent
		res.Message = fmt.Sprintf("log %s is inconsistent since %s (%s: %s); TransparencyLog %s keeps both checkpoints",
			e.Log.Origin, bad.Detected.UTC().Format(time.RFC3339), bad.KindName(), bad.Message, e.Log.Name())
		return res
	case problem != nil:
		res.Status, res.Message = Unavailable, problem.Error()
		return res
	case trusted == nil:
		res.Status, res.Message = Unavailable, fmt.Sprintf("log %s: no checkpoint verified yet", e.Log.Origin)
		return res
	}
	res.TreeSize = trusted.Tree.N
	if e.Index < 0 || e.Index >= trusted.Tree.N {
		res.Status = NotInLog
		res.Message = fmt.Sprintf("entry %d is not in log %s: its signed tree has %d entries", e.Index, e.Log.Origin, trusted.Tree.N)
		return res
	}
	if n, ok := st.proven.Get(e.key()); ok && n.(int64) == trusted.Tree.N {
		return inLog(res, e)
	}
	pctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	proof, err := tlog.ProveRecord(trusted.Tree.N, e.Index, tlog.TileHashReader(trusted.Tree, tileReader{ctx: pctx, m: m, log: e.Log}))
	if err != nil {
		res.Status, res.Message = Unavailable, fmt.Sprintf("reading the inclusion proof of entry %d from log %s: %v", e.Index, e.Log.Origin, err)
		return res
	}
	if err := tlog.CheckRecord(proof, trusted.Tree.N, trusted.Tree.Hash, e.Index, e.Leaf); err != nil {
		res.Status = NotInLog
		res.Message = fmt.Sprintf("entry %d is not in log %s: its signed tree of size %d holds another entry at that index", e.Index, e.Log.Origin, trusted.Tree.N)
		return res
	}
	st.proven.Add(e.key(), trusted.Tree.N)
	return inLog(res, e)
}

func inLog(res Result, e Entry) Result {
	res.Status = InLog
	res.Message = fmt.Sprintf("entry %d proven in log %s at tree size %d", e.Index, e.Log.Origin, res.TreeSize)
	return res
}

// refresh reads the log's checkpoint when the last read is older than Interval (RetryInterval after a
// failure), once for every concurrent caller. It returns an error only when the caller's context ended
// first.
func (m *Monitor) refresh(ctx context.Context, l Log, st *logState) error {
	now := m.opts.Clock()
	st.mu.Lock()
	wait := m.opts.Interval
	if st.problem != nil {
		wait = m.opts.RetryInterval
	}
	fresh := !st.checked.IsZero() && now.Sub(st.checked) < wait
	st.mu.Unlock()
	if fresh {
		return nil
	}
	ch := m.flight.DoChan("refresh|"+l.Name(), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.Timeout)
		defer cancel()
		m.read(rctx, l, st)
		return nil, nil
	})
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("log %s: reading its checkpoint did not finish in time: %w", l.Origin, ctx.Err())
	}
}

// read reads the log's checkpoint, verifies it against what was verified before (in memory and in the
// store), and records the outcome.
func (m *Monitor) read(ctx context.Context, l Log, st *logState) {
	now := m.opts.Clock()
	priors, err := m.priors(ctx, l, st)
	if err != nil {
		m.fail(ctx, l, st, now, err)
		return
	}
	raw, err := m.get(ctx, l, "checkpoint", l.URL+"/checkpoint", 0)
	if err != nil {
		m.fail(ctx, l, st, now, fmt.Errorf("log %s: %w", l.Origin, err))
		return
	}
	next, err := VerifyCheckpoint(l, raw)
	if err != nil {
		m.fail(ctx, l, st, now, fmt.Errorf("log %s served a checkpoint that does not verify with its key (forged, or another log's): %w", l.Origin, err))
		return
	}
	prove := func(next, old tlog.Tree) error {
		p, err := tlog.ProveTree(next.N, old.N, tlog.TileHashReader(next, tileReader{ctx: ctx, m: m, log: l}))
		if err != nil {
			return fmt.Errorf("reading the consistency proof from size %d to %d: %w", old.N, next.N, err)
		}
		if err := tlog.CheckTree(p, next.N, next.Hash, old.N, old.Hash); err != nil {
			return fmt.Errorf("%w: %v", ErrNotConsistent, err)
		}
		return nil
	}
	for _, prior := range priors {
		verdict, err := Compare(prior.Tree, next.Tree, prove)
		switch verdict {
		case Consistent:
			continue
		case Unproven:
			m.fail(ctx, l, st, now, fmt.Errorf("log %s: %w", l.Origin, err))
			return
		default:
			m.inconsistent(ctx, l, st, now, &Inconsistency{Kind: verdict, Detected: now, Message: err.Error(), Trusted: prior.Raw, Conflicting: next.Raw})
			return
		}
	}
	st.mu.Lock()
	st.trusted, st.verified, st.checked, st.problem = &next, now, now, nil
	st.mu.Unlock()
	m.save(ctx, l, st)
}

// priors are the checkpoints a new one must be consistent with: the one verified in memory and the one
// in the store (another replica's, or this one's before a restart). A store record that is gone after
// one was written means the TransparencyLog was deleted: the log starts over.
func (m *Monitor) priors(ctx context.Context, l Log, st *logState) ([]Checkpoint, error) {
	var rec Record
	found := false
	if m.opts.Store != nil {
		var err error
		rec, found, err = m.opts.Store.Load(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("log %s: reading what was verified of it: %w", l.Origin, err)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !found && st.saved {
		st.trusted, st.bad, st.saved = nil, nil, false
		st.proven = lru.New(16384)
	}
	if found && rec.Inconsistency != nil && st.bad == nil {
		st.bad = rec.Inconsistency
	}
	var out []Checkpoint
	if st.trusted != nil {
		out = append(out, *st.trusted)
	}
	if found && len(rec.Checkpoint) > 0 {
		// A record that does not verify (edited, or of a rotated key) proves nothing: it is replaced.
		if cp, err := VerifyCheckpoint(l, rec.Checkpoint); err == nil && (st.trusted == nil || cp.Tree != st.trusted.Tree) {
			out = append(out, cp)
		}
	}
	return out, nil
}

func (m *Monitor) fail(ctx context.Context, l Log, st *logState, now time.Time, err error) {
	st.mu.Lock()
	st.checked, st.problem = now, err
	st.mu.Unlock()
	m.save(ctx, l, st)
}

func (m *Monitor) inconsistent(ctx context.Context, l Log, st *logState, now time.Time, inc *Inconsistency) {
	st.mu.Lock()
	st.checked, st.problem = now, nil
	if st.bad == nil { // the first evidence is kept
		st.bad = inc
	}
	st.mu.Unlock()
	m.save(ctx, l, st)
}

func (m *Monitor) save(ctx context.Context, l Log, st *logState) {
	if m.opts.Store == nil {
		return
	}
	st.mu.Lock()
	rec := Record{Log: l, VerifiedTime: st.verified, CheckedTime: st.checked, Inconsistency: st.bad}
	if st.trusted != nil {
		rec.Checkpoint, rec.Tree = st.trusted.Raw, st.trusted.Tree
	}
	if st.problem != nil {
		rec.Problem = st.problem.Error()
	}
	st.mu.Unlock()
	if err := m.opts.Store.Save(ctx, rec); err == nil {
		st.mu.Lock()
		st.saved = true
		st.mu.Unlock()
	}
}

func (m *Monitor) observe(l Log, kind string, code int, err error) {
	if m.opts.Observe != nil {
		m.opts.Observe(l, kind, code, err)
	}
}

// String names a verdict.
func (v Verdict) String() string {
	switch v {
	case Consistent:
		return "Consistent"
	case Fork:
		return "Fork"
	case Rollback:
		return "Rollback"
	default:
		return "Unproven:" + strconv.Itoa(int(v))
	}
}
