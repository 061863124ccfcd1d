package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// The controllers' edge: what they need from the domain, as small interfaces. Setup wires the real
// implementations (the verification engine, PolicyStore, PullSecrets); step tests use fakes.

// Verifier decides the verdict on one image digest. It never fails: what could not be decided is an
// Unknown policy result with its reason. *verification.Engine implements it.
type Verifier interface {
	Verify(ctx context.Context, req verification.Request) *verification.Result
}

// PolicyResolver compiles ImageSignaturePolicies and loads their keys and trust roots. PolicyStore
// implements it.
type PolicyResolver interface {
	// Resolve returns the compiled policy and its trust root. A *policy.Error means the policy cannot
	// work as written (stalled until it or an object it reads changes); an error for which IsTransient
	// is true may pass by itself (an API timeout) and is retried; Resolve never caches one.
	Resolve(ctx context.Context, p *sigwatchv1alpha1.ImageSignaturePolicy) (*ResolvedPolicy, error)
	// Forget drops what is cached for a deleted policy.
	Forget(name string)
}

// CredentialSource returns the registry credentials of the pods of a namespace that run an image.
// PullSecrets implements it. An error means they could not be read just now (retried), never that
// there are none.
type CredentialSource interface {
	For(ctx context.Context, namespace string, pods []corev1.Pod) (registry.Credentials, error)
}

var (
	_ Verifier         = (*verification.Engine)(nil)
	_ PolicyResolver   = (*PolicyStore)(nil)
	_ CredentialSource = (*PullSecrets)(nil)
)
