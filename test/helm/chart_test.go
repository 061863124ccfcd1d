//go:build integration

package helm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// clusterScoped are the kinds the chart renders without a namespace.
var clusterScoped = map[string]bool{"CustomResourceDefinition": true, "ClusterRole": true, "ClusterRoleBinding": true}

func appVersion(t *testing.T) string {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	readValues(t, filepath.Join(chartDir, "Chart.yaml"), &chart)
	if chart.AppVersion == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return chart.AppVersion
}

func TestDefaultsAreAccepted(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	objs := objects(helmTemplate(t, "sigwatch", "helm-defaults"))
	g.Expect(objs.kinds()).To(Equal(map[string]int{
		"CustomResourceDefinition": 5,
		"ServiceAccount":           1,
		// manager, secret reader (secretAccess.mode cluster), metrics auth, metrics reader, and the two
		// roles for people
		"ClusterRole":        6,
		"ClusterRoleBinding": 3,
		"Role":               1,
		"RoleBinding":        1,
		"Deployment":         1,
		"Service":            1,
	}), "optional objects (shards, ServiceMonitor, PrometheusRule, dashboard) are off by default")
	for _, o := range objs {
		if clusterScoped[o.GetKind()] {
			g.Expect(o.GetNamespace()).To(BeEmpty(), "%s %s", o.GetKind(), o.GetName())
		} else {
			g.Expect(o.GetNamespace()).To(Equal("helm-defaults"), "%s %s is not in the release namespace", o.GetKind(), o.GetName())
		}
		if o.GetKind() != "CustomResourceDefinition" {
			g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/instance", "sigwatch"), "%s %s", o.GetKind(), o.GetName())
			g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"), "%s %s", o.GetKind(), o.GetName())
		}
	}
	dep := objs.deployment(t)
	g.Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(1)))
	c := manager(t, dep.Spec.Template)
	g.Expect(c.Image).To(Equal("ghcr.io/sigwatch/sigwatch:"+appVersion(t)), "the tag defaults to the appVersion")
	g.Expect(c.ImagePullPolicy).To(Equal(corev1.PullIfNotPresent))
	g.Expect(dep.Spec.Template.Spec.ServiceAccountName).To(Equal("sigwatch-controller-manager"))
	var sa corev1.ServiceAccount
	objs.only(t, "ServiceAccount", &sa)
	g.Expect(sa.Name).To(Equal(dep.Spec.Template.Spec.ServiceAccountName))
	g.Expect(sa.Annotations).To(BeEmpty())

	dryRun(t, objs)
}

// everythingOnValues are the values of ci/everything-on-values.yaml that go into the pod as they are.
type everythingOnValues struct {
	ImagePullSecrets          []corev1.LocalObjectReference     `json:"imagePullSecrets"`
	PodAnnotations            map[string]string                 `json:"podAnnotations"`
	PodLabels                 map[string]string                 `json:"podLabels"`
	PriorityClassName         string                            `json:"priorityClassName"`
	NodeSelector              map[string]string                 `json:"nodeSelector"`
	Tolerations               []corev1.Toleration               `json:"tolerations"`
	Affinity                  *corev1.Affinity                  `json:"affinity"`
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints"`
	Resources                 corev1.ResourceRequirements       `json:"resources"`
	PodSecurityContext        *corev1.PodSecurityContext        `json:"podSecurityContext"`
	SecurityContext           *corev1.SecurityContext           `json:"securityContext"`
	LivenessProbe             *corev1.Probe                     `json:"livenessProbe"`
	ReadinessProbe            *corev1.Probe                     `json:"readinessProbe"`
	ExtraEnv                  []corev1.EnvVar                   `json:"extraEnv"`
	ExtraVolumes              []corev1.Volume                   `json:"extraVolumes"`
	ExtraVolumeMounts         []corev1.VolumeMount              `json:"extraVolumeMounts"`
	ServiceAccount            struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
		Labels      map[string]string `json:"labels"`
	} `json:"serviceAccount"`
}

// With every value set, every object is accepted and every value arrives where it belongs.
func TestEverythingOnIsAccepted(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var want everythingOnValues
	readValues(t, everythingOn, &want)
	objs := objects(helmTemplate(t, "sigwatch", "helm-everything", "--values", everythingOn))
	g.Expect(objs.kinds()).To(Equal(map[string]int{
		"CustomResourceDefinition": 5,
		"ServiceAccount":           1,
		// metrics.secure=false: no metrics auth and reader roles; secretAccess.mode namespaces: no secret
		// reader ClusterRole, a secret reader Role in each of its two namespaces
		"ClusterRole":        3,
		"ClusterRoleBinding": 1,
		"Role":               3,
		"RoleBinding":        3,
		"StatefulSet":        1,
		"Service":            2, // metrics, and the shards' headless Service
		"ServiceMonitor":     1,
		"PrometheusRule":     1,
		"ConfigMap":          1,
	}))

	sts := objs.statefulSet(t)
	g.Expect(sts.Name).To(Equal("sigwatch-all-controller-manager"), "fullnameOverride")
	g.Expect(sts.Spec.Replicas).To(HaveValue(BeEquivalentTo(4)), "shards.count")
	g.Expect(sts.Spec.ServiceName).To(Equal("sigwatch-all-shards"))
	g.Expect(sts.Spec.PodManagementPolicy).To(Equal(appsv1.ParallelPodManagement))
	pod := sts.Spec.Template
	g.Expect(pod.Labels).To(HaveKeyWithValue("azure.workload.identity/use", "true"), "podLabels")
	g.Expect(pod.Labels).To(HaveKeyWithValue("app.kubernetes.io/name", "sigwatch-operator"), "nameOverride")
	g.Expect(labels.SelectorFromSet(sts.Spec.Selector.MatchLabels).Matches(labels.Set(pod.Labels))).To(BeTrue())
	for k, v := range want.PodAnnotations {
		g.Expect(pod.Annotations).To(HaveKeyWithValue(k, v), "podAnnotations")
	}
	g.Expect(pod.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/default-container", "manager"))
	spec := pod.Spec
	g.Expect(spec.ServiceAccountName).To(Equal(want.ServiceAccount.Name))
	g.Expect(spec.ImagePullSecrets).To(Equal(want.ImagePullSecrets))
	g.Expect(spec.PriorityClassName).To(Equal(want.PriorityClassName))
	g.Expect(spec.NodeSelector).To(Equal(want.NodeSelector))
	g.Expect(spec.Tolerations).To(Equal(want.Tolerations))
	g.Expect(spec.Affinity).To(Equal(want.Affinity))
	g.Expect(spec.TopologySpreadConstraints).To(Equal(want.TopologySpreadConstraints))
	g.Expect(spec.SecurityContext).To(Equal(want.PodSecurityContext))
	g.Expect(spec.Volumes).To(ContainElements(want.ExtraVolumes))

	c := manager(t, pod)
	g.Expect(c.Image).To(Equal("registry.example.com/mirror/sigwatch@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
		"the digest wins over the tag")
	g.Expect(c.ImagePullPolicy).To(Equal(corev1.PullAlways))
	g.Expect(c.Resources).To(Equal(want.Resources))
	g.Expect(c.SecurityContext).To(Equal(want.SecurityContext))
	g.Expect(c.LivenessProbe).To(Equal(want.LivenessProbe))
	g.Expect(c.ReadinessProbe).To(Equal(want.ReadinessProbe))
	g.Expect(c.Env).To(ContainElements(want.ExtraEnv))
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "GOMEMLIMIT", Value: "920MiB"}))
	g.Expect(c.Env).To(ContainElement(HaveField("ValueFrom.FieldRef.FieldPath", "metadata.name")), "POD_NAME, for --shard=-1")
	g.Expect(c.VolumeMounts).To(ContainElements(want.ExtraVolumeMounts))
	g.Expect(c.Ports).To(ConsistOf(
		corev1.ContainerPort{Name: "metrics", ContainerPort: 9443, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "health", ContainerPort: 9081, Protocol: corev1.ProtocolTCP}))
	flags, _ := flagNames(c.Args)
	g.Expect(flags).To(HaveKeyWithValue("total-shards", "4"))
	g.Expect(flags).To(HaveKeyWithValue("shard", "-1"))
	g.Expect(flags).To(HaveKeyWithValue("metrics-bind-address", ":9443"))
	g.Expect(flags).To(HaveKeyWithValue("health-probe-bind-address", ":9081"))
	g.Expect(flags).To(HaveKeyWithValue("leader-election-namespace", "sigwatch-leases"))
	g.Expect(c.Args).To(ContainElements("--insecure-registry=registry.local:5000", "--insecure-registry=*.corp.example",
		"--cloud-registry=gcp=registry.example.com", "--cloud-registry=aws=*.ecr.example.com", "--cloud-credentials=gcp,aws"))

	var sa corev1.ServiceAccount
	objs.only(t, "ServiceAccount", &sa)
	g.Expect(sa.Name).To(Equal(want.ServiceAccount.Name))
	g.Expect(sa.Annotations).To(Equal(want.ServiceAccount.Annotations), "the cloud identities")
	for k, v := range want.ServiceAccount.Labels {
		g.Expect(sa.Labels).To(HaveKeyWithValue(k, v))
	}

	// The lease's Role is where the lease is, bound to the manager's ServiceAccount.
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	objs.get(t, "Role", "sigwatch-all-leader-election-role", &role)
	objs.get(t, "RoleBinding", "sigwatch-all-leader-election-rolebinding", &binding)
	g.Expect(role.Namespace).To(Equal("sigwatch-leases"))
	g.Expect(binding.Namespace).To(Equal("sigwatch-leases"))
	g.Expect(binding.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: "helm-everything"}}))
	for _, crb := range objs.ofKind("ClusterRoleBinding") {
		subjects, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
		g.Expect(subjects).To(ConsistOf(map[string]any{"kind": "ServiceAccount", "name": sa.Name, "namespace": "helm-everything"}))
	}

	// The metrics Service (plain HTTP here), the ServiceMonitor that selects it, and the shards' Service.
	var metrics, shards corev1.Service
	objs.get(t, "Service", "sigwatch-all-controller-manager-metrics-service", &metrics)
	objs.get(t, "Service", "sigwatch-all-shards", &shards)
	g.Expect(metrics.Spec.Ports).To(Equal([]corev1.ServicePort{{Name: "http", Port: 9443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("metrics")}}))
	g.Expect(metrics.Annotations).To(HaveKeyWithValue("example.com/scrape", "true"))
	g.Expect(metrics.Labels).To(HaveKeyWithValue("example.com/team", "platform"))
	g.Expect(shards.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
	g.Expect(labels.SelectorFromSet(metrics.Spec.Selector).Matches(labels.Set(pod.Labels))).To(BeTrue())
	g.Expect(labels.SelectorFromSet(shards.Spec.Selector).Matches(labels.Set(pod.Labels))).To(BeTrue())
	monitor := objs.ofKind("ServiceMonitor")[0]
	g.Expect(monitor.GetLabels()).To(HaveKeyWithValue("release", "kube-prometheus-stack"))
	selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	g.Expect(labels.SelectorFromSet(selector).Matches(labels.Set(metrics.Labels))).To(BeTrue(), "the ServiceMonitor selects the metrics Service")
	g.Expect(labels.SelectorFromSet(selector).Matches(labels.Set(shards.Labels))).To(BeFalse(), "and only it")
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	g.Expect(endpoints).To(Equal([]any{map[string]any{"path": "/metrics", "honorLabels": true, "port": "http", "scheme": "http", "interval": "30s", "scrapeTimeout": "10s"}}))
	g.Expect(objs.ofKind("PrometheusRule")[0].GetLabels()).To(HaveKeyWithValue("release", "kube-prometheus-stack"))

	// The dashboard, for Grafana's sidecar.
	var dashboard corev1.ConfigMap
	objs.only(t, "ConfigMap", &dashboard)
	g.Expect(dashboard.Namespace).To(Equal("monitoring"))
	g.Expect(dashboard.Labels).To(HaveKeyWithValue("grafana_dashboard", "1"))
	g.Expect(dashboard.Annotations).To(HaveKeyWithValue("grafana_folder", "Security"))
	file, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "sigwatch.json"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(json.Valid([]byte(dashboard.Data["sigwatch.json"]))).To(BeTrue())
	g.Expect(dashboard.Data["sigwatch.json"]).To(MatchJSON(file))

	dryRun(t, objs)

	// Without shards, the same values give a Deployment with the same pod, less the shard settings.
	unsharded := objects(helmTemplate(t, "sigwatch", "helm-everything", "--values", everythingOn, "--set", "shards.enabled=false"))
	g.Expect(unsharded.kinds()).NotTo(HaveKey("StatefulSet"))
	g.Expect(unsharded.kinds()).To(HaveKeyWithValue("Service", 1))
	dep := unsharded.deployment(t)
	g.Expect(dep.Name).To(Equal(sts.Name))
	g.Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)), "replicaCount")
	wantPod := sts.Spec.Template.DeepCopy()
	mc := &wantPod.Spec.Containers[0]
	mc.Args = withoutShardFlags(mc.Args)
	mc.Env = withoutEnv(mc.Env, "POD_NAME")
	g.Expect(dep.Spec.Template).To(Equal(*wantPod))
	dryRun(t, unsharded)
}

func withoutShardFlags(args []string) []string {
	var out []string
	for _, a := range args {
		if f, _ := flagNames([]string{a}); f["total-shards"] == "" && f["shard"] == "" {
			out = append(out, a)
		}
	}
	return out
}

func withoutEnv(env []corev1.EnvVar, name string) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, e := range env {
		if e.Name != name {
			out = append(out, e)
		}
	}
	return out
}

// The manager's pod meets the restricted Pod Security Standard with the defaults, with and without
// shards, and serves metrics over HTTPS.
func TestPodIsHardened(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"deployment": nil,
		"shards":     {"--set", "shards.enabled=true"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			objs := objects(helmTemplate(t, "sigwatch", "helm-hardened", append(args, "--set", "serviceMonitor.enabled=true")...))
			var pod corev1.PodSpec
			if name == "shards" {
				pod = objs.statefulSet(t).Spec.Template.Spec
			} else {
				pod = objs.deployment(t).Spec.Template.Spec
			}
			g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
			g.Expect(pod.SecurityContext.RunAsUser).To(HaveValue(BeEquivalentTo(65532)))
			g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
			g.Expect(pod.HostNetwork || pod.HostPID || pod.HostIPC).To(BeFalse())
			for _, v := range pod.Volumes {
				g.Expect(v.HostPath).To(BeNil(), v.Name)
			}
			g.Expect(pod.Containers).To(HaveLen(1))
			c := pod.Containers[0]
			g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
			g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
			g.Expect(c.SecurityContext.Privileged).To(BeNil())
			g.Expect(c.SecurityContext.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
			g.Expect(c.SecurityContext.Capabilities.Add).To(BeEmpty())
			g.Expect(c.Resources.Limits).To(HaveKey(corev1.ResourceMemory))
			g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
			g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
			g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
			g.Expect(c.Args).NotTo(ContainElement("--metrics-secure=false"))

			monitor := objs.ofKind("ServiceMonitor")[0]
			endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
			g.Expect(endpoints).To(HaveLen(1))
			g.Expect(endpoints[0]).To(HaveKeyWithValue("scheme", "https"))
			g.Expect(endpoints[0]).To(HaveKeyWithValue("port", "https"))
			g.Expect(endpoints[0]).To(HaveKey("bearerTokenFile"))
		})
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	valueFiles, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(valueFiles) == 0 {
		t.Fatalf("no ci/*-values.yaml: %v", err)
	}
	runs := [][]string{nil}
	for _, f := range valueFiles {
		runs = append(runs, []string{"--values", f})
	}
	for _, args := range runs {
		out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, args...)...)
		if err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s", args, err, out)
		}
	}
}

// Values that cannot work fail at helm install, not in the cluster.
func TestInvalidValuesFail(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		set, want string
	}{
		"misspelt manager value": {"manager.gcgrace=1m", "additional properties 'gcgrace' not allowed"},
		"misspelt logging value": {"logging.lvl=debug", "additional properties 'lvl' not allowed"},
		"bad duration":           {"manager.gcGrace=ten minutes", "at '/manager/gcGrace'"},
		"bad no-match policy":    {"manager.noMatchPolicy=block", "at '/manager/noMatchPolicy'"},
		"bad quantity":           {"manager.maxSignatureBytes=lots", "at '/manager/maxSignatureBytes'"},
		"no shards":              {"shards.enabled=true,shards.count=0", "at '/shards/count'"},
		"unknown provider":       {"manager.cloudCredentials=ibm", "at '/manager/cloudCredentials'"},
		"bad cloud registry":     {"manager.cloudRegistries[0]=registry.example.com", "at '/manager/cloudRegistries/0'"},
		"monitor without metric": {"metrics.enabled=false,serviceMonitor.enabled=true", "serviceMonitor.enabled needs metrics.enabled"},
		"no service account":     {"serviceAccount.create=false", "serviceAccount.name is required"},
		"bad digest":             {"image.digest=latest", "at '/image/digest'"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := runHelm(t, "template", "sigwatch", chartDir, "--set", tc.set)
			g := NewWithT(t)
			g.Expect(err).To(HaveOccurred(), "helm template --set %s must fail", tc.set)
			g.Expect(string(out)).To(ContainSubstring(tc.want))
		})
	}
}

// TestLongReleaseNamesGiveValidNames: however long the release name, every object name fits in 63
// characters, and the shards' StatefulSet name in the 52 that leave room for its pods'
// controller-revision-hash label; large numbers from a values file render as integers.
func TestLongReleaseNamesGiveValidNames(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	values := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(values, []byte("manager:\n  maxConcurrentVerifications: 1000000\n"), 0o600)).To(Succeed())
	for _, args := range [][]string{
		{"--set", "shards.enabled=true", "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true", "--set", "grafana.dashboard.enabled=true"},
		{"--set", "fullnameOverride=" + strings.Repeat("x", 60)},
	} {
		objs := objects(helmTemplate(t, "sigwatch-production-cluster-eu-west1-blue", "helm-long-names", append(args, "--values", values)...))
		for _, o := range objs {
			g.Expect(len(o.GetName())).To(BeNumerically("<=", 63), "%s %s", o.GetKind(), o.GetName())
			if o.GetKind() == "StatefulSet" {
				g.Expect(len(o.GetName())).To(BeNumerically("<=", 52), "StatefulSet %s", o.GetName())
			}
		}
		g.Expect(objs.managerPod(t).Args).To(ContainElement("--max-concurrent-verifications=1000000"))
	}
}
