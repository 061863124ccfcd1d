//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/test/envtest"
)

var env *envtest.Environment

func TestMain(m *testing.M) {
	level := zapcore.ErrorLevel
	if os.Getenv("SIGWATCH_TEST_LOG") != "" {
		level = zapcore.Level(-2)
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(level)))
	os.Exit(envtest.Run(m, &env))
}

// manager is a running sigwatch manager for one test.
type manager struct {
	cancel   context.CancelFunc
	done     chan error
	registry *registry.Client
	metrics  *prometheus.Registry
}

func (m *manager) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("manager: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("manager did not stop")
	}
}

// startManager runs the controllers against the envtest API server until the test ends.
func startManager(t *testing.T, mutate ...func(*controllers.Config)) *manager {
	t.Helper()
	return startManagerWith(t, env.Config, 0, mutate...)
}

// startManagerWith runs the controllers with the REST config rc (an impersonated one, for the RBAC
// tests) until the test ends; syncTimeout bounds the caches' first sync (0: controller-runtime's).
func startManagerWith(t *testing.T, rc *rest.Config, syncTimeout time.Duration, mutate ...func(*controllers.Config)) *manager {
	t.Helper()
	embedded, err := trust.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	cfg := controllers.Config{
		PublicGood:        func(context.Context) (*trust.Root, error) { return embedded, nil },
		Registry:          registry.Options{Insecure: []string{"127.0.0.1:*"}, RequestTimeout: 5 * time.Second, MaxRetries: -1},
		MetricsRegisterer: prometheus.NewRegistry(),
		MaxConcurrent:     4,
		GCGrace:           time.Hour,
		NoMatch:           controllers.NoMatchIgnore,
		MinRetry:          time.Second,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true), CacheSyncTimeout: syncTimeout},
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}},
			FieldOwner: controllers.FieldOwner(cfg.Shard)},
		// The manager's own cache options (cmd/sigwatch/manager.go): the tests see the controllers with
		// slim cached objects, and Secrets only where the Secret access allows.
		Cache: controllers.CacheOptionsFor(cfg.Shard, cfg.SecretAccess),
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := controllers.Setup(ctx, mgr, cfg)
	if err != nil {
		cancel()
		t.Fatalf("setup: %v", err)
	}
	m := &manager{cancel: cancel, done: make(chan error, 1), registry: reg, metrics: cfg.MetricsRegisterer.(*prometheus.Registry)}
	go func() { m.done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			m.stop(t)
		}
	})
	return m
}

var nsCounter int

// namespace creates a fresh namespace.
func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	nsCounter++
	name := fmt.Sprintf("%s-%d", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), nsCounter)
	if len(name) > 63 {
		name = fmt.Sprintf("ns-%d-%d", time.Now().UnixNano()%1e6, nsCounter)
	}
	if err := env.Client.Create(context.Background(), envtest.Namespace(name, labels)); err != nil {
		t.Fatalf("namespace: %v", err)
	}
	return name
}

// runPod creates a pod owned by a ReplicaSet of a Deployment (or bare, when deployment is "") and sets its
// status as the kubelet would: Running, with the container's imageID.
func runPod(t *testing.T, ns, name, deployment, image, imageID string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	if deployment != "" {
		rs := replicaSet(t, ns, deployment)
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", Image: image, ImageID: imageID, Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatalf("setting pod status: %v", err)
	}
	return pod
}

// signedImageFor waits for the SignedImage of an image in a namespace and returns it.
func signedImageFor(t *testing.T, ns, image, digest string) *sigwatchv1alpha1.SignedImage {
	t.Helper()
	var found *sigwatchv1alpha1.SignedImage
	eventually(t, func(g Gomega) {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(env.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
		for i := range list.Items {
			if list.Items[i].Spec.Image == image && list.Items[i].Spec.Digest == digest {
				found = &list.Items[i]
			}
		}
		g.Expect(found).NotTo(BeNil(), "SignedImage for %s@%s in %s", image, digest, ns)
	})
	return found
}

// verified waits until the SignedImage's Verified condition has the status and reason, and returns it.
func verified(t *testing.T, si *sigwatchv1alpha1.SignedImage, status metav1.ConditionStatus, reason string) *sigwatchv1alpha1.SignedImage {
	t.Helper()
	got := &sigwatchv1alpha1.SignedImage{}
	eventually(t, func(g Gomega) {
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(si), got)).To(Succeed())
		c := meta.FindStatusCondition(got.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason), c.Message)
		g.Expect(c.Status).To(Equal(status), c.Message)
	})
	return got
}

// events returns the events.k8s.io Events about an object.
func events(t *testing.T, ns, kind, name string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("listing events: %v", err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// eventually polls f for up to 30 s.
func eventually(t *testing.T, f func(g Gomega)) {
	t.Helper()
	NewWithT(t).Eventually(f).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// replicaSet creates a ReplicaSet controlled by a Deployment of the given name.
func replicaSet(t *testing.T, ns, deployment string) *appsv1.ReplicaSet {
	t.Helper()
	labels := map[string]string{"app": deployment}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: deployment + "-5d4f8b7c9", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: deployment,
				UID: types.UID("00000000-0000-0000-0000-" + fmt.Sprintf("%012d", len(deployment))), Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "placeholder"}}}},
		},
	}
	existing := &appsv1.ReplicaSet{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(rs), existing); err == nil {
		return existing
	}
	if err := env.Client.Create(context.Background(), rs); err != nil {
		t.Fatalf("creating ReplicaSet: %v", err)
	}
	return rs
}
