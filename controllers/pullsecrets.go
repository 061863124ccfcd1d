package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	k8schain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sigwatch/sigwatch/internal/registry"
)

// Only service accounts are read cluster-wide (for their imagePullSecrets): the Secrets themselves are
// granted by config/rbac/secret_reader_role.yaml (cluster mode), by a Role per namespace
// (config/secret-access/namespaces), or not at all (config/secret-access/none). See SecretAccess.
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch

// PullSecrets builds registry credentials from the image pull secrets of pods and of their service
// accounts, as the kubelet uses them (go-containerregistry's pkg/authn/kubernetes keychain, without cloud
// credential helpers), then from a mounted docker config file, then Fallback.
type PullSecrets struct {
	Reader client.Reader
	// Fallback is used after the pull secrets and File (nil: anonymous).
	Fallback authn.Keychain
	// Access says whose pull secrets may be read (zero: every namespace's). With SecretAccessNone no pull
	// secret or service account is read: File and Fallback are the credentials of every namespace.
	Access SecretAccess
	// File, if set, is a docker config file (a mounted Secret) used after the pods' pull secrets.
	File *registry.ConfigFile
}

// CredentialsForbiddenError is pods' credentials that the manager may not read: RBAC forbids reading a
// pull secret or service account, or the manager's SecretAccess leaves out the namespace. Verifying
// without them would read the registry with fewer credentials than the pods have, so the image is not
// verified; the message says what to grant.
type CredentialsForbiddenError struct {
	msg string
	err error
}

func (e *CredentialsForbiddenError) Error() string { return e.msg }
func (e *CredentialsForbiddenError) Unwrap() error { return e.err }

// forbidden says which object RBAC denied, what the API server said, and what to grant.
func forbidden(kind, resource, namespace, name string, err error) error {
	grant := fmt.Sprintf("grant its service account get on %s in namespace %s", resource, namespace)
	if resource == "secrets" {
		grant += " (--secret-access=cluster: the ClusterRole of config/rbac/secret_reader_role.yaml; " +
			"--secret-access=namespaces: a Role in that namespace, as config/secret-access/namespaces or Helm secretAccess.namespaces render it)"
	} else {
		grant += " (the manager's ClusterRole, config/rbac/role.yaml, has it)"
	}
	return &CredentialsForbiddenError{err: err, msg: fmt.Sprintf("%s %s/%s: the manager is not allowed to read it (%s); %s, or remove the reference",
		kind, namespace, name, err.Error(), grant)}
}

// For returns the credentials of the pods of a namespace: their pull secrets and their service
// accounts', then File, then Fallback, with an ID that changes whenever one of the secrets or the file
// does. A pull secret or service account that does not exist is skipped, as the kubelet skips it; one
// the manager may not read is a *CredentialsForbiddenError; any other error reading one is returned,
// rather than verifying with fewer credentials than the pods have.
func (p *PullSecrets) For(ctx context.Context, namespace string, pods []corev1.Pod) (registry.Credentials, error) {
	h := sha256.New()
	var chain []authn.Keychain
	if p.Access.mode() != SecretAccessNone {
		kc, err := p.pullSecrets(ctx, namespace, pods, h)
		if err != nil {
			return registry.Credentials{}, err
		}
		if kc != nil {
			chain = append(chain, kc)
		}
	}
	if p.File != nil {
		kc, version, err := p.File.Load()
		if err != nil {
			return registry.Credentials{}, err
		}
		fmt.Fprintf(h, "file@%s;", version)
		chain = append(chain, kc)
	}
	if p.Fallback != nil {
		chain = append(chain, p.Fallback)
	}
	if len(chain) == 0 {
		return registry.Credentials{Keychain: authn.NewMultiKeychain(), ID: "anonymous"}, nil
	}
	return registry.Credentials{Keychain: authn.NewMultiKeychain(chain...), ID: hex.EncodeToString(h.Sum(nil))[:16]}, nil
}

// pullSecrets returns the keychain of the pods' pull secrets (nil: none), and hashes their versions into h.
func (p *PullSecrets) pullSecrets(ctx context.Context, namespace string, pods []corev1.Pod, h io.Writer) (authn.Keychain, error) {
	names := map[string]bool{}
	accounts := map[string]bool{}
	for _, pod := range pods {
		for _, s := range pod.Spec.ImagePullSecrets {
			names[s.Name] = true
		}
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		accounts[sa] = true
	}
	for sa := range accounts {
		var acct corev1.ServiceAccount
		err := p.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: sa}, &acct)
		switch {
		case apierrors.IsNotFound(err):
		case apierrors.IsForbidden(err):
			return nil, forbidden("service account", "serviceaccounts", namespace, sa, err)
		case err != nil:
			return nil, fmt.Errorf("reading service account %s/%s: %w", namespace, sa, err)
		}
		for _, s := range acct.ImagePullSecrets {
			names[s.Name] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	if len(sorted) == 0 {
		return nil, nil
	}
	if err := p.Access.Allows(namespace, "image pull secrets "+namespace+"/"+strings.Join(sorted, ", "+namespace+"/")); err != nil {
		return nil, &CredentialsForbiddenError{err: err, msg: err.Error()}
	}
	var secrets []corev1.Secret
	for _, n := range sorted {
		var s corev1.Secret
		if err := p.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: n}, &s); err != nil {
			switch {
			case apierrors.IsForbidden(err):
				return nil, forbidden("image pull secret", "secrets", namespace, n, err)
			case !apierrors.IsNotFound(err):
				return nil, fmt.Errorf("reading image pull secret %s/%s: %w", namespace, n, err)
			}
			log.FromContext(ctx).V(1).Info("image pull secret not found (skipped, as the kubelet does)", "secret", n)
			continue
		}
		secrets = append(secrets, s)
		fmt.Fprintf(h, "%s/%s@%s;", namespace, n, s.ResourceVersion)
	}
	if len(secrets) == 0 {
		return nil, nil
	}
	kc, err := k8schain.NewFromPullSecrets(ctx, secrets)
	if err != nil {
		log.FromContext(ctx).Info("image pull secrets unusable; verifying without them", "namespace", namespace, "error", err.Error())
		return nil, nil
	}
	return kc, nil
}
