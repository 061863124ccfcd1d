package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/version"
)

func runCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// singleDashLongFlag is a long flag written with one dash ("-policy"), as Go's flag package prints them.
var singleDashLongFlag = regexp.MustCompile(`(^|[\s\[(|])-[a-z][a-z0-9]+(-[a-z0-9]+)*\b`)

// TestHelpShowsDoubleDashFlags: every subcommand's help writes its flags as the docs do: --flag, and -o
// for one-letter flags.
func TestHelpShowsDoubleDashFlags(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"manager", []string{"--insecure-registry PATTERN", "--metrics-bind-address STRING", "--leader-elect\n", "--zap-log-level VALUE"}},
		{"verify", []string{"--policy FILE", "--insecure-registry PATTERN", "--trusted-root FILE", "--timeout DURATION", "-o FORMAT", "(default 2m0s)"}},
		{"verify-bundle", []string{"--bundle FILE", "--certificate-identity-regexp RE", "--key FILE", "--offline\n"}},
		{"version", []string{"-o FORMAT"}},
		{"report", []string{"--revocation FILE", "--signer-regexp RE", "--signed-after TIME", "-o FORMAT", "--kubeconfig FILE"}},
	} {
		for _, help := range []string{"--help", "-h", "-help"} {
			t.Run(tc.cmd+" "+help, func(t *testing.T) {
				g := NewWithT(t)
				code, stdout, stderr := runCLI(tc.cmd, help)
				g.Expect(code).To(Equal(0))
				out := stdout + stderr
				g.Expect(out).To(ContainSubstring("Usage: sigwatch " + tc.cmd))
				for _, w := range tc.want {
					g.Expect(out).To(ContainSubstring(w))
				}
				g.Expect(singleDashLongFlag.FindAllString(out, -1)).To(BeEmpty(), out)
				g.Expect(out).NotTo(ContainSubstring("allow-insecure-registry"), "deprecated flags are not advertised")
				for _, line := range strings.Split(out, "\n") {
					g.Expect(len(line)).To(BeNumerically("<=", 110), "wrapped: %q", line)
				}
			})
		}
	}
}

// The regexp finds what Go's flag package writes, and not what the docs write.
func TestSingleDashLongFlagPattern(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(&buf)
	fs.String("trusted-root", "", "a `FILE`")
	fs.PrintDefaults()
	g.Expect(singleDashLongFlag.FindAllString(buf.String(), -1)).NotTo(BeEmpty(), buf.String())
	g.Expect(singleDashLongFlag.FindAllString("  --trusted-root FILE\n  -o FORMAT\n  IMAGE@sha256:HEX, a-b, 2m0s", -1)).To(BeEmpty())
}

// Both spellings of a flag are accepted.
func TestSingleAndDoubleDashAreAccepted(t *testing.T) {
	for _, args := range [][]string{{"-o", "json"}, {"--o", "json"}, {"-o=json"}, {"--o=json"}} {
		code, stdout, stderr := runCLI(append([]string{"version"}, args...)...)
		NewWithT(t).Expect(code).To(Equal(0), stderr)
		NewWithT(t).Expect(stdout).To(HavePrefix("{"), "%v", args)
	}
	code, _, stderr := runCLI("verify", "-policy", "/nonexistent.yaml", "--offline", "r@sha256:"+strings.Repeat("a", 64))
	NewWithT(t).Expect(code).To(Equal(2))
	NewWithT(t).Expect(stderr).To(ContainSubstring("/nonexistent.yaml"), "-policy was taken as --policy")
}

func TestTopLevelHelpAndVersion(t *testing.T) {
	g := NewWithT(t)
	for _, args := range [][]string{nil, {"help"}, {"-h"}, {"--help"}} {
		code, stdout, _ := runCLI(args...)
		g.Expect(code).To(Equal(0))
		g.Expect(stdout).To(ContainSubstring("verify-bundle"))
		g.Expect(stdout).To(ContainSubstring("--version"))
	}
	want := version.Get()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}, {"-version"}} {
		code, stdout, stderr := runCLI(args...)
		g.Expect(code).To(Equal(0), stderr)
		g.Expect(stdout).To(HavePrefix("sigwatch "+want.Version+"\n"), "%v", args)
		g.Expect(stdout).To(ContainSubstring("go:         " + runtime.Version()))
	}
	code, _, stderr := runCLI("version", "-o", "yaml")
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(ContainSubstring("-o must be text or json"))
	code, _, stderr = runCLI("nonsense")
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(ContainSubstring(`unknown command "nonsense"`))
}

func TestPrintVersion(t *testing.T) {
	var buf bytes.Buffer
	printVersion(&buf, version.Info{Version: "v0.3.0", Revision: "abc123", BuildDate: "2026-11-20T09:14:02Z", GoVersion: "go1.26.0"})
	NewWithT(t).Expect(buf.String()).To(Equal(`sigwatch v0.3.0
  revision:   abc123
  build date: 2026-11-20T09:14:02Z
  go:         go1.26.0
`))
}

func TestVersionJSON(t *testing.T) {
	g := NewWithT(t)
	code, stdout, _ := runCLI("version", "-o", "json")
	g.Expect(code).To(Equal(0))
	var got version.Info
	g.Expect(json.Unmarshal([]byte(stdout), &got)).To(Succeed())
	g.Expect(got).To(Equal(version.Get()))
}

// TestMakeBuildStampsTheVersion: make build sets the version, revision and build date that `sigwatch
// version` prints (its -ldflags -X of internal/version).
func TestMakeBuildStampsTheVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	g := NewWithT(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	build := exec.Command("make", "--no-print-directory", "build", "LOCALBIN="+dir,
		"VERSION=v9.8.7-test", "REVISION=feedface", "BUILD_DATE=2026-03-04T05:06:07Z")
	build.Dir = filepath.Join("..", "..")
	build.Env = withoutMakeFlags()
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	bin := filepath.Join(dir, "sigwatch")
	out, err = exec.Command(bin, "version").Output()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).To(Equal("sigwatch v9.8.7-test\n  revision:   feedface\n  build date: 2026-03-04T05:06:07Z\n  go:         " + runtime.Version() + "\n"))
	out, err = exec.Command(bin, "--version", "-o", "json").Output()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).To(ContainSubstring(`"version": "v9.8.7-test"`))

	// Without them, make build takes them from git and the clock.
	build = exec.Command("make", "--no-print-directory", "-n", "build")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(withoutMakeFlags(), "SOURCE_DATE_EPOCH=1700000000")
	out, err = build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(ContainSubstring("internal/version.buildDate=2023-11-14T22:13:20Z"), "SOURCE_DATE_EPOCH is the build date")
	g.Expect(string(out)).To(MatchRegexp(`internal/version.revision=([0-9a-f]{40}|unknown) `))
}

func withoutMakeFlags() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VERSION", "REVISION", "BUILD_DATE", "SOURCE_DATE_EPOCH":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// TestDigestHint: a reference without a digest is refused with how to get its digest.
func TestDigestHint(t *testing.T) {
	for _, ref := range []string{"ghcr.io/yourorg/app:v1", "ghcr.io/yourorg/app", "ghcr.io/yourorg/app:v1@sha256:abc"} {
		t.Run(ref, func(t *testing.T) {
			g := NewWithT(t)
			code, stdout, stderr := runCLI("verify", "--policy", "p.yaml", ref)
			g.Expect(code).To(Equal(2))
			g.Expect(stdout).To(BeEmpty())
			tagged, _, _ := strings.Cut(ref, "@")
			g.Expect(stderr).To(ContainSubstring("crane digest " + tagged + "\n"))
			g.Expect(stderr).To(ContainSubstring("docker buildx imagetools inspect " + tagged + " "))
			g.Expect(stderr).To(ContainSubstring("${{ steps.build.outputs.digest }}"))
		})
	}
}

// TestPolicyFileErrorsNameTheLine: verify reports a typo in a policy file at its line, as YAML.
func TestPolicyFileErrorsNameTheLine(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	g.Expect(os.WriteFile(path, []byte(`apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata:
  name: app
spec:
  images: ["ghcr.io/yourorg/**"]
  authorities:
    - name: ci
      keyless:
        identities:
          - issuer: https://token.actions.githubusercontent.com
            subjectt: https://github.com/yourorg/app/.github/workflows/release.yml@refs/heads/main
`), 0o600)).To(Succeed())
	code, _, stderr := runCLI("verify", "--policy", path, "--offline", "ghcr.io/yourorg/app@sha256:"+strings.Repeat("a", 64))
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(Equal("sigwatch verify: " + path + ":12: spec.authorities[0].keyless.identities[0].subjectt: unknown field\n"))

	big := filepath.Join(t.TempDir(), "big.yaml")
	g.Expect(os.WriteFile(big, bytes.Repeat([]byte("# comment\n"), maxPolicyFileBytes/10+1), 0o600)).To(Succeed())
	code, _, stderr = runCLI("verify", "--policy", big, "--offline", "ghcr.io/yourorg/app@sha256:"+strings.Repeat("a", 64))
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(ContainSubstring("larger than 4 MiB"))
}

// A policy that decodes but does not compile is named with the line of the field at fault.
func TestCompileErrorsNameTheLine(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "broken.yaml")
	g.Expect(os.WriteFile(path, []byte(`apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata:
  name: app-release
spec:
  images: ["ghcr.io/yourorg/**"]
  authorities:
    - name: ci
      keyless:
        identities:
          - issuer: https://token.actions.githubusercontent.com
            subjectRegExp: "(release"
`), 0o600)).To(Succeed())
	code, _, stderr := runCLI("verify", "--policy", path, "--offline", "ghcr.io/yourorg/app@sha256:"+strings.Repeat("a", 64))
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(HavePrefix("sigwatch verify: " + path + ":12: policy app-release: spec.authorities[0].keyless.identities[0].subjectRegExp: "))
}
