package logmonitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	// ID identifies the stored object (a UID): a record whose ID changed was deleted and made again, and
	// the log starts over. Set by the store.
	ID string
	// Checkpoint is the signed note of the last verified checkpoint (nil before the first).
	Checkpoint []byte
	// Tree is Checkpoint's tree.
	Tree tlog.Tree
	// VerifiedTime is when Checkpoint was first verified (a rollback is judged from it); CheckedTime when
	// the log was last read.
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
	// Save writes the log's record and returns the ID of the stored object. A failure is the store's to
	// report; the monitor keeps what it verified in memory and saves again at the next read of the log.
	Save(ctx context.Context, r Record) (string, error)
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
	// RetryInterval is how long a failed read of a log (its checkpoint or its tiles) is remembered
	// before the log is read again (default 15s, at most Interval): an outage costs the entries checked
	// meanwhile no wait.
	RetryInterval time.Duration
	// StaleGrace is how long after a checkpoint was verified the log may still serve older ones before
	// that is a rollback (default 10m): a mirror or CDN edge that lags shows older checkpoints for a
	// while. An older checkpoint proven not to be a prefix of the trusted tree is a fork at once. It is
	// also how long a Rekor v1 log may give consistency proofs that do not verify before that is a fork.
	StaleGrace time.Duration
	// Timeout bounds one read of a log, its checkpoint and the consistency proof, and one entry's
	// inclusion proof (default 20s).
	Timeout time.Duration
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// MaxCachedTiles bounds the verified tiles kept (default 2048, 16 MiB at most): the full tiles of
	// the entries checked, so that a cycle reads only the tiles that changed.
	MaxCachedTiles int
	// Observe counts each request to a log: its kind (checkpoint, tile, proof, entries), and the HTTP
	// status code (0 when none came back).
	Observe func(l Log, kind string, code int, err error)
}

// Monitor checks entries against their live logs. It is safe for concurrent use.
type Monitor struct {
	opts     Options
	flight   singleflight.Group
	tiles    *lru.Cache
	searches *lru.Cache
	mu       sync.Mutex
	logs     map[string]*logState
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
	if opts.StaleGrace <= 0 {
		opts.StaleGrace = 10 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxCachedTiles <= 0 {
		opts.MaxCachedTiles = 2048
	}
	return &Monitor{opts: opts, tiles: lru.New(opts.MaxCachedTiles), searches: lru.New(1024), logs: map[string]*logState{}}
}

// logState is what the monitor holds of one log. Every field is read and written under mu.
type logState struct {
	mu sync.Mutex
	// trusted is the last checkpoint verified (nil before the first).
	trusted *Checkpoint
	// verified is when trusted was verified; checked when the log was last read.
	verified, checked time.Time
	// bad is the evidence of an inconsistency: every entry of the log is Inconsistent while it is set.
	bad *Inconsistency
	// problem is why the last read of the checkpoint failed; tileProblem why the last read of tiles
	// failed, at tileFailed.
	problem     error
	tileProblem error
	tileFailed  time.Time
	// history are the trusted checkpoints verified lately, oldest first, each with when it was first
	// verified: a checkpoint smaller than one verified StaleGrace ago (settled) is a rollback at once.
	history []Checkpoint
	// storeID is the ID of the stored record this state continues; saved says one was written.
	storeID string
	saved   bool
	// gen numbers the log's starts over: the tile cache's keys carry it, so that tiles authenticated
	// for one history are never used for another.
	gen int
	// proven holds, per entry, the tree it was last proven in.
	proven *lru.Cache
}

// provenAt is where an entry was proven: in tree, or (chain) in a tree every later trusted one extends.
type provenAt struct {
	tree  tlog.Tree
	chain bool
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

// reset forgets what was verified of the log (its record was deleted or made again); mu is held.
func (st *logState) reset() {
	st.trusted, st.bad, st.saved, st.storeID = nil, nil, false, ""
	st.verified, st.history = time.Time{}, nil
	st.proven = lru.New(16384)
	st.gen++
}

// view is what a check needs of the log's state, read at once.
type view struct {
	trusted     *Checkpoint
	bad         *Inconsistency
	problem     error
	tileProblem error
	gen         int
	proven      *lru.Cache
}

func (m *Monitor) view(st *logState) view {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := view{trusted: st.trusted, bad: st.bad, problem: st.problem, gen: st.gen, proven: st.proven}
	if st.tileProblem != nil && m.opts.Clock().Sub(st.tileFailed) < m.opts.RetryInterval {
		v.tileProblem = st.tileProblem
	}
	return v
}

// Check proves each entry included in its log's current checkpoint, reading each log's checkpoint at
// most once per Interval and proving it consistent with the last one verified.
//
// An entry of a Rekor v1 log is proven once through the API's retrieval (ten entries a request) and
// then holds in every later trusted tree of the shard, each proven consistent with the one before.
func (m *Monitor) Check(ctx context.Context, entries []Entry) []Result {
	out := make([]Result, len(entries))
	// The Rekor v1 entries to prove, by log and the state each was settled against.
	type group struct {
		v   view
		idx []int
	}
	v1 := map[string]*group{}
	var order []string
	for i, e := range entries {
		r, v, done := m.settled(ctx, e)
		switch {
		case done:
			out[i] = r
		case !e.Log.V1:
			out[i] = m.proveTiles(ctx, e, v, r)
		default:
			k := fmt.Sprintf("%s|%d|%x", e.Log.Name(), v.gen, v.trusted.Tree.Hash)
			if _, seen := v1[k]; !seen {
				order = append(order, k)
				v1[k] = &group{v: v}
			}
			v1[k].idx = append(v1[k].idx, i)
			out[i] = r
		}
	}
	for _, k := range order {
		grp := v1[k]
		idx, v := grp.idx, grp.v
		l := entries[idx[0]].Log
		st := m.state(l)
		batch := make([]Entry, len(idx))
		for j, i := range idx {
			batch[j] = entries[i]
		}
		pctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
		for j, r := range m.v1Prove(pctx, l, st, v, batch) {
			if r.cacheable {
				v.proven.Add(batch[j].key(), provenAt{chain: true})
			}
			out[idx[j]] = r
		}
		cancel()
	}
	return out
}

// settled refreshes the entry's log and answers the entry from the log's state when it can: an
// unavailable or inconsistent log, an index beyond the trusted tree, or an entry proven before in the
// trusted tree (or, Rekor v1, in one it extends). Otherwise the entry needs a proof against v.trusted.
func (m *Monitor) settled(ctx context.Context, e Entry) (Result, view, bool) {
	st := m.state(e.Log)
	res := Result{Log: e.Log.Name(), Origin: e.Log.Origin, Index: e.Index}
	if err := m.refresh(ctx, e.Log, st, 0); err != nil {
		res.Status, res.Message = Unavailable, err.Error()
		return res, view{}, true
	}
	v := m.view(st)
	if v.trusted != nil && v.bad == nil && v.problem == nil && e.Index >= v.trusted.Tree.N {
		// Logged since the checkpoint was read, perhaps: read the log again (once a second at most).
		if err := m.refresh(ctx, e.Log, st, time.Second); err != nil {
			res.Status, res.Message = Unavailable, err.Error()
			return res, view{}, true
		}
		v = m.view(st)
	}
	switch {
	case v.bad != nil:
		res.Status = Inconsistent
		res.Message = fmt.Sprintf("log %s is inconsistent since %s (%s: %s); TransparencyLog %s keeps both checkpoints",
			e.Log.Origin, v.bad.Detected.UTC().Format(time.RFC3339), v.bad.KindName(), v.bad.Message, e.Log.Name())
	case v.problem != nil:
		res.Status, res.Message = Unavailable, v.problem.Error()
	case v.trusted == nil:
		res.Status, res.Message = Unavailable, fmt.Sprintf("log %s: no checkpoint verified yet", e.Log.Origin)
	case e.Index < 0:
		res.Status, res.Message = NotInLog, fmt.Sprintf("entry index %d is not an index of log %s", e.Index, e.Log.Origin)
	case e.Index >= v.trusted.Tree.N && !e.Log.V1:
		// The bundle's own checkpoint, verified offline, reaches the entry: a log that does not yet is
		// behind (a mirror) or rolled back, and what it holds at the index cannot be read. (A Rekor v1
		// retrieval proves the entry in a newer tree, whose tree head it carries.)
		res.Status, res.TreeSize = Unavailable, v.trusted.Tree.N
		res.Message = fmt.Sprintf("log %s: its current checkpoint (size %d) does not reach entry %d yet", e.Log.Origin, v.trusted.Tree.N, e.Index)
	case v.tileProblem != nil:
		res.Status, res.Message = Unavailable, v.tileProblem.Error()
	default:
		res.TreeSize = v.trusted.Tree.N
		if p, ok := v.proven.Get(e.key()); ok && (p.(provenAt).chain || p.(provenAt).tree == v.trusted.Tree) {
			return inLog(res, e), v, true
		}
		return res, v, false
	}
	return res, v, true
}

// proveTiles proves a Rekor v2 entry included in the trusted tree from its hash tiles.
func (m *Monitor) proveTiles(ctx context.Context, e Entry, v view, res Result) Result {
	pctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	tree := v.trusted.Tree
	p, err := withTiles(m, pctx, e.Log, v.gen, func(r tileReader) (tlog.RecordProof, error) {
		return tlog.ProveRecord(tree.N, e.Index, tlog.TileHashReader(tree, r))
	})
	if err != nil {
		err = fmt.Errorf("reading the inclusion proof of entry %d from log %s: %w", e.Index, e.Log.Origin, err)
		if ctx.Err() == nil { // the log's failure, not the caller's time running out
			st := m.state(e.Log)
			st.mu.Lock()
			st.tileProblem, st.tileFailed = err, m.opts.Clock()
			st.mu.Unlock()
		}
		res.Status, res.Message = Unavailable, err.Error()
		return res
	}
	if err := tlog.CheckRecord(p, tree.N, tree.Hash, e.Index, e.Leaf); err != nil {
		res.Status = NotInLog
		res.Message = fmt.Sprintf("entry %d is not in log %s: its signed tree of size %d holds another entry at that index", e.Index, e.Log.Origin, tree.N)
		return res
	}
	v.proven.Add(e.key(), provenAt{tree: tree})
	return inLog(res, e)
}

// withTiles runs a proof over the log's tiles, from the cache; when the cached tiles do not fit the tree
// (tiles of another view of the log), it runs it again over tiles read afresh, which are not cached.
func withTiles[T any](m *Monitor, ctx context.Context, l Log, gen int, f func(tileReader) (T, error)) (T, error) {
	out, err := f(tileReader{ctx: ctx, m: m, log: l, gen: gen})
	if err != nil && strings.Contains(err.Error(), "inconsistent tile") {
		return f(tileReader{ctx: ctx, m: m, log: l, gen: gen, uncached: true})
	}
	return out, err
}

func inLog(res Result, e Entry) Result {
	res.Status = InLog
	idx := e.Index
	if e.Log.V1 {
		idx = e.Global
	}
	res.Message = fmt.Sprintf("entry %d proven in log %s at tree size %d", idx, e.Log.Origin, res.TreeSize)
	return res
}

// refresh reads the log's checkpoint when the last read is older than Interval (RetryInterval after a
// failure; within, when positive and shorter), once for every concurrent caller. It returns an error
// only when the caller's context ended first.
func (m *Monitor) refresh(ctx context.Context, l Log, st *logState, within time.Duration) error {
	now := m.opts.Clock()
	st.mu.Lock()
	wait := m.opts.Interval
	if st.problem != nil {
		wait = m.opts.RetryInterval
	}
	if within > 0 {
		wait = min(wait, within)
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
	priors, gen, err := m.priors(ctx, l, st)
	if err != nil {
		m.fail(ctx, l, st, now, err)
		return
	}
	var raw []byte
	if l.V1 {
		raw, err = m.v1Checkpoint(ctx, l)
	} else {
		raw, err = m.get(ctx, l, "checkpoint", l.URL+"/checkpoint", 0)
	}
	if err != nil {
		m.fail(ctx, l, st, now, fmt.Errorf("log %s: %w", l.Origin, err))
		return
	}
	next, err := VerifyCheckpoint(l, raw)
	if err != nil {
		m.fail(ctx, l, st, now, fmt.Errorf("log %s served a checkpoint that does not verify with its key (forged, or another log's): %w", l.Origin, err))
		return
	}
	prove := m.prover(ctx, l, gen)
	for _, prior := range priors {
		verdict, err := Compare(prior.Tree, next.Tree, prove)
		switch verdict {
		case Consistent:
			continue
		case Unproven:
			m.fail(ctx, l, st, now, fmt.Errorf("log %s: %w", l.Origin, err))
			return
		case Fork:
			if l.V1 && prior.Tree.N != next.Tree.N {
				// A Rekor v1 consistency proof comes from the API, unauthenticated: one that does not verify
				// proves nothing anyone could check. The log is unavailable until it gives a valid one.
				m.fail(ctx, l, st, now, fmt.Errorf("log %s gives no valid consistency proof from size %d to %d: %w", l.Origin, prior.Tree.N, next.Tree.N, err))
				return
			}
			m.inconsistent(ctx, l, st, now, gen, &Inconsistency{Kind: verdict, Detected: now, Message: err.Error(), Trusted: prior.Raw, Conflicting: next.Raw})
			return
		case Rollback:
			m.older(ctx, l, st, now, gen, prior, next, prove)
			return
		}
	}
	st.mu.Lock()
	if st.gen == gen {
		next.Verified = now
		for _, p := range priors { // the same checkpoint keeps when it was first verified
			if p.Tree == next.Tree && !p.Verified.IsZero() {
				next.Verified = p.Verified
			}
		}
		st.trusted, st.verified = &next, now
		st.remember(next, now, m.opts.StaleGrace)
	}
	st.checked, st.problem = now, nil
	st.mu.Unlock()
	m.save(ctx, l, st)
}

// prover proves consistency from the log's tiles (Rekor v2) or its API (Rekor v1).
func (m *Monitor) prover(ctx context.Context, l Log, gen int) ConsistencyProver {
	return func(next, old tlog.Tree) error {
		if l.V1 {
			return m.v1Consistency(ctx, l, next, old)
		}
		if old.N == 0 {
			return nil
		}
		p, err := withTiles(m, ctx, l, gen, func(r tileReader) (tlog.TreeProof, error) {
			return tlog.ProveTree(next.N, old.N, tlog.TileHashReader(next, r))
		})
		if err != nil {
			return fmt.Errorf("reading the consistency proof from size %d to %d: %w", old.N, next.N, err)
		}
		if err := tlog.CheckTree(p, next.N, next.Hash, old.N, old.Hash); err != nil {
			return fmt.Errorf("%w: %v", ErrNotConsistent, err)
		}
		return nil
	}
}

// older handles a checkpoint smaller than the trusted one: one proven not to be a prefix of the trusted
// tree (from tiles authenticated against it: Rekor v2) is a fork at once. Otherwise the log is behind (a
// mirror that lags) or rolled back: it is a rollback once the checkpoint it falls short of was verified
// StaleGrace ago or more (a mirror that lags less than that has caught up with it by then), whichever
// replica verified it. The trusted checkpoint stays.
func (m *Monitor) older(ctx context.Context, l Log, st *logState, now time.Time, gen int, trusted, next Checkpoint, prove ConsistencyProver) {
	err := prove(trusted.Tree, next.Tree)
	if errors.Is(err, ErrNotConsistent) && !l.V1 {
		m.inconsistent(ctx, l, st, now, gen, &Inconsistency{Kind: Fork, Detected: now, Conflicting: next.Raw, Trusted: trusted.Raw,
			Message: fmt.Sprintf("a checkpoint of size %d that is not a prefix of the trusted one of size %d: %v", next.Tree.N, trusted.Tree.N, err)})
		return
	}
	st.mu.Lock()
	st.remember(trusted, now, m.opts.StaleGrace) // a stored checkpoint this replica had not seen counts from now
	settled, ok := st.settled(now, m.opts.StaleGrace)
	st.mu.Unlock()
	if ok && next.Tree.N < settled.Tree.N {
		m.inconsistent(ctx, l, st, now, gen, &Inconsistency{Kind: Rollback, Detected: now, Conflicting: next.Raw, Trusted: settled.Raw,
			Message: fmt.Sprintf("a checkpoint of size %d, %s after one of size %d was verified", next.Tree.N, now.Sub(settled.Verified).Round(time.Second), settled.Tree.N)})
		return
	}
	m.fail(ctx, l, st, now, fmt.Errorf("log %s serves a checkpoint of size %d, older than the one of size %d verified at %s: a rollback if it still does %s after that",
		l.Origin, next.Tree.N, trusted.Tree.N, trusted.Verified.UTC().Format(time.RFC3339), m.opts.StaleGrace))
}

// maxHistory bounds the trusted checkpoints remembered for the rollback rule.
const maxHistory = 64

// remember records a trusted checkpoint and when it was first verified (now, when not known); mu is held.
// The history keeps what is younger than grace, and the newest of what is older.
func (st *logState) remember(cp Checkpoint, now time.Time, grace time.Duration) {
	for _, h := range st.history {
		if h.Tree == cp.Tree {
			return
		}
	}
	if cp.Verified.IsZero() || cp.Verified.After(now) {
		cp.Verified = now
	}
	st.history = append(st.history, cp)
	slices.SortFunc(st.history, func(a, b Checkpoint) int { return a.Verified.Compare(b.Verified) })
	// Of the checkpoints older than grace, only the newest matters.
	keep := 0
	for i := range st.history {
		if now.Sub(st.history[i].Verified) >= grace {
			keep = i
		}
	}
	st.history = st.history[keep:]
	if len(st.history) > maxHistory {
		st.history = st.history[len(st.history)-maxHistory:]
	}
}

// settled is the newest checkpoint verified grace ago or more: every view of an honest log, however far a
// mirror lags within grace, has reached it; mu is held.
func (st *logState) settled(now time.Time, grace time.Duration) (Checkpoint, bool) {
	for i := len(st.history) - 1; i >= 0; i-- {
		if now.Sub(st.history[i].Verified) >= grace {
			return st.history[i], true
		}
	}
	return Checkpoint{}, false
}

// priors are the checkpoints a new one must be consistent with: the one verified in memory and the one
// in the store (another replica's, or this one's before a restart). A store record that is gone, or was
// made again, after this state continued one means the TransparencyLog was deleted: the log starts
// over. It also returns the state's generation.
func (m *Monitor) priors(ctx context.Context, l Log, st *logState) ([]Checkpoint, int, error) {
	var rec Record
	found := false
	if m.opts.Store != nil {
		var err error
		rec, found, err = m.opts.Store.Load(ctx, l)
		if err != nil {
			return nil, 0, fmt.Errorf("log %s: reading what was verified of it: %w", l.Origin, err)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if (!found && st.saved) || (found && st.storeID != "" && rec.ID != st.storeID) {
		st.reset()
	}
	if found {
		st.storeID = rec.ID
		if st.bad == nil && rec.Inconsistency != nil && evidence(l, rec.Inconsistency) {
			st.bad = rec.Inconsistency
		}
	}
	var out []Checkpoint
	if st.trusted != nil {
		out = append(out, *st.trusted)
	}
	if found && len(rec.Checkpoint) > 0 {
		// A record that does not verify (edited, or of a rotated key) proves nothing: it is replaced.
		if cp, err := VerifyCheckpoint(l, rec.Checkpoint); err == nil && (st.trusted == nil || cp.Tree != st.trusted.Tree) {
			cp.Verified = rec.VerifiedTime
			st.remember(cp, m.opts.Clock(), m.opts.StaleGrace)
			out = append(out, cp)
		}
	}
	return out, st.gen, nil
}

// evidence reports whether a stored inconsistency holds up as far as its notes can show: both signed by
// the log, of two different trees. (Two notes of one size prove a fork to anyone; a fork of two sizes or
// a rollback is also a claim about proofs and about what the log served over time, which only the
// record's writers, sigwatch's own service account by its RBAC, can make.)
func evidence(l Log, inc *Inconsistency) bool {
	a, err1 := VerifyCheckpoint(l, inc.Trusted)
	b, err2 := VerifyCheckpoint(l, inc.Conflicting)
	return err1 == nil && err2 == nil && a.Tree != b.Tree
}

func (m *Monitor) fail(ctx context.Context, l Log, st *logState, now time.Time, err error) {
	st.mu.Lock()
	st.checked, st.problem = now, err
	st.mu.Unlock()
	m.save(ctx, l, st)
}

func (m *Monitor) inconsistent(ctx context.Context, l Log, st *logState, now time.Time, gen int, inc *Inconsistency) {
	st.mu.Lock()
	if st.gen != gen {
		st.mu.Unlock()
		return // found against a history the log has started over from
	}
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
	rec := Record{Log: l, ID: st.storeID, CheckedTime: st.checked, Inconsistency: st.bad}
	if st.trusted != nil {
		rec.Checkpoint, rec.Tree, rec.VerifiedTime = st.trusted.Raw, st.trusted.Tree, st.trusted.Verified
	}
	if st.problem != nil {
		rec.Problem = st.problem.Error()
	}
	gen := st.gen
	st.mu.Unlock()
	id, err := m.opts.Store.Save(ctx, rec)
	if err != nil {
		return
	}
	st.mu.Lock()
	if st.gen == gen {
		st.saved, st.storeID = true, id
	}
	st.mu.Unlock()
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
