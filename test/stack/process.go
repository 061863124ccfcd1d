package stack

import (
	"bytes"
	"context"
	"fmt"
	"github.com/sigwatch/sigwatch/test/cosign"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	// pollInterval is how often a starting service is asked whether it is ready.
	pollInterval = 100 * time.Millisecond
	// stopGrace is how long a service has to exit after SIGTERM before it is killed.
	stopGrace = 5 * time.Second
	// tailLines is how many lines of a service's log an error quotes.
	tailLines = 40
	// portAttempts bounds the restarts of a service whose free port was taken before it could bind it.
	portAttempts = 3
)

// process is one running service: its own process group, logging to a file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // why it exited, once done is closed
}

// startProcess starts bin with args in its own process group, with the environment of hermeticEnv and
// stdout and stderr appended to logPath.
func startProcess(name, bin, dir, logPath string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the log of %s: %w", name, err)
	}
	defer logFile.Close() // the child has its own descriptor
	fmt.Fprintf(logFile, "### %s %s\n", bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = hermeticEnv(dir)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the whole process group: SIGTERM, then SIGKILL after stopGrace. It returns once the process
// has exited.
func (p *process) stop() {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid // the process leads its own group (Setpgid)
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Anything the service started in its group goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// tail returns the last lines of the process's log, for error messages.
func (p *process) tail() string { return TailFile(p.logPath, tailLines) }

// failure is an error about the process that quotes the end of its log.
func (p *process) failure(format string, args ...any) error {
	return fmt.Errorf("%s: %s; last lines of %s:\n%s", p.name, fmt.Sprintf(format, args...), p.logPath, p.tail())
}

// waitReady polls url until it answers 200, the process exits, or timeout passes.
func (p *process) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := loopbackClient(2 * time.Second)
	defer client.CloseIdleConnections()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last error
	for {
		if p.exited() {
			return p.failure("exited before it was ready (%v)", p.waitErr)
		}
		last = get(ctx, client, url)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return p.failure("not ready after %s: GET %s: %v", timeout, url, last)
		case <-ticker.C:
		}
	}
}

// addressInUse reports whether the process exited because a port it was given was taken meanwhile.
func (p *process) addressInUse() bool {
	return p.exited() && strings.Contains(p.tail(), "address already in use")
}

// loopbackClient is an HTTP client that never uses a proxy.
func loopbackClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil}}
}

// get GETs url and fails unless the answer is 200.
func get(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// freePorts returns n distinct TCP ports that are free on 127.0.0.1 right now. Another process may take
// one before the service binds it; startService retries then.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// service describes how to start one server and when it is ready.
type service struct {
	name  string
	bin   string
	ports int                        // how many free ports args needs
	args  func(ports []int) []string // the command line for those ports
	ready func(ports []int) string   // the URL that answers 200 once the service is ready
	dir   string                     // working directory, also the base of its HOME and TMPDIR
	log   string                     // the log file
}

// startService starts s on free ports and waits until it is ready, restarting it on new ports (at most
// portAttempts times) when one of its ports was taken before it could bind it.
func startService(ctx context.Context, s service, timeout time.Duration) (*process, []int, error) {
	var lastErr error
	for range portAttempts {
		ports, err := freePorts(s.ports)
		if err != nil {
			return nil, nil, err
		}
		p, err := startProcess(s.name, s.bin, s.dir, s.log, s.args(ports)...)
		if err != nil {
			return nil, nil, err
		}
		err = p.waitReady(ctx, s.ready(ports), timeout)
		if err == nil {
			return p, ports, nil
		}
		p.stop()
		if !p.addressInUse() {
			return nil, nil, err
		}
		lastErr = err
	}
	return nil, nil, fmt.Errorf("%s: no free ports after %d attempts: %w", s.name, portAttempts, lastErr)
}

// hermeticEnv is the whole environment of a service or cosign process run in dir (see
// cosign.HermeticEnv).
func hermeticEnv(dir string) []string { return cosign.HermeticEnv(dir) }

// tailFile returns the last n lines of a file, or why it cannot.
// TailFile returns the last n lines of a file (a process log, for an error message).
func TailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
