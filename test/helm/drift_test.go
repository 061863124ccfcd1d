//go:build integration

package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/diff"

	"github.com/sigwatch/sigwatch/test/envtest"
)

// The chart's copies of config/ files are byte for byte the originals (`make manifests` copies them).
func TestChartCopiesMatchConfig(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	root := envtest.RepoRoot()
	same := func(chartFile, configFile string) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(chartDir, chartFile))
		g.Expect(err).NotTo(HaveOccurred())
		want, err := os.ReadFile(filepath.Join(root, configFile))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(bytes.Equal(got, want)).To(BeTrue(), "charts/sigwatch/%s is not a copy of %s: run `make manifests`", chartFile, configFile)
	}
	bases, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	crds, err := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bases).NotTo(BeEmpty())
	g.Expect(baseNames(crds)).To(Equal(baseNames(bases)), "charts/sigwatch/crds holds exactly the CRDs of config/crd/bases")
	for _, f := range bases {
		same(filepath.Join("crds", filepath.Base(f)), filepath.Join("config", "crd", "bases", filepath.Base(f)))
	}
	same(filepath.Join("files", "manager-role.yaml"), filepath.Join("config", "rbac", "role.yaml"))
	same(filepath.Join("files", "prometheus-rules.yaml"), filepath.Join("config", "prometheus", "rules.yaml"))
	if _, err := os.Stat(filepath.Join(root, "config", "grafana", "sigwatch-dashboard.json")); err == nil {
		same(filepath.Join("dashboards", "sigwatch.json"), filepath.Join("config", "grafana", "sigwatch-dashboard.json"))
	}
}

func baseNames(files []string) []string {
	var out []string
	for _, f := range files {
		out = append(out, filepath.Base(f))
	}
	return out
}

// Released as `sigwatch` in sigwatch-system, the chart deploys what config/default and config/prometheus
// deploy: the same objects by name, the same RBAC, and the same manager.
func TestChartMatchesConfigDefault(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	chart := objects(helmTemplate(t, "sigwatch", "sigwatch-system", "--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true"))
	config := objects(append(kustomize(t, "default"), kustomize(t, "prometheus")...))

	// Every object of config/default, by kind, namespace and name (the namespace aside: Helm's is the
	// release's).
	type key struct{ kind, namespace, name string }
	rendered := map[key]bool{}
	for _, o := range chart {
		rendered[key{o.GetKind(), o.GetNamespace(), o.GetName()}] = true
	}
	for _, o := range config {
		if o.GetKind() == "Namespace" {
			continue
		}
		g.Expect(rendered).To(HaveKey(key{o.GetKind(), o.GetNamespace(), o.GetName()}), "config/default has %s %s/%s; the chart does not", o.GetKind(), o.GetNamespace(), o.GetName())
	}
	g.Expect(len(chart)).To(Equal(len(config)-1), "the chart renders no object config/default and config/prometheus lack")

	// The same rules in every role (the manager's: those of config/rbac/role.yaml), the same
	// aggregation, the same bindings.
	g.Expect(chart.rules(t)).To(Equal(config.rules(t)))
	for _, o := range config.ofKind("ClusterRole") {
		var want, got rbacv1.ClusterRole
		config.get(t, "ClusterRole", o.GetName(), &want)
		chart.get(t, "ClusterRole", o.GetName(), &got)
		for k, v := range want.Labels {
			if k != "app.kubernetes.io/managed-by" {
				g.Expect(got.Labels).To(HaveKeyWithValue(k, v), "ClusterRole %s", o.GetName())
			}
		}
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range config.ofKind(kind) {
			var want, got rbacv1.RoleBinding
			config.get(t, kind, o.GetName(), &want)
			chart.get(t, kind, o.GetName(), &got)
			g.Expect(got.RoleRef).To(Equal(want.RoleRef), "%s %s", kind, o.GetName())
			g.Expect(got.Subjects).To(Equal(want.Subjects), "%s %s", kind, o.GetName())
		}
	}

	// The same manager: the same flags, and the same pod but for the image and labels.
	want, got := config.deployment(t), chart.deployment(t)
	g.Expect(got.Spec.Replicas).To(Equal(want.Spec.Replicas))
	g.Expect(labels.SelectorFromSet(want.Spec.Selector.MatchLabels).Matches(labels.Set(got.Spec.Template.Labels))).To(BeTrue(),
		"the chart's pods carry config/default's selector labels")
	g.Expect(got.Spec.Template.Annotations).To(Equal(want.Spec.Template.Annotations))
	comparablePod(t, g, got.Spec.Template, want.Spec.Template)

	// The same metrics Service ports, selecting the pods.
	var wantSvc, gotSvc corev1.Service
	config.only(t, "Service", &wantSvc)
	chart.only(t, "Service", &gotSvc)
	g.Expect(gotSvc.Name).To(Equal(wantSvc.Name))
	g.Expect(gotSvc.Spec.Ports).To(Equal(wantSvc.Spec.Ports))
	g.Expect(labels.SelectorFromSet(gotSvc.Spec.Selector).Matches(labels.Set(got.Spec.Template.Labels))).To(BeTrue())

	// The same scrape endpoint and the same alerts.
	g.Expect(spec(t, chart, "ServiceMonitor")["endpoints"]).To(Equal(spec(t, config, "ServiceMonitor")["endpoints"]))
	g.Expect(spec(t, chart, "PrometheusRule")).To(Equal(spec(t, config, "PrometheusRule")), "the alerts of config/prometheus/rules.yaml")

	dryRun(t, chart)
}

// With grafana.dashboard.enabled, the chart renders config/grafana's ConfigMap: the same name, labels
// for the sidecar and dashboard.
func TestDashboardMatchesConfigGrafana(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(filepath.Join(envtest.RepoRoot(), "config", "grafana", "kustomization.yaml")); err != nil {
		t.Skip("no config/grafana")
	}
	g := NewWithT(t)
	chart := objects(helmTemplate(t, "sigwatch", "sigwatch-system", "--set", "grafana.dashboard.enabled=true"))
	config := objects(kustomize(t, "grafana"))
	var want, got corev1.ConfigMap
	config.only(t, "ConfigMap", &want)
	chart.only(t, "ConfigMap", &got)
	g.Expect(got.Name).To(Equal(want.Name))
	g.Expect(got.Namespace).To(Equal(want.Namespace))
	g.Expect(got.Labels).To(HaveKeyWithValue("grafana_dashboard", want.Labels["grafana_dashboard"]))
	g.Expect(got.Data).To(HaveLen(len(want.Data)))
	for k, v := range want.Data {
		g.Expect(got.Data).To(HaveKey(k))
		g.Expect(got.Data[k]).To(MatchJSON(v), "dashboard %s", k)
	}
}

// With shards.count 3, the chart deploys the StatefulSet of config/sharded.
func TestShardsMatchConfigSharded(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	chart := objects(helmTemplate(t, "sigwatch", "sigwatch-system", "--set", "shards.enabled=true,shards.count=3"))
	config := objects(kustomize(t, "sharded"))
	g.Expect(chart.kinds()).NotTo(HaveKey("Deployment"))
	g.Expect(config.kinds()).NotTo(HaveKey("Deployment"))

	want, got := config.statefulSet(t), chart.statefulSet(t)
	g.Expect(got.Name).To(Equal(want.Name))
	g.Expect(got.Spec.Replicas).To(Equal(want.Spec.Replicas))
	g.Expect(got.Spec.ServiceName).To(Equal(want.Spec.ServiceName))
	g.Expect(got.Spec.PodManagementPolicy).To(Equal(appsv1.ParallelPodManagement))
	comparablePod(t, g, got.Spec.Template, want.Spec.Template)

	var wantSvc, gotSvc corev1.Service
	config.get(t, "Service", want.Spec.ServiceName, &wantSvc)
	chart.get(t, "Service", got.Spec.ServiceName, &gotSvc)
	g.Expect(gotSvc.Spec.ClusterIP).To(Equal(wantSvc.Spec.ClusterIP))
	g.Expect(gotSvc.Spec.Ports).To(Equal(wantSvc.Spec.Ports))

	dryRun(t, chart)
}

// comparablePod compares the chart's manager pod with config/'s in what matters: the same flags (in any
// order), and otherwise the same pod spec (security contexts, probes, ports, resources, environment,
// volumes, command) but for the image, which config/ leaves to kustomize's images and the chart to
// image.*.
func comparablePod(t *testing.T, g *WithT, got, want corev1.PodTemplateSpec) {
	t.Helper()
	gotArgs, gotPositional := flagNames(manager(t, got).Args)
	wantArgs, wantPositional := flagNames(manager(t, want).Args)
	g.Expect(gotArgs).To(Equal(wantArgs), "the manager's flags")
	g.Expect(gotPositional).To(Equal(wantPositional))

	normalize := func(p corev1.PodTemplateSpec) corev1.PodSpec {
		s := p.Spec.DeepCopy()
		for i := range s.Containers {
			s.Containers[i].Image, s.Containers[i].ImagePullPolicy, s.Containers[i].Args = "", "", nil
		}
		return *s
	}
	g.Expect(diff.Diff(normalize(want), normalize(got))).To(BeEmpty(), "the pod spec, image and args aside (- config/, + chart)")
}

func spec(t *testing.T, objs objects, kind string) map[string]any {
	t.Helper()
	of := objs.ofKind(kind)
	if len(of) != 1 {
		t.Fatalf("%d %s, want 1", len(of), kind)
	}
	s, _, err := unstructured.NestedMap(of[0].Object, "spec")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
