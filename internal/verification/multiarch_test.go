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
// index, an unsigned index and an index listing too many manifests never lend their signatures; each says
// why.
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
	huge := hugeIndex(t, k, platforms[0])

	for _, tc := range []struct {
		name  string
		index name.Digest
		says  string
	}{
		{"another image's signed index", otherIndex, "does not list " + platforms[0].DigestStr()},
		{"a signed single-platform image", signedImage, "not an image index"},
		{"an unsigned index that lists it", unsignedIndex, "has no signature either"},
		{"an index listing more manifests than sigwatch reads", huge, "more than the 256 sigwatch reads"},
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

// TestPinnedIndexUnreadableIsUnknown: an index the registry cannot serve just now, answers for with
// other bytes, or says it does not have (a pod runs from it), leaves the verdict unknown, never unsigned;
// unless another pinned index satisfies the policy.
func TestPinnedIndexUnreadableIsUnknown(t *testing.T) {
	k := newKeyless(t, true)
	index, platforms := multiArch(t, k, "yourorg/app")
	failing, _ := multiArch(t, k, "yourorg/app")
	k.reg.FailManifests(strings.TrimPrefix(failing.DigestStr(), "sha256:"), http.StatusServiceUnavailable)
	substituted, _ := multiArch(t, k, "yourorg/app")
	serveIndex(k, substituted.Context(), substituted.DigestStr(), indexListing(t, 1, platforms[0]))
	absent := index.Context().Digest("sha256:" + strings.Repeat("ab", 32))
	for _, tc := range []struct {
		name  string
		index name.Digest
		says  string
	}{
		{"the registry fails", failing, "could not be read"},
		{"the registry serves other bytes", substituted, "does not match its digest"},
		{"the registry does not have it", absent, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pr, _ := k.verifyRunning(t, platforms[0], tc.index)
			g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyUnknown), pr.Message)
			g.Expect(pr.Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))
			g.Expect(pr.Message).To(And(ContainSubstring("the image index "+tc.index.DigestStr()+" pinned in the pod spec could not be read"),
				ContainSubstring(tc.says)))

			// Another pinned index that lists it and is signed settles it.
			pr, _ = k.verifyRunning(t, platforms[0], tc.index, index)
			g.Expect(pr.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), pr.Message)
		})
	}
}

// TestBestPinnedIndexDecides: an index with an untrusted signature pinned before one with a trusted
// signature does not hide it, and the Content-Type a registry sends does not decide what an index is.
func TestBestPinnedIndexDecides(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	untrusted, platforms, err := k.writer.PushRandomIndex(context.Background(), "yourorg/app:pr", "linux/amd64", "linux/arm64")
	g.Expect(err).NotTo(HaveOccurred())
	pr := &sigstore.KeylessSigner{Stack: k.stack, Identity: sigstore.GitHubActions("yourorg/app", "pr.yml", "refs/pull/1/merge")}
	_, err = k.writer.SignBundle(context.Background(), untrusted, pr, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	// The same platform manifests, in an index the release workflow signed.
	trusted := pushIndexOf(t, k, untrusted, platforms)

	lower, higher := untrusted, trusted
	if trusted.DigestStr() < untrusted.DigestStr() {
		lower, higher = trusted, untrusted
	}
	for _, order := range [][]name.Digest{{lower, higher}, {higher, lower}} {
		res, _ := k.verifyRunning(t, platforms[0], order...)
		g.Expect(res.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), res.Message)
		g.Expect(res.Message).To(ContainSubstring(trusted.DigestStr()))
	}

	// A registry that labels the signed index an image manifest: the bytes, which the digest covers, say
	// it is an index.
	body := rawIndex(t, trusted)
	trustedPath := "/v2/" + trusted.Context().RepositoryStr() + "/manifests/" + trusted.DigestStr()
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != trustedPath {
			return false
		}
		w.Header().Set("Content-Type", string(types.DockerManifestSchema2))
		_, _ = w.Write(body)
		return true
	})
	res, _ := k.verifyRunning(t, platforms[0], trusted)
	g.Expect(res.Result).To(Equal(sigwatchv1alpha1.PolicyVerified), res.Message)
}

// pushIndexOf pushes, under the tag "release", the index of the given platforms (those of like), and signs
// it as the release workflow.
func pushIndexOf(t *testing.T, k *keyless, like name.Digest, platforms []name.Digest) name.Digest {
	t.Helper()
	idx, err := remote.Index(like)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	m.Annotations = map[string]string{"org.example.release": "true"} // another digest, the same platforms
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(like.Context().Tag("release"), rawManifest{body, types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	d := like.Context().Digest("sha256:" + hex.EncodeToString(sum[:]))
	if _, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	return d
}

func rawIndex(t *testing.T, d name.Digest) []byte {
	t.Helper()
	idx, err := remote.Index(d)
	if err != nil {
		t.Fatal(err)
	}
	b, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawManifest is a manifest pushed as it is.
type rawManifest struct {
	body []byte
	mt   types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.body, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// TestIndexFallbackPerPolicy: a policy under which the platform digest is unsigned takes the pinned
// index's verdict even when another policy's verdict is something else.
func TestIndexFallbackPerPolicy(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	index, platforms := multiArch(t, k, "yourorg/app")
	// A key policy whose signatures live in another repository, which the registry cannot serve.
	other := identityPolicy(t, sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release}, sigwatchv1alpha1.TransparencyLogRequired)
	other.Name, other.SignatureRepository = "elsewhere", k.reg.Host+"/signatures"
	k.reg.FailManifests("/signatures/", http.StatusServiceUnavailable)
	res := k.engine.Verify(context.Background(), Request{Image: image(t, platforms[0]), Policies: []*policy.Policy{releasePolicy(t), other},
		Indexes: []string{index.DigestStr()}})
	byName := map[string]PolicyResult{}
	for _, p := range res.Policies {
		byName[p.Policy] = p
	}
	g.Expect(byName["release"].Result).To(Equal(sigwatchv1alpha1.PolicyVerified), byName["release"].Message)
	g.Expect(byName["elsewhere"].Result).To(Equal(sigwatchv1alpha1.PolicyUnknown), byName["elsewhere"].Message)
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
