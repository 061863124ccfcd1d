package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/trust"
)

// The vectors live with the library they test.
const (
	bundleVectors = "../../internal/bundleverify/testdata/public-good-bundles"
	cosignVectors = "../../internal/bundleverify/testdata/cosign-new-bundle"
	emptyImage    = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
	provenance    = bundleVectors + "/sigstore-go/bundle-provenance.json"
	provenanceSHA = "sha512:76176ffa33808b54602c7c35de5c6e9a4deb96066dba6533f50ac234f4f1f4c6b3527515dc17c06fbe2860030f410eee69ea20079bd3a2c6f3dcf3b329b10751"
	provenanceSAN = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
	actionsIssuer = "https://token.actions.githubusercontent.com"
	prodRootFile  = bundleVectors + "/roots/prod.sigstore-python.trusted_root.json"
)

// offlineVerifyBundle never reaches TUF: the public-good root is the embedded snapshot.
var offlineVerifyBundle = verifyBundle{publicGood: trust.PublicGoodOptions{Offline: true}}

func runBundleCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := offlineVerifyBundle.run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// bundleVectorArgs turns a row of INDEX.tsv into command-line arguments.
func bundleVectorArgs(t *testing.T, row []string) []string {
	t.Helper()
	bundle, trustedRoot, key, san, issuer, artifact := row[1], row[2], row[3], row[4], row[5], row[6]
	args := []string{"--bundle", filepath.Join(bundleVectors, bundle), "--trusted-root", filepath.Join(bundleVectors, trustedRoot)}
	if key != "-" {
		args = append(args, "--key", filepath.Join(bundleVectors, key))
	} else {
		args = append(args, "--certificate-identity", san, "--certificate-oidc-issuer", issuer)
	}
	if !strings.HasPrefix(artifact, "sha256:") && !strings.HasPrefix(artifact, "sha512:") {
		artifact = filepath.Join(bundleVectors, artifact)
	}
	return append(args, artifact)
}

func TestVerifyBundlePublicVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(bundleVectors, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(data)), "\n")[1:]
	if len(rows) == 0 {
		t.Fatal("INDEX.tsv has no rows")
	}
	for _, line := range rows {
		row := strings.Split(line, "\t")
		if len(row) != 10 {
			t.Fatalf("INDEX.tsv row %q: %d columns, want 10", line, len(row))
		}
		t.Run(row[0], func(t *testing.T) {
			g := NewWithT(t)
			code, stdout, stderr := runBundleCLI(bundleVectorArgs(t, row)...)
			switch expected := row[8]; expected {
			case "pass":
				g.Expect(code).To(Equal(0), stderr)
				g.Expect(stdout).To(HavePrefix("Verified OK: signed by "))
				g.Expect(strings.Count(stdout, "\n")).To(Equal(1))
				g.Expect(stdout).To(ContainSubstring("transparency log index"))
				if row[3] == "-" {
					g.Expect(stdout).To(ContainSubstring(row[4] + " (issuer " + row[5] + ")"))
				}
			case "fail":
				g.Expect(code).To(Equal(1), stdout)
				g.Expect(stderr).To(ContainSubstring("Verification FAILED: bundle does not verify: "))
			default:
				t.Fatalf("expected column %q", expected)
			}
			g.Expect(stderr).To(ContainSubstring("Using trusted root: "))
		})
	}
}

// A public-good bundle checked against staging's trust root fails as a trust root mismatch, and the CLI
// says which flag fixes it; a tampered bundle does not get that hint.
func TestVerifyBundleTrustRootMismatchHint(t *testing.T) {
	g := NewWithT(t)
	row := []string{"", "sigstore-go/bundle-provenance.json", "roots/staging.sigstore-python.trusted_root.json", "-",
		"https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main", "https://token.actions.githubusercontent.com",
		"sha512:76176ffa33808b54602c7c35de5c6e9a4deb96066dba6533f50ac234f4f1f4c6b3527515dc17c06fbe2860030f410eee69ea20079bd3a2c6f3dcf3b329b10751"}
	code, _, stderr := runBundleCLI(bundleVectorArgs(t, row)...)
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("trust root mismatch: its transparency log"))
	g.Expect(stderr).To(ContainSubstring("hint: pass that Sigstore's trusted_root.json with --trusted-root FILE"))

	row[6] = "sha512:" + strings.Repeat("0", 128) // another artifact: not a mismatch, no hint
	code, _, stderr = runBundleCLI(bundleVectorArgs(t, row)...)
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).NotTo(ContainSubstring("hint: pass"))
}

func TestVerifyBundleCosignReferrerDigest(t *testing.T) {
	g := NewWithT(t)
	code, stdout, stderr := runBundleCLI("--bundle", cosignVectors+"/oci-attestation.sigstore.json",
		"--trusted-root", cosignVectors+"/trusted_root_pgi.json",
		"--certificate-identity", "cody@soyland.com", "--certificate-oidc-issuer", "https://github.com/login/oauth",
		emptyImage)
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(stdout).To(HavePrefix("Verified OK: signed by cody@soyland.com (issuer https://github.com/login/oauth) at "))
}

func TestVerifyBundleExitCodes(t *testing.T) {
	provenanceID := []string{"--certificate-identity", provenanceSAN, "--certificate-oidc-issuer", actionsIssuer}
	for name, tc := range map[string]struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		"verified with the embedded public-good root": {
			args:   append([]string{"--bundle", provenance, provenanceSHA}, provenanceID...),
			code:   0,
			stdout: "Verified OK: signed by " + provenanceSAN + " (issuer " + actionsIssuer + ") at 2023-04-18T17:45:12Z, transparency log index 18300934\n",
			stderr: "Using trusted root: " + trust.SourceEmbedded,
		},
		"verified by anchored regexps, artifact first": {
			args: []string{provenanceSHA, "--bundle", provenance,
				"--certificate-identity-regexp", `https://github\.com/sigstore/sigstore-js/.*`,
				"--certificate-oidc-issuer-regexp", `https://token\.actions\.githubusercontent\.com`},
			code: 0,
		},
		"verified with a key": {
			args: []string{"--bundle", bundleVectors + "/sigstore-go/bundle-publish.json", "--key", bundleVectors + "/sigstore-go/publish_key.pub",
				"--trusted-root", prodRootFile, provenanceSHA},
			code:   0,
			stdout: "Verified OK: signed by key ",
		},
		"unanchored regexp match": {
			args: []string{"--bundle", provenance, provenanceSHA, "--certificate-oidc-issuer", actionsIssuer,
				"--certificate-identity-regexp", "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/mai"},
			code:   1,
			stderr: "Verification FAILED: bundle does not verify: failed to verify certificate identity",
		},
		"wrong SAN": {
			args:   []string{"--bundle", provenance, provenanceSHA, "--certificate-identity", "someone@example.com", "--certificate-oidc-issuer", actionsIssuer},
			code:   1,
			stderr: `expected SAN value "someone@example.com"`,
		},
		"wrong digest": {
			args:   append([]string{"--bundle", provenance, "sha512:" + strings.Repeat("0", 128)}, provenanceID...),
			code:   1,
			stderr: "Verification FAILED: ",
		},
		"staging root for a production bundle": {
			args: append([]string{"--bundle", provenance, provenanceSHA,
				"--trusted-root", bundleVectors + "/roots/staging.sigstore-python.trusted_root.json"}, provenanceID...),
			code:   1,
			stderr: "Verification FAILED: ",
		},
		"key and identity": {
			args:   append([]string{"--bundle", provenance, "--key", bundleVectors + "/sigstore-go/publish_key.pub", provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "--key and --certificate-identity are mutually exclusive",
		},
		"identity and identity regexp": {
			args:   append([]string{"--bundle", provenance, "--certificate-identity-regexp", ".*", provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "--certificate-identity and --certificate-identity-regexp are mutually exclusive",
		},
		"issuer and issuer regexp": {
			args:   append([]string{"--bundle", provenance, "--certificate-oidc-issuer-regexp", ".*", provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "--certificate-oidc-issuer and --certificate-oidc-issuer-regexp are mutually exclusive",
		},
		"no issuer": {
			args:   []string{"--bundle", provenance, "--certificate-identity", provenanceSAN, provenanceSHA},
			code:   2,
			stderr: "one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp is required",
		},
		"no signer": {
			args:   []string{"--bundle", provenance, provenanceSHA},
			code:   2,
			stderr: "one of --certificate-identity and --certificate-identity-regexp is required (or --key)",
		},
		"no bundle": {
			args:   append([]string{provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "--bundle is required",
		},
		"no artifact": {
			args:   append([]string{"--bundle", provenance}, provenanceID...),
			code:   2,
			stderr: "want one ARTIFACT_FILE or sha256:HEX argument, got 0",
		},
		"two artifacts": {
			args:   append([]string{"--bundle", provenance, provenanceSHA, provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "got 2",
		},
		"empty flag value": {
			args:   append([]string{"--bundle", provenance, "--trusted-root", "", provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "--trusted-root needs a non-empty value",
		},
		"unreadable bundle": {
			args:   append([]string{"--bundle", "testdata/does-not-exist.json", provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "--bundle: open testdata/does-not-exist.json",
		},
		"unreadable artifact": {
			args:   append([]string{"--bundle", provenance, "testdata/no-such-artifact"}, provenanceID...),
			code:   2,
			stderr: "reading the artifact: open testdata/no-such-artifact",
		},
		"unparsable trusted root": {
			args:   append([]string{"--bundle", provenance, "--trusted-root", provenance, provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "--trusted-root: trusted root unavailable",
		},
		"malformed digest": {
			args:   append([]string{"--bundle", provenance, "sha256:abc"}, provenanceID...),
			code:   2,
			stderr: `artifact digest "sha256:abc": want 64 hex characters`,
		},
		"bad regexp": {
			args:   []string{"--bundle", provenance, provenanceSHA, "--certificate-identity-regexp", "(", "--certificate-oidc-issuer", actionsIssuer},
			code:   2,
			stderr: `CertificateIdentityRegexp "("`,
		},
		"unknown flag": {
			args:   append([]string{"--bundle", provenance, "--insecure-ignore-tlog", provenanceSHA}, provenanceID...),
			code:   2,
			stderr: "flag provided but not defined: -insecure-ignore-tlog",
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			code, stdout, stderr := runBundleCLI(tc.args...)
			g.Expect(code).To(Equal(tc.code), "stdout: %s\nstderr: %s", stdout, stderr)
			g.Expect(stdout).To(HavePrefix(tc.stdout))
			g.Expect(stderr).To(ContainSubstring(tc.stderr))
			if tc.code != 0 {
				g.Expect(stdout).To(BeEmpty())
			}
		})
	}
}

func TestVerifyBundleIsRegistered(t *testing.T) {
	g := NewWithT(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"verify-bundle", "--bundle", provenance, "--trusted-root", prodRootFile,
		"--certificate-identity", provenanceSAN, "--certificate-oidc-issuer", actionsIssuer, provenanceSHA}, &stdout, &stderr)
	g.Expect(code).To(Equal(0), stderr.String())
	g.Expect(stdout.String()).To(HavePrefix("Verified OK: "))

	stdout.Reset()
	g.Expect(run([]string{"help"}, &stdout, &stderr)).To(Equal(0))
	g.Expect(stdout.String()).To(ContainSubstring("verify-bundle"))
}

func TestVerifyBundleHelp(t *testing.T) {
	g := NewWithT(t)
	code, _, stderr := runBundleCLI("--help")
	g.Expect(code).To(Equal(0))
	g.Expect(stderr).To(ContainSubstring("Usage: sigwatch verify-bundle"))
	g.Expect(stderr).To(ContainSubstring("-certificate-identity-regexp"))
}
