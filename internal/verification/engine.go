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
}

// Engine verifies image digests. It is safe for concurrent use; one Engine serves every SignedImage.
type Engine struct {
	opts      Options
	verifiers verifiers
	verdicts  *lru.Cache // cacheKey -> policyVerdict
	states    *lru.Cache // where -> stateEntry
	flight    singleflight.Group
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
	return &Engine{
		opts:     opts,
		verdicts: lru.New(opts.CacheSize),
		states:   lru.New(opts.CacheSize),
	}
}

// Request asks for the verdict on one digest.
type Request struct {
	Image    imageref.Image
	Policies []*policy.Policy
	// Fresh skips the cached registry state (not the cached verdicts, which depend on it): a forced
	// re-verification asks the registry again.
	Fresh bool
	// Credentials read the registry (zero: the registry client's own keychain), for example the pull
	// secrets of the pods that run the image.
	Credentials registry.Credentials
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
		MaxSignatures: e.opts.MaxSignatures, MaxAttestations: e.opts.MaxAttestations}, id}
}

// policyVerdict is what is cached per (digest, signature set, policy, trust root).
type policyVerdict struct {
	result     PolicyResult
	signatures []Signature
}

type cachedVerdict struct {
	verdict policyVerdict
	hit     bool
}

type stateEntry struct {
	state *signatures.State
	at    time.Time
}

// Verify returns the verdict of every policy on the digest. It never returns an error: what could not be
// decided is an Unknown policy result with its reason.
func (e *Engine) Verify(ctx context.Context, req Request) *Result {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	res := &Result{Image: req.Image, Time: e.opts.Clock(), Cached: len(req.Policies) > 0}
	if !imageref.ValidDigest(req.Image.Digest) {
		for _, p := range req.Policies {
			res.Policies = append(res.Policies, unknown(p.Name, sigwatchv1alpha1.VerificationErrorReason, "%q is not a sha256 digest", req.Image.Digest))
		}
		res.Cached = false
		return res
	}

	// Group the policies by where their signatures live: one discovery per place.
	groups := map[string][]*policy.Policy{}
	var order []string
	for _, p := range req.Policies {
		if _, ok := groups[p.SignatureRepository]; !ok {
			order = append(order, p.SignatureRepository)
		}
		groups[p.SignatureRepository] = append(groups[p.SignatureRepository], p)
	}
	seen := map[string]int{} // signature manifest+format+subject -> index in res.Signatures
	for _, sigRepo := range order {
		where := signatures.Where{Image: req.Image, SignatureRepository: sigRepo}
		verdicts, cached := e.verifyGroup(ctx, e.discoverer(req.Credentials), where, groups[sigRepo], req.Fresh)
		res.Cached = res.Cached && cached
		for _, v := range verdicts {
			res.Policies = append(res.Policies, v.result)
			mergeSignatures(res, seen, v.signatures)
		}
	}
	sort.SliceStable(res.Signatures, func(i, j int) bool {
		return res.Signatures[i].Verified() && !res.Signatures[j].Verified()
	})
	return res
}

func mergeSignatures(res *Result, seen map[string]int, sigs []Signature) {
	for _, s := range sigs {
		k := s.ManifestDigest + "|" + s.Subject + "|" + s.KeyID + "|" + s.PredicateType + "|" + string(s.Format)
		if i, ok := seen[k]; ok {
			if !res.Signatures[i].Verified() && s.Verified() {
				res.Signatures[i] = s
			}
			continue
		}
		seen[k] = len(res.Signatures)
		res.Signatures = append(res.Signatures, s)
	}
}

// verifyGroup judges the policies whose signatures live in one place.
func (e *Engine) verifyGroup(ctx context.Context, d session, where signatures.Where, pols []*policy.Policy, fresh bool) ([]policyVerdict, bool) {
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
		return out, false
	}
	st, err := e.state(ctx, d, where, attestations, fresh)
	if err != nil {
		for _, i := range pending {
			out[i] = policyVerdict{result: errorResult(pols[i].Name, where.Image, err)}
		}
		return out, false
	}
	allCached := true
	fetch := sync.OnceValues(func() ([]signatures.Candidate, error) { return e.fetch(ctx, d, st) })
	for _, i := range pending {
		p := pols[i]
		key := strings.Join([]string{where.Image.Digest, where.SignatureRepository, st.Key(), p.Hash, roots[i].Version}, "|")
		// One flight per verdict: concurrent callers share it, later callers find it cached.
		v, _, _ := e.flight.Do("verdict|"+key, func() (any, error) {
			if v, ok := e.verdicts.Get(key); ok {
				return cachedVerdict{v.(policyVerdict), true}, nil
			}
			candidates, err := fetch()
			if err != nil {
				return cachedVerdict{policyVerdict{result: errorResult(p.Name, where.Image, err)}, false}, nil
			}
			pv := e.judgePolicy(ctx, where, p, roots[i], candidates)
			pv.result.TrustedRoot = roots[i].Source
			e.verdicts.Add(key, pv)
			return cachedVerdict{pv, false}, nil
		})
		cv := v.(cachedVerdict)
		out[i] = cv.verdict
		allCached = allCached && cv.hit
	}
	return out, allCached
}

// state learns what exists for the digest, sharing one round of requests between concurrent and recent
// callers.
func (e *Engine) state(ctx context.Context, d session, where signatures.Where, attestations, fresh bool) (*signatures.State, error) {
	key := fmt.Sprintf("%s|%s|%t", where.Image, where.SignatureRepository, attestations)
	if !fresh && e.opts.StateTTL > 0 {
		if v, ok := e.states.Get(key); ok {
			se := v.(stateEntry)
			if e.opts.Clock().Sub(se.at) < e.opts.StateTTL {
				return se.state, nil
			}
		}
	}
	// Requests in flight are shared only between callers with the same credentials: one without pull
	// secrets must not hand its 401 to one with them. (The cached state is shared, see StateTTL.)
	v, err, _ := e.flight.Do("state|"+d.credentials+"|"+key, func() (any, error) {
		st, err := d.State(ctx, where, attestations)
		if err != nil {
			return nil, err
		}
		e.states.Add(key, stateEntry{state: st, at: e.opts.Clock()})
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*signatures.State), nil
}

func (e *Engine) fetch(ctx context.Context, d session, st *signatures.State) ([]signatures.Candidate, error) {
	v, err, _ := e.flight.Do("fetch|"+d.credentials+"|"+st.Where.Image.String()+"|"+st.Where.SignatureRepository+"|"+st.Key(), func() (any, error) {
		return d.Fetch(ctx, st)
	})
	if err != nil {
		return nil, err
	}
	return v.([]signatures.Candidate), nil
}

// errorResult turns a discovery error into a verdict: too many signatures fails the policy (sigwatch
// will not examine an unbounded set); everything else is "could not verify".
func errorResult(policyName string, img imageref.Image, err error) PolicyResult {
	switch {
	case errors.Is(err, signatures.ErrTooMany):
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
