// Package envtest starts a real kube-apiserver and etcd (controller-runtime envtest) with the sigwatch
// CRDs installed. The binaries come from KUBEBUILDER_ASSETS, which `make test` points at bin/k8s, where
// `make envtest-assets` builds them from source.
package envtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sigwatch/sigwatch/internal/scheme"
)

// Environment is a running control plane.
type Environment struct {
	env    *envtest.Environment
	Config *rest.Config
	Scheme *k8sruntime.Scheme
	Client client.Client
}

// RepoRoot is the root of the sigwatch source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// NewScheme returns a scheme with the built-in Kubernetes types and the sigwatch API.
func NewScheme() *k8sruntime.Scheme { return scheme.New() }

// Start starts kube-apiserver and etcd and installs the CRDs from config/crd/bases.
func Start() (*Environment, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run the tests with `make test` " +
			"(or `make envtest-assets` and KUBEBUILDER_ASSETS=$PWD/bin/k8s)")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s: run `make envtest-assets`: %w", assets, bin, err)
		}
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest control plane: %w", err)
	}
	scheme := NewScheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return &Environment{env: env, Config: cfg, Scheme: scheme, Client: c}, nil
}

// KubeConfig returns a kubeconfig of a cluster administrator, for kubectl.
func (e *Environment) KubeConfig() ([]byte, error) {
	user, err := e.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding an envtest user: %w", err)
	}
	return user.KubeConfig()
}

// Stop stops the control plane.
func (e *Environment) Stop() error { return e.env.Stop() }

// Run starts the control plane, runs the package's tests, stops it and returns the exit code. Use it in
// TestMain: os.Exit(envtest.Run(m, &env)).
func Run(m interface{ Run() int }, out **Environment) int {
	env, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*out = env
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	return code
}

// Namespace is a helper object for tests that need a namespace object.
func Namespace(name string, labels map[string]string) *corev1.Namespace {
	ns := &corev1.Namespace{}
	ns.Name = name
	ns.Labels = labels
	return ns
}
