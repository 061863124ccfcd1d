//go:build integration

// Package deploy checks the deployment manifests: config/default and config/prometheus render with
// kustomize and the API server accepts every object (server-side dry-run), with the security settings a
// cluster admin expects.
package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/manifests"
)

var env *envtest.Environment

func TestMain(m *testing.M) { os.Exit(envtest.Run(m, &env)) }

func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.Kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// dryRun applies every object with server-side apply in dry-run mode, with a new client (whose REST
// mapper knows the CRDs installed so far).
func dryRun(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		err := c.Patch(context.Background(), o, client.Apply, client.DryRunAll, client.FieldOwner("sigwatch-test"), client.ForceOwnership, client.FieldValidation("Strict"))
		if err != nil {
			t.Errorf("%s %s/%s rejected: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

func TestDefaultIsAccepted(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, "default")
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() != "Namespace" && o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetKind(), "Cluster") {
			g.Expect(o.GetNamespace()).To(Equal("sigwatch-system"), "%s %s", o.GetKind(), o.GetName())
		}
	}
	// Every CRD sigwatch defines, and only those (the PolicyReport CRD is not sigwatch's to install).
	crds, err := filepath.Glob("../../config/crd/bases/*.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(crds).To(HaveLen(5))
	g.Expect(kinds).To(HaveKeyWithValue("CustomResourceDefinition", len(crds)))
	g.Expect(kinds).To(HaveKeyWithValue("Deployment", 1))
	g.Expect(kinds).To(HaveKeyWithValue("Service", 1))
	g.Expect(kinds).To(HaveKey("ClusterRole"))
	g.Expect(kinds).To(HaveKey("Role"))

	// The namespace must exist for the dry-run of namespaced objects.
	g.Expect(env.Client.Create(context.Background(), envtest.Namespace("sigwatch-system", nil))).To(Succeed())
	dryRun(t, objs)
}

// defaultDeployment is the manager's Deployment as config/default renders it.
func defaultDeployment(t *testing.T) appsv1.Deployment {
	t.Helper()
	var dep appsv1.Deployment
	for _, o := range render(t, "default") {
		if o.GetKind() == "Deployment" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dep.Name == "" {
		t.Fatal("config/default renders no Deployment")
	}
	return dep
}

func TestManagerDeploymentIsHardened(t *testing.T) {
	g := NewWithT(t)
	dep := defaultDeployment(t)
	pod := dep.Spec.Template.Spec
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(pod.ServiceAccountName).To(Equal("sigwatch-controller-manager"))
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ContainElement(corev1.Capability("ALL")))
	g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
	g.Expect(c.Resources.Limits).To(HaveKey(corev1.ResourceMemory))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.Args).To(ContainElements("manager", "--leader-elect"))
	g.Expect(c.Image).To(HavePrefix("ghcr.io/sigwatch/sigwatch"))
}

func TestPrometheusIsAccepted(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, "prometheus")
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
	}
	g.Expect(kinds).To(Equal(map[string]bool{"ServiceMonitor": true, "PrometheusRule": true}))
	// The Prometheus Operator's CRDs are not part of envtest: install permissive stand-ins so that the
	// objects go through the API server (names, namespaces, YAML).
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		installStubCRD(t, "monitoring.coreos.com", "v1", kind)
	}
	g.Expect(env.Client.Create(context.Background(), envtest.Namespace("sigwatch-system", nil))).To(Or(Succeed(), MatchError(ContainSubstring("already exists"))))
	dryRun(t, objs)

	// Every alert uses a metric the manager exports: its own, or controller-runtime's work queue and
	// reconcile metrics (test/monitoring checks each selector against the manager's /metrics).
	for _, o := range objs {
		if o.GetKind() != "PrometheusRule" {
			continue
		}
		groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "groups")
		var alerts []string
		for _, grp := range groups {
			rules, _, _ := unstructured.NestedSlice(grp.(map[string]any), "rules")
			for _, r := range rules {
				rule := r.(map[string]any)
				alerts = append(alerts, rule["alert"].(string))
				expr := rule["expr"].(string)
				g.Expect(expr).To(Or(ContainSubstring("sigwatch_"), ContainSubstring("up{"), ContainSubstring("workqueue_"), ContainSubstring("controller_runtime_reconcile_")), rule["alert"])
			}
		}
		g.Expect(alerts).To(ContainElements("SigwatchImageUnverified", "SigwatchVerificationUnknown", "SigwatchPolicyNotReady"))
	}
}

func installStubCRD(t *testing.T, group, version, kind string) {
	t.Helper()
	if err := manifests.InstallStubCRD(env.Config, group, version, kind); err != nil {
		t.Fatal(err)
	}
}

// config/sharded runs the manager as a StatefulSet whose pods are the shards: the pod template is
// config/default's with the shard flags added, the replicas equal --total-shards, and the API server
// accepts it all.
func TestShardedIsAccepted(t *testing.T) {
	g := NewWithT(t)
	dep := defaultDeployment(t)
	objs := render(t, "sharded")
	var sts appsv1.StatefulSet
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() == "StatefulSet" {
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &sts)).To(Succeed())
		}
	}
	g.Expect(kinds).NotTo(HaveKey("Deployment"), "the shards replace the single manager")
	g.Expect(kinds).To(HaveKeyWithValue("StatefulSet", 1))
	g.Expect(sts.Namespace).To(Equal("sigwatch-system"))
	g.Expect(sts.Spec.PodManagementPolicy).To(Equal(appsv1.ParallelPodManagement))
	g.Expect(metav1.FormatLabelSelector(sts.Spec.Selector)).To(Equal(metav1.FormatLabelSelector(dep.Spec.Selector)))

	c := sts.Spec.Template.Spec.Containers[0]
	var total string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--total-shards="); ok {
			total = v
		}
	}
	g.Expect(total).NotTo(BeEmpty())
	g.Expect(sts.Spec.Replicas).To(HaveValue(BeEquivalentTo(mustAtoi(t, total))), "one pod per shard")
	g.Expect(c.Args).To(ContainElements("--shard=-1", "--leader-elect"))
	g.Expect(c.Env).To(ContainElement(HaveField("ValueFrom.FieldRef.FieldPath", "metadata.name")))

	// Apart from the shard flags, the pod template is the Deployment's: the same image, security
	// settings, probes and resources.
	want := dep.Spec.Template.DeepCopy()
	want.Spec.Containers[0].Args = append(want.Spec.Containers[0].Args, "--total-shards="+total, "--shard=-1")
	want.Spec.Containers[0].Env = append(want.Spec.Containers[0].Env, c.Env[len(c.Env)-1])
	g.Expect(sts.Spec.Template).To(Equal(*want))

	dryRun(t, objs)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// The least-privilege overlays render, the API server accepts them, and they grant what their mode
// reads: no Secret cluster-wide in either, a Role on Secrets in each listed namespace.
func TestSecretAccessOverlaysAreAccepted(t *testing.T) {
	for _, tc := range []struct {
		dir         string
		secretRoles []string // namespaces with a Role on Secrets
	}{
		{dir: "secret-access/namespaces", secretRoles: []string{"team-a"}},
		{dir: "secret-access/none"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			g := NewWithT(t)
			objs := render(t, tc.dir)
			var roles []string
			for _, o := range objs {
				rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
				for _, r := range rules {
					resources, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
					if !slices.Contains(resources, "secrets") {
						continue
					}
					g.Expect(o.GetKind()).To(Equal("Role"), "%s %s grants Secrets", o.GetKind(), o.GetName())
					roles = append(roles, o.GetNamespace())
				}
			}
			g.Expect(roles).To(ConsistOf(tc.secretRoles))
			for _, ns := range append([]string{"sigwatch-system"}, tc.secretRoles...) {
				g.Expect(env.Client.Create(context.Background(), envtest.Namespace(ns, nil))).To(Or(Succeed(), MatchError(ContainSubstring("already exists"))))
			}
			dryRun(t, objs)
		})
	}
}
