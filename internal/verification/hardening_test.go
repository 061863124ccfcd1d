package verification

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/signatures"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// namedReleasePolicy is releasePolicy under another name: the same spec, so the same hash.
func namedReleasePolicy(t *testing.T, name string) *policy.Policy {
	t.Helper()
	return compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{
				Name:    "release-workflow",
				Keyless: &sigwatchv1alpha1.KeylessAuthority{Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}}},
			}},
		},
	})
}

// TestPoliciesWithTheSameSpecKeepTheirNames: two policies with identical specs share a hash. Each result
// must carry its own policy's name, first time and from the cache: status.policies is a map keyed by
// name, and two results of one name make the API server reject every status write.
func TestPoliciesWithTheSameSpecKeepTheirNames(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	a, b := namedReleasePolicy(t, "team-a"), namedReleasePolicy(t, "team-b")
	g.Expect(a.Hash).To(Equal(b.Hash), "the test needs identical specs")

	for _, round := range []string{"first", "cached"} {
		res := k.engine.Verify(context.Background(), Request{Image: image(t, d), Policies: []*policy.Policy{a, b}})
		g.Expect(res.Policies).To(HaveLen(2))
		g.Expect(res.Policies[0].Policy).To(Equal("team-a"), round)
		g.Expect(res.Policies[1].Policy).To(Equal("team-b"), round)
		for _, pr := range res.Policies {
			g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "%s: %s", round, pr.Message)
		}
	}
}

// TestStateIsNotSharedAcrossCredentials: what a namespace's pull secrets could read (that a private
// digest exists, who signed it) is not shown, from the cached registry state, to a namespace without
// them: that one asks the registry itself, and is denied.
func TestStateIsNotSharedAcrossCredentials(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true, func(o *Options) { o.StateTTL = time.Hour })
	d := k.push(t, "private/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == "team" && p == "s3cret" {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	pols := []*policy.Policy{releasePolicy(t)}
	withSecrets := k.engine.Verify(context.Background(), Request{Image: image(t, d), Policies: pols,
		Credentials: registry.Credentials{Keychain: basicKeychain{"team", "s3cret"}, ID: "pull-secrets-of-team"}})
	g.Expect(withSecrets.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified), withSecrets.Policies[0].Message)

	without := k.engine.Verify(context.Background(), Request{Image: image(t, d), Policies: pols})
	g.Expect(without.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyUnknown), without.Policies[0].Message)
	g.Expect(without.Policies[0].Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))
	g.Expect(without.Policies[0].Message).To(ContainSubstring("access denied"))
	g.Expect(without.Signatures).To(BeEmpty(), "nothing about the private digest's signatures")
}

// TestNoFlapAfterAFailedFreshRead: with the registry down, a forced re-verification is Unknown; the
// retry after it must not answer Verified from registry state older than the failed read.
func TestNoFlapAfterAFailedFreshRead(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true, func(o *Options) { o.StateTTL = time.Hour })
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	req := Request{Image: image(t, d), Policies: []*policy.Policy{releasePolicy(t)}}
	verdict := func(fresh bool) sigwatchv1alpha1.PolicyResultType {
		r := req
		r.Fresh = fresh
		return k.engine.Verify(context.Background(), r).Policies[0].Result
	}

	g.Expect(verdict(false)).To(Equal(sigwatchv1alpha1.PolicyVerified))
	k.reg.Stop()
	g.Expect(verdict(true)).To(Equal(sigwatchv1alpha1.PolicyUnknown), "forced, with the registry down")
	g.Expect(verdict(false)).To(Equal(sigwatchv1alpha1.PolicyUnknown), "the retry is not answered from older state")
	g.Expect(verdict(false)).To(Equal(sigwatchv1alpha1.PolicyUnknown))
	k.reg.Restart(t)
	g.Expect(verdict(false)).To(Equal(sigwatchv1alpha1.PolicyVerified), "back when the registry is")
}

// TestUnreadableBlobIsUndecidedAndNotKept: a bundle the registry fails to serve (a 404 for a blob its
// manifest lists) makes the image Unknown, not Failed, and the verdict is not cached: once the registry
// serves it again, the same signature set is Verified without a forced re-verification.
func TestUnreadableBlobIsUndecidedAndNotKept(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true, func(o *Options) { o.StateTTL = time.Hour })
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		return false
	})
	pr, res := k.verify(t, d, releasePolicy(t))
	expectUndecided(t, pr, "not found")
	g.Expect(res.Cached).To(BeFalse())
	g.Expect(res.Signatures).To(HaveLen(1))
	g.Expect(res.Signatures[0].Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))
	k.reg.ClearIntercepts()
	pr, _ = k.verify(t, d, releasePolicy(t))
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
}

func TestExpiringDropsByTimeAndCount(t *testing.T) {
	g := NewWithT(t)
	now := time.Unix(1000, 0)
	c := newExpiring[int](3, time.Minute, func() time.Time { return now })
	c.add("a", 1)
	c.add("b", 2)
	now = now.Add(30 * time.Second)
	c.add("c", 3)
	g.Expect(c.len()).To(Equal(3))
	c.add("d", 4) // full: the oldest goes
	_, ok := c.get("a")
	g.Expect(ok).To(BeFalse())
	g.Expect(c.len()).To(Equal(3))

	now = now.Add(31 * time.Second) // b is expired, c and d are not
	c.add("e", 5)
	g.Expect(c.len()).To(Equal(3), "expired entries go when new ones come, unread")
	_, ok = c.get("b")
	g.Expect(ok).To(BeFalse())
	v, ok := c.get("c")
	g.Expect(ok).To(BeTrue())
	g.Expect(v).To(Equal(3))

	c.add("c", 30) // replacing refreshes
	now = now.Add(59 * time.Second)
	v, ok = c.get("c")
	g.Expect(ok).To(BeTrue())
	g.Expect(v).To(Equal(30))
	_, ok = c.get("d")
	g.Expect(ok).To(BeFalse(), "d expired")
	c.remove("c")
	_, ok = c.get("c")
	g.Expect(ok).To(BeFalse())
}

// TestBudgetNeverWaitsOnItself: many concurrent verifications of one digest with overlapping policy sets,
// under a memory budget that fits one fetch. A caller holding a fetch that joins another's verdict flight
// must not wait for memory it holds itself: every verification ends Verified, none times out.
func TestBudgetNeverWaitsOnItself(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	res, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	size := int64(len(res.Bundle))
	k.engine, _ = newEngine(t, k.root, func(o *Options) {
		o.MemoryBudget, o.MaxBytes, o.Timeout, o.CacheSize = size, size, 20*time.Second, 1 // few cache hits
	})
	pols := []*policy.Policy{namedReleasePolicy(t, "a"), namedReleasePolicy(t, "b"), namedReleasePolicy(t, "c")}
	subsets := [][]*policy.Policy{{pols[0], pols[1]}, {pols[1]}, {pols[1], pols[2]}, {pols[2], pols[0]}, pols}
	expectAllVerified(t, k.engine, func(i int) Request {
		return Request{Image: image(t, d), Policies: subsets[i%len(subsets)], Fresh: true}
	})
}

// expectAllVerified runs 40 verifications at once, the i-th of request(i) (fresh, so that fetches keep
// happening while others judge), and expects every policy of every one Verified.
func expectAllVerified(t *testing.T, e *Engine, request func(i int) Request) {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]*Result, 40)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.Verify(context.Background(), request(i))
		}()
	}
	wg.Wait()
	g := NewWithT(t)
	for i, r := range results {
		g.Expect(r.Policies).NotTo(BeEmpty())
		for _, pr := range r.Policies {
			g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "verification %d, policy %s: %s", i, pr.Policy, pr.Message)
		}
	}
}

// TestManyOtherReferrersDoNotFailTheImage: a digest with more SBOMs and other artifacts than sigwatch
// examines signatures is not failed for them: only the referrers that may be signatures count.
func TestManyOtherReferrersDoNotFailTheImage(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	img := testregistry.RandomImage(t, 256)
	d := k.reg.Push(t, "yourorg/app", img)
	for i := range 70 {
		k.reg.PushReferrer(t, "yourorg/app", img, "application/spdx+json", fmt.Sprintf("sbom %d", i))
	}
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	pr, _ := k.verify(t, d, releasePolicy(t))
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
}

// TestConditionCutOffIsUndecided: an attestation condition that the verification's deadline cuts off was
// not evaluated: the verdict is Unknown and not kept, never a cached AttestationFailed.
func TestConditionCutOffIsUndecided(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	k := newKeyless(t, true)
	d := k.push(t, "yourorg/app")
	_, err := k.writer.SignBundle(ctx, d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = k.writer.AttestBundle(ctx, d, k.ci, "https://slsa.dev/provenance/v1", map[string]any{"builder": "ci"}, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	p := compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "slsa"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}}}}},
			Attestations: []sigwatchv1alpha1.Attestation{{Name: "provenance", PredicateType: "https://slsa.dev/provenance/v1",
				Conditions: []string{`lists.range(20000).all(i, i >= 0) && predicate.builder == "ci"`}}},
		},
	})
	where := signatures.Where{Image: image(t, d)}
	sess := k.engine.discoverer(registry.Credentials{})
	st, err := sess.State(ctx, where, true)
	g.Expect(err).NotTo(HaveOccurred())
	cands, err := sess.Fetch(ctx, st)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(k.engine.judgePolicy(ctx, where, p, k.root, cands).result.Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
	expired, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()
	pv := k.engine.judgePolicy(expired, where, p, k.root, cands)
	g.Expect(pv.result.Result).To(Equal(sigwatchv1alpha1.PolicyUnknown), pv.result.Message)
	g.Expect(pv.result.Message).To(ContainSubstring("could not be evaluated in time"))
	g.Expect(pv.undecided).To(BeTrue(), "not kept in the verdict cache")
}

// TestBudgetNeverWaitsOnItselfAcrossRepositories: the same digest in two repositories, with its
// signatures in one shared signature repository, verified concurrently under a budget that fits one
// fetch: no caller waits on a flight whose fetch waits for memory the caller holds.
func TestBudgetNeverWaitsOnItselfAcrossRepositories(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	k := newKeyless(t, true)
	img := testregistry.RandomImage(t, 256)
	a := k.reg.Push(t, "a/app", img)
	b := k.reg.Push(t, "b/app", img)
	sigRepo := k.reg.Repo("sigs")
	res, err := k.writer.SignBundle(ctx, a, k.ci, sigstore.SignOptions{SignatureRepository: sigRepo})
	g.Expect(err).NotTo(HaveOccurred())
	k.engine, _ = newEngine(t, k.root, func(o *Options) {
		o.MemoryBudget, o.MaxBytes, o.Timeout, o.CacheSize = int64(len(res.Bundle)), int64(len(res.Bundle)), 20*time.Second, 1
	})
	pols := make([]*policy.Policy, 3)
	for i, name := range []string{"a", "b", "c"} {
		p := namedReleasePolicy(t, name)
		p.SignatureRepository = sigRepo
		pols[i] = p
	}
	subsets := [][]*policy.Policy{{pols[0], pols[1]}, {pols[1]}, {pols[1], pols[2]}, pols}
	expectAllVerified(t, k.engine, func(i int) Request {
		return Request{Image: image(t, []name.Digest{a, b}[i%2]), Policies: subsets[i%len(subsets)], Fresh: true}
	})
}
