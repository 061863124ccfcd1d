package bundleverify_test

import (
	"context"
	"testing"

	"github.com/sigwatch/sigwatch/internal/bundleverify"
)

func BenchmarkVerify(b *testing.B) {
	for name, req := range map[string]bundleverify.Request{
		"keyless DSSE":              provenanceRequest(b),
		"keyless message signature": messageSignatureRequest(b),
		"key":                       keyRequest(b),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bundleverify.Verify(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
