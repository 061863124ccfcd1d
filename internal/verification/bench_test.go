package verification

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/signatures"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// signedImages pushes n images signed with one key (legacy format, no log: cosign sign --key
// --tlog-upload=false) and returns them with the policy that trusts the key.
func signedImages(b *testing.B, n int, bundle bool) ([]imageref.Image, *policy.Policy) {
	b.Helper()
	reg := testregistry.Start(b, true)
	w := &sigstore.Writer{Registry: reg.Host}
	key, err := sigstore.NewKeySigner(nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	imgs := make([]imageref.Image, n)
	for i := range imgs {
		// 20 repositories: the test registry computes referrers by scanning a repository's manifests.
		d, err := w.PushRandomImage(ctx, fmt.Sprintf("bench/app-%d", i%20))
		if err != nil {
			b.Fatal(err)
		}
		sign := w.SignLegacy
		if bundle {
			sign = w.SignBundle
		}
		if _, err := sign(ctx, d, key, sigstore.SignOptions{}); err != nil {
			b.Fatal(err)
		}
		imgs[i] = image(b, d)
	}
	return imgs, keyPolicy(b, "bench", key.PublicKeyPEM(), sigwatchv1alpha1.TransparencyLogDisabled)
}

// BenchmarkColdVerification verifies key-signed digests through the loopback registry, 8 in flight
// (RunParallel with parallelism 4 on 2 CPUs), with a verdict cache of one entry cycling over 500
// digests: every iteration lists the referrers, HEADs and reads the signature manifest and its layer, and
// checks the signature.
func BenchmarkColdVerification(b *testing.B) {
	for _, format := range []string{"legacy", "bundle"} {
		imgs, p := signedImages(b, 500, format == "bundle")
		b.Run(format, func(b *testing.B) {
			eng, _ := newEngine(b, embeddedRoot(b), func(o *Options) { o.CacheSize = 1 })
			var next, failed, cached atomic.Int64
			b.SetParallelism(8 / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					img := imgs[(next.Add(1)-1)%int64(len(imgs))]
					res := eng.Verify(context.Background(), Request{Image: img, Policies: []*policy.Policy{p}})
					if res.Policies[0].Result != sigwatchv1alpha1.PolicyVerified {
						failed.Add(1)
					}
					if res.Cached {
						cached.Add(1)
					}
				}
			})
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d verifications failed", failed.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
			b.ReportMetric(float64(cached.Load())/float64(b.N), "cached/op")
		})
	}
}

// BenchmarkCacheHit verifies a digest whose signatures did not change: the referrers listing and one
// HEAD, no manifest or blob GET, no signature crypto.
func BenchmarkCacheHit(b *testing.B) {
	imgs, p := signedImages(b, 1, false)
	eng, _ := newEngine(b, embeddedRoot(b))
	req := Request{Image: imgs[0], Policies: []*policy.Policy{p}}
	if r := eng.Verify(context.Background(), req); r.Policies[0].Result != sigwatchv1alpha1.PolicyVerified {
		b.Fatal(r.Policies[0].Message)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if r := eng.Verify(context.Background(), req); !r.Cached {
			b.Fatal("not a cache hit")
		}
	}
}

// BenchmarkDiscovery measures finding and reading the signatures of a digest (State + Fetch).
func BenchmarkDiscovery(b *testing.B) {
	imgs, _ := signedImages(b, 1, false)
	eng, _ := newEngine(b, embeddedRoot(b))
	where := signatures.Where{Image: imgs[0]}
	d := eng.discoverer(registry.Credentials{})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		st, err := d.State(context.Background(), where, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Fetch(context.Background(), st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCachedVerdictMemory reports the heap that one cached verdict holds (B/verdict).
func BenchmarkCachedVerdictMemory(b *testing.B) {
	imgs, p := signedImages(b, 1, false)
	eng, _ := newEngine(b, embeddedRoot(b))
	res := eng.Verify(context.Background(), Request{Image: imgs[0], Policies: []*policy.Policy{p}})
	if res.Policies[0].Result != sigwatchv1alpha1.PolicyVerified {
		b.Fatal(res.Policies[0].Message)
	}
	key := verdictKeyFor(eng, imgs[0], p)
	v, ok := eng.verdicts.Get(key)
	if !ok {
		b.Fatal("verdict not cached")
	}
	pv := v.(policyVerdict)
	n := 10000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		// Each entry is a copy with its own strings, as distinct digests would have.
		c := policyVerdict{result: pv.result, signatures: append([]Signature(nil), pv.signatures...)}
		c.result.Message = string([]byte(pv.result.Message))
		c.signatures[0].ManifestDigest = string([]byte(pv.signatures[0].ManifestDigest))
		c.signatures[0].KeyID = string([]byte(pv.signatures[0].KeyID))
		eng.verdicts.Add(fmt.Sprintf("%d|%s", i, key), c)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for range b.N {
		_, _ = eng.verdicts.Get(key)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/verdict")
}

// verdictKeyFor recomputes the cache key of a verdict.
func verdictKeyFor(e *Engine, img imageref.Image, p *policy.Policy) string {
	st, err := e.discoverer(registry.Credentials{}).State(context.Background(), signatures.Where{Image: img}, false)
	if err != nil {
		return ""
	}
	r, _ := e.opts.Roots(context.Background(), p)
	return verdictKey(signatures.Where{Image: img}, st.Key(), p, r.Version)
}
