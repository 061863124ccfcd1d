package controllers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/scheme"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

func TestSecretAccessValidate(t *testing.T) {
	for _, tc := range []struct {
		access SecretAccess
		err    string
	}{
		{SecretAccess{}, ""},
		{SecretAccess{Mode: SecretAccessCluster}, ""},
		{SecretAccess{Mode: SecretAccessNone}, ""},
		{SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"team-a", "b2"}}, ""},
		{SecretAccess{Mode: SecretAccessNamespaces}, "needs --secret-namespaces"},
		{SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"Team_A"}}, `"Team_A" is not a namespace name`},
		{SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"-a"}}, "not a namespace name"},
		{SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{strings.Repeat("a", 64)}}, "not a namespace name"},
		{SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{""}}, "not a namespace name"},
		{SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"a", "a"}}, "listed twice"},
		{SecretAccess{Mode: SecretAccessNone, Namespaces: []string{"a"}}, "only for --secret-access=namespaces (it is none)"},
		{SecretAccess{Namespaces: []string{"a"}}, "only for --secret-access=namespaces (it is cluster)"},
		{SecretAccess{Mode: "some"}, "must be cluster, namespaces or none"},
	} {
		err := tc.access.Validate()
		if tc.err == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.access, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: error %v, want one saying %q", tc.access, err, tc.err)
		}
	}
}

func TestSecretAccessAllows(t *testing.T) {
	g := NewWithT(t)
	ns := SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"team-a", "team-b"}}
	g.Expect(SecretAccess{}.Allows("anywhere", "x")).To(Succeed())
	g.Expect(ns.Allows("team-b", "x")).To(Succeed())

	err := ns.Allows("shop", "image pull secrets shop/regcred")
	var access *SecretAccessError
	g.Expect(errors.As(err, &access)).To(BeTrue())
	g.Expect(err.Error()).To(And(ContainSubstring("image pull secrets shop/regcred"), ContainSubstring("team-a, team-b"),
		ContainSubstring("add shop to --secret-namespaces"), ContainSubstring("secretAccess.namespaces")))

	err = SecretAccess{Mode: SecretAccessNone}.Allows("team-a", "Secret team-a/cosign")
	g.Expect(errors.As(err, &access)).To(BeTrue())
	g.Expect(err.Error()).To(And(ContainSubstring("--secret-access=none"), ContainSubstring("key.publicKey"), ContainSubstring("--registry-config")))
}

// TestCredentialsFailure: what the manager may not read is CredentialsForbidden, whether RBAC or the
// mode refused it; anything else reading the credentials is a VerificationError.
func TestCredentialsFailure(t *testing.T) {
	rbac := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "regcred", errors.New("RBAC: access denied"))
	for name, tc := range map[string]struct {
		err    error
		reason string
	}{
		"RBAC":             {forbidden("image pull secret", "secrets", "shop", "regcred", rbac), sigwatchv1alpha1.CredentialsForbiddenReason},
		"mode":             {&CredentialsForbiddenError{err: &SecretAccessError{}, msg: "x"}, sigwatchv1alpha1.CredentialsForbiddenReason},
		"mode, wrapped":    {fmt.Errorf("reading: %w", &SecretAccessError{Mode: SecretAccessNone}), sigwatchv1alpha1.CredentialsForbiddenReason},
		"API server":       {fmt.Errorf("reading image pull secret shop/regcred: %w", apierrors.NewServerTimeout(schema.GroupResource{Resource: "secrets"}, "get", 1)), sigwatchv1alpha1.VerificationErrorReason},
		"bare RBAC denial": {rbac, sigwatchv1alpha1.VerificationErrorReason}, // PullSecrets never returns it unwrapped
	} {
		reason, message := credentialsFailure(tc.err)
		if reason != tc.reason || !strings.Contains(message, tc.err.Error()) {
			t.Errorf("%s: %s %q, want %s with the error", name, reason, message, tc.reason)
		}
	}
	g := NewWithT(t)
	_, message := credentialsFailure(forbidden("image pull secret", "secrets", "shop", "regcred", rbac))
	g.Expect(message).To(And(ContainSubstring("image pull secret shop/regcred"), ContainSubstring("RBAC: access denied"),
		ContainSubstring("grant its service account get on secrets in namespace shop")))
	g.Expect(transientReasons[sigwatchv1alpha1.CredentialsForbiddenReason]).To(BeTrue(), "retried: a grant needs no restart")
}

// countingReader counts what it is asked, by kind, and answers NotFound.
type countingReader struct {
	mu    sync.Mutex
	calls map[string]int
}

func (r *countingReader) count(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[kind]++
}

func kindOf(obj any) string {
	switch o := obj.(type) {
	case *metav1.PartialObjectMetadata:
		return "metadata " + o.GroupVersionKind().Kind
	case *metav1.PartialObjectMetadataList:
		return "metadata " + o.GroupVersionKind().Kind
	}
	return fmt.Sprintf("%T", obj)
}

func (r *countingReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	r.count(kindOf(obj))
	return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
}

func (r *countingReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	r.count(kindOf(list))
	return nil
}

// TestSecretGate: a Secret (whole or its metadata) outside the mode is refused before the reader behind
// is asked; everything else goes through.
func TestSecretGate(t *testing.T) {
	secretMD := func() *metav1.PartialObjectMetadata {
		md := &metav1.PartialObjectMetadata{}
		md.SetGroupVersionKind(secretGVK)
		return md
	}
	secretMDList := func() *metav1.PartialObjectMetadataList {
		l := &metav1.PartialObjectMetadataList{}
		l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		return l
	}
	ctx := context.Background()
	for name, tc := range map[string]struct {
		access          SecretAccess
		namespace       string
		allowed, listed bool
	}{
		"cluster":           {SecretAccess{}, "shop", true, true},
		"listed namespace":  {SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"shop"}}, "shop", true, true},
		"other namespace":   {SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"shop"}}, "bank", false, false},
		"none":              {SecretAccess{Mode: SecretAccessNone}, "shop", false, false},
		"none, every place": {SecretAccess{Mode: SecretAccessNone}, "", false, false},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			inner := &countingReader{}
			gate := secretGate{Reader: inner, access: tc.access}
			key := types.NamespacedName{Namespace: tc.namespace, Name: "regcred"}
			var access *SecretAccessError
			for _, obj := range []client.Object{&corev1.Secret{}, secretMD()} {
				err := gate.Get(ctx, key, obj)
				g.Expect(errors.As(err, &access)).To(Equal(!tc.allowed), "%T: %v", obj, err)
			}
			for _, list := range []client.ObjectList{&corev1.SecretList{}, secretMDList()} {
				err := gate.List(ctx, list, client.InNamespace(tc.namespace))
				g.Expect(errors.As(err, &access)).To(Equal(!tc.listed), "%T: %v", list, err)
			}
			// Not Secrets: never stopped.
			g.Expect(apierrors.IsNotFound(gate.Get(ctx, key, &corev1.ConfigMap{}))).To(BeTrue())
			g.Expect(apierrors.IsNotFound(gate.Get(ctx, key, &corev1.ServiceAccount{}))).To(BeTrue())
			want := map[string]int{"*v1.ConfigMap": 1, "*v1.ServiceAccount": 1}
			if tc.allowed {
				want["*v1.Secret"], want["metadata Secret"] = 1, 1
			}
			if tc.listed {
				want["*v1.SecretList"], want["metadata SecretList"] = 1, 1
			}
			g.Expect(inner.calls).To(Equal(want), "what reached the reader behind the gate")
		})
	}
	// A cluster-wide list is refused in namespaces mode.
	err := secretGate{Reader: &countingReader{}, access: SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"a"}}}.
		List(ctx, &corev1.SecretList{})
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("Secrets of every namespace")))
}

func TestCacheOptionsFor(t *testing.T) {
	g := NewWithT(t)
	for _, a := range []SecretAccess{{}, {Mode: SecretAccessNone}} {
		opts := CacheOptionsFor(sharding.Whole, a)
		for obj := range opts.ByObject {
			_, isSecret := obj.(*corev1.Secret)
			g.Expect(isSecret).To(BeFalse(), "%s: Secrets are not restricted by the cache", a)
		}
	}
	opts := CacheOptionsFor(sharding.Whole, SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"a", "b"}})
	found := false
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*corev1.Secret); ok {
			found = true
			g.Expect(by.Namespaces).To(HaveLen(2))
			g.Expect(by.Namespaces).To(HaveKey("a"))
			g.Expect(by.Namespaces).To(HaveKey("b"))
		}
	}
	g.Expect(found).To(BeTrue(), "the Secret informer watches the listed namespaces only")
	g.Expect(len(opts.ByObject)).To(Equal(len(CacheOptions(sharding.Whole).ByObject)+1), "the shard's other options are kept")
}

func dockerConfigJSON(host, user, pass string) []byte {
	return []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass))))
}

func resolveBasic(g *WithT, kc authn.Keychain, repo string) *authn.AuthConfig {
	r, err := name.NewRepository(repo)
	g.Expect(err).NotTo(HaveOccurred())
	a, err := kc.Resolve(r)
	g.Expect(err).NotTo(HaveOccurred())
	cfg, err := a.Authorization()
	g.Expect(err).NotTo(HaveOccurred())
	return cfg
}

// TestPullSecretsHonourTheMode: with each mode, what PullSecrets reads through the API and what
// credentials it hands out; an RBAC denial is CredentialsForbidden, naming the Secret and what to grant.
func TestPullSecretsHonourTheMode(t *testing.T) {
	const host = "registry.example.com"
	regcred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "regcred", ResourceVersion: "7"},
		Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: dockerConfigJSON(host, "pod", "pods-pass")}}
	withSecret := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}}
	without := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "job"}}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, dockerConfigJSON(host, "file", "file-pass"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		access    SecretAccess
		pod       corev1.Pod
		denySA    bool
		denySecrt bool
		// user is who the registry is read as; forbidden the error's words instead.
		user      string
		forbidden []string
		reads     map[string]int
	}{
		"cluster": {access: SecretAccess{}, pod: withSecret, user: "pod",
			reads: map[string]int{"ServiceAccount": 1, "Secret": 1}},
		"listed namespace": {access: SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"shop"}}, pod: withSecret, user: "pod",
			reads: map[string]int{"ServiceAccount": 1, "Secret": 1}},
		"unlisted namespace with pull secrets": {access: SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"bank"}}, pod: withSecret,
			forbidden: []string{"image pull secrets shop/regcred", "add shop to --secret-namespaces"},
			reads:     map[string]int{"ServiceAccount": 1}},
		"unlisted namespace without pull secrets": {access: SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"bank"}}, pod: without, user: "file",
			reads: map[string]int{"ServiceAccount": 1}},
		"none reads nothing": {access: SecretAccess{Mode: SecretAccessNone}, pod: withSecret, user: "file",
			reads: map[string]int{}},
		"RBAC denies the Secret": {access: SecretAccess{}, pod: withSecret, denySecrt: true,
			forbidden: []string{"image pull secret shop/regcred", "not allowed", "grant its service account get on secrets in namespace shop"},
			reads:     map[string]int{"ServiceAccount": 1, "Secret": 1}},
		"RBAC denies the service account": {access: SecretAccess{}, pod: withSecret, denySA: true,
			forbidden: []string{"service account shop/default", "get on serviceaccounts"},
			reads:     map[string]int{"ServiceAccount": 1}},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			reads := map[string]int{}
			c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(regcred.DeepCopy()).WithInterceptorFuncs(interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1.")
					reads[kind]++
					if (kind == "Secret" && tc.denySecrt) || (kind == "ServiceAccount" && tc.denySA) {
						return apierrors.NewForbidden(schema.GroupResource{Resource: strings.ToLower(kind) + "s"}, key.Name,
							errors.New("RBAC: access denied"))
					}
					return c.Get(ctx, key, obj, opts...)
				}}).Build()
			p := &PullSecrets{Reader: secretGate{c, tc.access}, Access: tc.access, File: registry.NewConfigFile(file)}
			creds, err := p.For(context.Background(), "shop", []corev1.Pod{tc.pod})
			g.Expect(reads).To(Equal(tc.reads), "what was read through the API")
			if tc.forbidden != nil {
				var fe *CredentialsForbiddenError
				g.Expect(errors.As(err, &fe)).To(BeTrue(), "%v", err)
				for _, w := range tc.forbidden {
					g.Expect(err.Error()).To(ContainSubstring(w))
				}
				reason, _ := credentialsFailure(err)
				g.Expect(reason).To(Equal(sigwatchv1alpha1.CredentialsForbiddenReason))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(resolveBasic(g, creds.Keychain, host+"/team/app").Username).To(Equal(tc.user), "the pods' pull secret first, then the file")
		})
	}
}

// TestStepCredentialsForbiddenKeepsLastGood: an image whose pods' pull secrets the manager may no longer
// read is Unknown CredentialsForbidden (never False, never RegistryUnavailable), with a Warning Event
// naming the namespace; its last good result stays, nothing is asked of the registry, and it is retried
// soon, so that a grant takes effect by itself.
func TestStepCredentialsForbiddenKeepsLastGood(t *testing.T) {
	g := NewWithT(t)
	pod := runningPod("web-1")
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	regcred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: dockerConfigJSON("ghcr.io", "u", "p")}}
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), pod, regcred)
	e.si.Credentials = &PullSecrets{Reader: e.c}
	e.mustReconcile()
	before := e.get()
	g.Expect(verifiedOf(before).Status).To(Equal(metav1.ConditionTrue))
	e.events()

	access := SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"team-a"}}
	e.si.Credentials = &PullSecrets{Reader: secretGate{e.c, access}, Access: access}
	e.dueNow()
	e.mustReconcile()
	after := e.get()
	c := verifiedOf(after)
	g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.CredentialsForbiddenReason))
	g.Expect(c.Message).To(And(ContainSubstring("image pull secrets shop/regcred"), ContainSubstring("add shop to --secret-namespaces")))
	g.Expect(e.verifier.calls()).To(Equal(1), "the registry is not read with fewer credentials than the pods have")
	g.Expect(after.Status.Signatures).To(Equal(before.Status.Signatures), "the last good result stays")
	g.Expect(after.Status.LastVerifiedTime.Time).To(BeTemporally("==", before.Status.LastVerifiedTime.Time))
	g.Expect(after.Status.NextVerificationTime.Sub(e.clock.Now())).To(Equal(10*time.Second), "retried soon")
	g.Expect(e.events()).To(ContainElement(And(HavePrefix("Warning VerificationUnknown CredentialsForbidden"), ContainSubstring("shop"))))
}

// TestStepKeySecretsHonourTheMode: a policy whose key Secret the mode does not read is not ready
// (KeyUnavailable, stalled, saying to give the key inline) without the Secret being asked for; one that
// RBAC denies is CredentialsForbidden on the policy and on its images, retried, never stalled.
func TestStepKeySecretsHonourTheMode(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		access   SecretAccess
		deny     bool
		reason   string
		stalled  bool
		words    []string
		imageWhy string
	}{
		"none": {access: SecretAccess{Mode: SecretAccessNone}, reason: sigwatchv1alpha1.KeyUnavailableReason, stalled: true,
			words: []string{"spec.authorities[0].key.secretRef", "--secret-access=none", "key.publicKey"}, imageWhy: sigwatchv1alpha1.PolicyNotReadyReason},
		"unlisted namespace": {access: SecretAccess{Mode: SecretAccessNamespaces, Namespaces: []string{"team-a"}}, reason: sigwatchv1alpha1.KeyUnavailableReason,
			stalled: true, words: []string{"add sigwatch-system to --secret-namespaces"}, imageWhy: sigwatchv1alpha1.PolicyNotReadyReason},
		"RBAC denies": {access: SecretAccess{}, deny: true, reason: sigwatchv1alpha1.CredentialsForbiddenReason,
			words:    []string{"Secret sigwatch-system/cosign", "not allowed", "grant its service account get, list and watch on secrets in namespace sigwatch-system"},
			imageWhy: sigwatchv1alpha1.CredentialsForbiddenReason},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p := keyPolicyObj(t, "from-secret")
			pemKey := p.Spec.Authorities[0].Key.PublicKey
			p.Spec.Authorities[0].Key = &sigwatchv1alpha1.KeyAuthority{SecretRef: &sigwatchv1alpha1.SecretKeyReference{Namespace: "sigwatch-system", Name: "cosign", Key: "cosign.pub"}}
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "sigwatch-system", Name: "cosign"}, Data: map[string][]byte{"cosign.pub": []byte(pemKey)}}
			secretReads := 0
			e := newStepEnv(t, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if isSecret(obj) {
					secretReads++
					if tc.deny {
						return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, key.Name, errors.New("RBAC: access denied"))
					}
				}
				return c.Get(ctx, key, obj, opts...)
			}}, p, secret, managedSI(), runningPod("web-1"))
			e.store.Reader, e.store.APIReader = secretGate{e.c, tc.access}, secretGate{e.c, tc.access}

			req := ctrl.Request{NamespacedName: types.NamespacedName{Name: p.Name}}
			_, err := e.policies.Reconcile(ctx, req)
			g.Expect(err).NotTo(HaveOccurred(), "said on the policy, not returned")
			got := &sigwatchv1alpha1.ImageSignaturePolicy{}
			g.Expect(e.c.Get(ctx, req.NamespacedName, got)).To(Succeed())
			ready := meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			for _, w := range tc.words {
				g.Expect(ready.Message).To(ContainSubstring(w))
			}
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(Equal(tc.stalled))
			if !tc.deny {
				g.Expect(secretReads).To(BeZero(), "the mode refuses before anything is asked")
			}

			e.mustReconcile()
			c := verifiedOf(e.get())
			g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))
			g.Expect(c.Reason).To(Equal(tc.imageWhy), c.Message)
			g.Expect(e.verifier.calls()).To(BeZero())

			var perr *policy.Error
			_, err = e.store.Resolve(ctx, p)
			g.Expect(errors.As(err, &perr)).To(Equal(tc.stalled), "settled (a *policy.Error) only when the mode decides: %v", err)
			g.Expect(IsTransient(err)).To(Equal(!tc.stalled))
		})
	}
}
