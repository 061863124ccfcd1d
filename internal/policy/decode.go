package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// Decode reads ImageSignaturePolicy objects from YAML or JSON documents, as they are kept in Git
// (several documents separated by "---"). Unknown fields, other kinds and unnamed policies are errors
// that name the document.
func Decode(data []byte) ([]*sigwatchv1alpha1.ImageSignaturePolicy, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*sigwatchv1alpha1.ImageSignaturePolicy
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || isOnlyComments(doc) {
			continue
		}
		var p sigwatchv1alpha1.ImageSignaturePolicy
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if p.APIVersion != sigwatchv1alpha1.GroupVersion.String() || p.Kind != "ImageSignaturePolicy" {
			return nil, fmt.Errorf("document %d: is %s %s, want %s ImageSignaturePolicy", n, p.APIVersion, p.Kind, sigwatchv1alpha1.GroupVersion)
		}
		if p.Name == "" {
			return nil, fmt.Errorf("document %d: metadata.name is required", n)
		}
		out = append(out, &p)
	}
	if len(out) == 0 {
		return nil, errors.New("no ImageSignaturePolicy found")
	}
	return out, nil
}

func isOnlyComments(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}
