//go:build integration

package helm

import (
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// secretGrant is a role that lets someone read Secrets, with where it applies ("" for a ClusterRole).
type secretGrant struct {
	kind, namespace, name string
	verbs                 []string
}

// secretGrants returns every ClusterRole and Role that grants anything on Secrets (or on every resource).
func (objs objects) secretGrants(t *testing.T) []secretGrant {
	t.Helper()
	var out []secretGrant
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
			continue
		}
		var r rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
			t.Fatal(err)
		}
		for _, rule := range r.Rules {
			core := slices.Contains(rule.APIGroups, "") || slices.Contains(rule.APIGroups, "*")
			if core && (slices.Contains(rule.Resources, "secrets") || slices.Contains(rule.Resources, "*")) {
				out = append(out, secretGrant{o.GetKind(), o.GetNamespace(), o.GetName(), rule.Verbs})
			}
		}
	}
	return out
}

// boundTo reports whether a binding of the rendering binds the role to the ServiceAccount.
func (objs objects) boundTo(t *testing.T, g secretGrant, sa rbacv1.Subject) bool {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != g.kind+"Binding" || o.GetNamespace() != g.namespace {
			continue
		}
		var b rbacv1.RoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
			t.Fatal(err)
		}
		if b.RoleRef.Kind == g.kind && b.RoleRef.Name == g.name && slices.Contains(b.Subjects, sa) {
			return true
		}
	}
	return false
}

// Each secretAccess.mode renders exactly the Secret access it documents, bound to the manager, and the
// flags that tell the manager so; the API server accepts every object.
func TestSecretAccessModesRenderTheirRBAC(t *testing.T) {
	t.Parallel()
	const ns = "helm-secrets"
	manager := rbacv1.Subject{Kind: "ServiceAccount", Name: "sigwatch-controller-manager", Namespace: ns}
	readAll := []string{"get", "list", "watch"}
	for name, tc := range map[string]struct {
		set       []string
		grants    []secretGrant
		flags     map[string]string
		mountFile bool
	}{
		"cluster (default)": {
			grants: []secretGrant{{"ClusterRole", "", "sigwatch-secret-reader-role", readAll}},
			flags:  map[string]string{},
		},
		"namespaces": {
			set: []string{"secretAccess.mode=namespaces", "secretAccess.namespaces={team-a,team-b}"},
			grants: []secretGrant{{"Role", "team-a", "sigwatch-secret-reader", readAll},
				{"Role", "team-b", "sigwatch-secret-reader", readAll}},
			flags: map[string]string{"secret-access": "namespaces", "secret-namespaces": "team-a,team-b"},
		},
		"none": {
			set:       []string{"secretAccess.mode=none", "registryConfig.secretName=registry-creds"},
			flags:     map[string]string{"secret-access": "none", "registry-config": "/etc/sigwatch/registry/config.json"},
			mountFile: true,
		},
		"cluster with a registry config": {
			set:       []string{"registryConfig.secretName=registry-creds", "registryConfig.key=config.json"},
			grants:    []secretGrant{{"ClusterRole", "", "sigwatch-secret-reader-role", readAll}},
			flags:     map[string]string{"registry-config": "/etc/sigwatch/registry/config.json"},
			mountFile: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			objs := objects(helmTemplate(t, "sigwatch", ns, args...))
			grants := objs.secretGrants(t)
			g.Expect(grants).To(ConsistOf(tc.grants), "the roles that grant anything on Secrets")
			for _, gr := range grants {
				g.Expect(objs.boundTo(t, gr, manager)).To(BeTrue(), "%s %s/%s is bound to the manager", gr.kind, gr.namespace, gr.name)
			}

			c := objs.managerPod(t)
			flags, _ := flagNames(c.Args)
			for _, f := range []string{"secret-access", "secret-namespaces", "registry-config"} {
				if want, ok := tc.flags[f]; ok {
					g.Expect(flags).To(HaveKeyWithValue(f, want))
				} else {
					g.Expect(flags).NotTo(HaveKey(f))
				}
			}
			pod := objs.deployment(t).Spec.Template.Spec
			if !tc.mountFile {
				g.Expect(c.VolumeMounts).NotTo(ContainElement(HaveField("Name", "registry-config")))
				g.Expect(pod.Volumes).NotTo(ContainElement(HaveField("Name", "registry-config")))
			} else {
				// The flag names the file the Secret's key is mounted as.
				g.Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "registry-config", MountPath: "/etc/sigwatch/registry", ReadOnly: true}))
				key := ".dockerconfigjson"
				if name == "cluster with a registry config" {
					key = "config.json"
				}
				g.Expect(pod.Volumes).To(ContainElement(corev1.Volume{Name: "registry-config", VolumeSource: corev1.VolumeSource{
					Secret: &corev1.SecretVolumeSource{SecretName: "registry-creds", Optional: ptrTo(true),
						Items: []corev1.KeyToPath{{Key: key, Path: "config.json"}}}}}))
			}
			dryRun(t, objs)
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// Values of secretAccess that cannot work fail at helm install.
func TestInvalidSecretAccessFails(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		set  []string
		want string
	}{
		"unknown mode":           {[]string{"secretAccess.mode=some"}, "at '/secretAccess/mode'"},
		"namespaces without any": {[]string{"secretAccess.mode=namespaces"}, "secretAccess.mode=namespaces needs secretAccess.namespaces"},
		"namespaces in cluster":  {[]string{"secretAccess.namespaces={team-a}"}, "secretAccess.namespaces is only for secretAccess.mode=namespaces"},
		"namespaces in none":     {[]string{"secretAccess.mode=none", "secretAccess.namespaces={team-a}"}, "only for secretAccess.mode=namespaces (it is none)"},
		"not a namespace":        {[]string{"secretAccess.mode=namespaces", "secretAccess.namespaces={Team_A}"}, "at '/secretAccess/namespaces/0'"},
		"twice the same":         {[]string{"secretAccess.mode=namespaces", "secretAccess.namespaces={a,a}"}, "at '/secretAccess/namespaces'"},
		"misspelt":               {[]string{"secretAccess.namespace={a}"}, "additional properties 'namespace' not allowed"},
		"bad secret name":        {[]string{"registryConfig.secretName=Registry Creds"}, "at '/registryConfig/secretName'"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"template", "sigwatch", chartDir}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := runHelm(t, args...)
			g := NewWithT(t)
			g.Expect(err).To(HaveOccurred(), "helm template %v must fail", tc.set)
			g.Expect(string(out)).To(ContainSubstring(tc.want))
		})
	}
}

// Released as `sigwatch` in sigwatch-system, each mode of the chart deploys what its kustomize overlay
// deploys: config/secret-access/namespaces (for team-a) and config/secret-access/none (with the Secret
// sigwatch-registry-config): the same objects, the same rules and bindings, the same manager pod.
func TestSecretAccessMatchesConfigOverlays(t *testing.T) {
	t.Parallel()
	for dir, set := range map[string]string{
		"secret-access/namespaces": "secretAccess.mode=namespaces,secretAccess.namespaces={team-a}",
		"secret-access/none":       "secretAccess.mode=none,registryConfig.secretName=sigwatch-registry-config",
	} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			chart := objects(helmTemplate(t, "sigwatch", "sigwatch-system", "--set", set))
			config := objects(kustomize(t, dir))
			type key struct{ kind, namespace, name string }
			rendered := map[key]bool{}
			for _, o := range chart {
				rendered[key{o.GetKind(), o.GetNamespace(), o.GetName()}] = true
			}
			for _, o := range config {
				if o.GetKind() != "Namespace" {
					g.Expect(rendered).To(HaveKey(key{o.GetKind(), o.GetNamespace(), o.GetName()}), "config/%s has %s %s/%s; the chart does not", dir, o.GetKind(), o.GetNamespace(), o.GetName())
				}
			}
			g.Expect(len(chart)).To(Equal(len(config)-1), "the chart renders no object config/%s lacks", dir)
			g.Expect(chart.secretGrants(t)).To(ConsistOf(config.secretGrants(t)))
			g.Expect(chart.rules(t)).To(Equal(config.rules(t)))
			for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
				for _, o := range config.ofKind(kind) {
					var want, got rbacv1.RoleBinding
					config.get(t, kind, o.GetName(), &want)
					chart.get(t, kind, o.GetName(), &got)
					g.Expect(got.RoleRef).To(Equal(want.RoleRef), "%s %s", kind, o.GetName())
					g.Expect(got.Subjects).To(Equal(want.Subjects), "%s %s", kind, o.GetName())
				}
			}
			comparablePod(t, g, chart.deployment(t).Spec.Template, config.deployment(t).Spec.Template)
			dryRun(t, chart)
		})
	}
}
