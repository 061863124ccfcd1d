// Package stack runs a real keyless Sigstore on loopback, for the end-to-end tests and the demo: the
// scenario of keyless signing in GitHub Actions, where the CI's OIDC token is exchanged at Fulcio for a
// short-lived certificate, cosign signs the image digest, the signature is logged in Rekor and
// timestamped, and anyone verifies the workflow identity later.
//
// Start runs, each on free ports of 127.0.0.1:
//   - an OIDC issuer (Issuer, in-process) that mints tokens shaped as each of those providers' (ci.go);
//   - Fulcio v1.8.8 with an ephemeral CA and no CT log, trusting that issuer's URLs as GitHub Actions,
//     GitLab CI, Buildkite, CircleCI and a Kubernetes cluster, with the public-good Fulcio's claim
//     templates, so that certificates carry the extensions real ones do;
//   - the Rekor v2 (rekor-tiles v2.3.0) POSIX server, whose tiles are also served read-only over HTTP;
//   - the timestamp authority (timestamp-authority v2.1.3, in-memory signer): Rekor v2 entries carry no
//     integrated time, so the RFC 3161 timestamp is what dates the signature within the certificate's
//     ten minutes of validity;
//
// and writes, with the real cosign, the trusted_root.json (no CT log) and signing_config.json that
// describe them. Sign, Attest and Verify then run the real cosign against the stack and an OCI registry.
//
// The services are the binaries `make sigstore-stack` builds into bin/ (cosign is `make cosign`); Start
// fails with ErrMissingBinary without them, and StartT skips the test. Every service logs to a file in the
// stack's directory, is killed with its process group by Stop (and by the kernel if the test process dies
// first, on Linux), and nothing is reached beyond loopback.
//
// Certificates name the local issuer, Stack.OIDC.URLFor(provider) ("http://127.0.0.1:PORT" for GitHub
// Actions, "http://127.0.0.1:PORT/gitlab"...), as their OIDC issuer, not https://token.actions.githubusercontent.com
// or https://gitlab.com: Fulcio copies the token's iss claim. Everything else in them is as the
// public-good Fulcio writes it for that provider.
package stack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	testcosign "github.com/sigwatch/sigwatch/test/cosign"
)

// The binaries Start runs, by file name in Options.BinDir.
const (
	FulcioBinary          = "fulcio"
	RekorBinary           = "rekor-server"
	TimestampServerBinary = "timestamp-server"
	CosignBinary          = "cosign"
)

const (
	// RekorOrigin is the Rekor server's --hostname, the origin of its checkpoints. sigstore-go checks it
	// against the host (without the port) of the log's URL in the trusted root, so it must be 127.0.0.1.
	RekorOrigin = "127.0.0.1"
	// DefaultReadyTimeout bounds the wait for each service to be ready.
	DefaultReadyTimeout = 60 * time.Second
	// operator names the services in the signing config.
	operator = "sigwatch-test"
)

// ErrMissingBinary is returned by Start when a binary of the stack is not built.
var ErrMissingBinary = errors.New("binary of the Sigstore stack missing: run `make sigstore-stack cosign` in the repository root")

// Options configure Start. The zero value is fine.
type Options struct {
	// BinDir holds fulcio, rekor-server and timestamp-server; empty means <repository root>/bin. cosign is
	// taken from there too if present, else from test/cosign's Binary ($COSIGN_BIN or bin/cosign).
	BinDir string
	// Dir is where the services keep their state, configuration and logs; it must be new or empty (a
	// Rekor log left there would be continued with a new key). Empty means a new temporary directory,
	// removed by Stop; a given directory is left in place.
	Dir string
	// ReadyTimeout bounds the wait for each service (DefaultReadyTimeout when zero).
	ReadyTimeout time.Duration
	// IssuerAddress is where the OIDC issuer listens, "127.0.0.1:PORT"; empty means a free port. The
	// issuer URL, http://IssuerAddress, is the OIDC issuer of every certificate: fix it to write policies
	// ahead of time.
	IssuerAddress string
}

// Stack is a running keyless Sigstore on 127.0.0.1.
type Stack struct {
	// OIDC is the token issuer; its URL is the OIDC issuer in every certificate.
	OIDC *Issuer
	// FulcioURL is Fulcio's HTTP API, "http://127.0.0.1:PORT".
	FulcioURL string
	// RekorURL is the Rekor v2 server, "http://127.0.0.1:PORT": the log's baseUrl in the trusted root and
	// its URL in the signing config.
	RekorURL string
	// RekorTilesURL serves the log's checkpoint and tiles read-only (C2SP tlog-tiles layout), for readers
	// that want to follow the log; nothing in signing or verification needs it.
	RekorTilesURL string
	// TSAURL is the RFC 3161 endpoint, "http://127.0.0.1:PORT/api/v1/timestamp".
	TSAURL string
	// Dir holds each service's state, configuration and log (<service>.log).
	Dir string
	// TrustedRootPath is the trusted_root.json describing Fulcio, Rekor and the TSA (and no CT log).
	TrustedRootPath string
	// SigningConfigPath is the signing_config.json pointing cosign at the stack.
	SigningConfigPath string
	// StartupDuration is how long Start took.
	StartupDuration time.Duration

	cosignBin string
	// rekorBin, readyTimeout and began start forks of the log (ForkRekor).
	rekorBin     string
	readyTimeout time.Duration
	began        time.Time
	forks        []*http.Server
	trustedRoot  []byte
	procs        []*process
	tiles        *http.Server
	removeDir    bool
	stopOnce     sync.Once
}

// StartT starts a stack for a test and stops it when the test ends, logging the end of every service's
// log first if the test failed. It skips the test when a binary is missing.
func StartT(t testing.TB) *Stack {
	t.Helper()
	s, err := Start(t.Context(), Options{Dir: t.TempDir()})
	if errors.Is(err, ErrMissingBinary) {
		t.Skipf("skipping the test with a real Sigstore stack: %v", err)
	}
	if err != nil {
		t.Fatalf("starting the Sigstore stack: %v", err)
	}
	t.Logf("Sigstore stack up in %s: OIDC %s, Fulcio %s, Rekor %s, TSA %s", s.StartupDuration.Round(time.Millisecond),
		s.OIDC.URL, s.FulcioURL, s.RekorURL, s.TSAURL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Sigstore stack logs:\n%s", s.LogTails())
		}
		s.Stop()
	})
	return s
}

// Start starts the stack; ctx bounds the start-up only, not the services' lives. Call Stop when done.
// When Start fails, it has already stopped whatever it started.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	began := time.Now()
	bins, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	s := &Stack{Dir: opts.Dir, cosignBin: bins[CosignBinary], rekorBin: bins[RekorBinary], readyTimeout: opts.ReadyTimeout, began: began}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "sigstore-stack-"); err != nil {
			return nil, fmt.Errorf("creating the stack's directory: %w", err)
		}
		s.removeDir = true
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	if s.OIDC, err = StartIssuer(opts.IssuerAddress); err != nil {
		return nil, err
	}
	// The services start together; the first failure ends the others' wait.
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex // guards s.procs
	add := func(p *process) {
		mu.Lock()
		defer mu.Unlock()
		s.procs = append(s.procs, p)
	}
	g.Go(func() error { return s.startFulcio(gctx, bins[FulcioBinary], opts.ReadyTimeout, add) })
	g.Go(func() error { return s.startRekor(gctx, bins[RekorBinary], opts.ReadyTimeout, add) })
	g.Go(func() error { return s.startTSA(gctx, bins[TimestampServerBinary], opts.ReadyTimeout, add) })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := s.writeTrustedRoot(ctx, began); err != nil {
		return nil, err
	}
	if err := s.writeSigningConfig(ctx, began); err != nil {
		return nil, err
	}
	s.StartupDuration = time.Since(began)
	return s, nil
}

// Stop kills every service and the issuer, and removes the directory if Start created it. It is safe to
// call more than once.
func (s *Stack) Stop() {
	s.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, p := range s.procs {
			wg.Go(p.stop)
		}
		wg.Wait()
		if s.tiles != nil {
			_ = s.tiles.Close()
		}
		for _, f := range s.forks {
			_ = f.Close()
		}
		_ = s.OIDC.Close()
		if s.removeDir {
			_ = os.RemoveAll(s.Dir)
		}
	})
}

// TrustedRootJSON returns the contents of TrustedRootPath.
func (s *Stack) TrustedRootJSON() []byte { return append([]byte(nil), s.trustedRoot...) }

// LogTails returns the last lines of every service's log.
func (s *Stack) LogTails() string {
	var b strings.Builder
	for _, p := range s.procs {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.name, p.logPath, p.tail())
	}
	return b.String()
}

// findBinaries locates the stack's binaries and cosign.
func findBinaries(binDir string) (map[string]string, error) {
	if binDir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok || !filepath.IsAbs(file) {
			return nil, fmt.Errorf("%w: cannot locate the repository root (built with -trimpath?); set Options.BinDir", ErrMissingBinary)
		}
		binDir = filepath.Join(filepath.Dir(file), "..", "..", "bin") // file is <root>/test/stack/stack.go
	}
	bins := map[string]string{}
	var missing []string
	for _, name := range []string{FulcioBinary, RekorBinary, TimestampServerBinary} {
		path := filepath.Join(binDir, name)
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, path)
		}
		bins[name] = path
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w (missing %s)", ErrMissingBinary, strings.Join(missing, ", "))
	}
	bins[CosignBinary] = filepath.Join(binDir, CosignBinary)
	if _, err := os.Stat(bins[CosignBinary]); err != nil {
		cosign, err := testcosign.Binary()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMissingBinary, err)
		}
		bins[CosignBinary] = cosign
	}
	return bins, nil
}

// startFulcio runs Fulcio with an ephemeral CA, no CT log, and the stack's issuer URLs (fulcioConfig).
func (s *Stack) startFulcio(ctx context.Context, bin string, timeout time.Duration, add func(*process)) error {
	dir := filepath.Join(s.Dir, "fulcio")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating Fulcio's directory: %w", err)
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fulcioConfig(s.OIDC)), 0o600); err != nil {
		return fmt.Errorf("writing Fulcio's configuration: %w", err)
	}
	p, ports, err := startService(ctx, service{
		name: "fulcio", bin: bin, dir: dir, log: filepath.Join(s.Dir, "fulcio.log"), ports: 3,
		args: func(ports []int) []string {
			return []string{"serve",
				"--ca", "ephemeralca",
				"--ct-log-url", "", // no CT log: certificates carry no SCT
				"--config-path", config,
				"--host", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
				"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(ports[1]),
				// Fulcio binds its metrics on every interface; a free port at least avoids clashes.
				"--metrics-port", strconv.Itoa(ports[2]),
				// An abstract socket (no file), unique per instance: the default name is shared machine-wide.
				"--legacy-unix-domain-socket", fmt.Sprintf("@sigwatch-fulcio-%d-%d", os.Getpid(), ports[1]),
			}
		},
		ready: func(ports []int) string { return fmt.Sprintf("http://127.0.0.1:%d/api/v2/configuration", ports[0]) },
	}, timeout)
	if err != nil {
		return err
	}
	add(p)
	s.FulcioURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	return nil
}

// fulcioConfig trusts each provider's issuer URL with that provider's claim layout: the CIs as
// "ci-provider" issuers with the public-good Fulcio's templates, the cluster as a "kubernetes" issuer.
func fulcioConfig(oidc *Issuer) string {
	ciProvider := map[Provider]string{GitHubActions: "github-workflow", GitLabCI: "gitlab-pipeline",
		Buildkite: "buildkite-job", CircleCI: "circleci-job"}
	var b strings.Builder
	b.WriteString("oidc-issuers:\n")
	for _, p := range Providers {
		url := oidc.URLFor(p)
		fmt.Fprintf(&b, "  %q:\n    issuer-url: %q\n    client-id: %q\n", url, url, Audience)
		if name, ok := ciProvider[p]; ok {
			fmt.Fprintf(&b, "    type: ci-provider\n    ci-provider: %s\n", name)
		} else {
			b.WriteString("    type: kubernetes\n")
		}
	}
	b.WriteString(fulcioCIMetadata)
	return b.String()
}

// startRekor runs the Rekor v2 POSIX server with a fresh ECDSA P-256 checkpoint key, and serves its tiles.
func (s *Stack) startRekor(ctx context.Context, bin string, timeout time.Duration, add func(*process)) error {
	dir := filepath.Join(s.Dir, "rekor")
	storage := filepath.Join(dir, "log")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return fmt.Errorf("creating Rekor's directory: %w", err)
	}
	keyPath, err := writeRekorKey(dir)
	if err != nil {
		return err
	}
	var tiles *http.Server
	s.RekorURL, tiles, s.RekorTilesURL, err = s.runRekor(ctx, bin, "rekor", dir, storage, keyPath, timeout, add)
	s.tiles = tiles
	return err
}

// runRekor runs a Rekor v2 POSIX server over storage with the checkpoint key at keyPath, and serves its
// tiles; it returns the server's URL, the tile server and its URL.
func (s *Stack) runRekor(ctx context.Context, bin, name, dir, storage, keyPath string, timeout time.Duration, add func(*process)) (string, *http.Server, string, error) {
	p, ports, err := startService(ctx, service{
		name: name, bin: bin, dir: dir, log: filepath.Join(s.Dir, name+".log"), ports: 3,
		args: func(ports []int) []string {
			return []string{"serve",
				"--hostname", RekorOrigin,
				"--storage-dir", storage,
				"--signer-filepath", keyPath,
				"--http-address", "127.0.0.1", "--http-port", strconv.Itoa(ports[0]),
				"--grpc-address", "127.0.0.1", "--grpc-port", strconv.Itoa(ports[1]),
				"--http-metrics-port", strconv.Itoa(ports[2]),
				// An entry's inclusion proof waits for the next checkpoint: publish often.
				"--checkpoint-interval", "500ms",
				"--batch-max-age", "50ms",
			}
		},
		ready: func(ports []int) string { return fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[0]) },
	}, timeout)
	if err != nil {
		return "", nil, "", err
	}
	add(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, "", fmt.Errorf("listening for %s's tile server: %w", name, err)
	}
	tiles := &http.Server{Handler: http.FileServer(http.Dir(storage)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = tiles.Serve(ln) }()
	return fmt.Sprintf("http://127.0.0.1:%d", ports[0]), tiles, "http://" + ln.Addr().String(), nil
}

// writeRekorKey writes a fresh ECDSA P-256 key for Rekor's checkpoints (PKCS #8 PEM, unencrypted) and
// its public key (PKIX PEM, rekor.pub, for the trusted root) into dir, and returns the private key's path.
func writeRekorKey(dir string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generating Rekor's key: %w", err)
	}
	private, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encoding Rekor's key: %w", err)
	}
	public, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("encoding Rekor's public key: %w", err)
	}
	keyPath := filepath.Join(dir, "rekor.key")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: private}), 0o600); err != nil {
		return "", fmt.Errorf("writing Rekor's key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rekor.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: public}), 0o600); err != nil {
		return "", fmt.Errorf("writing Rekor's public key: %w", err)
	}
	return keyPath, nil
}

// startTSA runs the timestamp authority with its in-memory signer.
func (s *Stack) startTSA(ctx context.Context, bin string, timeout time.Duration, add func(*process)) error {
	dir := filepath.Join(s.Dir, "tsa")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the TSA's directory: %w", err)
	}
	p, ports, err := startService(ctx, service{
		name: "timestamp-server", bin: bin, dir: dir, log: filepath.Join(s.Dir, "timestamp-server.log"), ports: 1,
		args: func(ports []int) []string {
			return []string{"--host", "127.0.0.1", "--port", strconv.Itoa(ports[0])}
		},
		ready: func(ports []int) string {
			return fmt.Sprintf("http://127.0.0.1:%d/api/v1/timestamp/certchain", ports[0])
		},
	}, timeout)
	if err != nil {
		return err
	}
	add(p)
	s.TSAURL = fmt.Sprintf("http://127.0.0.1:%d/api/v1/timestamp", ports[0])
	return nil
}

// writeTrustedRoot fetches Fulcio's and the TSA's certificate chains and has cosign write the trusted
// root: Fulcio, Rekor v2 (origin 127.0.0.1) and the TSA, without any of the public-good services and
// without a CT log.
func (s *Stack) writeTrustedRoot(ctx context.Context, since time.Time) error {
	fulcioChain, err := fetchFulcioChain(ctx, s.FulcioURL)
	if err != nil {
		return err
	}
	tsaChain, err := fetch(ctx, s.TSAURL+"/certchain")
	if err != nil {
		return fmt.Errorf("fetching the TSA's certificate chain: %w", err)
	}
	files := map[string][]byte{"fulcio-chain.pem": fulcioChain, "tsa-chain.pem": tsaChain}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	start := validFrom(since)
	s.TrustedRootPath = filepath.Join(s.Dir, "trusted_root.json")
	// Relative paths, in s.Dir: the service specifications are comma-separated.
	if _, err := s.cosign(ctx, s.Dir, nil, "trusted-root", "create",
		"--fulcio=url="+s.FulcioURL+",certificate-chain=fulcio-chain.pem",
		"--rekor=url="+s.RekorURL+",public-key=rekor/rekor.pub,start-time="+start+",origin="+RekorOrigin,
		"--tsa=url="+s.TSAURL+",certificate-chain=tsa-chain.pem",
		"--no-default-fulcio", "--no-default-ctfe", "--no-default-rekor", "--no-default-tsa",
		"--out", s.TrustedRootPath); err != nil {
		return fmt.Errorf("creating the trusted root: %w", err)
	}
	if s.trustedRoot, err = os.ReadFile(s.TrustedRootPath); err != nil {
		return fmt.Errorf("reading the trusted root: %w", err)
	}
	var root struct {
		CTLogs []json.RawMessage `json:"ctlogs"`
	}
	if err := json.Unmarshal(s.trustedRoot, &root); err != nil {
		return fmt.Errorf("parsing the trusted root cosign wrote: %w", err)
	}
	if len(root.CTLogs) > 0 {
		return fmt.Errorf("the trusted root cosign wrote lists %d CT logs, want none:\n%s", len(root.CTLogs), s.trustedRoot)
	}
	return nil
}

// writeSigningConfig has cosign write the signing config: Fulcio, the issuer, Rekor v2 (API version 2)
// and exactly one TSA.
func (s *Stack) writeSigningConfig(ctx context.Context, since time.Time) error {
	s.SigningConfigPath = filepath.Join(s.Dir, "signing_config.json")
	return s.signingConfig(ctx, since, s.RekorURL, s.SigningConfigPath)
}

// signingConfig writes a signing config that logs in the Rekor v2 server at rekorURL.
func (s *Stack) signingConfig(ctx context.Context, since time.Time, rekorURL, path string) error {
	return s.signingConfigVersion(ctx, since, rekorURL, 2, path)
}

// signingConfigVersion writes a signing config that logs in the Rekor of that API version at rekorURL.
func (s *Stack) signingConfigVersion(ctx context.Context, since time.Time, rekorURL string, version int, path string) error {
	spec := func(url string, version int) string {
		return fmt.Sprintf("url=%s,api-version=%d,start-time=%s,operator=%s", url, version, validFrom(since), operator)
	}
	if _, err := s.cosign(ctx, s.Dir, nil, "signing-config", "create",
		"--fulcio="+spec(s.FulcioURL, 1),
		"--rekor="+spec(rekorURL, version), "--rekor-config=ANY",
		"--oidc-provider="+spec(s.OIDC.URL, 1),
		"--tsa="+spec(s.TSAURL, 1), "--tsa-config=EXACT:1",
		"--no-default-fulcio", "--no-default-rekor", "--no-default-oidc", "--no-default-tsa",
		"--out", path); err != nil {
		return fmt.Errorf("creating the signing config: %w", err)
	}
	return nil
}

// validFrom is the start of the services' validity: a little before the stack started, so that clock
// rounding never puts a signature before it.
func validFrom(since time.Time) string {
	return since.Add(-time.Minute).UTC().Format(time.RFC3339)
}

// fetchFulcioChain returns Fulcio's CA chain (PEM, leaf-most first) from /api/v2/trustBundle.
func fetchFulcioChain(ctx context.Context, fulcioURL string) ([]byte, error) {
	body, err := fetch(ctx, fulcioURL+"/api/v2/trustBundle")
	if err != nil {
		return nil, fmt.Errorf("fetching Fulcio's trust bundle: %w", err)
	}
	var bundle struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	if err := json.Unmarshal(body, &bundle); err != nil {
		return nil, fmt.Errorf("parsing Fulcio's trust bundle: %w", err)
	}
	if len(bundle.Chains) == 0 || len(bundle.Chains[0].Certificates) == 0 {
		return nil, fmt.Errorf("fulcio's trust bundle has no certificate chain: %s", body)
	}
	var chain []byte
	for _, cert := range bundle.Chains[0].Certificates {
		chain = append(chain, strings.TrimSpace(cert)+"\n"...)
	}
	return chain, nil
}

// fetch GETs url and returns the body of a 200 answer.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	client := loopbackClient(30 * time.Second)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}
