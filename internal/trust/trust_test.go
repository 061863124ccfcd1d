package trust

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestEmbeddedSnapshot(t *testing.T) {
	g := NewWithT(t)
	r, err := Embedded()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Source).To(Equal(SourceEmbedded))
	g.Expect(r.Material.FulcioCertificateAuthorities()).NotTo(BeEmpty())
	g.Expect(r.Material.RekorLogs()).NotTo(BeEmpty())
	g.Expect(r.RequireSCT()).To(BeTrue(), "the public-good root lists CT logs")
	g.Expect(r.Version).To(HaveLen(64))
}

func TestFromJSON(t *testing.T) {
	g := NewWithT(t)
	_, err := FromJSON([]byte(`{"mediaType": "nope"`), "ConfigMap sigwatch-system/private")
	g.Expect(err).To(MatchError(ErrUnavailable))
	g.Expect(err.Error()).To(ContainSubstring("ConfigMap sigwatch-system/private"))

	data, err := os.ReadFile("embedded/public-good.trusted_root.json")
	g.Expect(err).NotTo(HaveOccurred())
	a, err := FromJSON(data, "a")
	g.Expect(err).NotTo(HaveOccurred())
	b, err := FromJSON(append(data, '\n'), "b")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.Version).NotTo(Equal(b.Version), "the version follows the content")
}

func TestPublicGoodFallsBackWhenTUFIsUnreachable(t *testing.T) {
	g := NewWithT(t)
	// An unroutable cache and a tiny timeout: TUF cannot finish; the snapshot is used and we say why.
	r, err := PublicGood(context.Background(), PublicGoodOptions{CacheDir: t.TempDir(), Timeout: 50 * time.Millisecond})
	g.Expect(r).NotTo(BeNil())
	g.Expect(r.Source).To(Equal(SourceEmbedded))
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("TUF update")) // failed (no network) or timed out, whichever comes first

	r, err = PublicGood(context.Background(), PublicGoodOptions{Offline: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Source).To(Equal(SourceEmbedded))
}
