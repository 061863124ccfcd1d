// Package docexample keeps the examples of a guide in docs/ and their files under docs/examples identical:
// the guide embeds each file after a marker line, <!-- example: FILE -->, as a ```yaml block.
package docexample

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/policy"
)

// embedMarker precedes each embedded example in the guide: <!-- example: FILE -->, then a ```yaml block.
var embedMarker = regexp.MustCompile(`^<!-- example: ([a-z0-9.-]+\.yaml) -->$`)

// Embedded returns the code block that follows each marker in the guide, by file name.
func Embedded(t testing.TB, guide string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		m := embedMarker.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if !sc.Scan() || sc.Text() != "```yaml" {
			t.Fatalf("%s:%d: the marker for %s must be followed by a ```yaml block", guide, line, m[1])
		}
		line++
		var block strings.Builder
		closed := false
		for sc.Scan() {
			line++
			if sc.Text() == "```" {
				closed = true
				break
			}
			block.WriteString(sc.Text() + "\n")
		}
		if !closed {
			t.Fatalf("%s: the block of %s is not closed", guide, m[1])
		}
		if _, dup := out[m[1]]; dup {
			t.Fatalf("%s: %s is embedded twice", guide, m[1])
		}
		out[m[1]] = block.String()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Files are the *.yaml files of the test's directory (the examples beside it).
func Files(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	return files
}

// ExpectEmbeddedVerbatim checks that every example file of the test's directory is in guide, as it is on
// disk, and that guide embeds no example that does not exist.
func ExpectEmbeddedVerbatim(t *testing.T, guide string) {
	g := NewWithT(t)
	blocks := Embedded(t, guide)
	files := Files(t)
	for _, f := range files {
		data, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		block, ok := blocks[f]
		g.Expect(ok).To(BeTrue(), "%s is not embedded in %s (<!-- example: %s --> before a ```yaml block)", f, guide, f)
		g.Expect(block).To(Equal(string(data)), "the block of %s in %s differs from the file", f, guide)
	}
	for f := range blocks {
		g.Expect(files).To(ContainElement(f), "%s embeds %s, which is not beside the test", guide, f)
	}
}

// ExpectOnePolicy checks that file holds one ImageSignaturePolicy that decodes strictly (as `sigwatch
// verify` reads it) and compiles.
func ExpectOnePolicy(g Gomega, file string) {
	data, err := os.ReadFile(file)
	g.Expect(err).NotTo(HaveOccurred())
	policies, err := policy.Decode(data)
	g.Expect(err).NotTo(HaveOccurred(), file)
	g.Expect(policies).To(HaveLen(1), file)
	_, err = policy.Compile(policies[0], policy.Inputs{})
	g.Expect(err).NotTo(HaveOccurred(), file)
}
