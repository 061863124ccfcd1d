// Package migration holds the examples of docs/migration.md: each source policy (a policy-controller
// ClusterImagePolicy or a Kyverno ClusterPolicy, *.source.yaml) and its translation (*.sigwatch.yaml). These
// tests keep the guide and the files identical and the translations valid; test/e2e/migration_test.go
// verifies signed images with the translations.
package migration

import (
	"os"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/sigwatch/sigwatch/test/docexample"
)

const guide = "../../migration.md"

// TestGuideEmbedsEveryExampleVerbatim: every example file is in the guide, as it is on disk, and the guide
// embeds no example that does not exist.
func TestGuideEmbedsEveryExampleVerbatim(t *testing.T) { docexample.ExpectEmbeddedVerbatim(t, guide) }

// TestTranslationsCompile: each translation decodes strictly (as `sigwatch verify` reads it) and compiles,
// and has a source, and each source a translation.
func TestTranslationsCompile(t *testing.T) {
	g := NewWithT(t)
	for _, f := range docexample.Files(t) {
		switch {
		case strings.HasSuffix(f, ".sigwatch.yaml"):
			g.Expect(strings.TrimSuffix(f, ".sigwatch.yaml")+".source.yaml").To(BeAnExistingFile(), "%s has no source", f)
			docexample.ExpectOnePolicy(g, f)
		case strings.HasSuffix(f, ".source.yaml"):
			g.Expect(strings.TrimSuffix(f, ".source.yaml")+".sigwatch.yaml").To(BeAnExistingFile(), "%s has no translation", f)
		default:
			t.Errorf("%s: name it NAME.source.yaml or NAME.sigwatch.yaml", f)
		}
	}
}

// TestSourcesAreTheirKinds: each source is one object of the kind and API version its tool reads, with the
// fields every such object has. (Their CRD schemas are not vendored here; see docs/migration.md.)
func TestSourcesAreTheirKinds(t *testing.T) {
	g := NewWithT(t)
	want := map[string]string{
		"policy-controller-": "policy.sigstore.dev/v1beta1 ClusterImagePolicy",
		"kyverno-":           "kyverno.io/v1 ClusterPolicy",
	}
	for _, f := range docexample.Files(t) {
		if !strings.HasSuffix(f, ".source.yaml") {
			continue
		}
		data, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		var obj struct {
			APIVersion string         `json:"apiVersion"`
			Kind       string         `json:"kind"`
			Metadata   map[string]any `json:"metadata"`
			Spec       map[string]any `json:"spec"`
		}
		g.Expect(yaml.UnmarshalStrict(data, &obj)).To(Succeed(), f)
		kind := ""
		for prefix, k := range want {
			if strings.HasPrefix(f, prefix) {
				kind = k
			}
		}
		g.Expect(kind).NotTo(BeEmpty(), "%s: which tool is it for?", f)
		g.Expect(obj.APIVersion+" "+obj.Kind).To(Equal(kind), f)
		g.Expect(obj.Metadata).To(HaveKey("name"), f)
		if strings.HasPrefix(f, "kyverno-") {
			g.Expect(obj.Spec).To(HaveKey("rules"), f)
		} else {
			g.Expect(obj.Spec).To(HaveKey("images"), f)
			g.Expect(obj.Spec).To(HaveKey("authorities"), f)
		}
	}
}
