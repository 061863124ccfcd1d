// Package envtest starts a real kube-apiserver and etcd (controller-runtime envtest) with the sigwatch
// CRDs installed. The binaries come from KUBEBUILDER_ASSETS, which `make test` points at bin/k8s, where
// `make envtest-assets` builds them from source.
package envtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sigwatch/sigwatch/internal/scheme"
)

// Environment is a running control plane.
type Environment struct {
	env *envtest.Environment
	// restarted are the kube-apiservers started again by StopAPIServer.
	restarted []*exec.Cmd
	Config    *rest.Config
	Scheme    *k8sruntime.Scheme
	Client    client.Client
}

// RepoRoot is the root of the sigwatch source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// NewScheme returns a scheme with the built-in Kubernetes types and the sigwatch API.
func NewScheme() *k8sruntime.Scheme { return scheme.New() }

// Start starts kube-apiserver and etcd and installs the CRDs from config/crd/bases.
func Start() (*Environment, error) { return StartWith(nil) }

// StartWith is Start with extra kube-apiserver flags (name without dashes: value).
func StartWith(apiServerFlags map[string]string) (*Environment, error) {
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
	for k, v := range apiServerFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(k, v)
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

// Stop stops the control plane (and an API server that StopAPIServer started again).
func (e *Environment) Stop() error {
	for _, cmd := range e.restarted {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	return e.env.Stop()
}

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

// StopAPIServer stops the kube-apiserver process (etcd keeps running) and returns the function that
// starts it again with the same arguments and certificates, as a real API server restarts: clients and
// their kubeconfigs reconnect to it unchanged. Linux only (it finds the process through /proc).
func (e *Environment) StopAPIServer() (start func() error, err error) {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return nil, err
	}
	pid, args, err := findProcess("kube-apiserver", "--secure-port="+u.Port())
	if err != nil {
		return nil, err
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("stopping kube-apiserver (pid %d): %w", pid, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			_ = proc.Signal(syscall.SIGKILL)
		}
	}
	return func() error {
		cmd := exec.Command(args[0], args[1:]...)
		log, err := os.CreateTemp("", "kube-apiserver-restarted-*.log")
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting kube-apiserver again: %w", err)
		}
		e.restarted = append(e.restarted, cmd)
		go func() { _ = cmd.Wait(); _ = log.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for {
			var nss corev1.NamespaceList
			if err := e.Client.List(ctx, &nss); err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kube-apiserver did not come back within a minute (log: %s)", log.Name())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}, nil
}

// findProcess returns the pid and command line of the process whose command line has name as its
// program and contains arg.
func findProcess(name, arg string) (int, []string, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) == name && slices.Contains(args, arg) {
			return pid, args, nil
		}
	}
	return 0, nil, fmt.Errorf("no %s process with %s", name, arg)
}
