package bundleverify_test

import (
	"encoding/base64"
	"errors"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/sigwatch/sigwatch/internal/bundleverify"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// otherRoots are trust roots of other Sigstore instances than the vector's: they list neither its log
// nor its CA (nor its TSA).
func otherRoots(t *testing.T, v vector) map[string]*trust.Root {
	t.Helper()
	stack, err := sigstore.NewStack()
	if err != nil {
		t.Fatal(err)
	}
	data, err := stack.TrustedRootJSON()
	if err != nil {
		t.Fatal(err)
	}
	local, err := trust.FromJSON(data, "ConfigMap sigwatch-system/local-sigstore")
	if err != nil {
		t.Fatal(err)
	}
	other := stagingRoot
	if v.trustedRoot == stagingRoot {
		other = prodRoot
	}
	return map[string]*trust.Root{
		"local stack":        local,
		filepath.Base(other): loadRoot(t, filepath.Join(vectorsDir, other)),
	}
}

// TestTrustRootMismatchVectors: every real bundle that verifies against its own root is a
// TrustRootMismatch against another Sigstore's root, naming its log (and its CA when keyless); every
// bundle expected to fail still fails for its own reason, never as a mismatch.
func TestTrustRootMismatchVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		for name, other := range otherRoots(t, v) {
			t.Run(v.id+"/"+name, func(t *testing.T) {
				g := NewWithT(t)
				req := v.request(t)
				req.TrustRoot = other
				_, err := verify(req)
				g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
				t.Logf("%s: %v", v.expected, err)
				if v.expected == "fail" {
					g.Expect(errors.Is(err, bundleverify.ErrTrustRootMismatch)).To(BeFalse(), "a bundle that is wrong in itself is not a mismatch")
					g.Expect(err).To(MatchError(ContainSubstring("besides, its ")), "the missing parts are still said")
					return
				}
				g.Expect(err).To(MatchError(bundleverify.ErrTrustRootMismatch))
				var m *bundleverify.Mismatch
				g.Expect(errors.As(err, &m)).To(BeTrue())
				g.Expect(m.TrustRoot).To(Equal(other.Source))
				g.Expect(m.Logs).NotTo(BeEmpty())
				g.Expect(err).To(MatchError(ContainSubstring("not in the trust root " + other.Source)))
				g.Expect(err).To(MatchError(ContainSubstring("verify it against that Sigstore's trusted_root.json")))
				if v.key == "-" {
					g.Expect(m.CA).NotTo(BeNil())
					g.Expect(err).To(MatchError(ContainSubstring("certificate authority (issuer ")))
				} else {
					g.Expect(m.CA).To(BeNil(), "a key has no CA")
				}
				if v.trustedRoot == prodRoot {
					g.Expect(m.Logs[0].PublicGood).To(HavePrefix("https://"), "a public-good log is named")
				}
			})
		}
	}
}

// TestTrustRootMismatchDoesNotHideTampering: the same bundles with their signature changed, against a
// root that lacks their log and CA, are rejected for the signature, not as a mismatch.
func TestTrustRootMismatchDoesNotHideTampering(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.expected != "pass" {
			continue
		}
		for name, other := range otherRoots(t, v) {
			t.Run(v.id+"/"+name, func(t *testing.T) {
				g := NewWithT(t)
				req := v.request(t)
				req.TrustRoot = other
				req.Bundle = flipSignatureByte(t, req.Bundle)
				_, err := verify(req)
				t.Log(err)
				g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
				g.Expect(errors.Is(err, bundleverify.ErrTrustRootMismatch)).To(BeFalse())
				g.Expect(err).To(MatchError(bundleverify.ErrSignatureDoesNotVerify))
				g.Expect(err).To(MatchError(ContainSubstring("(besides, its transparency log")))
			})
		}
	}
}

// TestTrustRootMismatchOneMissingPart: the production root with its logs removed lacks only the log;
// with its CAs removed, only the CA. Both are named as the public-good Sigstore's.
func TestTrustRootMismatchOneMissingPart(t *testing.T) {
	prod := readVectorFile(t, prodRoot)
	for name, tc := range map[string]struct {
		edit func(map[string]any)
		logs int
		ca   bool
		want string
	}{
		"without its logs": {func(r map[string]any) { r["tlogs"] = []any{} }, 1, false,
			`its transparency log (keyId "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=", which the public-good Sigstore lists as https://rekor.sigstore.dev) is not in the trust root edited root`},
		"without its CAs": {func(r map[string]any) { r["certificateAuthorities"] = []any{} }, 0, true,
			`its certificate authority (issuer "CN=sigstore-intermediate,O=sigstore.dev", which the public-good Sigstore lists as https://fulcio.sigstore.dev) is not in the trust root edited root`},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			req := provenanceRequest(t)
			req.TrustRoot = editRoot(t, prod, tc.edit)
			_, err := verify(req)
			t.Log(err)
			g.Expect(err).To(MatchError(bundleverify.ErrTrustRootMismatch))
			var m *bundleverify.Mismatch
			g.Expect(errors.As(err, &m)).To(BeTrue())
			g.Expect(m.Logs).To(HaveLen(tc.logs))
			g.Expect(m.CA != nil).To(Equal(tc.ca))
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

// TestTamperedSETOfListedLogIsNotAMismatch: sigstore-go skips an entry whose signed entry timestamp does
// not verify, so a tampered SET of a log the root lists fails as "not enough verified log entries", like
// a log the root lacks. It is tampering, not a mismatch. The same SET against a root without the log
// cannot be checked by anyone: that is a mismatch.
func TestTamperedSETOfListedLogIsNotAMismatch(t *testing.T) {
	g := NewWithT(t)
	req := provenanceRequest(t)
	req.Bundle = editJSON(t, req.Bundle, func(b map[string]any) {
		entry := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
		promise := entry["inclusionPromise"].(map[string]any)
		set, err := base64.StdEncoding.DecodeString(promise["signedEntryTimestamp"].(string))
		g.Expect(err).NotTo(HaveOccurred())
		set[len(set)-1] ^= 0x01
		promise["signedEntryTimestamp"] = base64.StdEncoding.EncodeToString(set)
	})
	_, err := verify(req)
	t.Log(err)
	g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
	g.Expect(errors.Is(err, bundleverify.ErrTrustRootMismatch)).To(BeFalse())
	g.Expect(err).To(MatchError(ContainSubstring("not enough verified log entries")))

	req.TrustRoot = editRoot(t, readVectorFile(t, prodRoot), func(r map[string]any) { r["tlogs"] = []any{} })
	_, err = verify(req)
	g.Expect(err).To(MatchError(bundleverify.ErrTrustRootMismatch))
}

// TestTrustRootMismatchNeedsTheRestToCheckOut: a wrong identity or artifact, with a root that lacks the
// log and CA, fails for the identity or the artifact.
func TestTrustRootMismatchNeedsTheRestToCheckOut(t *testing.T) {
	staging := loadRoot(t, filepath.Join(vectorsDir, stagingRoot))
	for name, tc := range map[string]struct {
		edit func(*bundleverify.Request)
		want string
	}{
		"wrong identity": {func(r *bundleverify.Request) { r.Identity.CertificateIdentity = "someone@else.example" }, "certificate identity"},
		"wrong artifact": {func(r *bundleverify.Request) { r.ArtifactDigest = "sha256:" + sixtyFourZeros }, "does not verify"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			req := provenanceRequest(t)
			req.TrustRoot = staging
			tc.edit(&req)
			_, err := verify(req)
			t.Log(err)
			g.Expect(err).To(MatchError(bundleverify.ErrNotVerified))
			g.Expect(errors.Is(err, bundleverify.ErrTrustRootMismatch)).To(BeFalse())
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(err).To(MatchError(ContainSubstring("besides, its transparency log")))
		})
	}
}

const sixtyFourZeros = "0000000000000000000000000000000000000000000000000000000000000000"
