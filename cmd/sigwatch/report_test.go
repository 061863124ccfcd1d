package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// TestReportRefusesBadFlags: every wrong flag is refused, naming it, before the cluster is read.
func TestReportRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := write("policy.yaml", "apiVersion: sigwatch.dev/v1alpha1\nkind: ImageSignaturePolicy\nmetadata: {name: p}\nspec: {images: [x]}\n")
	empty := write("empty.yaml", "apiVersion: sigwatch.dev/v1alpha1\nkind: SignatureRevocation\nmetadata: {name: r}\nspec: {reason: r}\n")
	typo := write("typo.yaml", "apiVersion: sigwatch.dev/v1alpha1\nkind: SignatureRevocation\nmetadata: {name: r}\nspec: {reason: r, signature: []}\n")
	big := write("big.yaml", string(make([]byte, maxRevocationFileBytes+1)))
	two := write("two.yaml", "---\napiVersion: sigwatch.dev/v1alpha1\nkind: SignatureRevocation\nmetadata: {name: a}\nspec: {reason: r, signatures: [{digests: [sha256:"+strings.Repeat("a", 64)+"]}]}\n---\napiVersion: sigwatch.dev/v1alpha1\nkind: SignatureRevocation\nmetadata: {name: b}\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--signed-after", "yesterday"}, `--signed-after: "yesterday" is not an RFC 3339 time`},
		{[]string{"--signed-after", "2026-12-02T00:00:00Z", "--signed-before", "2026-12-01T00:00:00Z"}, "--signed-after must be before --signed-before"},
		{[]string{"--signer", "a", "--signer-regexp", "b"}, "--signer and --signer-regexp: give one"},
		{[]string{"--digest", "sha256:abc"}, `--digest: "sha256:abc" is not sha256:`},
		{[]string{"--revocation", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"--revocation", policy}, "not a SignatureRevocation"},
		{[]string{"--revocation", empty}, "spec.signatures is empty"},
		{[]string{"--revocation", typo}, `unknown field "signature"`},
		{[]string{"--revocation", big}, "larger than"},
		{[]string{"--revocation", two}, "one SignatureRevocation per file"},
		{[]string{"-o", "yaml"}, "-o must be text, json or markdown"},
		{[]string{"extra"}, "no arguments expected"},
	} {
		t.Run(c.want, func(t *testing.T) {
			g := NewWithT(t)
			code, _, stderr := runCLI(append([]string{"report", "--kubeconfig", filepath.Join(dir, "no-kubeconfig")}, c.args...)...)
			g.Expect(code).To(Equal(2))
			g.Expect(stderr).To(ContainSubstring(c.want))
		})
	}
}

func TestYAMLDocuments(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"kind: A\n", 1},
		{"---\nkind: A\n", 1},
		{"# INC-4711\n---\nkind: A\n", 1},
		{"kind: A\n---\n", 1},
		{"kind: A\n---\n# nothing\n\n", 1},
		{"kind: A\n---\nkind: B\n", 2},
		{"a: |\n  ---\n", 1},
	} {
		if got := yamlDocuments([]byte(c.in)); got != c.want {
			t.Errorf("yamlDocuments(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
