// Package ci holds the policies per CI of docs/policies.md. These tests keep the guide and the files
// identical and the policies valid; test/e2e/ci_test.go verifies real certificates of each CI's shape with
// them.
package ci

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/test/docexample"
)

const guide = "../../policies.md"

// TestGuideEmbedsEveryExampleVerbatim: every policy is in the guide, as it is on disk, and the guide
// embeds no example that does not exist.
func TestGuideEmbedsEveryExampleVerbatim(t *testing.T) { docexample.ExpectEmbeddedVerbatim(t, guide) }

// TestPoliciesCompile: each policy decodes strictly (as `sigwatch verify` reads it) and compiles.
func TestPoliciesCompile(t *testing.T) {
	g := NewWithT(t)
	for _, f := range docexample.Files(t) {
		docexample.ExpectOnePolicy(g, f)
	}
}
