//go:build integration

package helm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/test/envtest"
)

// notAValue are the manager flags that the chart leaves to extraArgs, each with the reason.
var notAValue = map[string]string{
	// In a cluster the manager uses its ServiceAccount; a kubeconfig (of another cluster) is an unusual
	// setup that needs a Secret mounted through extraVolumes anyway.
	"kubeconfig": "meaningless in-cluster: extraArgs with extraVolumes",
}

var sigwatchBuild = struct {
	once sync.Once
	bin  string
	err  error
	out  []byte
}{}

// sigwatchBinary builds ./cmd/sigwatch once for the package's tests.
func sigwatchBinary(t *testing.T) string {
	t.Helper()
	sigwatchBuild.once.Do(func() {
		bin := filepath.Join(binDir, "sigwatch")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/sigwatch")
		cmd.Dir = envtest.RepoRoot()
		sigwatchBuild.out, sigwatchBuild.err = cmd.CombinedOutput()
		sigwatchBuild.bin = bin
	})
	if sigwatchBuild.err != nil {
		t.Fatalf("go build ./cmd/sigwatch: %v\n%s", sigwatchBuild.err, sigwatchBuild.out)
	}
	return sigwatchBuild.bin
}

// runManager runs `sigwatch manager args...` where no cluster can be found (no kubeconfig, not in a
// pod), and returns its output: the manager parses and validates its flags, then stops for want of a
// cluster.
func runManager(t *testing.T, podName string, args ...string) (string, error) {
	t.Helper()
	bin := sigwatchBinary(t) // built first: a cold build must not eat the run's minute
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"manager"}, args...)...)
	home := t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "POD_NAME=" + podName}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// managerFlagPattern matches the flag lines of the manager's usage ("  --name type"; Go's own flag
// usage has one dash).
var managerFlagPattern = regexp.MustCompile(`(?m)^  --?([A-Za-z0-9][A-Za-z0-9-]*)`)

// managerFlags are the flags of `sigwatch manager`, from its usage (-h).
func managerFlags(t *testing.T) []string {
	t.Helper()
	out, err := runManager(t, "", "-h")
	if err != nil {
		t.Fatalf("sigwatch manager -h: %v\n%s", err, out)
	}
	var flags []string
	for _, m := range managerFlagPattern.FindAllStringSubmatch(out, -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in the usage of sigwatch manager:\n%s", len(flags), out)
	}
	sort.Strings(flags)
	return flags
}

// With every value set, the chart sets every manager flag (but those of notAValue) through its own
// value, and sets no flag the manager does not have.
func TestEveryManagerFlagIsAValue(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	known := managerFlags(t)
	g.Expect(known).To(ContainElements("metrics-bind-address", "leader-elect", "total-shards", "zap-log-level"))
	for flag := range notAValue {
		g.Expect(known).To(ContainElement(flag), "notAValue names a flag the manager does not have")
	}

	sts := objects(helmTemplate(t, "sigwatch", "helm-flags", "--values", everythingOn)).statefulSet(t)
	args := manager(t, sts.Spec.Template).Args
	var extra struct {
		ExtraArgs []string `json:"extraArgs"`
	}
	readValues(t, everythingOn, &extra)
	g.Expect(extra.ExtraArgs).NotTo(BeEmpty())
	g.Expect(args[len(args)-len(extra.ExtraArgs):]).To(Equal(extra.ExtraArgs), "extraArgs come last")

	rendered, positional := flagNames(args[:len(args)-len(extra.ExtraArgs)])
	g.Expect(positional).To(Equal([]string{"manager"}))
	for _, flag := range known {
		if _, ok := notAValue[flag]; ok {
			g.Expect(rendered).NotTo(HaveKey(flag), "--%s is in notAValue, yet the chart sets it", flag)
			continue
		}
		g.Expect(rendered).To(HaveKey(flag), "no value of the chart sets --%s (the everything-on values set every value)", flag)
	}
	for flag := range rendered {
		g.Expect(known).To(ContainElement(flag), "the chart sets --%s, which sigwatch manager does not have", flag)
	}
}

// The manager accepts the flags the chart renders, with its defaults and with every value set: they
// parse and validate, and the manager gets as far as looking for a cluster.
func TestManagerAcceptsRenderedArgs(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"defaults":     nil,
		"everything":   {"--values", everythingOn},
		"unsharded":    {"--values", everythingOn, "--set", "shards.enabled=false"},
		"one-shard":    {"--set", "shards.enabled=true,shards.count=1"},
		"no-metrics":   {"--set", "metrics.enabled=false,leaderElection.enabled=false"},
		"plain-http":   {"--set", "metrics.secure=false,logging.devel=true,manager.cloudCredentials=none"},
		"big-integers": {"--set", "manager.maxConcurrentVerifications=1000000,manager.podWorkers=2000000"},
		"secret-ns":    {"--set", "secretAccess.mode=namespaces,secretAccess.namespaces={team-a,team-b}"},
		"secret-none":  {"--set", "secretAccess.mode=none,registryConfig.secretName=registry-creds"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			objs := objects(helmTemplate(t, "sigwatch", "helm-args", args...))
			c := objs.managerPod(t).Args
			g.Expect(c[0]).To(Equal("manager"))
			if name == "big-integers" {
				g.Expect(c).To(ContainElements("--max-concurrent-verifications=1000000", "--pod-workers=2000000"))
			}
			// POD_NAME as the StatefulSet gives it to its second pod: shard 1.
			out, err := runManager(t, "sigwatch-controller-manager-1", c[1:]...)
			g.Expect(err).To(HaveOccurred(), "without a cluster the manager must stop:\n%s", out)
			g.Expect(out).To(ContainSubstring("no Kubernetes configuration"),
				"the manager must pass flag parsing and validation and stop at looking for a cluster")
			g.Expect(out).NotTo(ContainSubstring("flag provided but not defined"))
			g.Expect(out).NotTo(ContainSubstring("invalid value"))
		})
	}
}

// notAValue's flags can be set through extraArgs.
func TestExtraArgsSetOtherFlags(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	dep := objects(helmTemplate(t, "sigwatch", "helm-args", "--set", "extraArgs[0]=--kubeconfig=/etc/k/config")).deployment(t)
	args := manager(t, dep.Spec.Template).Args
	g.Expect(args[len(args)-1]).To(Equal("--kubeconfig=/etc/k/config"))
}
