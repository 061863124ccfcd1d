//go:build integration

package scale

import (
	"bytes"
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestSmoke runs the benchmark at a small size, with the manager built from this tree, and checks what
// does not depend on the machine: every verdict, the policy's counts, and that a forced re-verification
// reads no manifest or blob again and writes exactly one status patch per SignedImage. It asserts no
// time.
func TestSmoke(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	const digests, unsigned = 100, 2
	rep, err := Run(ctx, Options{
		Out:     &out,
		Digests: digests, Pods: 500, Namespaces: 5, Unsigned: unsigned,
		SettleTimeout: 2 * time.Minute,
		QuietTimeout:  10 * time.Second,
		Dir:           t.TempDir(),
	})
	t.Log("\n" + out.String())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.WrongVerdicts).To(BeZero())
	g.Expect(rep.SignedImages).To(Equal(digests), "one SignedImage per digest (each runs in one namespace)")

	// Settling required the policy's counts to be right; the last poll of each phase saw them.
	g.Expect(out.String()).To(MatchRegexp(`phase=cold .* policy=matched:100,verified:98,failed:2,unknown:0`))
	g.Expect(out.String()).To(MatchRegexp(`phase=forced .* policy=matched:100,verified:98,failed:2,unknown:0`))

	// A forced re-verification asks the registry whether the signatures changed (HEAD of the .sig
	// manifest, the referrers listing) and reads nothing it already has.
	f := rep.Forced
	g.Expect(f.Registry["GET manifests"]).To(BeZero(), "manifest GETs in the forced phase: %v", f.Registry)
	g.Expect(f.Registry["GET blobs"]).To(BeZero(), "blob GETs in the forced phase: %v", f.Registry)
	for kind := range f.Registry {
		g.Expect(kind).To(BeElementOf("HEAD manifests", "GET referrers", "GET other"), "registry requests in the forced phase: %v", f.Registry)
	}
	g.Expect(f.Registry["HEAD manifests"]).To(BeNumerically(">=", digests-unsigned), "each signed digest's .sig manifest is checked: %v", f.Registry)

	// The API server's counters tell status patches (subresource status) from the harness's annotations
	// (the object itself): one status patch per SignedImage, with the new lastHandledReverify.
	statusPatches := f.APIWrites.Count("PATCH", "signedimages", "status") + f.LateWrites.Count("PATCH", "signedimages", "status")
	g.Expect(statusPatches).To(Equal(digests), "SignedImage status patches in the forced phase; writes: %s; late: %s", f.APIWrites, f.LateWrites)
	g.Expect(f.HarnessWrites).To(Equal(digests))

	// The policy's status is written for its conditions and then at most every 2 s while its counts
	// change, not once per image (before: about one per SignedImage).
	c := rep.Cold
	policyPatches := c.APIWrites.Count("PATCH", "imagesignaturepolicies", "status") + c.LateWrites.Count("PATCH", "imagesignaturepolicies", "status")
	g.Expect(policyPatches).To(BeNumerically("<=", 3+int(c.Seconds/2)), "policy status patches in a %.0f s cold phase", c.Seconds)
	// One SignedImage made per digest. (Two workers that see a new digest's pods at once both try, and
	// one gets a 409: how many do depends on timing, so only the successful creates are counted.)
	g.Expect(c.APIWrites.Succeeded("POST", "signedimages", "")).To(Equal(digests), "creates: %s", c.APIWrites)

	// A revocation of the signing key turns every signed image SignatureRevoked with one status patch
	// each and no registry request; deleting it restores them the same way.
	g.Expect(out.String()).To(MatchRegexp(`phase=revoked .* policy=matched:100,verified:0,failed:100,unknown:0`))
	g.Expect(out.String()).To(MatchRegexp(`phase=restored .* policy=matched:100,verified:98,failed:2,unknown:0`))
	for name, p := range map[string]Phase{"revoked": rep.Revoked, "restored": rep.Restored} {
		g.Expect(p.Registry).To(BeEmpty(), "registry requests in the %s phase", name)
		patches := p.APIWrites.Count("PATCH", "signedimages", "status") + p.LateWrites.Count("PATCH", "signedimages", "status")
		g.Expect(patches).To(Equal(digests-unsigned), "SignedImage status patches in the %s phase: only the signed images change", name)
	}

	g.Expect(rep.Creation.Writes).To(Equal(5 + 1 + 1 + 1 + digests + 2*500))
	g.Expect(rep.PeakRSSBytes).To(BeNumerically(">", 0))
	g.Expect(rep.Cold.ManagerWrites).To(BeNumerically(">=", digests), "the cold phase creates a SignedImage per digest")
}
