package trust

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/test/sigstore"
	"github.com/sigwatch/sigwatch/test/tufrepo"
)

// stackRoot is the trusted_root.json of a new local Sigstore (its own CA, log and TSA).
func stackRoot(t *testing.T) []byte {
	t.Helper()
	st, err := sigstore.NewStack()
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.TrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func versionOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestFromTUF: a private Sigstore's trust root through a real TUF repository on loopback, trusted from
// its initial root.json: delivered; a root rotation in the repository followed (with and without the
// on-disk cache); an expired or tampered timestamp.json refused, saying why.
func TestFromTUF(t *testing.T) {
	g := NewWithT(t)
	first, second := stackRoot(t), stackRoot(t)
	repo := tufrepo.Start(t, first)
	cache := t.TempDir()
	opts := TUFOptions{Mirror: repo.URL, Root: repo.InitialRoot(), CacheDir: cache, Timeout: 10 * time.Second}

	r, err := FromTUF(context.Background(), opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Version).To(Equal(versionOf(first)))
	g.Expect(r.Source).To(Equal("TUF " + repo.URL))

	// The repository rotates its root key and publishes a new trust root (a rotated Fulcio or log).
	repo.RotateRoot(t)
	repo.Publish(t, second)
	r, err = FromTUF(context.Background(), opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Version).To(Equal(versionOf(second)), "the new root, through the rotation")
	fresh := opts
	fresh.CacheDir = ""
	r, err = FromTUF(context.Background(), fresh)
	g.Expect(err).NotTo(HaveOccurred(), "a client that knows only the initial root walks the rotation")
	g.Expect(r.Version).To(Equal(versionOf(second)))

	t.Run("an expired timestamp is refused", func(t *testing.T) {
		g := NewWithT(t)
		repo := tufrepo.Start(t, first)
		opts := TUFOptions{Mirror: repo.URL, Root: repo.InitialRoot(), CacheDir: t.TempDir(), Timeout: 10 * time.Second}
		_, err := FromTUF(context.Background(), opts)
		g.Expect(err).NotTo(HaveOccurred())
		repo.ExpireTimestamp(t)
		_, err = FromTUF(context.Background(), opts)
		t.Log(err)
		g.Expect(err).To(MatchError(ErrUnavailable))
		g.Expect(err.Error()).To(And(ContainSubstring(repo.URL), ContainSubstring("timestamp.json is expired")))
	})

	t.Run("a tampered timestamp is refused", func(t *testing.T) {
		g := NewWithT(t)
		repo := tufrepo.Start(t, first)
		opts := TUFOptions{Mirror: repo.URL, Root: repo.InitialRoot(), CacheDir: t.TempDir(), Timeout: 10 * time.Second}
		_, err := FromTUF(context.Background(), opts)
		g.Expect(err).NotTo(HaveOccurred())
		repo.TamperTimestamp(t)
		_, err = FromTUF(context.Background(), opts)
		t.Log(err)
		g.Expect(err).To(MatchError(ErrUnavailable))
		g.Expect(err.Error()).To(ContainSubstring("timestamp"))
		g.Expect(err.Error()).To(ContainSubstring("signature"))
	})

	t.Run("another repository's initial root is refused", func(t *testing.T) {
		g := NewWithT(t)
		other := tufrepo.Start(t, first)
		_, err := FromTUF(context.Background(), TUFOptions{Mirror: repo.URL, Root: other.InitialRoot(), Timeout: 10 * time.Second})
		g.Expect(err).To(MatchError(ErrUnavailable))
	})
}

// TestTUFCacheKeepsTheLastRootWhenTheRepositoryFails: the cache over a private TUF repository follows a
// new root without a restart, and, when the repository later serves an expired timestamp, keeps the last
// root it delivered, marked as a fallback that says why, until MaxAge.
func TestTUFCacheKeepsTheLastRootWhenTheRepositoryFails(t *testing.T) {
	g := NewWithT(t)
	first, second := stackRoot(t), stackRoot(t)
	repo := tufrepo.Start(t, first)
	opts := TUFOptions{Mirror: repo.URL, Root: repo.InitialRoot(), CacheDir: t.TempDir(), Timeout: 10 * time.Second}
	now := time.Now()
	c := &PublicGoodCache{Name: "TUF " + repo.URL, Refresh: time.Hour, FallbackRetry: time.Minute, MaxAge: 48 * time.Hour,
		Now: func() time.Time { return now }, background: func(f func()) { f() },
		Loader: func(ctx context.Context) (*Root, error) { return FromTUF(ctx, opts) }}

	r, err := c.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Version).To(Equal(versionOf(first)))

	repo.RotateRoot(t)
	repo.Publish(t, second)
	now = now.Add(2 * time.Hour) // the refresh is due: Get answers, and the refresh runs
	_, _ = c.Get(context.Background())
	r, err = c.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Version).To(Equal(versionOf(second)), "the rotation reached the cache without a restart")
	g.Expect(c.Status().Fallback).To(BeFalse())

	repo.ExpireTimestamp(t)
	now = now.Add(2 * time.Hour)
	_, _ = c.Get(context.Background())
	r, err = c.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred(), "the last root delivered stands in")
	g.Expect(r.Version).To(Equal(versionOf(second)))
	g.Expect(r.Fallback).To(ContainSubstring("timestamp.json is expired"))
	st := c.Status()
	g.Expect(st.Fallback).To(BeTrue())
	g.Expect(st.FallbackReason).To(ContainSubstring("is kept"))

	now = now.Add(72 * time.Hour)
	_, err = c.Get(context.Background())
	g.Expect(err).To(MatchError(ContainSubstring("more than the 48h0m0s allowed")), "bounded: too old a stand-in is refused")
}

// TestTUFCacheFirstLoadFailureIsRemembered: a repository that cannot deliver the first root is asked
// again only after a while, not by every caller; then it is, and a root it delivers is used.
func TestTUFCacheFirstLoadFailureIsRemembered(t *testing.T) {
	g := NewWithT(t)
	root := stackRoot(t)
	repo := tufrepo.Start(t, root)
	repo.ExpireTimestamp(t)
	opts := TUFOptions{Mirror: repo.URL, Root: repo.InitialRoot(), Timeout: 10 * time.Second}
	now := time.Now()
	loads := 0
	c := &PublicGoodCache{Name: "TUF " + repo.URL, Now: func() time.Time { return now }, background: func(f func()) { f() },
		Loader: func(ctx context.Context) (*Root, error) { loads++; return FromTUF(ctx, opts) }}
	for range 5 {
		_, err := c.Get(context.Background())
		g.Expect(err).To(MatchError(ContainSubstring("timestamp.json is expired")))
	}
	g.Expect(loads).To(Equal(1), "the failure stands for a while")
	repo.Publish(t, root) // a fresh timestamp
	now = now.Add(firstRetry)
	r, err := c.Get(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Version).To(Equal(versionOf(root)))
	g.Expect(loads).To(Equal(2))
}
