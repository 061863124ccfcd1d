//go:build integration

package helm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/manifests"
)

// chartDir is the chart under test, everythingOn its values file that sets every value.
var (
	chartDir     = filepath.Join(envtest.RepoRoot(), "charts", "sigwatch")
	everythingOn = filepath.Join(chartDir, "ci", "everything-on-values.yaml")
)

// helmBinary is bin/helm, which `make $(LOCALBIN)/helm` builds from hack/tools/helm.
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(envtest.RepoRoot(), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: build it with `make helm` (from hack/tools/helm): %v", bin, err)
	}
	return bin
}

// helmTemplate runs `helm template` on the chart with the release name, namespace and extra arguments
// (--values, --set) and returns the objects it renders, CRDs included. Helm's caches and configuration go
// to a directory of the test, so that parallel runs share nothing.
func helmTemplate(t *testing.T, release, namespace string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", release, chartDir, "--namespace", namespace, "--include-crds"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatalf("parsing the output of helm template: %v", err)
	}
	return objs
}

func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.Bytes(), err
	}
	return out, nil
}

// decode splits a YAML stream into objects, leaving out empty documents.
func decode(stream []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// kustomize renders config/<dir>.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.Kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// objects is a rendering, indexed for lookups.
type objects []*unstructured.Unstructured

func (objs objects) kinds() map[string]int {
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	return kinds
}

func (objs objects) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// get returns the object of that kind and name, converted into into.
func (objs objects) get(t *testing.T, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("no %s %s among %v", kind, name, objs.names())
}

// only returns the one object of the kind, converted into into.
func (objs objects) only(t *testing.T, kind string, into any) {
	t.Helper()
	of := objs.ofKind(kind)
	if len(of) != 1 {
		t.Fatalf("%d objects of kind %s, want 1 (%v)", len(of), kind, objs.names())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(of[0].Object, into); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

func (objs objects) names() []string {
	var names []string
	for _, o := range objs {
		names = append(names, o.GetKind()+"/"+o.GetName())
	}
	return names
}

func (objs objects) deployment(t *testing.T) appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	objs.only(t, "Deployment", &d)
	return d
}

func (objs objects) statefulSet(t *testing.T) appsv1.StatefulSet {
	t.Helper()
	var s appsv1.StatefulSet
	objs.only(t, "StatefulSet", &s)
	return s
}

// managerPod returns the manager container of the Deployment or, with shards, of the StatefulSet.
func (objs objects) managerPod(t *testing.T) corev1.Container {
	t.Helper()
	if len(objs.ofKind("StatefulSet")) > 0 {
		return manager(t, objs.statefulSet(t).Spec.Template)
	}
	return manager(t, objs.deployment(t).Spec.Template)
}

// readValues reads a values file into into (JSON field names).
func readValues(t *testing.T, file string, into any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// rules returns the rules of every ClusterRole and Role by name.
func (objs objects) rules(t *testing.T) map[string][]rbacv1.PolicyRule {
	t.Helper()
	out := map[string][]rbacv1.PolicyRule{}
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
			continue
		}
		var r rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
			t.Fatal(err)
		}
		out[o.GetKind()+"/"+o.GetName()] = r.Rules
	}
	return out
}

// createNamespaces creates the namespaces the objects are in (idempotently: tests share them).
func createNamespaces(t *testing.T, objs objects) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" || seen[ns] {
			continue
		}
		seen[ns] = true
		if err := env.Client.Create(context.Background(), envtest.Namespace(ns, nil)); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating namespace %s: %v", ns, err)
		}
	}
}

// dryRun applies every object with server-side apply in dry-run mode and strict field validation: the
// CRDs first, then the rest with a new client, whose REST mapper knows them.
func dryRun(t *testing.T, objs objects) {
	t.Helper()
	installMonitoringCRDs(t)
	createNamespaces(t, objs)
	var crds, rest objects
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, batch := range []objects{crds, rest} {
		c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range batch {
			err := c.Patch(context.Background(), o.DeepCopy(), client.Apply, client.DryRunAll, client.FieldOwner("sigwatch-helm-test"),
				client.ForceOwnership, client.FieldValidation("Strict"))
			if err != nil {
				t.Errorf("%s %s/%s rejected: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
	}
}

var monitoringCRDs = struct {
	once sync.Once
	err  error
}{}

// installMonitoringCRDs installs, once, permissive stand-ins for the Prometheus Operator's
// ServiceMonitor and PrometheusRule (not part of envtest), so that those objects go through the API
// server (names, namespaces, YAML), as test/deploy does.
func installMonitoringCRDs(t *testing.T) {
	t.Helper()
	monitoringCRDs.once.Do(func() {
		for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
			if err := manifests.InstallStubCRD(env.Config, "monitoring.coreos.com", "v1", kind); err != nil {
				monitoringCRDs.err = err
				return
			}
		}
	})
	if monitoringCRDs.err != nil {
		t.Fatal(monitoringCRDs.err)
	}
}

// flagNames returns the names of the flags in args ("--name" and "--name=value"), and the other
// arguments.
func flagNames(args []string) (flags map[string]string, positional []string) {
	flags = map[string]string{}
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			positional = append(positional, a)
			continue
		}
		name, value, _ := strings.Cut(name, "=")
		flags[name] = value
	}
	return flags, positional
}

// manager returns the manager container of a pod template.
func manager(t *testing.T, pod corev1.PodTemplateSpec) corev1.Container {
	t.Helper()
	for _, c := range pod.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("no manager container among %d", len(pod.Spec.Containers))
	return corev1.Container{}
}
