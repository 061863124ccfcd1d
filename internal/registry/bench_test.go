package registry

import (
	"context"
	"testing"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// BenchmarkHeadAndReferrers measures the change-detection round trip against the loopback registry:
// a HEAD of a tag and a referrers listing filtered to Sigstore bundles.
func BenchmarkHeadAndReferrers(b *testing.B) {
	reg := testregistry.Start(b, true)
	repo := reg.Repository(b, "app")
	img := testregistry.RandomImage(b, 256)
	reg.PushTag(b, "app", "v1", img)
	reg.PushReferrer(b, "app", img, bundleType, "one")
	digest := mustDigest(b, img)
	tag := repo.Tag("v1")
	c, _ := newTestClient(Options{})
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Head(ctx, tag); err != nil {
			b.Fatal(err)
		}
		descs, err := c.Referrers(ctx, repo, digest, bundleType)
		if err != nil {
			b.Fatal(err)
		}
		if len(descs) != 1 {
			b.Fatalf("got %d referrers, want 1", len(descs))
		}
	}
}
