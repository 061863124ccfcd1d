package verification

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// multiArch is a two-platform image whose index is signed by the release workflow, and whose platform
// manifests are not signed.
func multiArch(t *testing.T, k *keyless, repo string) (index name.Digest, platforms []name.Digest) {
	t.Helper()
	index, platforms, err := k.writer.PushRandomIndex(context.Background(), repo, "linux/amd64", "linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.writer.SignBundle(context.Background(), index, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	return index, platforms
}

func (k *keyless) verifyRunning(t *testing.T, d name.Digest, indexes ...name.Digest) (PolicyResult, *Result) {
	t.Helper()
	req := Request{Image: image(t, d), Policies: []*policy.Policy{releasePolicy(t)}}
	for _, i := range indexes {
		req.Indexes = append(req.Indexes, i.DigestStr())
	}
	res := k.engine.Verify(context.Background(), req)
	if len(res.Policies) != 1 {
		t.Fatalf("want one policy result, got %+v", res.Policies)
	}
	t.Logf("%s %s: %s", res.Policies[0].Result, res.Policies[0].Reason, res.Policies[0].Message)
	return res.Policies[0], res
}

func TestPlatformDigestVerifiedThroughThePinnedIndex(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	index, platforms := multiArch(t, k, "yourorg/app")

	pr, res := k.verifyRunning(t, platforms[1], index)
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
	g.Expect(pr.Message).To(ContainSubstring("via the image index " + index.DigestStr()))
	g.Expect(res.Image.Digest).To(Equal(platforms[1].DigestStr()), "the verdict is the running digest's")
	g.Expect(res.Signatures).NotTo(BeEmpty())
	g.Expect(res.Signatures[0].SignedDigest).To(Equal(index.DigestStr()), "which digest the signature is on")

	// The index itself, as containerd reports it, is verified by its own signature.
	pr, res = k.verifyRunning(t, index)
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified))
	g.Expect(res.Signatures[0].SignedDigest).To(BeEmpty())
}

func TestPlatformDigestWithoutAPinnedIndexIsUnsigned(t *testing.T) {
	k := newKeyless(t, true)
	_, platforms := multiArch(t, k, "yourorg/app")
	pr, _ := k.verifyRunning(t, platforms[0])
	expectFailed(t, pr, sigwatchv1alpha1.SignatureMissingReason, "no signature found", "cosign sign --recursive",
		"pin the index by digest in the pod spec", "a tag is never resolved")
}

// TestPlatformDigestsOwnSignatureDecides: a platform manifest with a signature of its own is judged on it,
// even when the pinned index is signed by a trusted signer.
func TestPlatformDigestsOwnSignatureDecides(t *testing.T) {
	k := newKeyless(t, true)
	index, platforms := multiArch(t, k, "yourorg/app")
	pr := k.signAndVerify(t, platforms[0], sigstore.GitHubActions("yourorg/app", "pr.yml", "refs/pull/1/merge"), releasePolicy(t))
	expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason)
	pr, _ = k.verifyRunning(t, platforms[0], index)
	expectFailed(t, pr, sigwatchv1alpha1.UntrustedSignerReason)
	NewWithT(t).Expect(pr.Message).NotTo(ContainSubstring("via the image index"))
}

// TestPinnedIndexesThatDoNotVouch: an index that does not list the running digest, a digest that is not an
// index, an index that is not in the registry, an unsigned index and an index listing too many manifests
// never lend their signatures; each says why.
func TestPinnedIndexesThatDoNotVouch(t *testing.T) {
	k := newKeyless(t, true)
	_, platforms := multiArch(t, k, "yourorg/app")
	otherIndex, _ := multiArch(t, k, "yourorg/app")
	unsignedIndex, _, err := k.writer.PushRandomIndex(context.Background(), "yourorg/app:unsigned", "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	signedImage := k.push(t, "yourorg/app:single")
	if _, err := k.writer.SignBundle(context.Background(), signedImage, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	absent := signedImage.Context().Digest("sha256:" + strings.Repeat("ab", 32))
	huge := hugeIndex(t, k, platforms[0])
	// A registry that answers for a signed index with another index, which lists the running digest.
	substituted, _ := multiArch(t, k, "yourorg/app")
	serveIndex(k, substituted.Context(), substituted.DigestStr(), indexListing(t, 1, platforms[0]))

	for _, tc := range []struct {
		name  string
		index name.Digest
		says  string
	}{
		{"another image's signed index", otherIndex, "does not list " + platforms[0].DigestStr()},
		{"a signed single-platform image", signedImage, "not an image index"},
		{"an unsigned index that lists it", unsignedIndex, "has no signature either"},
		{"an index listing more manifests than sigwatch reads", huge, "more than the 256 sigwatch reads"},
		{"an index the registry does not have", absent, "was not used: GET manifest"},
		{"a signed index for which the registry serves other bytes", substituted, "does not match its digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running := platforms[0]
			if tc.name == "an unsigned index that lists it" {
				running = listedBy(t, k, unsignedIndex)
			}
			pr, res := k.verifyRunning(t, running, tc.index)
			expectFailed(t, pr, sigwatchv1alpha1.SignatureMissingReason, tc.says)
			NewWithT(t).Expect(res.Signatures).To(BeEmpty())
		})
	}
}

// TestPinnedIndexUnreadableIsUnknown: an index the registry cannot serve just now leaves the verdict
// unknown, never unsigned.
func TestPinnedIndexUnreadableIsUnknown(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	index, platforms := multiArch(t, k, "yourorg/app")
	k.reg.FailManifests(strings.TrimPrefix(index.DigestStr(), "sha256:"), http.StatusServiceUnavailable)
	pr, _ := k.verifyRunning(t, platforms[0], index)
	g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyUnknown), pr.Message)
	g.Expect(pr.Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))
	g.Expect(pr.Message).To(ContainSubstring("the image index " + index.DigestStr() + " pinned in the pod spec could not be read"))
}

// listedBy returns the first manifest the index lists.
func listedBy(t *testing.T, k *keyless, index name.Digest) name.Digest {
	t.Helper()
	idx, err := remote.Index(index)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return index.Context().Digest(m.Manifests[0].Digest.String())
}

// serveIndex makes the registry answer GET manifests/<digest> with body, an OCI index, whatever it holds.
func serveIndex(k *keyless, repo name.Repository, digest string, body []byte) {
	path := "/v2/" + repo.RepositoryStr() + "/manifests/" + digest
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path {
			return false
		}
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		w.Header().Set("Docker-Content-Digest", digest)
		_, _ = w.Write(body)
		return true
	})
}

// indexListing is an OCI index that lists n made-up manifests and then platform.
func indexListing(t *testing.T, n int, platform name.Digest) []byte {
	t.Helper()
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []desc `json:"manifests"`
	}{2, string(types.OCIImageIndex), nil}
	for i := range n {
		m.Manifests = append(m.Manifests, desc{string(types.OCIManifestSchema1), fmt.Sprintf("sha256:%064x", i), 100})
	}
	m.Manifests = append(m.Manifests, desc{string(types.OCIManifestSchema1), platform.DigestStr(), 100})
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// hugeIndex is a digest whose manifest, as the registry serves it, is an index listing platform among
// 300 manifests.
func hugeIndex(t *testing.T, k *keyless, platform name.Digest) name.Digest {
	t.Helper()
	body := indexListing(t, 299, platform)
	sum := sha256.Sum256(body)
	d := platform.Context().Digest("sha256:" + hex.EncodeToString(sum[:]))
	serveIndex(k, platform.Context(), d.DigestStr(), body)
	return d
}
