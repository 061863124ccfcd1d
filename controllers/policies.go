package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// PolicyStore compiles ImageSignaturePolicies and loads their trust roots and keys, caching both until the
// policy, its Secret or its ConfigMap changes. It is shared by the controllers.
type PolicyStore struct {
	// Reader reads the metadata of Secrets and ConfigMaps (the manager's cached client: only their
	// metadata is cached).
	Reader client.Reader
	// APIReader reads their content from the API server when their resource version changed.
	APIReader client.Reader
	// PublicGood is the public-good trust root, for policies without trustedRoot.
	PublicGood func(ctx context.Context) (*trust.Root, error)

	mu       sync.Mutex
	compiled map[types.UID]compiledPolicy
	roots    map[types.NamespacedName]loadedRoot
}

type compiledPolicy struct {
	generation int64
	secretsKey string
	policy     *policy.Policy
	err        error
}

type loadedRoot struct {
	resourceVersion string
	key             string
	root            *trust.Root
}

// Compile compiles p, reading the Secrets its keys come from. Errors are *policy.Error.
func (s *PolicyStore) Compile(ctx context.Context, p *sigwatchv1alpha1.ImageSignaturePolicy) (*policy.Policy, error) {
	secretsKey, err := s.secretsVersion(ctx, p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if c, ok := s.compiled[p.UID]; ok && c.generation == p.Generation && c.secretsKey == secretsKey {
		s.mu.Unlock()
		return c.policy, c.err
	}
	s.mu.Unlock()
	cp, err := policy.Compile(p, policy.Inputs{SecretKey: func(ref sigwatchv1alpha1.SecretKeyReference) ([]byte, error) {
		var sec corev1.Secret
		if err := s.APIReader.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &sec); err != nil {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		data, ok := sec.Data[ref.Key]
		if !ok {
			return nil, fmt.Errorf("Secret %s/%s has no key %q", ref.Namespace, ref.Name, ref.Key)
		}
		return data, nil
	}})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.compiled == nil {
		s.compiled = map[types.UID]compiledPolicy{}
	}
	s.compiled[p.UID] = compiledPolicy{generation: p.Generation, secretsKey: secretsKey, policy: cp, err: err}
	return cp, err
}

// Forget drops a deleted policy from the cache.
func (s *PolicyStore) Forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.compiled, uid)
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
			return "", &policy.Error{Policy: p.Name, Reason: sigwatchv1alpha1.KeyUnavailableReason,
				Field: fmt.Sprintf("spec.authorities[%d].key.secretRef", i), Err: fmt.Errorf("reading Secret %s/%s: %w", ref.Namespace, ref.Name, err)}
		}
		fmt.Fprintf(h, "%s/%s@%s;", ref.Namespace, ref.Name, md.ResourceVersion)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Root returns the trust root of a compiled policy: its ConfigMap's trusted_root.json, or the public-good
// root. It is the verification engine's RootResolver.
func (s *PolicyStore) Root(ctx context.Context, p *policy.Policy) (*trust.Root, error) {
	if p.TrustedRoot == nil {
		return s.PublicGood(ctx)
	}
	ref := p.TrustedRoot
	nn := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	md := &metav1.PartialObjectMetadata{}
	md.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	if err := s.Reader.Get(ctx, nn, md); err != nil {
		return nil, fmt.Errorf("%w: reading ConfigMap %s: %v", trust.ErrUnavailable, nn, err)
	}
	s.mu.Lock()
	if r, ok := s.roots[nn]; ok && r.resourceVersion == md.ResourceVersion && r.key == ref.Key {
		s.mu.Unlock()
		return r.root, nil
	}
	s.mu.Unlock()
	var cm corev1.ConfigMap
	if err := s.APIReader.Get(ctx, nn, &cm); err != nil {
		return nil, fmt.Errorf("%w: reading ConfigMap %s: %v", trust.ErrUnavailable, nn, err)
	}
	data, ok := cm.Data[ref.Key]
	if !ok {
		bin, okBin := cm.BinaryData[ref.Key]
		if !okBin {
			return nil, fmt.Errorf("%w: ConfigMap %s has no key %q", trust.ErrUnavailable, nn, ref.Key)
		}
		data = string(bin)
	}
	r, err := trust.FromJSON([]byte(data), fmt.Sprintf("ConfigMap %s", nn))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.roots == nil {
		s.roots = map[types.NamespacedName]loadedRoot{}
	}
	s.roots[nn] = loadedRoot{resourceVersion: cm.ResourceVersion, key: ref.Key, root: r}
	return r, nil
}

// specMatches reports whether a policy's spec covers the repository in a namespace, without compiling it
// (so that an image covered by a broken policy is reported, not silently unchecked).
func specMatches(p *sigwatchv1alpha1.ImageSignaturePolicy, repository string, nsLabels labels.Set) bool {
	if p.Spec.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
		if err != nil || !sel.Matches(nsLabels) {
			return false
		}
	}
	for _, pat := range p.Spec.Images {
		if imageref.Match(imageref.NormalizePattern(string(pat)), repository) {
			return true
		}
	}
	return false
}
