package scale

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/stack"
)

// buildManager builds cmd/sigwatch of this source tree into dir.
func buildManager(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "sigwatch")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sigwatch")
	cmd.Dir = envtest.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sigwatch: %w\n%s", err, out)
	}
	return bin, nil
}

// manager is a running `sigwatch manager` process.
type manager struct {
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	started time.Time
	// exited is closed when the process has exited; err is then its Wait error.
	exited chan struct{}
	err    error

	mu          sync.Mutex
	maxRSS      int64 // the largest VmRSS sampled, bytes
	stop        chan struct{}
	metricsAddr string
}

// startManager starts bin as `sigwatch manager` against the kubeconfig, with the harness's flags and
// extra, its output going to dir/manager.log. The kubeconfig is passed as --kubeconfig, or as $KUBECONFIG
// when viaEnv is set (see Options.KubeconfigEnv); env is added to its environment.
func startManager(bin, kubeconfig, dir string, viaEnv bool, extra, env []string) (*manager, error) {
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	probePort, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &manager{logPath: filepath.Join(dir, "manager.log"), exited: make(chan struct{}), stop: make(chan struct{}),
		metricsAddr: "127.0.0.1:" + strconv.Itoa(metricsPort)}
	args := []string{"manager"}
	if !viaEnv {
		args = append(args, "--kubeconfig="+kubeconfig)
	}
	args = append(append(args,
		"--leader-elect=false",
		"--metrics-bind-address="+m.metricsAddr,
		"--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probePort),
		// '*' matches a port (internal/registry/insecure.go): the registry is 127.0.0.1:PORT.
		"--insecure-registry=127.0.0.1:*",
		"--offline-trust-root",
	), extra...)
	if m.log, err = os.Create(m.logPath); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.Env = append(os.Environ(), env...)
	if viaEnv {
		m.cmd.Env = append(m.cmd.Env, "KUBECONFIG="+kubeconfig)
	}
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		_ = m.log.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.exited)
	}()
	go m.sampleRSS()
	return m, nil
}

// sampleRSS keeps the largest VmRSS, read every second.
func (m *manager) sampleRSS() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if rss, err := procStatus(m.cmd.Process.Pid, "VmRSS"); err == nil {
			m.mu.Lock()
			m.maxRSS = max(m.maxRSS, rss)
			m.mu.Unlock()
		}
		select {
		case <-t.C:
		case <-m.stop:
			return
		case <-m.exited:
			return
		}
	}
}

// alive returns an error, with the end of the log, once the process has exited.
func (m *manager) alive() error {
	select {
	case <-m.exited:
		return fmt.Errorf("the manager exited (%v); the end of its log %s:\n%s", m.err, m.logPath, stack.TailFile(m.logPath, 30))
	default:
		return nil
	}
}

// memory returns the peak RSS the kernel recorded (VmHWM) and the largest sampled VmRSS, in bytes.
func (m *manager) memory() (hwm, sampled int64, err error) {
	if rss, err := procStatus(m.cmd.Process.Pid, "VmRSS"); err == nil {
		m.mu.Lock()
		m.maxRSS = max(m.maxRSS, rss)
		m.mu.Unlock()
	}
	hwm, err = procStatus(m.cmd.Process.Pid, "VmHWM")
	m.mu.Lock()
	defer m.mu.Unlock()
	return hwm, m.maxRSS, err
}

// terminate sends SIGTERM to the process group and waits for the exit (SIGKILL after 30 s).
func (m *manager) terminate() error {
	select {
	case <-m.stop:
		return nil // already stopped
	default:
		close(m.stop)
	}
	defer m.log.Close()
	select {
	case <-m.exited:
		return nil
	default:
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.exited:
		var exit *exec.ExitError
		if m.err != nil && !errors.As(m.err, &exit) {
			return m.err
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
		return fmt.Errorf("the manager did not stop within 30s of SIGTERM: killed")
	}
}

// procStatus reads a "kB" field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: unexpected %s line %q", pid, field, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, field, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// freePort returns a port of 127.0.0.1 that was free an instant ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// scrapeManager reads the manager's counters that tell what it did: reconciles and their errors by
// controller, verifications by result and reason, verdict cache hits, deferred verifications, registry
// requests by method, API requests by method (client-go's view, every verb).
func scrapeManager(ctx context.Context, addr string) (map[string]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the manager's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the manager's metrics: %s", resp.Status)
	}
	samples, err := parseSamples(resp.Body, "controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total",
		"sigwatch_verifications_total", "sigwatch_cache_hits_total", "sigwatch_verifications_deferred_total",
		"sigwatch_registry_requests_total", "rest_client_requests_total")
	if err != nil {
		return nil, fmt.Errorf("parsing the manager's metrics: %w", err)
	}
	out := map[string]int{}
	for _, s := range samples {
		var key string
		switch s.name {
		case "controller_runtime_reconcile_total":
			key = "reconciles " + s.labels["controller"]
		case "controller_runtime_reconcile_errors_total":
			key = "reconcile_errors " + s.labels["controller"]
		case "sigwatch_verifications_total":
			key = "verifications " + s.labels["result"] + "/" + s.labels["reason"]
		case "sigwatch_cache_hits_total":
			key = "verdict_cache_hits"
		case "sigwatch_verifications_deferred_total":
			key = "verifications_deferred"
		case "sigwatch_registry_requests_total":
			key = "registry_requests " + s.labels["method"] + " " + s.labels["code"]
		case "rest_client_requests_total":
			key = "api_requests " + s.labels["method"]
		}
		out[key] += int(s.value)
	}
	return out, nil
}
