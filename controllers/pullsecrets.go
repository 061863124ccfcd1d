package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/google/go-containerregistry/pkg/authn"
	k8schain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sigwatch/sigwatch/internal/registry"
)

// +kubebuilder:rbac:groups="",resources=secrets;serviceaccounts,verbs=get;list;watch

// PullSecrets builds registry credentials from the image pull secrets of pods and of their service
// accounts, as the kubelet uses them (go-containerregistry's pkg/authn/kubernetes keychain, without cloud
// credential helpers).
type PullSecrets struct {
	Reader client.Reader
	// Fallback is used after the pull secrets (nil: anonymous).
	Fallback authn.Keychain
}

// For returns the credentials of the pods of a namespace: their pull secrets and their service
// accounts', then Fallback, with an ID that changes whenever one of the secrets does. A pull secret or
// service account that does not exist is skipped, as the kubelet skips it; any other error reading one
// is returned, rather than verifying with fewer credentials than the pods have.
func (p *PullSecrets) For(ctx context.Context, namespace string, pods []corev1.Pod) (registry.Credentials, error) {
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
		case err != nil:
			return registry.Credentials{}, fmt.Errorf("reading service account %s/%s: %w", namespace, sa, err)
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
	var secrets []corev1.Secret
	h := sha256.New()
	for _, n := range sorted {
		var s corev1.Secret
		if err := p.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: n}, &s); err != nil {
			if !apierrors.IsNotFound(err) {
				return registry.Credentials{}, fmt.Errorf("reading image pull secret %s/%s: %w", namespace, n, err)
			}
			log.FromContext(ctx).V(1).Info("image pull secret not found (skipped, as the kubelet does)", "secret", n)
			continue
		}
		secrets = append(secrets, s)
		fmt.Fprintf(h, "%s/%s@%s;", namespace, n, s.ResourceVersion)
	}
	var chain []authn.Keychain
	if len(secrets) > 0 {
		kc, err := k8schain.NewFromPullSecrets(ctx, secrets)
		if err != nil {
			log.FromContext(ctx).Info("image pull secrets unusable; verifying without them", "namespace", namespace, "error", err.Error())
		} else {
			chain = append(chain, kc)
		}
	}
	if p.Fallback != nil {
		chain = append(chain, p.Fallback)
	}
	if len(chain) == 0 {
		return registry.Credentials{Keychain: authn.NewMultiKeychain(), ID: "anonymous"}, nil
	}
	return registry.Credentials{Keychain: authn.NewMultiKeychain(chain...), ID: hex.EncodeToString(h.Sum(nil))[:16]}, nil
}
