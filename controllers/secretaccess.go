package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

// SecretAccessMode says which Secrets the manager reads through the API: the pods' image pull secrets
// and the policies' key Secrets. It must match the RBAC the manager is deployed with (docs/security.md,
// "Choosing an RBAC mode").
type SecretAccessMode string

const (
	// SecretAccessCluster reads Secrets in every namespace (a ClusterRole grants it:
	// config/rbac/secret_reader_role.yaml).
	SecretAccessCluster SecretAccessMode = "cluster"
	// SecretAccessNamespaces reads Secrets only in SecretAccess.Namespaces (a Role in each grants it:
	// config/secret-access/namespaces).
	SecretAccessNamespaces SecretAccessMode = "namespaces"
	// SecretAccessNone reads no Secret: registry credentials come from a mounted docker config file
	// (--registry-config) and the pod's cloud identity only, and policies' keys must be inline
	// (config/secret-access/none).
	SecretAccessNone SecretAccessMode = "none"
)

// ParseSecretAccessMode parses the --secret-access flag.
func ParseSecretAccessMode(s string) (SecretAccessMode, error) {
	switch m := SecretAccessMode(s); m {
	case SecretAccessCluster, SecretAccessNamespaces, SecretAccessNone:
		return m, nil
	}
	return "", fmt.Errorf("must be cluster, namespaces or none, not %q", s)
}

// SecretAccess is the manager's Secret access. The zero value is cluster-wide.
type SecretAccess struct {
	Mode SecretAccessMode
	// Namespaces are the namespaces whose Secrets are read, with Mode SecretAccessNamespaces.
	Namespaces []string
}

// Validate checks that the namespaces go with the mode and are namespace names.
func (a SecretAccess) Validate() error {
	switch a.Mode {
	case "", SecretAccessCluster, SecretAccessNone:
		if len(a.Namespaces) > 0 {
			return fmt.Errorf("--secret-namespaces is only for --secret-access=namespaces (it is %s)", a.mode())
		}
	case SecretAccessNamespaces:
		if len(a.Namespaces) == 0 {
			return errors.New("--secret-access=namespaces needs --secret-namespaces (the namespaces whose pull secrets and key Secrets are read)")
		}
		seen := map[string]bool{}
		for _, ns := range a.Namespaces {
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				return fmt.Errorf("--secret-namespaces: %q is not a namespace name: %s", ns, strings.Join(msgs, "; "))
			}
			if seen[ns] {
				return fmt.Errorf("--secret-namespaces: %s is listed twice", ns)
			}
			seen[ns] = true
		}
	default:
		return fmt.Errorf("--secret-access must be cluster, namespaces or none, not %q", a.Mode)
	}
	return nil
}

func (a SecretAccess) mode() SecretAccessMode {
	if a.Mode == "" {
		return SecretAccessCluster
	}
	return a.Mode
}

// String is the mode as its flags say it.
func (a SecretAccess) String() string {
	if a.mode() == SecretAccessNamespaces {
		return fmt.Sprintf("namespaces (%s)", strings.Join(a.Namespaces, ","))
	}
	return string(a.mode())
}

// watchesSecrets reports whether the manager lists and watches Secrets (their metadata, for the
// policies' key Secrets).
func (a SecretAccess) watchesSecrets() bool { return a.mode() != SecretAccessNone }

// Allows returns nil when Secrets of the namespace may be read, else a *SecretAccessError that says
// why and how to allow it. what names the Secrets for the message ("image pull secret shop/regcred").
func (a SecretAccess) Allows(namespace, what string) error {
	switch a.mode() {
	case SecretAccessNone:
		return &SecretAccessError{What: what, Namespace: namespace, Mode: SecretAccessNone,
			Fix: "the manager reads no Secrets: registry credentials come from --registry-config and the cloud identity of its pod only, " +
				"and a policy's key must be given inline (key.publicKey); or deploy a mode that reads Secrets (docs/security.md#choosing-an-rbac-mode)"}
	case SecretAccessNamespaces:
		if !slices.Contains(a.Namespaces, namespace) {
			return &SecretAccessError{What: what, Namespace: namespace, Mode: SecretAccessNamespaces,
				Fix: fmt.Sprintf("it reads Secrets only in %s: add %s to --secret-namespaces with a Role there that reads Secrets "+
					"(Helm: secretAccess.namespaces; kustomize: config/secret-access/namespaces)", strings.Join(a.Namespaces, ", "), namespace)}
		}
	}
	return nil
}

// SecretAccessError is a Secret the manager's mode does not let it read. It is a matter of
// configuration: retrying does not change it; deploying the manager with another mode does.
type SecretAccessError struct {
	What, Namespace string
	Mode            SecretAccessMode
	Fix             string
}

func (e *SecretAccessError) Error() string {
	return fmt.Sprintf("%s: not read, the manager runs with --secret-access=%s: %s", e.What, e.Mode, e.Fix)
}

// credentialsFailure is the Verified reason and message of an image whose pods' registry credentials
// could not be had: CredentialsForbidden when the manager may not read them (its RBAC or its mode),
// else VerificationError (the API server failed; retried).
func credentialsFailure(err error) (reason, message string) {
	var forbidden *CredentialsForbiddenError
	var access *SecretAccessError
	if errors.As(err, &forbidden) || errors.As(err, &access) {
		return sigwatchv1alpha1.CredentialsForbiddenReason, "the pods' registry credentials cannot be read: " + err.Error()
	}
	return sigwatchv1alpha1.VerificationErrorReason, "reading the registry credentials (retrying): " + err.Error()
}

// keySecretForbidden is a policy's key Secret that RBAC does not let the manager read: it may be granted
// at any time, so it is retried, and said as CredentialsForbidden with what to grant.
func keySecretForbidden(namespace, name string, err error) error {
	return &transientError{reason: sigwatchv1alpha1.CredentialsForbiddenReason, err: fmt.Errorf(
		"reading Secret %s/%s: the manager is not allowed to (%w); grant its service account get, list and watch on secrets in namespace %s "+
			"(with --secret-access=namespaces, list the namespace in --secret-namespaces: Helm secretAccess.namespaces), or give the key inline",
		namespace, name, err, namespace)}
}

// CacheOptionsFor are CacheOptions(shard) with the Secret informer kept to what the mode may read: the
// listed namespaces (one watch each, allowed by their Roles). With no access nothing ever asks the cache
// for Secrets (secretGate, secretMetadataSource).
func CacheOptionsFor(shard sharding.Shard, access SecretAccess) cache.Options {
	opts := CacheOptions(shard)
	if access.mode() == SecretAccessNamespaces {
		namespaces := map[string]cache.Config{}
		for _, ns := range access.Namespaces {
			namespaces[ns] = cache.Config{}
		}
		opts.ByObject[&corev1.Secret{}] = cache.ByObject{Namespaces: namespaces}
	}
	return opts
}

// secretGate is a reader that refuses Secrets outside what the access allows, before the cache or the
// API server is asked: a cache asked for a namespace it does not watch fails, and one asked to start a
// watch that RBAC forbids waits for ever.
type secretGate struct {
	client.Reader
	access SecretAccess
}

func (r secretGate) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if isSecret(obj) {
		if err := r.access.Allows(key.Namespace, "Secret "+key.String()); err != nil {
			return err
		}
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (r secretGate) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if isSecretList(list) && r.access.mode() != SecretAccessCluster {
		lo := (&client.ListOptions{}).ApplyOptions(opts)
		what := "Secrets of namespace " + lo.Namespace
		if lo.Namespace == "" {
			what = "Secrets of every namespace"
		}
		if err := r.access.Allows(lo.Namespace, what); err != nil {
			return err
		}
	}
	return r.Reader.List(ctx, list, opts...)
}

var secretGVK = corev1.SchemeGroupVersion.WithKind("Secret")

func isSecret(obj client.Object) bool {
	switch o := obj.(type) {
	case *corev1.Secret:
		return true
	case *metav1.PartialObjectMetadata:
		return o.GroupVersionKind() == secretGVK
	}
	return false
}

func isSecretList(list client.ObjectList) bool {
	switch l := list.(type) {
	case *corev1.SecretList:
		return true
	case *metav1.PartialObjectMetadataList:
		return l.GroupVersionKind() == corev1.SchemeGroupVersion.WithKind("SecretList") || l.GroupVersionKind() == secretGVK
	}
	return false
}

// secretMetadataSource is the watch of the Secrets' metadata that re-verifies the images of a policy
// when its key Secret changes (on the cache built with CacheOptionsFor, so only the listed namespaces'
// in namespaces mode); with no Secret access, a source that never fires: no list, no watch.
func secretMetadataSource(c cache.Cache, access SecretAccess, h handler.EventHandler) source.Source {
	if !access.watchesSecrets() {
		return source.Func(func(context.Context, workqueue.TypedRateLimitingInterface[reconcile.Request]) error { return nil })
	}
	md := &metav1.PartialObjectMetadata{}
	md.SetGroupVersionKind(secretGVK)
	return source.Kind[client.Object](c, md, h)
}
