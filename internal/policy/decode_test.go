package policy

import (
	"os"
	"path/filepath"
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

func TestDecodeErrors(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"unknown field": {`apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
metadata: {name: p}
spec: {images: [a], authorities: [], imagez: []}`, `unknown field "imagez"`},
		"other kind": {`apiVersion: v1
kind: ConfigMap
metadata: {name: p}`, "want sigwatch.dev/v1alpha1 ImageSignaturePolicy"},
		"no name": {`apiVersion: sigwatch.dev/v1alpha1
kind: ImageSignaturePolicy
spec: {images: [a]}`, "metadata.name is required"},
		"empty": {"# nothing\n", "no ImageSignaturePolicy found"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(tc.doc))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}
