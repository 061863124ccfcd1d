//go:build integration

package monitoring

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	testcosign "github.com/sigwatch/sigwatch/test/cosign"
	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
	"github.com/sigwatch/sigwatch/test/stack"
)

// exposition is what the manager serves on /metrics: each series name (histograms as their _bucket,
// _sum and _count series, as Prometheus stores them) with the label names its samples carry.
type exposition map[string][]string

// managerRun is a `sigwatch manager` process of this source tree against envtest, with one policy and
// one running pod whose unsigned image it has verified, so that every metric vector has a series.
type managerRun struct {
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	registry *testregistry.Registry
	rekorV1  *stack.RekorV1
	metrics  string // the /metrics URL
}

// startManager builds cmd/sigwatch, starts it and gives it work: an ImageSignaturePolicy and a pod
// running an unsigned image of an in-process registry.
func startManager(ctx context.Context, env *envtest.Environment) (run *managerRun, err error) {
	dir, err := os.MkdirTemp("", "sigwatch-monitoring-")
	if err != nil {
		return nil, err
	}
	run = &managerRun{dir: dir, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			run.stop()
			run = nil
		}
	}()
	bin := filepath.Join(dir, "sigwatch")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sigwatch")
	build.Dir = envtest.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return run, fmt.Errorf("go build ./cmd/sigwatch: %w\n%s", err, out)
	}
	if run.registry, err = testregistry.Serve(false); err != nil {
		return run, err
	}
	if err := givePolicyAndPod(ctx, env, run.registry); err != nil {
		return run, err
	}
	if run.rekorV1, err = stack.StartRekorV1(ctx, ""); err != nil {
		return run, err
	}
	if err := giveLoggedImage(ctx, env, run.registry, run.rekorV1, dir); err != nil {
		return run, err
	}
	kubeconfig, err := env.KubeConfig()
	if err != nil {
		return run, err
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return run, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return run, err
	}
	probeAddr, err := freeAddr()
	if err != nil {
		return run, err
	}
	run.metrics = "http://" + metricsAddr + "/metrics"
	logFile, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return run, err
	}
	// The flags of a real deployment, but plain HTTP metrics on loopback and no leader election. The
	// public-good trust root is the embedded one: its metrics are exported either way.
	run.cmd = exec.Command(bin, "manager", "--kubeconfig="+kubeconfigPath, "--leader-elect=false",
		"--metrics-bind-address="+metricsAddr, "--metrics-secure=false", "--health-probe-bind-address="+probeAddr,
		"--insecure-registry=127.0.0.1:*", "--offline-trust-root", "--image-metrics")
	run.cmd.Stdout, run.cmd.Stderr = logFile, logFile
	run.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := run.cmd.Start(); err != nil {
		_ = logFile.Close()
		return run, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = run.cmd.Wait()
		_ = logFile.Close()
		close(run.exited)
	}()
	return run, nil
}

// givePolicyAndPod creates a key policy over the registry's app and api repositories and two
// Deployments: one whose pod runs an unsigned image (a verification that fails, SignatureMissing) and one
// whose pod runs an image signed with the policy's key (a verified image, so that the last successful
// verification has a series), with registry requests for both.
func givePolicyAndPod(ctx context.Context, env *envtest.Environment, reg *testregistry.Registry) error {
	key, err := sigstore.NewKeySigner(nil)
	if err != nil {
		return err
	}
	oldKey, err := sigstore.NewKeySigner(nil)
	if err != nil {
		return err
	}
	noLog := &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}
	policy := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(reg.Repo("app")), sigwatchv1alpha1.ImagePattern(reg.Repo("api"))},
			Authorities: []sigwatchv1alpha1.Authority{
				{Name: "ci", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: string(key.PublicKeyPEM())}, TransparencyLog: noLog},
				{Name: "old-ci", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: string(oldKey.PublicKeyPEM())}, TransparencyLog: noLog},
			},
		}}
	if err := env.Client.Create(ctx, policy); err != nil {
		return fmt.Errorf("creating the policy: %w", err)
	}
	// The old key is revoked: the api image, signed with both keys, stays verified by the current one, and
	// sigwatch_revoked_images has a series.
	if err := env.Client.Create(ctx, &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "old-ci-key"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "retired", Signatures: []sigwatchv1alpha1.RevokedSignatures{
			{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: string(oldKey.PublicKeyPEM())}}}}}); err != nil {
		return fmt.Errorf("creating the revocation: %w", err)
	}
	if err := env.Client.Create(ctx, envtest.Namespace("shop", nil)); err != nil {
		return fmt.Errorf("creating the namespace: %w", err)
	}
	img, err := pushRandomImage(reg, "app")
	if err != nil {
		return err
	}
	if _, err := envtest.RunDeployment(ctx, env.Client, "shop", "web", reg.Repo("app")+":latest", "docker-pullable://"+img); err != nil {
		return err
	}
	w := &sigstore.Writer{Registry: reg.Host}
	signed, err := w.PushRandomImage(ctx, "api")
	if err != nil {
		return err
	}
	if _, err := w.SignLegacy(ctx, signed, key, sigstore.SignOptions{}); err != nil {
		return fmt.Errorf("signing %s: %w", signed, err)
	}
	if _, err := w.SignBundle(ctx, signed, oldKey, sigstore.SignOptions{Tlog: sigstore.TlogOff}); err != nil {
		return fmt.Errorf("signing %s with the old key: %w", signed, err)
	}
	_, err = envtest.RunDeployment(ctx, env.Client, "shop", "api", reg.Repo("api")+":latest", "docker-pullable://"+signed.String())
	return err
}

// giveLoggedImage signs an image with a key in a real Rekor v1 (cosign, bundle format) and runs it under
// a policy whose trust root lists that log, so that the manager checks the log live and its metrics
// have series.
func giveLoggedImage(ctx context.Context, env *envtest.Environment, reg *testregistry.Registry, v1 *stack.RekorV1, dir string) error {
	dir = filepath.Join(dir, "logged")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := runCosign(ctx, dir, "generate-key-pair"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "rekor.pub"), v1.PublicKey, 0o600); err != nil {
		return err
	}
	start := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if _, err := runCosign(ctx, dir, "trusted-root", "create", "--rekor=url="+v1.URL+",public-key=rekor.pub,start-time="+start,
		"--no-default-fulcio", "--no-default-ctfe", "--no-default-rekor", "--no-default-tsa", "--out", "trusted_root.json"); err != nil {
		return err
	}
	img, err := pushRandomImage(reg, "logged")
	if err != nil {
		return err
	}
	if _, err := runCosign(ctx, dir, "sign", "--key", "cosign.key", "--use-signing-config=false", "--rekor-url", v1.URL,
		"--trusted-root", "trusted_root.json", "--new-bundle-format=true", "--allow-http-registry", "--allow-insecure-registry", "--yes", img); err != nil {
		return err
	}
	root, err := os.ReadFile(filepath.Join(dir, "trusted_root.json"))
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		return err
	}
	if err := env.Client.Create(ctx, envtest.Namespace("rekor-v1-trust", nil)); err != nil {
		return err
	}
	if err := env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "rekor-v1-trust", Name: "sigstore"},
		Data: map[string]string{"trusted_root.json": string(root)}}); err != nil {
		return err
	}
	policy := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "logged"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images:      []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(reg.Repo("logged"))},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: string(pub)}}},
			TrustedRoot: &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "rekor-v1-trust", Name: "sigstore"}},
		}}
	if err := env.Client.Create(ctx, policy); err != nil {
		return fmt.Errorf("creating the policy: %w", err)
	}
	_, err = envtest.RunDeployment(ctx, env.Client, "shop", "logged", reg.Repo("logged")+":latest", "docker-pullable://"+img)
	return err
}

// runCosign runs the real cosign in dir, hermetically, with the test keys' password.
func runCosign(ctx context.Context, dir string, args ...string) ([]byte, error) {
	bin, err := testcosign.Binary()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(testcosign.HermeticEnv(dir), "COSIGN_PASSWORD="+testcosign.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("cosign %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// pushRandomImage pushes a small random image to the registry's repo and returns its digest reference
// (testregistry's PushRandomImage needs a test, and the manager serves all of the package's tests).
func pushRandomImage(reg *testregistry.Registry, repo string) (string, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", err
	}
	tag, err := name.NewTag(reg.Repo(repo)+":latest", name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img); err != nil {
		return "", fmt.Errorf("pushing %s: %w", tag, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return reg.Repo(repo) + "@" + digest.String(), nil
}

// waitForEveryFamily scrapes until the manager has verified the pod's image and the families below,
// which have no series before that, are served; it returns that scrape.
func (r *managerRun) waitForEveryFamily(ctx context.Context) (exposition, error) {
	needed := []string{"sigwatch_signedimages", "sigwatch_imagesignaturepolicy_ready", "sigwatch_verifications_total",
		"sigwatch_registry_requests_total", "sigwatch_verification_duration_seconds_count",
		"sigwatch_last_successful_verification_timestamp_seconds", "sigwatch_last_verification_attempt_timestamp_seconds",
		"sigwatch_signedimage_info", "sigwatch_transparency_log_tree_size", "sigwatch_transparency_log_consistent",
		"sigwatch_transparency_log_up", "sigwatch_transparency_log_requests_total", "sigwatch_signedimages_transparency_log",
		"sigwatch_revoked_images"}
	var last error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("the manager exited; its log:\n%s", r.log())
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
		got, err := scrape(ctx, r.metrics)
		if err != nil {
			last = err
			continue
		}
		var missing []string
		for _, name := range needed {
			if _, ok := got[name]; !ok {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return got, nil
		}
		last = fmt.Errorf("no series yet of %s", strings.Join(missing, ", "))
	}
	return nil, fmt.Errorf("the manager's metrics: %w; its log:\n%s", last, r.log())
}

func (r *managerRun) log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "manager.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (r *managerRun) stop() {
	if r == nil {
		return
	}
	if r.cmd != nil && r.cmd.Process != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
		}
	}
	if r.registry != nil {
		r.registry.Stop()
	}
	if r.rekorV1 != nil {
		r.rekorV1.Stop()
	}
	_ = os.RemoveAll(r.dir)
}

// scrape reads the text exposition at url.
func scrape(ctx context.Context, url string) (exposition, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseExposition(resp.Body)
}

// parseExposition reads the series names and label names of a Prometheus text exposition.
func parseExposition(r io.Reader) (exposition, error) {
	labels := map[string]map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, names, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		if labels[name] == nil {
			labels[name] = map[string]bool{}
		}
		for _, l := range names {
			labels[name][l] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := exposition{}
	for name, set := range labels {
		out[name] = slices.Sorted(maps.Keys(set))
	}
	return out, nil
}

// parseSample splits `name{a="x",b="y\"z"} 1` into its name and label names.
func parseSample(line string) (string, []string, error) {
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return "", nil, fmt.Errorf("not a sample: %q", line)
	}
	name := line[:end]
	if line[end] != '{' {
		return name, nil, nil
	}
	var names []string
	rest := line[end+1:]
	for {
		rest = strings.TrimLeft(rest, ", ")
		if strings.HasPrefix(rest, "}") {
			return name, names, nil
		}
		eq := strings.Index(rest, `="`)
		if eq < 0 {
			return "", nil, fmt.Errorf("not a sample: %q", line)
		}
		names = append(names, rest[:eq])
		rest = rest[eq+2:]
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' {
				i++
			}
		}
		if i >= len(rest) {
			return "", nil, fmt.Errorf("not a sample: %q", line)
		}
		rest = rest[i+1:]
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
