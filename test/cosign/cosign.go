// Package cosign lets tests sign and attest images with the real cosign CLI (v3.1.3, built into bin/cosign
// by `make cosign` from hack/tools/cosign), so that sigwatch is tested against what cosign really writes to
// a registry rather than against hand-made fixtures.
//
// Every invocation is hermetic: it runs with a timeout, a minimal environment (nothing is inherited from the
// machine but PATH) whose HOME, DOCKER_CONFIG, XDG_* and TUF_ROOT point into a fresh t.TempDir(), and
// HTTP(S)_PROXY set to a closed port, so any attempt to reach the network (TUF, Rekor, Fulcio, a TSA) fails
// at once while loopback registries (127.0.0.1, localhost, which Go never proxies) work. Signing always uses
// a key pair, no signing config and no transparency log, so nothing ever leaves the machine.
//
// See cosign_test.go for exactly which manifests, tags, media types and annotations cosign writes.
package cosign

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// Password encrypts the private keys made by GenerateKeyPair (cosign reads it from COSIGN_PASSWORD).
	Password = "sigwatch-test-password"

	// Timeout bounds every cosign invocation.
	Timeout = 2 * time.Minute

	// unreachableProxy is a closed port: a request that would leave the machine fails immediately.
	unreachableProxy = "http://127.0.0.1:1"
)

// Binary returns the path of the cosign binary: $COSIGN_BIN if set, else <repo root>/bin/cosign.
func Binary() (string, error) {
	if bin := os.Getenv("COSIGN_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("COSIGN_BIN=%s: %w", bin, err)
		}
		return bin, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("cannot locate the repository root (built with -trimpath?); set COSIGN_BIN to the cosign binary")
	}
	// file is <repo root>/test/cosign/cosign.go.
	bin := filepath.Join(filepath.Dir(file), "..", "..", "bin", "cosign")
	bin = filepath.Clean(bin)
	if _, err := os.Stat(bin); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("cosign binary %s not found: run `make cosign` in the repository root (or set COSIGN_BIN)", bin)
		}
		return "", err
	}
	return bin, nil
}

// KeyPair is a cosign key pair on disk. The private key is encrypted with Password.
type KeyPair struct {
	PrivateKeyPath string // cosign.key, "ENCRYPTED SIGSTORE PRIVATE KEY" PEM
	PublicKeyPath  string // cosign.pub
	PublicKeyPEM   []byte // contents of cosign.pub, a "PUBLIC KEY" PEM (ECDSA P-256)
}

// GenerateKeyPair runs `cosign generate-key-pair` in dir, which must not already hold cosign.key or cosign.pub.
func GenerateKeyPair(t testing.TB, dir string) KeyPair {
	t.Helper()
	kp := KeyPair{
		PrivateKeyPath: filepath.Join(dir, "cosign.key"),
		PublicKeyPath:  filepath.Join(dir, "cosign.pub"),
	}
	for _, f := range []string{kp.PrivateKeyPath, kp.PublicKeyPath} {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("cosign generate-key-pair: %s already exists (cosign would prompt to overwrite it)", f)
		}
	}
	Run(t, dir, nil, "generate-key-pair")
	pem, err := os.ReadFile(kp.PublicKeyPath)
	if err != nil {
		t.Fatalf("reading the public key written by cosign: %v", err)
	}
	kp.PublicKeyPEM = pem
	return kp
}

// SignOptions are the choices a test makes when signing or attesting.
type SignOptions struct {
	// NewBundleFormat selects the Sigstore bundle stored as an OCI referrer (true, cosign v3's default)
	// or the legacy sha256-<hex>.sig / .att tags (false). It is always passed explicitly.
	NewBundleFormat bool
	// SignatureRepository, if set, is where cosign stores the signature (COSIGN_REPOSITORY), e.g.
	// "127.0.0.1:5000/signatures"; by default it goes to the image's own repository.
	SignatureRepository string
	// Annotations are signed along with the image (cosign sign -a key=value): in the legacy format they are
	// the "optional" map of the simple-signing payload, in the bundle format the annotations of the in-toto
	// statement's subject. Not supported by Attest (cosign attest has no such flag).
	Annotations map[string]string
}

// Sign signs imageWithDigest (registry/repo@sha256:...) with key and uploads the signature. The registry
// may be plain HTTP. No transparency log entry is made.
func Sign(t testing.TB, key KeyPair, imageWithDigest string, opts SignOptions) {
	t.Helper()
	requireDigest(t, imageWithDigest)
	args := append([]string{"sign"}, commonFlags(key, opts)...)
	keys := make([]string, 0, len(opts.Annotations))
	for k := range opts.Annotations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		args = append(args, "-a", k+"="+opts.Annotations[k])
	}
	args = append(args, imageWithDigest)
	Run(t, t.TempDir(), signEnv(opts), args...)
}

// Attest signs an in-toto attestation of imageWithDigest with the given predicate and uploads it.
// predicateType is anything `cosign attest --type` accepts: a full URI (used verbatim as the statement's
// predicateType) or one of cosign's short names, e.g. slsaprovenance1 (https://slsa.dev/provenance/v1),
// slsaprovenance (https://slsa.dev/provenance/v0.2), spdxjson, cyclonedx, vuln, openvex, custom.
func Attest(t testing.TB, key KeyPair, imageWithDigest, predicateType string, predicateJSON []byte, opts SignOptions) {
	t.Helper()
	requireDigest(t, imageWithDigest)
	if len(opts.Annotations) > 0 {
		t.Fatal("cosign attest does not support annotations")
	}
	dir := t.TempDir()
	predicate := filepath.Join(dir, "predicate.json")
	if err := os.WriteFile(predicate, predicateJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"attest"}, commonFlags(key, opts)...)
	args = append(args, "--type", predicateType, "--predicate", predicate, imageWithDigest)
	Run(t, dir, signEnv(opts), args...)
}

// Run runs cosign with args in dir (a fresh temporary directory if empty) and the hermetic environment
// described in the package documentation plus extraEnv ("KEY=value"), and returns its combined output.
// The test fails, showing that output, if cosign fails or exceeds Timeout. COSIGN_PASSWORD is set to
// Password.
func Run(t testing.TB, dir string, extraEnv []string, args ...string) []byte {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(hermeticEnv(t), extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("cosign %s: no result after %s: %v\n%s", strings.Join(args, " "), Timeout, ctx.Err(), out)
	}
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("cosign %s\n%s", strings.Join(args, " "), out)
	return out
}

// commonFlags are the flags shared by sign and attest. cosign v3 defaults to a signing config fetched from
// the public-good TUF repository and refuses --tlog-upload=false with it, hence --use-signing-config=false.
func commonFlags(key KeyPair, opts SignOptions) []string {
	return []string{
		"--key", key.PrivateKeyPath,
		"--use-signing-config=false",
		"--tlog-upload=false",
		fmt.Sprintf("--new-bundle-format=%t", opts.NewBundleFormat),
		"--allow-http-registry",
		"--allow-insecure-registry",
		"--yes",
	}
}

func signEnv(opts SignOptions) []string {
	if opts.SignatureRepository == "" {
		return nil
	}
	return []string{"COSIGN_REPOSITORY=" + opts.SignatureRepository}
}

func requireDigest(t testing.TB, image string) {
	t.Helper()
	if !strings.Contains(image, "@sha256:") {
		t.Fatalf("%q: sign an image by digest (registry/repo@sha256:...)", image)
	}
}

// hermeticEnv is the whole environment of a cosign process: nothing from the machine but PATH.
func hermeticEnv(t testing.TB) []string {
	t.Helper()
	return append(HermeticEnv(t.TempDir()), "COSIGN_PASSWORD="+Password)
}

// HermeticEnv is the whole environment of a process (cosign, or a Sigstore service) run in dir: nothing
// from the machine but PATH, a HOME and TMPDIR of its own under dir, and proxies that refuse everything
// but loopback (which Go never proxies anyway), so nothing reaches the internet.
func HermeticEnv(dir string) []string {
	home := filepath.Join(dir, "home")
	tmp := filepath.Join(home, "tmp")
	_ = os.MkdirAll(tmp, 0o700) // a failure shows up as the process's own error
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + tmp,
		"DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"TUF_ROOT=" + filepath.Join(home, ".sigstore", "root"),
		"HTTPS_PROXY=" + unreachableProxy,
		"HTTP_PROXY=" + unreachableProxy,
		"NO_PROXY=127.0.0.1,localhost,::1",
	}
}
