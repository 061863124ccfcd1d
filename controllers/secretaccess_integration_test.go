//go:build integration

package controllers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/test/cosign"
	"github.com/sigwatch/sigwatch/test/manifests"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// The tests of the --secret-access modes run the manager as a service account that has exactly the RBAC
// of the mode's manifests (rendered from config/ with kustomize), by impersonating it, against the real
// API server with RBAC enforced.

// modeRBAC is the RBAC a kustomize directory grants the manager, and the Secret flags it gives it.
type modeRBAC struct {
	clusterRoles    []rbacv1.ClusterRole
	clusterBindings []rbacv1.ClusterRoleBinding
	// roles and bindings of the namespaces whose Secrets are read (not the leader election's).
	roles    []rbacv1.Role
	bindings []rbacv1.RoleBinding
	flags    map[string]string
}

// renderRBAC renders config/<dir> and keeps its roles, bindings and the manager's Secret flags.
func renderRBAC(t *testing.T, dir string) modeRBAC {
	t.Helper()
	objs, err := manifests.Kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := modeRBAC{flags: map[string]string{}}
	from := func(o map[string]any, into any) {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o, into); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			var r rbacv1.ClusterRole
			from(o.Object, &r)
			out.clusterRoles = append(out.clusterRoles, r)
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			from(o.Object, &b)
			out.clusterBindings = append(out.clusterBindings, b)
		case "Role":
			var r rbacv1.Role
			if from(o.Object, &r); r.Namespace != "sigwatch-system" {
				out.roles = append(out.roles, r)
			}
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if from(o.Object, &b); b.Namespace != "sigwatch-system" {
				out.bindings = append(out.bindings, b)
			}
		case "Deployment":
			args, _, _ := unstructuredStrings(o.Object, "spec", "template", "spec", "containers")
			for _, a := range args {
				if name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") {
					out.flags[name] = value
				}
			}
		}
	}
	return out
}

// unstructuredStrings returns the args of the first container.
func unstructuredStrings(obj map[string]any, path ...string) ([]string, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[p]
	}
	containers, ok := cur.([]any)
	if !ok || len(containers) == 0 {
		return nil, false, nil
	}
	c, _ := containers[0].(map[string]any)
	raw, _ := c["args"].([]any)
	var out []string
	for _, a := range raw {
		s, _ := a.(string)
		out = append(out, s)
	}
	return out, true, nil
}

// grantsOnSecrets are the roles of the rendering that grant anything on Secrets (or on everything).
func (m modeRBAC) grantsOnSecrets() []string {
	var out []string
	check := func(kind, ns, name string, rules []rbacv1.PolicyRule) {
		for _, r := range rules {
			core := slices.Contains(r.APIGroups, "") || slices.Contains(r.APIGroups, "*")
			if core && (slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*")) {
				out = append(out, fmt.Sprintf("%s %s/%s %v", kind, ns, name, r.Verbs))
			}
		}
	}
	for _, r := range m.clusterRoles {
		check("ClusterRole", "", r.Name, r.Rules)
	}
	for _, r := range m.roles {
		check("Role", r.Namespace, r.Name, r.Rules)
	}
	return out
}

// grant creates the rendering's roles and bindings for the service account sa: the cluster roles under
// names of their own (prefix), and the per-namespace Role and RoleBinding (a template for one namespace)
// in each of namespaces. Everything is deleted when the test ends.
func (m modeRBAC) grant(t *testing.T, prefix string, sa rbacv1.Subject, namespaces []string) {
	t.Helper()
	ctx := context.Background()
	create := func(o client.Object) {
		t.Helper()
		o.SetResourceVersion("")
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}
	for _, r := range m.clusterRoles {
		r.Name = prefix + r.Name
		create(&r)
	}
	for _, b := range m.clusterBindings {
		b.Name, b.RoleRef.Name, b.Subjects = prefix+b.Name, prefix+b.RoleRef.Name, []rbacv1.Subject{sa}
		create(&b)
	}
	for _, ns := range namespaces {
		for _, r := range m.roles {
			r.Namespace = ns
			create(&r)
		}
		for _, b := range m.bindings {
			b.Namespace, b.Subjects = ns, []rbacv1.Subject{sa}
			create(&b)
		}
	}
}

// secretRequests records the manager's requests about Secrets ("GET /api/v1/namespaces/x/secrets/y").
type secretRequests struct {
	mu   sync.Mutex
	seen []string
}

func (s *secretRequests) RoundTrip(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if strings.Contains(r.URL.Path, "/secrets") {
			s.mu.Lock()
			s.seen = append(s.seen, r.Method+" "+r.URL.RequestURI())
			s.mu.Unlock()
		}
		return next.RoundTrip(r)
	})
}

func (s *secretRequests) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// startManagerAs runs the controllers as the service account sa (impersonated), with the Secret access
// and registry config file given, and records its requests about Secrets.
func startManagerAs(t *testing.T, sa rbacv1.Subject, access controllers.SecretAccess, file *registry.ConfigFile) (*manager, *secretRequests) {
	t.Helper()
	seen := &secretRequests{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + sa.Namespace + ":" + sa.Name}
	cfg.Wrap(seen.RoundTrip)
	m := startManagerWith(t, cfg, 20*time.Second, func(c *controllers.Config) {
		c.SecretAccess, c.RegistryConfig = access, file
	})
	return m, seen
}

// secretAccessFixture: a private registry that answers only robot:s3cret, a public one, a signed image on
// each, and the docker config of the private one.
type secretAccessFixture struct {
	private, public *testregistry.Registry
	key             cosign.KeyPair
	privateImg      string // repository
	privateDigest   string
	publicImg       string
	publicDigest    string
	auths           []byte
}

func newSecretAccessFixture(t *testing.T) *secretAccessFixture {
	t.Helper()
	f := &secretAccessFixture{private: testregistry.Start(t, true), public: testregistry.Start(t, true),
		key: cosign.GenerateKeyPair(t, t.TempDir())}
	priv := f.private.PushRandomImage(t, "team/app")
	cosign.Sign(t, f.key, priv.String(), cosign.SignOptions{NewBundleFormat: true})
	pub := f.public.PushRandomImage(t, "team/tool")
	cosign.Sign(t, f.key, pub.String(), cosign.SignOptions{NewBundleFormat: true})
	f.privateImg, f.privateDigest = priv.Context().Name(), priv.DigestStr()
	f.publicImg, f.publicDigest = pub.Context().Name(), pub.DigestStr()
	const user, pass = "robot", "s3cret"
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	f.private.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") == want {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="sigwatch-test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		return true
	})
	f.auths, _ = json.Marshal(map[string]any{"auths": map[string]any{f.private.Host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	return f
}

// policy creates a policy whose key is inline, or in the Secret keyRef, over both registries (or images).
func (f *secretAccessFixture) policy(t *testing.T, keyRef *sigwatchv1alpha1.SecretKeyReference, images ...sigwatchv1alpha1.ImagePattern) *sigwatchv1alpha1.ImageSignaturePolicy {
	t.Helper()
	key := &sigwatchv1alpha1.KeyAuthority{PublicKey: string(f.key.PublicKeyPEM)}
	if keyRef != nil {
		key = &sigwatchv1alpha1.KeyAuthority{SecretRef: keyRef}
	}
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rbac-%d", time.Now().UnixNano())},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: images,
			Authorities: []sigwatchv1alpha1.Authority{{Name: "team", Key: key,
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}}},
		},
	}
	if len(images) == 0 {
		p.Spec.Images = []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(f.private.Host + "/**"), sigwatchv1alpha1.ImagePattern(f.public.Host + "/**")}
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("creating policy: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	return p
}

// keySecret creates the Secret of the policy's public key in ns.
func (f *secretAccessFixture) keySecret(t *testing.T, ns string) *sigwatchv1alpha1.SecretKeyReference {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cosign-pub"}, Data: map[string][]byte{"cosign.pub": f.key.PublicKeyPEM}}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return &sigwatchv1alpha1.SecretKeyReference{Namespace: ns, Name: "cosign-pub", Key: "cosign.pub"}
}

// withPullSecret gives the namespace's default service account the private registry's pull secret, as
// the kubelet would use it for the pods there.
func (f *secretAccessFixture) withPullSecret(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: f.auths}}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
}

func (f *secretAccessFixture) runPrivate(t *testing.T, ns string) *sigwatchv1alpha1.SignedImage {
	t.Helper()
	runPod(t, ns, "app-1", "app", f.privateImg+":v1", "docker-pullable://"+f.privateImg+"@"+f.privateDigest)
	return signedImageFor(t, ns, f.privateImg, f.privateDigest)
}

func (f *secretAccessFixture) runPublic(t *testing.T, ns string) *sigwatchv1alpha1.SignedImage {
	t.Helper()
	runPod(t, ns, "tool-1", "tool", f.publicImg+":v1", "docker-pullable://"+f.publicImg+"@"+f.publicDigest)
	return signedImageFor(t, ns, f.publicImg, f.publicDigest)
}

// managerAccount creates the service account the manager runs as, in a namespace of its own.
func managerAccount(t *testing.T) rbacv1.Subject {
	t.Helper()
	ns := namespace(t, nil)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sigwatch"}}
	if err := env.Client.Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	return rbacv1.Subject{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}
}

// policyReady waits for the policy's Ready condition to have the status and reason, and returns it.
func policyReady(t *testing.T, p *sigwatchv1alpha1.ImageSignaturePolicy, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var ready *metav1.Condition
	eventually(t, func(g Gomega) {
		got := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), got)).To(Succeed())
		ready = meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(reason), ready.Message)
		g.Expect(ready.Status).To(Equal(status), ready.Message)
	})
	return ready
}

// The service account really has no more than its manifests say: the API server refuses it what the mode
// does not grant (so that the test proves something).
func expectForbidden(t *testing.T, sa rbacv1.Subject, ns string) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + sa.Namespace + ":" + sa.Name}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "regcred"}, &corev1.Secret{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("the manager's service account reads Secrets of %s: %v (want Forbidden)", ns, err)
	}
}

// TestSecretAccessCluster: with config/default's RBAC (the secret reader ClusterRole), the manager reads
// pull secrets and key Secrets in any namespace.
func TestSecretAccessCluster(t *testing.T) {
	g := NewWithT(t)
	rbac := renderRBAC(t, "default")
	g.Expect(rbac.grantsOnSecrets()).To(ConsistOf("ClusterRole /sigwatch-secret-reader-role [get list watch]"))
	g.Expect(rbac.flags).NotTo(HaveKey("secret-access"), "cluster is the manager's default")

	f := newSecretAccessFixture(t)
	keys := namespace(t, nil)
	p := f.policy(t, f.keySecret(t, keys))
	sa := managerAccount(t)
	rbac.grant(t, sa.Namespace+"-", sa, nil)
	_, seen := startManagerAs(t, sa, controllers.SecretAccess{}, nil)

	for range 2 {
		ns := namespace(t, nil)
		f.withPullSecret(t, ns)
		verified(t, f.runPrivate(t, ns), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	}
	policyReady(t, p, metav1.ConditionTrue, sigwatchv1alpha1.PolicyReadyReason)
	g.Expect(seen.get()).To(ContainElement(HavePrefix("GET /api/v1/secrets?")), "the key Secrets' metadata is watched cluster-wide")
}

// TestSecretAccessNamespaces: with config/secret-access/namespaces' RBAC (the manager's ClusterRole
// without Secrets, a Role in each listed namespace), the manager reads pull secrets and key Secrets in the
// listed namespaces; an image in another namespace whose pods have pull secrets is CredentialsForbidden,
// naming the namespace and what to grant, with a Warning Event; one without pull secrets still verifies.
// No Secret of another namespace is ever asked for.
func TestSecretAccessNamespaces(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	rbac := renderRBAC(t, "secret-access/namespaces")
	g.Expect(rbac.grantsOnSecrets()).To(ConsistOf("Role team-a/sigwatch-secret-reader [get list watch]"), "Secrets only through the namespace's Role")
	g.Expect(rbac.flags).To(HaveKeyWithValue("secret-access", "namespaces"))
	g.Expect(rbac.flags).To(HaveKeyWithValue("secret-namespaces", "team-a"), "the overlay lists the namespace it has a Role for")

	f := newSecretAccessFixture(t)
	keys, listed, unlisted, plain := namespace(t, nil), namespace(t, nil), namespace(t, nil), namespace(t, nil)
	p := f.policy(t, f.keySecret(t, keys))
	f.withPullSecret(t, listed)
	f.withPullSecret(t, unlisted)
	sa := managerAccount(t)
	rbac.grant(t, sa.Namespace+"-", sa, []string{keys, listed})
	expectForbidden(t, sa, unlisted)
	access := controllers.SecretAccess{Mode: controllers.SecretAccessNamespaces, Namespaces: []string{keys, listed}}
	g.Expect(access.Validate()).To(Succeed())
	_, seen := startManagerAs(t, sa, access, nil)

	verified(t, f.runPrivate(t, listed), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	policyReady(t, p, metav1.ConditionTrue, sigwatchv1alpha1.PolicyReadyReason)

	forbidden := verified(t, f.runPrivate(t, unlisted), metav1.ConditionUnknown, sigwatchv1alpha1.CredentialsForbiddenReason)
	c := meta.FindStatusCondition(forbidden.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
	g.Expect(c.Message).To(And(ContainSubstring("image pull secrets "+unlisted+"/regcred"), ContainSubstring("add "+unlisted+" to --secret-namespaces"),
		ContainSubstring("a Role there that reads Secrets")))
	g.Expect(meta.IsStatusConditionTrue(forbidden.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeFalse(), "retried: a grant needs no change sigwatch sees")
	eventually(t, func(g Gomega) {
		g.Expect(events(t, unlisted, "SignedImage", forbidden.Name)).To(ContainElement(And(HaveField("Type", "Warning"),
			HaveField("Reason", controllers.EventReasonVerificationUnknown), HaveField("Note", HavePrefix(sigwatchv1alpha1.CredentialsForbiddenReason)))))
	})

	verified(t, f.runPublic(t, plain), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)

	requests := seen.get()
	g.Expect(requests).NotTo(BeEmpty())
	for _, r := range requests {
		g.Expect(r).To(Or(ContainSubstring("/namespaces/"+keys+"/secrets"), ContainSubstring("/namespaces/"+listed+"/secrets")),
			"every Secret request is in a listed namespace")
	}
	g.Expect(requests).To(ContainElement(HavePrefix("GET /api/v1/namespaces/" + listed + "/secrets/regcred")))
	// The Secret metadata watch re-verifies the policy's images when its key changes: here, by a key
	// that no longer matches.
	var key corev1.Secret
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: keys, Name: "cosign-pub"}, &key)).To(Succeed())
	key.Data["cosign.pub"] = cosign.GenerateKeyPair(t, t.TempDir()).PublicKeyPEM
	g.Expect(env.Client.Update(ctx, &key)).To(Succeed())
	verified(t, signedImageFor(t, plain, f.publicImg, f.publicDigest), metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason)
}

// TestSecretAccessNone: with config/secret-access/none's RBAC (no Secret at all), the manager never asks
// for a Secret (no get, no list, no watch: a watch RBAC refuses would hang), reads the private registry
// with the mounted registry config file, ignores the pods' pull secrets, and reports a policy whose key is
// in a Secret as not ready, saying to give the key inline.
func TestSecretAccessNone(t *testing.T) {
	g := NewWithT(t)
	rbac := renderRBAC(t, "secret-access/none")
	g.Expect(rbac.grantsOnSecrets()).To(BeEmpty(), "no role grants anything on Secrets")
	g.Expect(rbac.flags).To(HaveKeyWithValue("secret-access", "none"))
	g.Expect(rbac.flags).To(HaveKeyWithValue("registry-config", "/etc/sigwatch/registry/config.json"))

	f := newSecretAccessFixture(t)
	f.policy(t, nil)
	keys := namespace(t, nil)
	// Over other images: a policy that is not ready would leave these Unknown (PolicyNotReady).
	keyed := f.policy(t, f.keySecret(t, keys), "registry.example.invalid/**")
	withSecrets, bare := namespace(t, nil), namespace(t, nil)
	f.withPullSecret(t, withSecrets)
	sa := managerAccount(t)
	rbac.grant(t, sa.Namespace+"-", sa, nil)
	expectForbidden(t, sa, withSecrets)

	// The registry config file, as the kubelet mounts the Secret.
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	g.Expect(os.WriteFile(file, f.auths, 0o600)).To(Succeed())
	_, seen := startManagerAs(t, sa, controllers.SecretAccess{Mode: controllers.SecretAccessNone}, registry.NewConfigFile(file))

	verified(t, f.runPrivate(t, bare), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	verified(t, f.runPrivate(t, withSecrets), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)
	verified(t, f.runPublic(t, bare), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason)

	ready := policyReady(t, keyed, metav1.ConditionFalse, sigwatchv1alpha1.KeyUnavailableReason)
	g.Expect(ready.Message).To(And(ContainSubstring("spec.authorities[0].key.secretRef"), ContainSubstring("--secret-access=none"),
		ContainSubstring("key.publicKey")))
	g.Expect(seen.get()).To(BeEmpty(), "not one request about Secrets")

	// Without the file's credentials, the private registry refuses: said as the registry's answer.
	g.Expect(os.WriteFile(file, []byte(`{"auths":{}}`), 0o600)).To(Succeed())
	later := time.Now().Add(time.Hour)
	g.Expect(os.Chtimes(file, later, later)).To(Succeed())
	ns := namespace(t, nil)
	verified(t, f.runPrivate(t, ns), metav1.ConditionUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	g.Expect(seen.get()).To(BeEmpty())
}
