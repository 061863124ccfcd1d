package registry

import (
	"context"
	"testing"
)

// BenchmarkHeadAndReferrers measures the change-detection round trip against the loopback registry:
// a HEAD of a tag and a referrers listing filtered to Sigstore bundles.
func BenchmarkHeadAndReferrers(b *testing.B) {
	tr := newTestRegistry(b, true)
	repo := tr.repo(b, "app")
	img := tr.pushImage(b, repo, "v1", 256)
	tr.pushReferrer(b, repo, img, bundleType, "one")
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
