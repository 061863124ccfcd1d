// Package demo runs sigwatch end to end on one machine: a local control plane (kube-apiserver + etcd), a
// loopback OCI registry, a local Sigstore, three signed-or-not images running in Deployments, and the
// sigwatch manager; then it shows what sigwatch reports. `make demo` runs it; a test runs the same code.
package demo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policyreport"
	"github.com/sigwatch/sigwatch/internal/report"
	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
	"github.com/sigwatch/sigwatch/test/stack"
)

// The identities of the seed scenario.
const (
	ReleaseWorkflow = "https://github.com/yourorg/yourrepo/.github/workflows/release.yaml@refs/heads/main"
	Namespace       = "shop"
	PolicyName      = "ci-release"
)

// Options configure a run.
type Options struct {
	// Out receives the narration and kubectl's output.
	Out io.Writer
	// Sigwatch is the sigwatch binary that runs the manager.
	Sigwatch string
	// Kubectl is the kubectl binary that shows the results ("" or missing: results are summarized
	// without kubectl).
	Kubectl string
	// Keep keeps everything running until ctx ends (DEMO_KEEP=1).
	Keep bool
	// Dir holds the kubeconfig, trust root and logs (default: a new temporary directory).
	Dir string
}

// Image is one of the demo's images and the verdict sigwatch reached on it.
type Image struct {
	Deployment string
	Ref        name.Digest
	SignedBy   string // "" when not signed
	Verified   *metav1.Condition
	// InTransparencyLog is the live check of its accepted signature in the local Rekor v2 (nil when
	// nothing was accepted).
	InTransparencyLog *metav1.Condition
}

// Result is what the demo saw.
type Result struct {
	Images         []*Image
	KubeConfigPath string
	// MetricsURL is the manager's metrics endpoint (plain HTTP on 127.0.0.1).
	MetricsURL string
	// PolicyReport is the summary of the PolicyReport sigwatch wrote for the demo's namespace.
	PolicyReport policyreport.Summary
	// Report is `sigwatch report -o json` before the revocation, and Images the SignedImages it was
	// made from (read right after it).
	Report       *report.Report
	SignedImages []sigwatchv1alpha1.SignedImage
	// Prediction is what `sigwatch report --revocation` said the revocation would do; Revoked the
	// Verified conditions once it was applied, and Restored once it was deleted, by Deployment.
	Prediction         *report.Prediction
	Revoked, Restored  map[string]*metav1.Condition
	RevokedSignedImage *sigwatchv1alpha1.SignedImage
}

// Run runs the demo. It stops everything it started before it returns, unless Keep is set, in which
// case it waits for ctx to end first.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	d := &demo{o: o, out: o.Out}
	defer d.cleanup()
	return d.run(ctx)
}

type demo struct {
	o        Options
	out      io.Writer
	dir      string
	env      *envtest.Environment
	reg      *testregistry.Registry
	stack    *stack.Stack
	manager  *exec.Cmd
	metrics  string // the manager's metrics address, 127.0.0.1:PORT
	cleanups []func()
}

func (d *demo) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) step(title string, f func() error) error {
	start := time.Now()
	fmt.Fprintf(d.out, "• %s ... ", title)
	if err := f(); err != nil {
		fmt.Fprintln(d.out, "failed")
		return fmt.Errorf("%s: %w", title, err)
	}
	fmt.Fprintf(d.out, "done (%.1fs)\n", time.Since(start).Seconds())
	return nil
}

func (d *demo) run(ctx context.Context) (*Result, error) {
	d.dir = d.o.Dir
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "sigwatch-demo-")
		if err != nil {
			return nil, err
		}
		d.dir = dir
		if !d.o.Keep {
			d.cleanups = append(d.cleanups, func() { _ = os.RemoveAll(dir) })
		}
	}
	d.say("sigwatch demo: continuous verification of the images that run\n")
	res := &Result{KubeConfigPath: filepath.Join(d.dir, "kubeconfig")}
	if err := d.step("Starting a local control plane (kube-apiserver + etcd, with the sigwatch and PolicyReport CRDs)", d.startControlPlane(res.KubeConfigPath)); err != nil {
		return nil, err
	}
	if err := d.step("Starting a local OCI registry on 127.0.0.1", d.startRegistry); err != nil {
		return nil, err
	}
	if err := d.step("Starting a local keyless Sigstore: Fulcio, Rekor v2, a timestamp authority and an OIDC issuer", d.startSigstore(ctx)); err != nil {
		return nil, err
	}
	d.say(`  These are the real Sigstore services, on 127.0.0.1. A small OIDC issuer plays GitHub Actions'
  token service: it mints tokens with the claims GitHub puts in a workflow's token, and Fulcio,
  configured to treat it as a GitHub Actions issuer, writes the workflow identity and the GitHub
  extensions into the certificates. The only difference from CI: the certificates name this local
  issuer (%s), not https://token.actions.githubusercontent.com.`, d.stack.OIDC.URL)
	images, err := d.pushAndSign(ctx)
	if err != nil {
		return nil, err
	}
	res.Images = images
	if err := d.step(fmt.Sprintf("Applying ImageSignaturePolicy %q: %s/** must be signed by the release workflow on main", PolicyName, d.reg.Host), d.applyPolicy(ctx)); err != nil {
		return nil, err
	}
	if err := d.step("Creating Deployments web, tools and debug, with running pods (statuses set as the kubelet would)", d.createWorkloads(ctx, images)); err != nil {
		return nil, err
	}
	if err := d.step("Starting the sigwatch manager", d.startManager(res.KubeConfigPath)); err != nil {
		return nil, err
	}
	if err := d.step("Waiting for sigwatch's verdicts", d.waitForVerdicts(ctx, images)); err != nil {
		return nil, err
	}
	if err := d.step("Waiting for sigwatch's PolicyReport", d.waitForPolicyReport(ctx, len(images), &res.PolicyReport)); err != nil {
		return nil, err
	}
	res.MetricsURL = "http://" + d.metrics + "/metrics"
	d.show(ctx, res.KubeConfigPath, images)
	d.showMetrics(ctx, res.MetricsURL)
	if err := d.revoke(ctx, res); err != nil {
		return nil, err
	}
	if d.o.Keep {
		d.say("\nDEMO_KEEP=1: everything keeps running until you press Ctrl-C. Explore with:\n  export KUBECONFIG=%s\n  kubectl get signedimages -A -w\n  kubectl describe pod -n %s\n  kubectl annotate si -n %s --all sigwatch.dev/reverify=\"$(date +%%s)\" --overwrite\n  %s\nManager log: %s",
			res.KubeConfigPath, Namespace, Namespace, curlMetrics(res.MetricsURL), filepath.Join(d.dir, "manager.log"))
		<-ctx.Done()
	}
	return res, nil
}

func (d *demo) startControlPlane(kubeconfig string) func() error {
	return func() error {
		env, err := envtest.Start()
		if err != nil {
			return err
		}
		d.env = env
		d.cleanups = append(d.cleanups, func() { _ = env.Stop() })
		// The PolicyReport CRD, as Policy Reporter or Kyverno installs it: the manager finds it served
		// (--policy-reports=auto) and writes its verdicts there too.
		if _, err := crenvtest.InstallCRDs(env.Config, crenvtest.CRDInstallOptions{
			Paths: []string{filepath.Join(envtest.RepoRoot(), "config", "crd", "policyreport")}, ErrorIfPathMissing: true,
		}); err != nil {
			return fmt.Errorf("installing the PolicyReport CRD: %w", err)
		}
		data, err := env.KubeConfig()
		if err != nil {
			return err
		}
		return os.WriteFile(kubeconfig, data, 0o600)
	}
}

func (d *demo) startRegistry() error {
	reg, err := testregistry.Serve(true)
	if err != nil {
		return err
	}
	d.reg = reg
	d.cleanups = append(d.cleanups, reg.Stop)
	return nil
}

func (d *demo) startSigstore(ctx context.Context) func() error {
	return func() error {
		st, err := stack.Start(ctx, stack.Options{Dir: filepath.Join(d.dir, "sigstore")})
		if err != nil {
			return err
		}
		d.stack = st
		d.cleanups = append(d.cleanups, st.Stop)
		return nil
	}
}

func (d *demo) pushAndSign(ctx context.Context) ([]*Image, error) {
	w := &sigstore.Writer{Registry: d.reg.Host}
	workflows := map[string]stack.GitHubClaims{
		"web":   stack.GitHubWorkflow("yourorg/yourrepo", "release.yaml", "refs/heads/main"),
		"tools": stack.GitHubWorkflow("yourorg/yourrepo", "pr.yaml", "refs/pull/1/merge"),
	}
	images := []*Image{{Deployment: "web"}, {Deployment: "tools"}, {Deployment: "debug"}}
	d.say("• Pushing three images; cosign signs two of them keyless, as two GitHub Actions workflows:")
	for _, img := range images {
		ref, err := w.PushRandomImage(ctx, "yourorg/"+img.Deployment+":v1")
		if err != nil {
			return nil, err
		}
		img.Ref = ref
		claims, ok := workflows[img.Deployment]
		if !ok {
			d.say("\n  %-6s %s\n         not signed", img.Deployment, short(ref))
			continue
		}
		img.SignedBy = claims.CertificateIdentity()
		d.say("\n  %-6s %s\n         $ cosign sign --identity-token $TOKEN ... %s   (as %s)", img.Deployment, short(ref), short(ref), img.SignedBy)
		out, err := d.stack.Sign(ctx, ref.String(), claims, stack.SignOptions{})
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(line, "Flag --") { // cosign's deprecation notices
				d.say("         | %s", line)
			}
		}
	}
	d.say("")
	return images, nil
}

func short(d name.Digest) string {
	return d.Context().Name() + "@" + d.DigestStr()[:19] + "…"
}

func (d *demo) applyPolicy(ctx context.Context) func() error {
	return func() error {
		root := d.stack.TrustedRootJSON()
		c := d.env.Client
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sigwatch-system"}}); err != nil {
			return err
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "sigwatch-system", Name: "local-sigstore"},
			Data: map[string]string{"trusted_root.json": string(root)}}
		if err := c.Create(ctx, cm); err != nil {
			return err
		}
		p := &sigwatchv1alpha1.ImageSignaturePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: PolicyName},
			Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
				Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(d.reg.Host + "/yourorg/**")},
				Authorities: []sigwatchv1alpha1.Authority{{Name: "release-workflow", Keyless: &sigwatchv1alpha1.KeylessAuthority{
					Identities: []sigwatchv1alpha1.Identity{{
						Issuer: d.stack.OIDC.URL, Subject: ReleaseWorkflow,
						GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{Repository: "yourorg/yourrepo", Ref: "refs/heads/main"},
					}},
				}}},
				TrustedRoot: &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{
					Namespace: "sigwatch-system", Name: "local-sigstore"}},
			},
		}
		return c.Create(ctx, p)
	}
}

func (d *demo) createWorkloads(ctx context.Context, images []*Image) func() error {
	return func() error {
		c := d.env.Client
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}); err != nil {
			return err
		}
		for _, img := range images {
			if _, err := envtest.RunDeployment(ctx, c, Namespace, img.Deployment, img.Ref.Context().Name()+":v1", "docker-pullable://"+img.Ref.String()); err != nil {
				return err
			}
		}
		return nil
	}
}

func (d *demo) startManager(kubeconfig string) func() error {
	return func() error {
		logPath := filepath.Join(d.dir, "manager.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			return err
		}
		addr, err := freeLoopbackAddr()
		if err != nil {
			_ = logFile.Close()
			return err
		}
		d.metrics = addr
		// Metrics over plain HTTP, on loopback only: the demo's, not a cluster's, setting.
		cmd := exec.Command(d.o.Sigwatch, "manager", "--kubeconfig", kubeconfig, "--leader-elect=false",
			"--metrics-bind-address="+addr, "--metrics-secure=false",
			"--health-probe-bind-address=0", "--insecure-registry", d.reg.Host, "--offline-trust-root",
			// The local Rekor v2 serves its checkpoint and tiles apart from its API, as a CDN would.
			"--transparency-log-url", stack.RekorOrigin+"="+d.stack.RekorTilesURL)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			_ = logFile.Close()
			return fmt.Errorf("starting %s: %w", d.o.Sigwatch, err)
		}
		d.manager = cmd
		d.cleanups = append(d.cleanups, func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			_ = logFile.Close()
		})
		return nil
	}
}

func (d *demo) waitForVerdicts(ctx context.Context, images []*Image) func() error {
	return func() error {
		deadline := time.Now().Add(90 * time.Second)
		for {
			pending := 0
			for _, img := range images {
				img.Verified, img.InTransparencyLog = d.verdict(ctx, img)
				if img.Verified == nil || img.Verified.Reason == sigwatchv1alpha1.PendingReason {
					pending++
				}
			}
			if pending == 0 {
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%d images have no verdict yet; the manager log (%s) says:\n%s", pending,
					filepath.Join(d.dir, "manager.log"), stack.TailFile(filepath.Join(d.dir, "manager.log"), 20))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// waitForPolicyReport waits until the namespace's PolicyReport holds a result for each image, and
// returns its summary.
func (d *demo) waitForPolicyReport(ctx context.Context, want int, summary *policyreport.Summary) func() error {
	return func() error {
		deadline := time.Now().Add(60 * time.Second)
		for {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(policyreport.GroupVersionKind)
			err := d.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: policyreport.Name}, u)
			if err == nil {
				r, err := policyreport.FromUnstructured(u)
				if err != nil {
					return err
				}
				if len(r.Results) >= want {
					*summary = r.Summary
					return nil
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("no PolicyReport %s/%s with %d results (last error: %v); the manager log (%s) says:\n%s", Namespace, policyreport.Name, want, err,
					filepath.Join(d.dir, "manager.log"), stack.TailFile(filepath.Join(d.dir, "manager.log"), 20))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func (d *demo) verdict(ctx context.Context, img *Image) (verified, inLog *metav1.Condition) {
	var list sigwatchv1alpha1.SignedImageList
	if err := d.env.Client.List(ctx, &list, client.InNamespace(Namespace)); err != nil {
		return nil, nil
	}
	for _, si := range list.Items {
		if si.Spec.Image == img.Ref.Context().Name() && si.Spec.Digest == img.Ref.DigestStr() {
			return meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition),
				meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)
		}
	}
	return nil, nil
}

func (d *demo) show(ctx context.Context, kubeconfig string, images []*Image) {
	if _, err := exec.LookPath(d.o.Kubectl); d.o.Kubectl == "" || err != nil {
		d.say("\nkubectl not found; sigwatch's verdicts:")
		for _, img := range images {
			d.say("  %-6s Verified=%s %s: %s", img.Deployment, img.Verified.Status, img.Verified.Reason, img.Verified.Message)
		}
		return
	}
	d.kubectl(ctx, kubeconfig, "get", "imagesignaturepolicies")
	d.kubectl(ctx, kubeconfig, "get", "signedimages", "-A", "-o", "wide")
	d.kubectl(ctx, kubeconfig, "get", "events", "-A", "--field-selector", "type=Warning",
		"-o", "custom-columns=KIND:.involvedObject.kind,NAME:.involvedObject.name,REASON:.reason,MESSAGE:.message")
	d.say("\nThe same verdicts as a PolicyReport, for Policy Reporter and the tools that read Kyverno's (docs/policyreports.md):")
	d.kubectl(ctx, kubeconfig, "get", "policyreports", "-n", Namespace)
	d.kubectl(ctx, kubeconfig, "get", "policyreport", "-n", Namespace, policyreport.Name,
		"-o", `jsonpath={range .results[*]}{.result}{"\t"}{.severity}{"\t"}{.policy}{"\t"}{.rule}{"\t"}{.resources[0].kind}/{.resources[0].name}{"\n"}{end}`)
}

// freeLoopbackAddr is a 127.0.0.1 address with a port that was free a moment ago.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func curlMetrics(url string) string { return "curl -s " + url + " | grep ^sigwatch_" }

// maxMetricLines bounds the metric series the demo shows.
const maxMetricLines = 25

// showMetrics shows how to read the manager's metrics, and what they say now.
func (d *demo) showMetrics(ctx context.Context, url string) {
	d.say("\nsigwatch's metrics, for Prometheus (see docs/monitoring.md; with DEMO_KEEP=1 the manager keeps\nserving them), histogram buckets left out:\n\n$ %s", curlMetrics(url))
	lines, err := SigwatchMetrics(ctx, url)
	if err != nil {
		d.say("(%v)", err)
		return
	}
	shown := 0
	for _, l := range lines {
		if strings.Contains(l, "_bucket{") {
			continue
		}
		if shown == maxMetricLines {
			d.say("...")
			break
		}
		d.say("%s", l)
		shown++
	}
}

// SigwatchMetrics reads the metrics endpoint at url and returns its sigwatch_ series, as
// `curl -s URL | grep ^sigwatch_` shows them.
func SigwatchMetrics(ctx context.Context, url string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the metrics: %s", resp.Status)
	}
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "sigwatch_") {
			lines = append(lines, sc.Text())
		}
	}
	return lines, sc.Err()
}

func (d *demo) kubectl(ctx context.Context, kubeconfig string, args ...string) {
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = shellQuote(a)
	}
	d.say("\n$ kubectl %s", strings.Join(shown, " "))
	cmd := exec.CommandContext(ctx, d.o.Kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			d.say("(kubectl: %v)", err)
		}
	}
	_, _ = d.out.Write(buf.Bytes())
}

// shellQuote quotes an argument for a shell, as far as the demo's commands need it: the command shown can
// be copied.
func shellQuote(s string) string {
	if strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
