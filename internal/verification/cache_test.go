//go:build integration

package verification

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/test/cosign"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// TestCacheHitCostsOnlyTheChangeDetection: an unchanged signature set is not fetched or judged again;
// learning that it is unchanged costs the referrers listing and HEAD requests, no manifest GET.
func TestCacheHitCostsOnlyTheChangeDetection(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	reg, _, d, p := signedImage(t, true, true, false)
	eng, client := newEngine(t, embeddedRoot(t))
	req := Request{Image: image(t, d), Policies: []*policy.Policy{p}}

	reg.ResetCounts()
	first := eng.Verify(ctx, req)
	g.Expect(first.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
	g.Expect(first.Cached).To(BeFalse())
	g.Expect(first.Signatures).To(HaveLen(2), "both formats are examined")
	g.Expect(reg.Requests("GET manifests")).To(BeNumerically(">=", 2), "the referrer and the .sig manifests are read")
	g.Expect(reg.Requests("GET blobs")).To(BeNumerically(">=", 2))

	reg.ResetCounts()
	second := eng.Verify(ctx, req)
	g.Expect(second.Cached).To(BeTrue())
	g.Expect(second.Policies).To(Equal(first.Policies))
	g.Expect(second.Signatures).To(Equal(first.Signatures))
	g.Expect(reg.Requests("GET manifests")).To(BeZero(), "no manifest GET on a cache hit")
	g.Expect(reg.Requests("GET blobs")).To(BeZero())
	g.Expect(reg.Requests("GET referrers")).To(Equal(1))
	g.Expect(reg.Requests("HEAD manifests")).To(Equal(2), "the image and the .sig tag")
	g.Expect(client.Requests()).NotTo(BeEmpty(), "the client counts requests by method and code")

	// A new signature changes the set: verified again, not from the cache.
	other := cosign.GenerateKeyPair(t, t.TempDir())
	cosign.Sign(t, other, d.String(), cosign.SignOptions{NewBundleFormat: true})
	third := eng.Verify(ctx, req)
	g.Expect(third.Cached).To(BeFalse())
	g.Expect(third.Signatures).To(HaveLen(3))
	g.Expect(third.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified))

	// A changed policy is judged again too.
	p2 := keyPolicy(t, "p", other.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogRequired)
	fourth := eng.Verify(ctx, Request{Image: req.Image, Policies: []*policy.Policy{p2}})
	g.Expect(fourth.Cached).To(BeFalse())
	g.Expect(fourth.Policies[0].Reason).To(Equal(sigwatchv1alpha1.TransparencyLogMissingReason))
}

// TestSharedStateForManyNamespaces: concurrent and recent verifications of one digest share one round of
// registry requests.
func TestSharedStateForManyNamespaces(t *testing.T) {
	g := NewWithT(t)
	reg, _, d, p := signedImage(t, true, true)
	eng, _ := newEngine(t, embeddedRoot(t), func(o *Options) { o.StateTTL = time.Minute })
	req := Request{Image: image(t, d), Policies: []*policy.Policy{p}}

	reg.ResetCounts()
	var wg sync.WaitGroup
	results := make([]*Result, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = eng.Verify(context.Background(), req)
		}()
	}
	wg.Wait()
	for _, r := range results {
		g.Expect(r.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
	}
	g.Expect(reg.Requests("GET referrers")).To(Equal(1))
	g.Expect(reg.Requests("HEAD manifests")).To(Equal(2), "the image and the .sig tag, once")
	g.Expect(reg.Requests("GET manifests")).To(Equal(1), "the referrer manifest, once")

	// A forced re-verification asks the registry again.
	reg.ResetCounts()
	req.Fresh = true
	r := eng.Verify(context.Background(), req)
	g.Expect(r.Cached).To(BeTrue(), "same signatures: the verdict is still cached")
	g.Expect(reg.Requests("GET referrers")).To(Equal(1))
}

// TestRegistryOutageIsUnknown: an unreachable registry is "could not verify", never "unverified".
func TestRegistryOutageIsUnknown(t *testing.T) {
	g := NewWithT(t)
	reg, _, d, p := signedImage(t, true, true)
	eng, _ := newEngine(t, embeddedRoot(t))
	req := Request{Image: image(t, d), Policies: []*policy.Policy{p}}

	reg.Stop()
	r := eng.Verify(context.Background(), req)
	g.Expect(r.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyUnknown))
	g.Expect(r.Policies[0].Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))

	reg.Restart(t)
	reg.FailManifests("", 503)
	r = eng.Verify(context.Background(), req)
	g.Expect(r.Policies[0].Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason), r.Policies[0].Message)

	reg.ClearIntercepts()
	r = eng.Verify(context.Background(), req)
	g.Expect(r.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
}

// TestCacheHitWithoutReferrersAPI: with the referrers tag fallback, an unchanged index is only HEADed.
func TestCacheHitWithoutReferrersAPI(t *testing.T) {
	g := NewWithT(t)
	reg, _, d, p := signedImage(t, false, true)
	eng, _ := newEngine(t, embeddedRoot(t))
	req := Request{Image: image(t, d), Policies: []*policy.Policy{p}}
	g.Expect(eng.Verify(context.Background(), req).Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified))

	reg.ResetCounts()
	res := eng.Verify(context.Background(), req)
	g.Expect(res.Cached).To(BeTrue())
	g.Expect(reg.Requests("GET manifests")).To(BeZero(), "the fallback index is HEADed, not read again")
	g.Expect(reg.Requests("HEAD manifests")).To(Equal(3), "the image, the fallback tag and the .sig tag")
}

// TestImageNotFoundIsUnknown: a digest the registry does not show (a typo, or no access with registries
// that answer 404 then) is "could not verify", not "unsigned".
func TestImageNotFoundIsUnknown(t *testing.T) {
	g := NewWithT(t)
	_, _, d, p := signedImage(t, true)
	eng, _ := newEngine(t, embeddedRoot(t))
	missing := image(t, d)
	missing.Digest = "sha256:" + strings.Repeat("0", 64)
	r := eng.Verify(context.Background(), Request{Image: missing, Policies: []*policy.Policy{p}})
	g.Expect(r.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyUnknown))
	g.Expect(r.Policies[0].Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))
	g.Expect(r.Policies[0].Message).To(ContainSubstring("image not found"))
}

// signedImage pushes team/app to a new registry (referrers: with the referrers API) and signs it with a
// new key with the real cosign, once per format given (true: bundle, false: legacy); p trusts the key
// without a transparency log.
func signedImage(t *testing.T, referrers bool, bundleFormats ...bool) (*testregistry.Registry, cosign.KeyPair, name.Digest, *policy.Policy) {
	t.Helper()
	reg := testregistry.Start(t, referrers)
	key := cosign.GenerateKeyPair(t, t.TempDir())
	d := reg.PushRandomImage(t, "team/app")
	for _, bundle := range bundleFormats {
		cosign.Sign(t, key, d.String(), cosign.SignOptions{NewBundleFormat: bundle})
	}
	return reg, key, d, keyPolicy(t, "p", key.PublicKeyPEM, sigwatchv1alpha1.TransparencyLogDisabled)
}
