//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/test/cosign"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

func writePolicy(t *testing.T, registryHost string, pem []byte, mode string) string {
	t.Helper()
	doc := `# kept in Git
apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata:
  name: team-key
spec:
  images: ["` + registryHost + `/team/**"]
  authorities:
    - name: team
      key:
        publicKey: |
` + indentLines(string(pem), 10) + `
      transparencyLog:
        mode: ` + mode + `
---
apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata:
  name: other-images
spec:
  images: ["ghcr.io/elsewhere/**"]
  authorities:
    - name: ci
      keyless:
        identities:
          - issuer: https://token.actions.githubusercontent.com
            subject: https://github.com/elsewhere/app/.github/workflows/release.yml@refs/heads/main
`
	path := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func indentLines(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pad + strings.Join(lines, "\n"+pad)
}

func TestVerifyCommand(t *testing.T) {
	if _, err := cosign.Binary(); err != nil {
		t.Fatal(err)
	}
	reg := testregistry.Start(t, true)
	key := cosign.GenerateKeyPair(t, t.TempDir())
	signed := reg.PushRandomImage(t, "team/app")
	cosign.Sign(t, key, signed.String(), cosign.SignOptions{NewBundleFormat: true})
	unsigned := reg.PushRandomImage(t, "team/unsigned")
	policies := writePolicy(t, reg.Host, key.PublicKeyPEM, "Disabled")
	strict := writePolicy(t, reg.Host, key.PublicKeyPEM, "Required")
	auditPolicy := filepath.Join(t.TempDir(), "audit.yaml")
	data, err := os.ReadFile(policies)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auditPolicy, []byte(strings.Replace(string(data), "  authorities:\n    - name: team\n", "  mode: Audit\n  authorities:\n    - name: team\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	insecure := []string{"--insecure-registry", reg.Host}
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		jsonWant string
		// notStdout must not be printed
		notStdout []string
	}{
		{"verified", append([]string{"--policy", policies, "--offline", signed.String()}, insecure...), 0,
			[]string{"VERIFIED", "team-key", "Verified", "team", "bundle"}, nil, "", nil},
		{"verified json", append([]string{"--policy", policies, "--offline", "-o", "json", signed.String()}, insecure...), 0,
			nil, nil, "Verified", nil},
		{"insecure registry by wildcard", []string{"--policy", policies, "--insecure-registry", "127.0.0.*:*", "--offline", signed.String()}, 0,
			[]string{"VERIFIED"}, nil, "", nil},
		{"deprecated --allow-insecure-registry still works", []string{"--policy", policies, "--allow-insecure-registry", "--offline", signed.String()}, 0,
			[]string{"VERIFIED"}, []string{"--allow-insecure-registry is deprecated; use --insecure-registry " + reg.Host + "\n"}, "", nil},
		{"unsigned", append([]string{"--policy", policies, "--offline", unsigned.String()}, insecure...), 1,
			[]string{"NOT VERIFIED (SignatureMissing)"}, nil, "", nil},
		{"unsigned under an Audit policy is reported, not failed", append([]string{"--policy", auditPolicy, "--offline", unsigned.String()}, insecure...), 0,
			[]string{"NOT VERIFIED (SignatureMissing)", "Only policies in Audit mode did not verify it"}, nil, "", nil},
		{"transparency log required", append([]string{"--policy", strict, "--offline", signed.String()}, insecure...), 1,
			[]string{"NOT VERIFIED (TransparencyLogMissing)"}, nil, "", nil},
		{"plain HTTP not allowed", []string{"--policy", policies, "--offline", "--registry-timeout", "2s", signed.String()}, 2,
			[]string{"COULD NOT VERIFY (RegistryUnavailable)"}, nil, "", nil},
		{"plain HTTP allowed for another host", []string{"--policy", policies, "--insecure-registry", "registry.example.com", "--offline", "--registry-timeout", "2s", signed.String()}, 2,
			[]string{"COULD NOT VERIFY (RegistryUnavailable)"}, nil, "", nil},
		{"no policy covers the image", []string{"--policy", policies, "--offline", "ghcr.io/nobody/app@" + signed.DigestStr()}, 2,
			[]string{"NoMatchingPolicy", "None of the 2 policies in " + policies + " covers ghcr.io/nobody/app; their spec.images: " + reg.Host + "/team/**, ghcr.io/elsewhere/**\n"},
			nil, "", []string{"POLICY", "RESULT"}},
		{"a tag is refused", []string{"--policy", policies, reg.Repo("team/app") + ":latest"}, 2,
			nil, []string{"never tags", "crane digest " + reg.Repo("team/app") + ":latest"}, "", nil},
		{"no policy flag", []string{signed.String()}, 2, nil, []string{"--policy is required"}, "", nil},
		{"policy file missing", []string{"--policy", "/nonexistent.yaml", signed.String()}, 2, nil, []string{"/nonexistent.yaml"}, "", nil},
		{"bad output", []string{"--policy", policies, "-o", "yaml", signed.String()}, 2, nil, []string{"-o must be text or json"}, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"verify"}, tc.args...), &stdout, &stderr)
			t.Logf("exit %d\n%s%s", code, stdout.String(), stderr.String())
			g.Expect(code).To(Equal(tc.code), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			for _, s := range tc.stdout {
				g.Expect(stdout.String()).To(ContainSubstring(s))
			}
			for _, s := range tc.stderr {
				g.Expect(stderr.String()).To(ContainSubstring(s))
			}
			for _, s := range tc.notStdout {
				g.Expect(stdout.String()).NotTo(ContainSubstring(s), "no empty table")
			}
			if !slices.Contains(tc.args, "--allow-insecure-registry") {
				g.Expect(stderr.String()).NotTo(ContainSubstring("deprecated"))
			}
			if tc.jsonWant != "" {
				var out struct {
					Verdict  string `json:"verdict"`
					Policies []struct {
						Policy, Result string
					} `json:"policies"`
				}
				g.Expect(json.Unmarshal(stdout.Bytes(), &out)).To(Succeed())
				g.Expect(out.Verdict).To(Equal(tc.jsonWant))
				g.Expect(out.Policies).To(HaveLen(1), "only the policy that covers the image is applied")
			}
		})
	}
}
