package verification

// Second review of the revocation change: a judgment again (Reuse) reads the registry only under a host
// slot, or not at all. Each test failed before its fix.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

func reviewPolicy(t *testing.T, name string, atts ...sigwatchv1alpha1.Attestation) *policy.Policy {
	return compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{
				Identities: []sigwatchv1alpha1.Identity{{Issuer: ghIssuer, Subject: release}}}}},
			Attestations: atts},
	})
}

// R1: the state is in e.last but the verdict was evicted from e.verdicts (one entry per policy, the same
// capacity as e.last's one entry per digest): a Reuse judgment takes no host slot, and reads the registry.
func TestReuseWithoutACachedVerdictTakesAHostSlot(t *testing.T) {
	k := newKeyless(t, true, func(o *Options) { o.MaxPerHost, o.HostWait, o.CacheSize = 1, -1, 2 })
	pols := []*policy.Policy{reviewPolicy(t, "a"), reviewPolicy(t, "b")}
	var ds []Request
	for range 2 {
		d := k.push(t, "yourorg/app")
		if _, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{}); err != nil {
			t.Fatal(err)
		}
		req := Request{Image: image(t, d), Policies: pols}
		if r := k.engine.Verify(context.Background(), req); r.Policies[0].Result != sigwatchv1alpha1.PolicyVerified {
			t.Fatal(r.Policies[0].Message)
		}
		ds = append(ds, req)
	}
	// Another verification of the host is in flight: its one slot is taken.
	release, why := k.engine.hosts.acquire(context.Background(), hostsRead(ds[0]))
	if why != "" {
		t.Fatal(why)
	}
	defer release()
	if r := k.engine.Verify(context.Background(), ds[0]); r.Deferred == "" {
		t.Fatal("a normal verification is not deferred while the slot is taken")
	}
	k.reg.ResetCounts()
	req := ds[0]
	req.Reuse = true
	r := k.engine.Verify(context.Background(), req)
	t.Logf("reuse: deferred=%q results=%v registry requests=%v", r.Deferred, r.Policies, k.reg.Counts())
	if r.Deferred == "" && k.reg.Requests("GET") > 0 {
		t.Errorf("a Reuse judgment read the registry (%v) while the host's only slot was taken, without deferral", k.reg.Counts())
	}
}

// R2: reusable computes the attestations flag over every policy; verifyGroup over those whose trust root
// loaded. A root that fails for the attesting policy makes the keys differ: Reuse takes no slot and reads.
func TestReuseWhenAnAttestingPolicysRootFailsTakesAHostSlot(t *testing.T) {
	var fail atomic.Bool
	k := newKeyless(t, true, func(o *Options) { o.MaxPerHost, o.HostWait = 1, -1 })
	tr := k.root
	k.engine.opts.Roots = func(_ context.Context, p *policy.Policy) (*trust.Root, error) {
		if fail.Load() && p.Name == "attesting" {
			return nil, errors.New("TUF mirror down")
		}
		return tr, nil
	}
	pols := []*policy.Policy{reviewPolicy(t, "plain"), reviewPolicy(t, "attesting", sigwatchv1alpha1.Attestation{Name: "prov", PredicateType: "https://slsa.dev/provenance/v1"})}
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	req := Request{Image: image(t, d), Policies: pols}
	k.engine.Verify(context.Background(), req)
	fail.Store(true)
	release, why := k.engine.hosts.acquire(context.Background(), hostsRead(req))
	if why != "" {
		t.Fatal(why)
	}
	defer release()
	k.reg.ResetCounts()
	req.Reuse = true
	r := k.engine.Verify(context.Background(), req)
	t.Logf("reuse: deferred=%q results=%v registry requests=%v", r.Deferred, r.Policies, k.reg.Counts())
	if r.Deferred == "" && k.reg.Requests("GET")+k.reg.Requests("HEAD") > 0 {
		t.Errorf("reusable said no registry read, yet the judgment read the registry (%v) with the host's slot taken", k.reg.Counts())
	}
}

// R1b: a registry that answers the state but stalls the signature's blob: the candidate is unreadable, so
// the verdict is never cached while the state stays in e.last. Every Reuse judgment of it then reads the
// stalled registry without a host slot (and never marks the host slow).
func TestReuseOfAnUnreadableCandidateTakesAHostSlot(t *testing.T) {
	k := newKeyless(t, true, func(o *Options) { o.MaxPerHost, o.HostWait, o.Timeout = 1, -1, 2*time.Second })
	d := k.push(t, "yourorg/app")
	if _, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	var stalled atomic.Int64
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") {
			stalled.Add(1)
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"x"}]}`, 503)
			return true
		}
		return false
	})
	req := Request{Image: image(t, d), Policies: []*policy.Policy{reviewPolicy(t, "a")}}
	r := k.engine.Verify(context.Background(), req)
	t.Logf("first: %s %s", r.Policies[0].Result, r.Policies[0].Message)
	release, why := k.engine.hosts.acquire(context.Background(), hostsRead(req))
	if why != "" {
		t.Fatal(why)
	}
	defer release()
	before := stalled.Load()
	req.Reuse = true
	for range 3 {
		r = k.engine.Verify(context.Background(), req)
	}
	t.Logf("reuse x3: deferred=%q %v, blob reads meanwhile=%d", r.Deferred, r.Policies, stalled.Load()-before)
	if r.Deferred == "" && stalled.Load() > before {
		t.Errorf("Reuse judgments read the failing registry %d times with the host's only slot taken", stalled.Load()-before)
	}
}

// R3: a platform digest verified through its pinned index: a Reuse judgment reads the index manifest from
// the registry every time (outside any slot); with the registry down, a revocation change turns the
// image Unknown although both states are known.
func TestReuseThroughAnIndexReadsNothing(t *testing.T) {
	k := newKeyless(t, true, func(o *Options) { o.MaxPerHost, o.HostWait = 1, -1 })
	index, platforms := multiArch(t, k, "yourorg/app")
	req := Request{Image: image(t, platforms[0]), Policies: []*policy.Policy{releasePolicy(t)}, Indexes: []string{index.DigestStr()}}
	if r := k.engine.Verify(context.Background(), req); r.Policies[0].Result != sigwatchv1alpha1.PolicyVerified {
		t.Fatal(r.Policies[0].Message)
	}
	k.reg.ResetCounts()
	req.Reuse = true
	r := k.engine.Verify(context.Background(), req)
	t.Logf("reuse: %s, registry requests %v", r.Policies[0].Result, k.reg.Counts())
	k.reg.FailManifests("", 503)
	r = k.engine.Verify(context.Background(), req)
	t.Logf("reuse, registry down: %s %s: %s", r.Policies[0].Result, r.Policies[0].Reason, r.Policies[0].Message)
	if r.Policies[0].Result != sigwatchv1alpha1.PolicyVerified {
		t.Errorf("a Reuse judgment of an index-verified image depends on the registry")
	}
}
