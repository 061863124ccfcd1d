package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// ResolvedPolicy is a policy ready to verify images: compiled, with its trust root.
type ResolvedPolicy struct {
	Policy *policy.Policy
	Root   *trust.Root
}

// transientError is a failure to read a policy's input that may pass by itself: the API server timed
// out, throttled or failed. It is retried with backoff and never cached; the policy is not stalled.
type transientError struct {
	err error
	// reason, when set, is the Verified reason of the images it leaves undecided (default
	// VerificationError).
	reason string
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// transientReason is the Verified reason of images left undecided by a transient error.
func transientReason(err error) string {
	var t *transientError
	if errors.As(err, &t) && t.reason != "" {
		return t.reason
	}
	return sigwatchv1alpha1.VerificationErrorReason
}

// IsTransient reports whether err, from PolicyResolver.Resolve, may pass by itself.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// readFailure classifies an API error reading a policy's Secret or ConfigMap: NotFound is the policy's
// problem (settled, reported on the field), and so is a Secret the manager's --secret-access does not
// read (a *SecretAccessError); anything else is transient.
func readFailure(policyName, reason, field string, err error) error {
	var access *SecretAccessError
	if apierrors.IsNotFound(err) || errors.As(err, &access) {
		return &policy.Error{Policy: policyName, Reason: reason, Field: field, Err: err}
	}
	return &transientError{err: fmt.Errorf("policy %s: %s: %w", policyName, field, err)}
}

// PolicyStore compiles ImageSignaturePolicies and loads their trust roots and keys, caching both until the
// policy, its Secret or its ConfigMap changes. It is shared by the controllers. Only settled results are
// cached: a transient read error is returned and asked again next time.
type PolicyStore struct {
	// Reader reads the metadata of Secrets and ConfigMaps (the manager's cached client: only their
	// metadata is cached).
	Reader client.Reader
	// APIReader reads their content from the API server when their resource version changed.
	APIReader client.Reader
	// PublicGood is the public-good trust root, for policies without trustedRoot.
	PublicGood func(ctx context.Context) (*trust.Root, error)

	// TUFCacheDir keeps the metadata of the policies' TUF repositories on disk (one directory per
	// repository and initial root); empty: in memory only.
	TUFCacheDir string
	// TUFRefresh is how often a policy's TUF repository is asked again (default DefaultTUFRefresh).
	TUFRefresh time.Duration
	// TUFMaxAge bounds how old the root a TUF repository last delivered may be and still stand in while
	// the repository fails (0: no bound).
	TUFMaxAge time.Duration

	mu         sync.Mutex
	compiled   map[string]compiledPolicy            // by policy name (cluster-scoped)
	roots      map[types.NamespacedName]loadedRoot  // by ConfigMap
	tufs       map[string]*trust.PublicGoodCache    // by mirror and initial root
	tufInitial map[types.NamespacedName]initialRoot // initial root.json, by ConfigMap
}

type initialRoot struct {
	resourceVersion, key, data string
}

// DefaultTUFRefresh is how often a policy's TUF repository is asked for updates.
const DefaultTUFRefresh = time.Hour

// maxTUFRepositories bounds the TUF caches the store keeps (policies rarely name more than a few).
const maxTUFRepositories = 64

type compiledPolicy struct {
	uid        types.UID
	generation int64
	secretsKey string
	policy     *policy.Policy
	err        error // a *policy.Error
}

type loadedRoot struct {
	resourceVersion string
	key             string
	root            *trust.Root
}

// Resolve compiles p, reading the Secrets its keys come from, and loads its trust root. See
// PolicyResolver.
func (s *PolicyStore) Resolve(ctx context.Context, p *sigwatchv1alpha1.ImageSignaturePolicy) (*ResolvedPolicy, error) {
	cp, err := s.compile(ctx, p)
	if err != nil {
		return nil, err
	}
	root, err := s.root(ctx, cp)
	if err != nil {
		return nil, err
	}
	return &ResolvedPolicy{Policy: cp, Root: root}, nil
}

func (s *PolicyStore) compile(ctx context.Context, p *sigwatchv1alpha1.ImageSignaturePolicy) (*policy.Policy, error) {
	secretsKey, err := s.secretsVersion(ctx, p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if c, ok := s.compiled[p.Name]; ok && c.uid == p.UID && c.generation == p.Generation && c.secretsKey == secretsKey {
		s.mu.Unlock()
		return c.policy, c.err
	}
	s.mu.Unlock()
	cp, err := policy.Compile(p, policy.Inputs{SecretKey: func(ref sigwatchv1alpha1.SecretKeyReference) ([]byte, error) {
		var sec corev1.Secret
		if err := s.APIReader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &sec); err != nil {
			var access *SecretAccessError
			switch {
			case apierrors.IsForbidden(err):
				return nil, keySecretForbidden(ref.Namespace, ref.Name, err)
			case apierrors.IsNotFound(err), errors.As(err, &access):
				return nil, fmt.Errorf("reading Secret %s/%s: %w", ref.Namespace, ref.Name, err)
			}
			return nil, &transientError{err: fmt.Errorf("reading Secret %s/%s: %w", ref.Namespace, ref.Name, err)}
		}
		data, ok := sec.Data[ref.Key]
		if !ok {
			return nil, fmt.Errorf("Secret %s/%s has no key %q", ref.Namespace, ref.Name, ref.Key)
		}
		return data, nil
	}})
	if IsTransient(err) {
		var t *transientError
		errors.As(err, &t)
		return nil, &transientError{err: fmt.Errorf("policy %s: %w", p.Name, t.err), reason: t.reason}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.compiled == nil {
		s.compiled = map[string]compiledPolicy{}
	}
	s.compiled[p.Name] = compiledPolicy{uid: p.UID, generation: p.Generation, secretsKey: secretsKey, policy: cp, err: err}
	return cp, err
}

// Forget drops a deleted policy from the cache, and the trust roots that no cached policy reads any more.
func (s *PolicyStore) Forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.compiled, name)
	used := map[types.NamespacedName]bool{}
	for _, c := range s.compiled {
		if c.policy != nil && c.policy.TrustedRoot != nil {
			used[types.NamespacedName{Namespace: c.policy.TrustedRoot.Namespace, Name: c.policy.TrustedRoot.Name}] = true
		}
		// TUF caches are kept: they are few (maxTUFRepositories), and their roots are costly to build again.
	}
	for nn := range s.roots {
		if !used[nn] {
			delete(s.roots, nn)
		}
	}
}

// cached reports what the store holds, for tests: the names of the compiled policies and the number of
// loaded trust roots.
func (s *PolicyStore) cached() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.compiled {
		names = append(names, n)
	}
	return names, len(s.roots)
}

// secretsVersion identifies the content of the key Secrets a policy refers to by their resource versions,
// read from the metadata cache.
func (s *PolicyStore) secretsVersion(ctx context.Context, p *sigwatchv1alpha1.ImageSignaturePolicy) (string, error) {
	h := sha256.New()
	for i, a := range p.Spec.Authorities {
		if a.Key == nil || a.Key.SecretRef == nil {
			continue
		}
		ref := *a.Key.SecretRef
		md := &metav1.PartialObjectMetadata{}
		md.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := s.Reader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, md); err != nil {
			if apierrors.IsForbidden(err) {
				return "", keySecretForbidden(ref.Namespace, ref.Name, err)
			}
			return "", readFailure(p.Name, sigwatchv1alpha1.KeyUnavailableReason, fmt.Sprintf("spec.authorities[%d].key.secretRef", i),
				fmt.Errorf("reading Secret %s/%s: %w", ref.Namespace, ref.Name, err))
		}
		fmt.Fprintf(h, "%s/%s@%s;", ref.Namespace, ref.Name, md.ResourceVersion)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Root returns the trust root of a compiled policy: its ConfigMap's trusted_root.json, or the public-good
// root. It is the verification engine's RootResolver.
func (s *PolicyStore) Root(ctx context.Context, p *policy.Policy) (*trust.Root, error) {
	r, err := s.root(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", trust.ErrUnavailable, err)
	}
	return r, nil
}

const trustedRootField = "spec.trustedRoot.configMapRef"

func (s *PolicyStore) root(ctx context.Context, p *policy.Policy) (*trust.Root, error) {
	if p.TrustedRootTUF != nil {
		return s.tufRoot(ctx, p)
	}
	if p.TrustedRoot == nil {
		r, err := s.PublicGood(ctx)
		if err != nil {
			// It may pass by itself (TUF delivers again): retried, and said as a trust root problem.
			return nil, &transientError{err: fmt.Errorf("policy %s: the public-good trust root: %w", p.Name, err),
				reason: sigwatchv1alpha1.TrustedRootUnavailableReason}
		}
		return r, nil
	}
	ref := p.TrustedRoot
	nn := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	version, err := s.configMapVersion(ctx, p.Name, trustedRootField, nn)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if r, ok := s.roots[nn]; ok && r.resourceVersion == version && r.key == ref.Key {
		s.mu.Unlock()
		return r.root, nil
	}
	s.mu.Unlock()
	data, version, err := s.configMapValue(ctx, p.Name, trustedRootField, nn, ref.Key)
	if err != nil {
		return nil, err
	}
	r, err := trust.FromJSON([]byte(data), fmt.Sprintf("ConfigMap %s", nn))
	if err != nil {
		return nil, &policy.Error{Policy: p.Name, Reason: sigwatchv1alpha1.TrustedRootUnavailableReason, Field: trustedRootField, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.roots == nil {
		s.roots = map[types.NamespacedName]loadedRoot{}
	}
	s.roots[nn] = loadedRoot{resourceVersion: version, key: ref.Key, root: r}
	return r, nil
}

// configMapVersion is the resource version of a ConfigMap a policy reads, from the metadata cache.
func (s *PolicyStore) configMapVersion(ctx context.Context, policyName, field string, nn types.NamespacedName) (string, error) {
	md := &metav1.PartialObjectMetadata{}
	md.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	if err := s.Reader.Get(ctx, nn, md); err != nil {
		return "", readFailure(policyName, sigwatchv1alpha1.TrustedRootUnavailableReason, field, fmt.Errorf("reading ConfigMap %s: %w", nn, err))
	}
	return md.ResourceVersion, nil
}

// configMapValue reads one key of a ConfigMap a policy reads (data or binaryData) from the API server,
// with the ConfigMap's resource version.
func (s *PolicyStore) configMapValue(ctx context.Context, policyName, field string, nn types.NamespacedName, key string) (string, string, error) {
	var cm corev1.ConfigMap
	if err := s.APIReader.Get(ctx, nn, &cm); err != nil {
		return "", "", readFailure(policyName, sigwatchv1alpha1.TrustedRootUnavailableReason, field, fmt.Errorf("reading ConfigMap %s: %w", nn, err))
	}
	if data, ok := cm.Data[key]; ok {
		return data, cm.ResourceVersion, nil
	}
	if bin, ok := cm.BinaryData[key]; ok {
		return string(bin), cm.ResourceVersion, nil
	}
	return "", "", &policy.Error{Policy: policyName, Reason: sigwatchv1alpha1.TrustedRootUnavailableReason, Field: field,
		Err: fmt.Errorf("ConfigMap %s has no key %q", nn, key)}
}

const tufRootField = "spec.trustedRoot.tuf.rootRef"

// tufRoot returns the trust root a policy's TUF repository delivers, through a cache per repository and
// initial root that refreshes it every TUFRefresh and keeps the last delivered root while the repository
// fails (reported as a fallback, up to TUFMaxAge).
func (s *PolicyStore) tufRoot(ctx context.Context, p *policy.Policy) (*trust.Root, error) {
	ref := p.TrustedRootTUF.RootRef
	nn := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	// The ConfigMap's metadata comes from the cache; its content is read only when it changed.
	version, err := s.configMapVersion(ctx, p.Name, tufRootField, nn)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	known, ok := s.tufInitial[nn]
	s.mu.Unlock()
	if !ok || known.resourceVersion != version || known.key != ref.Key {
		data, version, err := s.configMapValue(ctx, p.Name, tufRootField, nn, ref.Key)
		if err != nil {
			return nil, err
		}
		known = initialRoot{resourceVersion: version, key: ref.Key, data: data}
		s.mu.Lock()
		if s.tufInitial == nil || len(s.tufInitial) >= maxTUFRepositories {
			s.tufInitial = map[types.NamespacedName]initialRoot{}
		}
		s.tufInitial[nn] = known
		s.mu.Unlock()
	}
	initial := known.data
	sum := sha256.Sum256([]byte(p.TrustedRootTUF.Mirror + "\x00" + initial))
	key := hex.EncodeToString(sum[:])
	s.mu.Lock()
	c, ok := s.tufs[key]
	if !ok {
		if s.tufs == nil || len(s.tufs) >= maxTUFRepositories {
			s.tufs = map[string]*trust.PublicGoodCache{}
		}
		opts := trust.TUFOptions{Mirror: p.TrustedRootTUF.Mirror, Root: []byte(initial)}
		if s.TUFCacheDir != "" {
			opts.CacheDir = filepath.Join(s.TUFCacheDir, key[:16])
		}
		refresh := s.TUFRefresh
		if refresh <= 0 {
			refresh = DefaultTUFRefresh
		}
		c = &trust.PublicGoodCache{Name: trust.SourceOfTUF(opts.Mirror), Refresh: refresh, FallbackRetry: min(refresh, trust.DefaultFallbackRetry),
			MaxAge: s.TUFMaxAge, Loader: func(ctx context.Context) (*trust.Root, error) { return trust.FromTUF(ctx, opts) }}
		s.tufs[key] = c
	}
	s.mu.Unlock()
	r, err := c.Get(ctx)
	if err != nil {
		// It may pass by itself (the repository answers again): retried, and said as a trust root problem.
		return nil, &transientError{err: fmt.Errorf("policy %s: the trust root of TUF repository %s: %w", p.Name, p.TrustedRootTUF.Mirror, err),
			reason: sigwatchv1alpha1.TrustedRootUnavailableReason}
	}
	return r, nil
}
