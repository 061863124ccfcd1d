package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Binaries of the Rekor v1 stack (hack/tools/rekorv1, `make rekor-v1-stack`). MariaDB's come from
// Debian's mariadb-server package.
const (
	RekorV1Binary           = "rekor-v1-server"
	TrillianLogServerBinary = "trillian_log_server"
	TrillianLogSignerBinary = "trillian_log_signer"
	CreateTreeBinary        = "createtree"
	// TrillianSchema is Trillian's MySQL schema (storage/mysql/schema/storage.sql), copied into bin/.
	TrillianSchema = "trillian-storage.sql"
)

// RekorV1 is a real Rekor v1 on loopback: rekor-server v1.5.4 over Trillian v1.7.3 (log server and
// signer, MySQL storage) and a MariaDB server of its own, all started without systemd in a temporary
// directory. Its checkpoints are signed with a fresh key (PublicKey) and their origin is Origin.
type RekorV1 struct {
	// URL is the Rekor API, "http://127.0.0.1:PORT".
	URL string
	// PublicKey is the PEM of the key that signs its tree heads; TreeID its Trillian tree; Origin the
	// origin of its checkpoints ("127.0.0.1 - TREEID").
	PublicKey []byte
	TreeID    int64
	Origin    string

	dir      string
	procs    []*process
	stopOnce sync.Once
}

// StartRekorV1 starts MariaDB, Trillian and Rekor v1. binDir holds the binaries (empty: the repository's
// bin/). Call Stop when done; when StartRekorV1 fails, it has already stopped what it started.
func StartRekorV1(ctx context.Context, binDir string) (_ *RekorV1, err error) {
	if binDir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok || !filepath.IsAbs(file) {
			return nil, fmt.Errorf("%w: cannot locate the repository root (built with -trimpath?); pass binDir", ErrMissingBinary)
		}
		binDir = filepath.Join(filepath.Dir(file), "..", "..", "bin") // file is <root>/test/stack/rekorv1.go
	}
	mariadbd, err := lookPath("mariadbd", "/usr/sbin/mariadbd")
	if err != nil {
		return nil, err
	}
	installDB, err := lookPath("mariadb-install-db", "/usr/bin/mariadb-install-db")
	if err != nil {
		return nil, err
	}
	client, err := lookPath("mariadb", "/usr/bin/mariadb")
	if err != nil {
		return nil, err
	}
	for _, b := range []string{RekorV1Binary, TrillianLogServerBinary, TrillianLogSignerBinary, CreateTreeBinary, TrillianSchema} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("%w: %s (run make rekor-v1-stack)", ErrMissingBinary, filepath.Join(binDir, b))
		}
	}
	r := &RekorV1{}
	if r.dir, err = os.MkdirTemp("", "rekor-v1-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, r.LogTails())
			r.Stop()
		}
	}()

	// MariaDB, as root without systemd when run as root.
	data := filepath.Join(r.dir, "mariadb")
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"}
	}
	install := exec.CommandContext(ctx, installDB, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, user...)...)
	install.Env = hermeticEnv(r.dir)
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	dbPort := ports[0]
	db, err := startProcess("mariadb", mariadbd, r.dir, filepath.Join(r.dir, "mariadb.log"), append([]string{"--no-defaults",
		"--datadir=" + data, "--socket=" + filepath.Join(r.dir, "mariadb.sock"), "--port=" + strconv.Itoa(dbPort),
		"--bind-address=127.0.0.1", "--skip-name-resolve", "--pid-file=" + filepath.Join(r.dir, "mariadb.pid")}, user...)...)
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, db)
	if err := waitTCP(ctx, db, fmt.Sprintf("127.0.0.1:%d", dbPort), 60*time.Second); err != nil {
		return nil, err
	}
	sql := func(stdin io.Reader, args ...string) error {
		cmd := exec.CommandContext(ctx, client, append([]string{"--no-defaults", "-h127.0.0.1", "-P" + strconv.Itoa(dbPort), "-uroot"}, args...)...)
		cmd.Stdin = stdin
		cmd.Env = hermeticEnv(r.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("mariadb %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := sql(nil, "-e", "CREATE DATABASE trillian; CREATE DATABASE rekor;"); err != nil {
		return nil, err
	}
	schema, err := os.Open(filepath.Join(binDir, TrillianSchema))
	if err != nil {
		return nil, err
	}
	defer schema.Close()
	if err := sql(schema, "trillian"); err != nil {
		return nil, err
	}
	mysql := fmt.Sprintf("root@tcp(127.0.0.1:%d)/trillian", dbPort)

	// Trillian: the log server (gRPC for Rekor and createtree) and the signer that integrates entries.
	trillian := func(name, bin string) (int, error) {
		p, ports, err := startService(ctx, service{name: name, bin: filepath.Join(binDir, bin), dir: r.dir, log: filepath.Join(r.dir, name+".log"), ports: 2,
			args: func(ports []int) []string {
				args := []string{"--storage_system=mysql", "--mysql_uri=" + mysql, "--quota_system=noop",
					fmt.Sprintf("--rpc_endpoint=127.0.0.1:%d", ports[0]), fmt.Sprintf("--http_endpoint=127.0.0.1:%d", ports[1])}
				if bin == TrillianLogSignerBinary {
					args = append(args, "--force_master", "--sequencer_interval=100ms", "--batch_size=500")
				}
				return args
			},
			ready: func(ports []int) string { return fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[1]) },
		}, 60*time.Second)
		if err != nil {
			return 0, err
		}
		r.procs = append(r.procs, p)
		return ports[0], nil
	}
	logServer, err := trillian("trillian-log-server", TrillianLogServerBinary)
	if err != nil {
		return nil, err
	}
	if _, err := trillian("trillian-log-signer", TrillianLogSignerBinary); err != nil {
		return nil, err
	}
	create := exec.CommandContext(ctx, filepath.Join(binDir, CreateTreeBinary), fmt.Sprintf("--admin_server=127.0.0.1:%d", logServer))
	create.Env = hermeticEnv(r.dir)
	out, err := create.Output()
	if err != nil {
		return nil, fmt.Errorf("createtree: %w", err)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		return nil, fmt.Errorf("createtree printed no tree ID")
	}
	if r.TreeID, err = strconv.ParseInt(lines[len(lines)-1], 10, 64); err != nil {
		return nil, fmt.Errorf("createtree printed %q: %w", out, err)
	}
	r.Origin = fmt.Sprintf("%s - %d", RekorOrigin, r.TreeID)

	p, ports, err := startService(ctx, service{name: "rekor-v1", bin: filepath.Join(binDir, RekorV1Binary), dir: r.dir, log: filepath.Join(r.dir, "rekor-v1.log"), ports: 1,
		args: func(ports []int) []string {
			return []string{fmt.Sprintf("--trillian-address=127.0.0.1:%d", logServer), fmt.Sprintf("--tree-id=%d", r.TreeID),
				fmt.Sprintf("--port=%d", ports[0]), fmt.Sprintf("--mysql-dsn=root@tcp(127.0.0.1:%d)/rekor", dbPort), "--hostname=" + RekorOrigin}
		},
		ready: func(ports []int) string { return fmt.Sprintf("http://127.0.0.1:%d/api/v1/log", ports[0]) },
	}, 60*time.Second)
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	r.URL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if r.PublicKey, err = fetch(ctx, r.URL+"/api/v1/log/publicKey"); err != nil {
		return nil, fmt.Errorf("reading Rekor v1's public key: %w", err)
	}
	return r, nil
}

// Stop stops Rekor, Trillian and MariaDB (in that order) and removes the directory. It is safe to call
// more than once.
func (r *RekorV1) Stop() {
	r.stopOnce.Do(func() {
		for i := len(r.procs) - 1; i >= 0; i-- {
			r.procs[i].stop()
		}
		_ = os.RemoveAll(r.dir)
	})
}

// LogTails returns the last lines of every process's log.
func (r *RekorV1) LogTails() string {
	var b strings.Builder
	for _, p := range r.procs {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.name, p.logPath, p.tail())
	}
	return b.String()
}

func lookPath(name, fallback string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", fmt.Errorf("%w: %s (Debian's mariadb-server: make rekor-v1-stack installs it)", ErrMissingBinary, name)
}

// waitTCP waits until addr accepts connections, or p exits.
func waitTCP(ctx context.Context, p *process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return p.failure("exited before it was ready (%v)", p.waitErr)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return p.failure("not accepting connections on %s after %s: %v", addr, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// RekorV1Signing is what signs with the stack's Fulcio and TSA into a Rekor v1: a signing config, and a
// trusted root that lists the stack's services and both Rekor logs.
type RekorV1Signing struct {
	// SigningConfig and TrustedRootPath are for SignOptions; TrustedRoot is the trusted root's JSON.
	SigningConfig, TrustedRootPath string
	TrustedRoot                    []byte
}

// WithRekorV1 writes a signing config that logs in r, and a trusted root that adds r to the stack's.
func (s *Stack) WithRekorV1(ctx context.Context, r *RekorV1) (*RekorV1Signing, error) {
	dir, err := os.MkdirTemp(s.Dir, "rekor-v1-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "rekor-v1.pub"), r.PublicKey, 0o600); err != nil {
		return nil, err
	}
	start := validFrom(s.began)
	out := &RekorV1Signing{SigningConfig: filepath.Join(dir, "signing_config.json"), TrustedRootPath: filepath.Join(dir, "trusted_root.json")}
	rel, err := filepath.Rel(s.Dir, dir)
	if err != nil {
		return nil, err
	}
	if _, err := s.cosign(ctx, s.Dir, nil, "trusted-root", "create",
		"--fulcio=url="+s.FulcioURL+",certificate-chain=fulcio-chain.pem",
		"--rekor=url="+s.RekorURL+",public-key=rekor/rekor.pub,start-time="+start+",origin="+RekorOrigin,
		"--rekor=url="+r.URL+",public-key="+filepath.Join(rel, "rekor-v1.pub")+",start-time="+start,
		"--tsa=url="+s.TSAURL+",certificate-chain=tsa-chain.pem",
		"--no-default-fulcio", "--no-default-ctfe", "--no-default-rekor", "--no-default-tsa",
		"--out", out.TrustedRootPath); err != nil {
		return nil, fmt.Errorf("creating the trusted root with Rekor v1: %w", err)
	}
	if out.TrustedRoot, err = os.ReadFile(out.TrustedRootPath); err != nil {
		return nil, err
	}
	if err := s.signingConfigVersion(ctx, s.began, r.URL, 1, out.SigningConfig); err != nil {
		return nil, err
	}
	return out, nil
}
