package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestDecodeSamples(t *testing.T) {
	g := NewWithT(t)
	files, err := filepath.Glob("../../config/samples/sigwatch_v1alpha1_imagesignaturepolicy_*.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(files).To(HaveLen(4))
	var all []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		all = append(append(all, data...), []byte("\n---\n")...)
	}
	ps, err := Decode(all)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ps).To(HaveLen(4))
	for _, p := range ps {
		_, err := Compile(p, Inputs{})
		g.Expect(err).NotTo(HaveOccurred(), "sample %s compiles", p.Name)
	}
}

// policyFile is a valid policy; its line 12 is the subject of the first identity.
const policyFile = `# kept in Git
apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata:
  name: app-release
spec:
  images: ["ghcr.io/yourorg/**"]
  authorities:
    - name: release-workflow
      keyless:
        identities:
          - subject: https://github.com/yourorg/app/.github/workflows/release.yml@refs/heads/main
            issuer: https://token.actions.githubusercontent.com
`

const secondPolicy = `apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata:
  name: other
spec:
  images: ["ghcr.io/other/**"]
  authorities:
    - name: team
      key:
        publicKey: KEY
`

// TestDecodeErrors: every problem names the file, the line, the document of a file of several, and
// the field; none calls the YAML "JSON".
func TestDecodeErrors(t *testing.T) {
	cases := map[string]struct {
		file string
		want []string // the errors, one a line
	}{
		"unknown field": {
			strings.Replace(policyFile, "- subject:", "- subjectt:", 1),
			[]string{"policy.yaml:12: spec.authorities[0].keyless.identities[0].subjectt: unknown field"}},
		"two unknown fields": {
			strings.Replace(strings.Replace(policyFile, "- subject:", "- subjectt:", 1), "issuer:", "issuerr:", 1),
			[]string{
				"policy.yaml:13: spec.authorities[0].keyless.identities[0].issuerr: unknown field",
				"policy.yaml:12: spec.authorities[0].keyless.identities[0].subjectt: unknown field",
			}},
		"unknown field in flow style": {`apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata: {name: p}
spec: {images: [a], authorities: [],
  imagez: []}`, []string{"policy.yaml:5: spec.imagez: unknown field"}},
		"unknown top-level field": {policyFile + "status: {}\nstatuz: 1\n",
			[]string{"policy.yaml:15: statuz: unknown field"}},
		"field with the wrong case": {strings.Replace(policyFile, "  images:", "  Images:", 1),
			[]string{"policy.yaml:7: spec.Images: unknown field"}},
		"unknown field in the second document": {
			policyFile + "---\n" + strings.Replace(secondPolicy, "publicKey:", "publickey:", 1),
			[]string{"policy.yaml:24: document 2: spec.authorities[0].key.publickey: unknown field"}},
		"a string where a list is": {strings.Replace(policyFile, `images: ["ghcr.io/yourorg/**"]`, "images: ghcr.io/yourorg/**", 1),
			[]string{"policy.yaml:7: spec.images: must be a list, not a string"}},
		"a string where a list is, deeper": {policyFile + "---\n" + strings.Replace(policyFile,
			"        identities:\n          - subject: https://github.com/yourorg/app/.github/workflows/release.yml@refs/heads/main\n            issuer: https://token.actions.githubusercontent.com\n",
			"        identities: https://github.com/yourorg/app\n", 1),
			[]string{"policy.yaml:25: document 2: spec.authorities[0].keyless.identities: must be a list, not a string"}},
		"a list where a string is, in the second element": {strings.Replace(policyFile,
			"    - name: release-workflow\n", "    - name: first\n      key: {publicKey: K}\n    - name: [release-workflow]\n", 1),
			[]string{"policy.yaml:11: spec.authorities[1].name: must be a string, not a list"}},
		"a number where a mapping is": {strings.Replace(policyFile, "      keyless:\n", "      key: 3\n      keyless:\n", 1),
			[]string{"policy.yaml:10: spec.authorities[0].key: must be a mapping (key: value), not a number"}},
		"a label that is a number": {strings.Replace(policyFile, "  name: app-release\n", "  name: app-release\n  labels:\n    tier: 1\n", 1),
			[]string{"policy.yaml:7: metadata.labels.tier: must be a string, not a number"}},
		"a list where the spec is": {"apiVersion: sigwatch.dev/v1alpha1\nkind: ImageSignaturePolicy\nmetadata: {name: p}\nspec:\n  - images: [a]\n",
			[]string{"policy.yaml:5: spec: must be a mapping (key: value), not a list"}},
		"bad indentation": {strings.Replace(policyFile, "            issuer:", "           issuer:", 1),
			[]string{"policy.yaml:12: YAML: did not find expected '-' indicator"}},
		"bad indentation in the second document": {secondPolicy + "---\n" + strings.Replace(policyFile, "  authorities:", " authorities:", 1),
			[]string{"policy.yaml:18: document 2: YAML: did not find expected key"}},
		"a tab": {strings.Replace(policyFile, "  images:", "\timages:", 1),
			[]string{"policy.yaml:7: YAML: found character that cannot start any token"}},
		"duplicate key": {strings.Replace(policyFile, "      keyless:\n", "      name: again\n      keyless:\n", 1),
			[]string{`policy.yaml:10: YAML: key "name" already set in map`}},
		"content after ---": {policyFile + "--- {}\n", []string{`policy.yaml:14: nothing but a comment may follow "---" on its line`}},
		"another kind": {policyFile + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\ndata: {a: b}\n",
			[]string{"policy.yaml:16: document 2: is v1 ConfigMap, want sigwatch.dev/v1alpha1 ImageSignaturePolicy"}},
		"another version": {strings.Replace(policyFile, "sigwatch.dev/v1alpha1", "sigwatch.dev/v1", 1),
			[]string{"policy.yaml:2: is sigwatch.dev/v1 ImageSignaturePolicy, want sigwatch.dev/v1alpha1 ImageSignaturePolicy"}},
		"no kind":       {"metadata: {name: p}\n", []string{`policy.yaml:1: is "" "", want sigwatch.dev/v1alpha1 ImageSignaturePolicy`}},
		"not a mapping": {"- a\n- b\n", []string{"policy.yaml:1: a document must be a mapping (apiVersion, kind, metadata, spec)"}},
		"no name": {"# x\napiVersion: sigwatch.dev/v1alpha1\nkind: ImageSignaturePolicy\nmetadata:\n  labels: {a: b}\nspec: {images: [a]}\n",
			[]string{"policy.yaml:4: metadata.name: is required"}},
		"empty": {"# nothing\n---\n", []string{"policy.yaml: no ImageSignaturePolicy found"}},
		"JSON": {`{"apiVersion":"sigwatch.dev/v1alpha1","kind":"ImageSignaturePolicy","metadata":{"name":"j"},
"spec":{"images":"nginx"}}`, []string{"policy.yaml:2: spec.images: must be a list, not a string"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := DecodeFile("policy.yaml", []byte(tc.file))
			g.Expect(err).To(HaveOccurred())
			g.Expect(strings.Split(err.Error(), "\n")).To(Equal(tc.want))
			g.Expect(err.Error()).NotTo(ContainSubstring("JSON"))
			var de *DecodeError
			g.Expect(errors.As(err, &de)).To(BeTrue(), "a *DecodeError")
		})
	}
}

func TestDecodeErrorWithoutFile(t *testing.T) {
	_, err := Decode([]byte(strings.Replace(policyFile, "- subject:", "- subjectt:", 1)))
	NewWithT(t).Expect(err).To(MatchError("line 12: spec.authorities[0].keyless.identities[0].subjectt: unknown field"))
}

// A file of many broken documents reports a bounded number of problems.
func TestDecodeErrorsAreBounded(t *testing.T) {
	bad := strings.Replace(policyFile, "- subject:", "- subjectt:", 1)
	file := strings.Repeat(bad+"---\n", 3*maxDecodeErrors)
	_, err := Decode([]byte(file))
	NewWithT(t).Expect(strings.Count(err.Error(), "\n") + 1).To(Equal(maxDecodeErrors))
}

func TestDecodeSeveralDocuments(t *testing.T) {
	g := NewWithT(t)
	ps, err := Decode([]byte("---\n# first\n" + policyFile + "---\n\n---   # a comment\n" + secondPolicy + "...\n"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ps).To(HaveLen(2))
	g.Expect(ps[0].Name).To(Equal("app-release"))
	g.Expect(ps[1].Name).To(Equal("other"))
}

func TestJSONPathAt(t *testing.T) {
	data := []byte(`{"a":[1,{"b":"x"},[true]],"c":{}}`)
	for _, tc := range []struct {
		offset int64
		want   []any
	}{
		{7, []any{"a", 0}},       // after 1
		{16, []any{"a", 1, "b"}}, // after "x"
		{19, []any{"a", 2}},      // after the [ of [true]
		{23, []any{"a", 2, 0}},   // after true
		{31, []any{"c"}},         // after the { of {}
		{6, []any{"a"}},          // after the [ of a's list
	} {
		NewWithT(t).Expect(jsonPathAt(data, tc.offset)).To(Equal(tc.want), "offset %d", tc.offset)
	}
}

// A value that its type decodes itself (a duration) is still named by its field.
func TestDecodeCustomTypeError(t *testing.T) {
	_, err := DecodeFile("p.yaml", []byte(policyFile+"  reverifyInterval: 5\n"))
	NewWithT(t).Expect(err).To(MatchError("p.yaml:14: spec.reverifyInterval: must be a string, not a number"))
}

// FieldLine finds the line of a field a compile error names, in the document of its policy.
func TestFieldLine(t *testing.T) {
	g := NewWithT(t)
	file := []byte(secondPolicy + "---\n" + policyFile)
	ps, err := Decode(file)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ps[1].Name).To(Equal("app-release"))
	g.Expect(FieldLine(file, 1, "spec.authorities[0].keyless.identities[0].subject")).To(Equal(23))
	g.Expect(FieldLine(file, 0, "spec.authorities[0].key.publicKey")).To(Equal(10))
	g.Expect(FieldLine(file, 0, "spec.authorities[0].key.secretRef")).To(Equal(9), "the deepest part found")
	g.Expect(FieldLine(file, 2, "spec")).To(Equal(0))
}
