package verification

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/utils/lru"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/revocation"
	"github.com/sigwatch/sigwatch/internal/signatures"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// RootResolver returns the trust root a policy verifies against.
type RootResolver func(ctx context.Context, p *policy.Policy) (*trust.Root, error)

// Options configure an Engine.
type Options struct {
	// Registry reads the registries, with each request's credentials.
	Registry *registry.Client
	// Roots resolves each policy's trust root.
	Roots RootResolver
	// Logs, when set, checks each verified policy's accepted log entries against their live logs, on
	// every verification (cached verdicts included); see transparencyLog.online.
	Logs LogChecker
	// LogTimeout bounds the live log checks of one verification, after its offline verdicts (default
	// 15s): a log that does not answer in time is LogUnavailable.
	LogTimeout time.Duration
	// LogURLs replaces, by checkpoint origin, where a Rekor v2 log's checkpoint and tiles are read (by
	// default its baseUrl): a mirror, or a test's tile server.
	LogURLs map[string]string
	// Timeout is the deadline of one verification (default 60s).
	Timeout time.Duration
	// CacheSize bounds the cached verdicts (default 10000).
	CacheSize int
	// StateTTL is how long what exists for a digest (referrers, tag digests) is reused without asking the
	// registry again: SignedImages of the same digest in many namespaces then cost one round of requests.
	// 0 asks every time.
	StateTTL time.Duration
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// Limits of discovery (0: the signatures package defaults).
	MaxSignatures, MaxAttestations int
	// MaxBytes caps what one verification reads of signatures and attestations together (0: the
	// signatures package default).
	MaxBytes int64
	// MemoryBudget bounds the signature and attestation bytes all verifications hold at once (default
	// DefaultMemoryBudget); a verification waits for its share before reading.
	MemoryBudget int64
	// MaxPerHost bounds the verifications in flight that read one registry host (0: no bound), so that a
	// slow registry cannot hold every worker. A verification reads its image's host and each signature
	// repository's; when one of them has MaxPerHost in flight, Verify returns a Result with Deferred set,
	// and the caller asks again later: at once when the host's verifications in flight are slow to finish
	// (or it was slow recently), else after waiting up to HostWait for a slot. The hosts that were slow
	// recently share one bound of MaxPerHost between them, so that tarpits on several hosts cannot take
	// more.
	MaxPerHost int
	// HostWait is how long a verification waits for a slot of a busy host whose verifications in flight
	// all started less than HostWait ago (default 1s; negative: never wait).
	HostWait time.Duration
	// SlowHostTimeout is the deadline of a verification whose image's registry host was slow recently
	// (default a quarter of Timeout, at least 10s, at most Timeout): a tarpit then costs less time per
	// image. A host is slow for SlowHostTTL (default 10m) after one of its verifications hit its deadline
	// or took SlowHostTimeout or longer.
	SlowHostTimeout, SlowHostTTL time.Duration
}

// DefaultMemoryBudget is the default Options.MemoryBudget: what one verification may read. Parsing what
// was read takes about as much again, and small reads (the usual few KiB) share it without waiting.
const DefaultMemoryBudget = signatures.DefaultMaxBytes

// Engine verifies image digests. It is safe for concurrent use; one Engine serves every SignedImage.
type Engine struct {
	opts      Options
	verifiers verifiers
	verdicts  *lru.Cache // cacheKey -> policyVerdict
	states    *expiring[*signatures.State]
	// last keeps the last registry state read of each digest, for Request.Reuse; indexAnswers whether an
	// image index lists a digest.
	last, indexAnswers *lru.Cache
	budget             *signatures.Budget
	flight             singleflight.Group
	hosts              *hostLimits
	// live holds the candidates of fetches in use, by credentials and signature set.
	liveMu sync.Mutex
	live   map[string]*sharedFetch
	// unnamed numbers the requests whose keychain has no ID (their requests are never shared).
	unnamed atomic.Uint64
}

// New returns an Engine.
func New(opts Options) *Engine {
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = DefaultMemoryBudget
	}
	if opts.LogTimeout <= 0 {
		opts.LogTimeout = 15 * time.Second
	}
	return &Engine{
		opts:     opts,
		verdicts: lru.New(opts.CacheSize),
		states:   newExpiring[*signatures.State](opts.CacheSize, opts.StateTTL, opts.Clock),
		last:     lru.New(opts.CacheSize),
		// An answer is a few dozen bytes.
		indexAnswers: lru.New(opts.CacheSize),
		budget:       signatures.NewBudget(opts.MemoryBudget),
		live:         map[string]*sharedFetch{},
		hosts:        newHostLimits(opts),
	}
}

// Request asks for the verdict on one digest.
type Request struct {
	Image    imageref.Image
	Policies []*policy.Policy
	// Fresh skips the cached registry state: a forced re-verification asks the registry again what
	// signatures exist. Cached verdicts are still used for an unchanged signature set: they are kept only
	// when reached over content read in full and checked against its digests.
	Fresh bool
	// Credentials read the registry (zero: the registry client's own keychain), for example the pull
	// secrets of the pods that run the image.
	Credentials registry.Credentials
	// Indexes are digests of image indexes, in the image's repository, that the specs of the pods running
	// the digest pin (a multi-arch image whose runtime reports the platform manifest's digest): when the
	// digest has no signature of its own, the signatures of one that lists it count. At most MaxIndexes
	// are looked at.
	Indexes []string
	// Revocations are the SignatureRevocations in force: no policy accepts a signature or attestation
	// they revoke. They are applied to cached verdicts too, so a change needs no registry round trip.
	Revocations *revocation.Set
	// Reuse answers from the last registry state known for the digest (what signatures exist), however
	// old, when there is one: to judge again what changed in the cluster only (a revocation), not in
	// the registry.
	Reuse bool
	// platform is the digest that runs when Image is an image index verified on its behalf.
	platform string
}

// session finds signatures with one request's credentials.
type session struct {
	*signatures.Discoverer
	// credentials names them in the keys of shared requests in flight ("" for the default keychain;
	// a keychain without an ID is never shared).
	credentials string
}

func (e *Engine) discoverer(creds registry.Credentials) session {
	id := "default"
	if creds.Keychain != nil {
		id = "creds:" + creds.ID
		if creds.ID == "" {
			id = fmt.Sprintf("unnamed:%d", e.unnamed.Add(1)) // never shared
		}
	}
	return session{&signatures.Discoverer{Registry: e.opts.Registry.With(creds),
		MaxSignatures: e.opts.MaxSignatures, MaxAttestations: e.opts.MaxAttestations,
		MaxBytes: e.opts.MaxBytes, Budget: e.budget}, id}
}

// policyVerdict is what is cached per (digest, signature set, policy, trust root): the judgment of the
// signatures, from which settle reaches the result under the revocations in force at the time of the
// verification.
type policyVerdict struct {
	result     PolicyResult
	signatures []Signature
	// accepted: a signature was accepted (result is then settle's with nothing rejected); attestations
	// are the required attestations' judgments, in order; unreadable is the Unknown result owed to a
	// candidate that could not be read, should nothing that was accepted count.
	accepted     bool
	attestations []attestationVerdict
	unreadable   *PolicyResult
	// undecided: the verdict depends on something other than the content (a condition cut off by the
	// deadline); it is not kept.
	undecided bool
}

type cachedVerdict struct {
	verdict policyVerdict
	hit     bool
}

// Verify returns the verdict of every policy on the digest. It never returns an error: what could not be
// decided is an Unknown policy result with its reason. When a registry host it reads has
// Options.MaxPerHost verifications in flight, it returns a Result with Deferred set and no verdict: at
// once, or after waiting up to Options.HostWait for a slot of a host that answers promptly.
//
// When the digest has no signature for any policy and req.Indexes names image indexes, the first one that
// lists the digest and has signatures gives the verdict (see verifyWithIndexes).
func (e *Engine) Verify(ctx context.Context, req Request) *Result {
	return e.verifyWithIndexes(ctx, req)
}

// verifyDigest is Verify of the digest alone.
func (e *Engine) verifyDigest(ctx context.Context, req Request) *Result {
	res := &Result{Image: req.Image, Time: e.opts.Clock(), Cached: len(req.Policies) > 0}
	if !imageref.ValidDigest(req.Image.Digest) {
		for _, p := range req.Policies {
			res.Policies = append(res.Policies, unknown(p.Name, sigwatchv1alpha1.VerificationErrorReason, "%q is not a sha256 digest", req.Image.Digest))
		}
		res.Cached = false
		return res
	}
	judged, cached, deferred := e.judge(ctx, req)
	if deferred != "" {
		return &Result{Image: req.Image, Time: res.Time, Deferred: deferred}
	}
	res.Cached = res.Cached && cached
	// The live log checks come after every offline verdict, outside the registry hosts' slots and their
	// deadline, each policy's (and the search) under a time limit of its own: a slow log delays no
	// registry read, and one policy's checks do not use up another's time.
	withLimit := func(f func(context.Context)) {
		lctx, cancel := context.WithTimeout(ctx, e.opts.LogTimeout)
		defer cancel()
		f(lctx)
	}
	seen := map[string]int{} // signature manifest+format+subject -> index in res.Signatures
	now := e.opts.Clock()
	for _, j := range judged {
		v := j.verdict
		v.result, v.signatures = settle(j.policy, v, e.check(j.policy, req, now))
		withLimit(func(lctx context.Context) { v = e.online(lctx, j.policy, v) })
		res.Policies = append(res.Policies, v.result)
		mergeSignatures(res, seen, v.signatures)
		if u := v.result.until; v.result.Result == sigwatchv1alpha1.PolicyVerified && !u.IsZero() && (res.ChangesAt == nil || u.Before(*res.ChangesAt)) {
			res.ChangesAt = &u
		}
	}
	withLimit(func(lctx context.Context) {
		res.UnexpectedSigners, res.UnexpectedSignersTruncated = e.searchSigners(lctx, req.Image.Digest, req.Policies, res.Signatures)
	})
	sort.SliceStable(res.Signatures, func(i, j int) bool {
		return res.Signatures[i].Verified() && !res.Signatures[j].Verified()
	})
	return res
}

// judgedPolicy is a policy's offline verdict; cached: its group's verdicts all came from the cache.
type judgedPolicy struct {
	policy  *policy.Policy
	verdict policyVerdict
	cached  bool
}

// judge reaches every policy's offline verdict, holding the slots of the registry hosts it reads and
// under their deadline; deferred says why it did not (see Options.MaxPerHost). A judgment again from the
// last state (Request.Reuse) that needs no registry read takes no slot; one that would read is judged
// as any other.
func (e *Engine) judge(ctx context.Context, req Request) (judged []judgedPolicy, allCached bool, deferred string) {
	if e.reusable(req) {
		if judged, ok := e.judgeGroups(ctx, req, true); ok {
			return judged, true, ""
		}
	}
	hosts := hostsRead(req)
	release, deferred := e.hosts.acquire(ctx, hosts)
	if deferred != "" {
		return nil, false, deferred
	}
	defer release()
	imageHost := hostOf(req.Image.Repository)
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, e.hosts.timeout(imageHost))
	defer cancel()
	if len(hosts) > 0 {
		defer e.hosts.observe(imageHost, ctx, caller)
	}
	judged, _ = e.judgeGroups(ctx, req, false)
	allCached = true
	for _, j := range judged {
		allCached = allCached && j.cached
	}
	return judged, allCached, ""
}

// judgeGroups judges the policies grouped by where their signatures live, one discovery per place. With
// noRead, only from what is kept (the last state, the cached verdicts): ok is false when the registry
// would have to be read.
func (e *Engine) judgeGroups(ctx context.Context, req Request, noRead bool) (judged []judgedPolicy, ok bool) {
	groups := map[string][]*policy.Policy{}
	var order []string
	for _, p := range req.Policies {
		if _, ok := groups[p.SignatureRepository]; !ok {
			order = append(order, p.SignatureRepository)
		}
		groups[p.SignatureRepository] = append(groups[p.SignatureRepository], p)
	}
	for _, sigRepo := range order {
		where := signatures.Where{Image: req.Image, SignatureRepository: sigRepo}
		verdicts, cached, needsRead := e.verifyGroup(ctx, e.discoverer(req.Credentials), where, groups[sigRepo], req.Fresh, req.Reuse, noRead)
		if needsRead {
			return nil, false
		}
		for i, v := range verdicts {
			judged = append(judged, judgedPolicy{policy: groups[sigRepo][i], verdict: v, cached: cached})
		}
	}
	return judged, true
}

// Deferral says why Verify would defer req now (see Options.MaxPerHost), or "". It takes nothing: a
// caller asks it to skip preparing a request (reading pull secrets) that would be deferred; Verify
// decides.
func (e *Engine) Deferral(req Request) string {
	return e.hosts.wouldDefer(hostsRead(req))
}

func mergeSignatures(res *Result, seen map[string]int, sigs []Signature) {
	for _, s := range sigs {
		k := s.ManifestDigest + "|" + s.Subject + "|" + s.KeyID + "|" + s.PredicateType + "|" + string(s.Format)
		if i, ok := seen[k]; ok {
			if better := preferred(s, res.Signatures[i]); better {
				res.Signatures[i] = s
			}
			continue
		}
		seen[k] = len(res.Signatures)
		res.Signatures = append(res.Signatures, s)
	}
}

// preferred reports whether s says more of a signature than the copy another policy gave: accepted
// over not; accepted and then revoked or too old (its signer verified) over plainly rejected; an
// attestation that satisfied a requirement over one that did not.
func preferred(s, have Signature) bool {
	rank := func(x Signature) int {
		switch {
		case x.Verified():
			return 2
		case x.Reason == sigwatchv1alpha1.SignatureRevokedReason || x.Reason == sigwatchv1alpha1.SignatureTooOldReason:
			return 1
		default:
			return 0
		}
	}
	if rank(s) != rank(have) {
		return rank(s) > rank(have)
	}
	return s.Satisfied && !have.Satisfied
}

// verifyGroup judges the policies whose signatures live in one place.
// With noRead it reads nothing: needsRead says the state or a verdict is not kept.
func (e *Engine) verifyGroup(ctx context.Context, d session, where signatures.Where, pols []*policy.Policy, fresh, reuse, noRead bool) (_ []policyVerdict, _ bool, needsRead bool) {
	out := make([]policyVerdict, len(pols))
	roots := make([]*trust.Root, len(pols))
	pending := []int{}
	attestations := false
	for i, p := range pols {
		r, err := e.opts.Roots(ctx, p)
		if err != nil {
			out[i] = policyVerdict{result: unknown(p.Name, sigwatchv1alpha1.TrustedRootUnavailableReason, "%v", err)}
			continue
		}
		roots[i] = r
		pending = append(pending, i)
		attestations = attestations || len(p.Attestations) > 0
	}
	if len(pending) == 0 {
		return out, false, false
	}
	if noRead {
		st, ok := e.kept(d, where, attestations)
		if !ok {
			return nil, false, true
		}
		for _, i := range pending {
			v, ok := e.verdicts.Get(verdictKey(where, st.Key(), pols[i], roots[i].Version))
			if !ok {
				return nil, false, true
			}
			out[i] = v.(policyVerdict)
		}
		return out, true, false
	}
	st, err := e.state(ctx, d, where, attestations, fresh, reuse)
	if err != nil {
		for _, i := range pending {
			out[i] = policyVerdict{result: errorResult(pols[i].Name, where.Image, err)}
		}
		return out, false, false
	}
	allCached := true
	// The memory the candidates hold is given back once every policy of the group is judged.
	done := func() {}
	defer func() { done() }()
	var judging *sync.Mutex
	fetch := sync.OnceValues(func() ([]signatures.Candidate, error) {
		cands, sf, release, err := e.fetch(ctx, d, st)
		done = release
		if sf != nil {
			judging = &sf.judging
		}
		return cands, err
	})
	for _, i := range pending {
		p := pols[i]
		// The policy's name is part of the key: two policies with the same spec share nothing, so a
		// cached result never carries another policy's name.
		key := verdictKey(where, st.Key(), p, roots[i].Version)
		// The repository is in the flight's key as in the fetch's: a caller never waits on a flight whose
		// fetch (of another repository's copy of the digest) waits for memory the caller holds.
		// One flight per verdict: concurrent callers with the same credentials share it, later callers
		// find it cached. (With other credentials, a caller judges for itself: it must not wait on a
		// flight whose fetch waits for memory the caller holds.)
		v, _, _ := e.flight.Do("verdict|"+d.credentials+"|"+key, func() (any, error) {
			if v, ok := e.verdicts.Get(key); ok {
				return cachedVerdict{v.(policyVerdict), true}, nil
			}
			candidates, err := fetch()
			if err != nil {
				return cachedVerdict{policyVerdict{result: errorResult(p.Name, where.Image, err)}, false}, nil
			}
			// Candidates shared between callers are judged one caller at a time: sigstore-go's bundle
			// model is not safe for concurrent use (reading a bundle's log entries writes to it).
			judging.Lock()
			pv := e.judgePolicy(ctx, where, p, roots[i], candidates)
			judging.Unlock()
			pv.result.TrustedRoot = roots[i].Source
			if complete(candidates) && !pv.undecided {
				e.verdicts.Add(key, pv)
			}
			return cachedVerdict{pv, false}, nil
		})
		cv := v.(cachedVerdict)
		out[i] = cv.verdict
		allCached = allCached && cv.hit
	}
	return out, allCached, false
}

// kept is the registry state kept for the digest (the shared one, else the last one read), without
// reading the registry.
func (e *Engine) kept(d session, where signatures.Where, attestations bool) (*signatures.State, bool) {
	key := stateKey(d.credentials, where, attestations)
	if e.opts.StateTTL > 0 {
		if st, ok := e.states.get(key); ok {
			return st, true
		}
	}
	if st, ok := e.last.Get(key); ok {
		return st.(*signatures.State), true
	}
	return nil, false
}

// state learns what exists for the digest, sharing one round of requests between concurrent and recent
// callers with the same credentials.
func (e *Engine) state(ctx context.Context, d session, where signatures.Where, attestations, fresh, reuse bool) (*signatures.State, error) {
	// What one set of credentials could read is never shown to another: a namespace without access
	// must not learn, from the cache, that a private digest exists or who signed it.
	key := stateKey(d.credentials, where, attestations)
	if !fresh && e.opts.StateTTL > 0 {
		if st, ok := e.states.get(key); ok {
			return st, nil
		}
	}
	if !fresh && reuse {
		if st, ok := e.last.Get(key); ok {
			return st.(*signatures.State), nil
		}
	}
	v, err, _ := e.flight.Do("state|"+key, func() (any, error) {
		st, err := d.State(ctx, where, attestations)
		if err != nil {
			// A retry after a failed read must reach the registry, not be answered from what was seen
			// before the failure (the status would flap between Unknown and the old verdict); nor may a
			// judgment again from the last state (Reuse).
			e.states.remove(key)
			e.last.Remove(key)
			return nil, err
		}
		if e.opts.StateTTL > 0 {
			e.states.add(key, st)
		}
		e.last.Add(key, st)
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*signatures.State), nil
}

// stateKey keys what exists for a digest, by the credentials that read it.
func stateKey(credentials string, where signatures.Where, attestations bool) string {
	return fmt.Sprintf("%s|%s|%s|%t", credentials, where.Image, where.SignatureRepository, attestations)
}

// reusable reports whether a request may be answered from what is kept, without the registry (see
// judgeGroups): a judgment again (Reuse) that is not fresh, with credentials that share state.
func (e *Engine) reusable(req Request) bool {
	return req.Reuse && !req.Fresh && (req.Credentials.Keychain == nil || req.Credentials.ID != "")
}

// sharedFetch is one fetch's candidates while anyone uses them: the memory budget they hold is given
// back when the last user is done.
type sharedFetch struct {
	// judging is held while a caller judges the candidates.
	judging sync.Mutex
	ready   chan struct{}
	cands   []signatures.Candidate
	err     error
	refs    int
	release func()
}

// fetch reads the candidates, sharing them with every caller that wants the same signature set with the
// same credentials while any of them still uses it (not only while the reads are in flight): a caller
// that holds a fetch and waits for another's verdict then never waits for memory that it holds itself.
// done (never nil) is called when the caller no longer uses the candidates.
func (e *Engine) fetch(ctx context.Context, d session, st *signatures.State) (cands []signatures.Candidate, shared *sharedFetch, done func(), err error) {
	key := d.credentials + "|" + st.Where.Image.String() + "|" + st.Where.SignatureRepository + "|" + st.Key()
	e.liveMu.Lock()
	sf, ok := e.live[key]
	if ok {
		sf.refs++
		e.liveMu.Unlock()
		select {
		case <-sf.ready:
		case <-ctx.Done():
			e.unref(key, sf)
			return nil, nil, func() {}, ctx.Err()
		}
		if sf.err != nil {
			e.unref(key, sf)
			return nil, nil, func() {}, sf.err
		}
		return sf.cands, sf, func() { e.unref(key, sf) }, nil
	}
	sf = &sharedFetch{ready: make(chan struct{}), refs: 1}
	e.live[key] = sf
	e.liveMu.Unlock()
	sf.cands, sf.release, sf.err = d.FetchHeld(ctx, st)
	if sf.err != nil {
		e.liveMu.Lock()
		if e.live[key] == sf {
			delete(e.live, key) // the next caller tries again
		}
		e.liveMu.Unlock()
	}
	close(sf.ready)
	if sf.err != nil {
		e.unref(key, sf)
		return nil, nil, func() {}, sf.err
	}
	return sf.cands, sf, func() { e.unref(key, sf) }, nil
}

func (e *Engine) unref(key string, sf *sharedFetch) {
	e.liveMu.Lock()
	sf.refs--
	last := sf.refs == 0
	if last && e.live[key] == sf {
		delete(e.live, key)
	}
	e.liveMu.Unlock()
	if last && sf.release != nil {
		sf.release()
	}
}

// verdictKey keys a cached verdict by everything it depends on: the digest, where its signatures live
// and which exist, the policy (its name and spec) and the trust root.
func verdictKey(where signatures.Where, stateKey string, p *policy.Policy, rootVersion string) string {
	return strings.Join([]string{where.Image.Repository, where.Image.Digest, where.SignatureRepository, stateKey, p.Name, p.Hash, rootVersion}, "|")
}

// complete reports whether every candidate was read in full: only then may a verdict be kept.
func complete(cands []signatures.Candidate) bool {
	for i := range cands {
		if cands[i].Unreadable {
			return false
		}
	}
	return true
}

// errorResult turns a discovery error into a verdict: too many signatures fails the policy (sigwatch
// will not examine an unbounded set); everything else is "could not verify".
func errorResult(policyName string, img imageref.Image, err error) PolicyResult {
	switch {
	case errors.Is(err, signatures.ErrTooMany), errors.Is(err, signatures.ErrTooLarge) && !errors.Is(err, context.DeadlineExceeded):
		return failed(policyName, sigwatchv1alpha1.InvalidSignatureReason, "%v", err)
	case errors.Is(err, signatures.ErrImageNotFound):
		return unknown(policyName, sigwatchv1alpha1.RegistryUnavailableReason, "%v", err)
	case registry.IsUnavailable(err):
		return unknown(policyName, sigwatchv1alpha1.RegistryUnavailableReason, "registry unavailable for %s: %v", img, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return unknown(policyName, sigwatchv1alpha1.RegistryUnavailableReason, "verification of %s did not finish in time: %v", img, err)
	default:
		return unknown(policyName, sigwatchv1alpha1.RegistryUnavailableReason, "reading the signatures of %s: %v", img, err)
	}
}
