package imageref

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// Fuzz targets for what a cluster (container statuses, pod specs) and a registry hand sigwatch as image
// references. `go test` runs their seeds; `make fuzz` runs each for FUZZTIME.

// vectorDirs are where the real Sigstore test vectors are: the copy the bundleverify tests use, then
// the shared folder they were copied from. Seeds from there are skipped when neither exists.
var vectorDirs = []string{"../bundleverify/testdata", "../../../shared/vectors"}

var vectorDigestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// vectorDigests returns the sha256 digests named in the vectors' index and notes (artifact digests,
// and the cosign bundle's subject, go-containerregistry's empty.Image).
func vectorDigests(tb testing.TB) []string {
	tb.Helper()
	seen := map[string]bool{}
	var out []string
	for _, dir := range vectorDirs {
		for _, f := range []string{"public-good-bundles/INDEX.tsv", "README.md", "cosign-new-bundle/SOURCE.txt"} {
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				continue
			}
			for _, d := range vectorDigestRE.FindAllString(string(data), -1) {
				if !seen[d] {
					seen[d] = true
					out = append(out, d)
				}
			}
		}
		if len(out) > 0 {
			break
		}
	}
	if len(out) == 0 {
		tb.Log("no Sigstore test vectors found; seeding from the package's own cases only")
	}
	return out
}

// repositorySeeds are spellings of repositories from this package's tests and from issue 10's list of
// spellings that must not escape a policy.
var repositorySeeds = []string{
	"nginx", "nginx:1.27", "library/nginx", "index.docker.io/yourorg/app:v1", "docker.io/yourorg/app",
	"ghcr.io/yourorg/app:v1", "127.0.0.1:5000/team/app:latest", "localhost:5000/app",
	"registry.example.com/a/b/c/d:v2", "mirror.local/yourorg/app", "UPPER/case",
	"GHCR.IO/yourorg/app", "ghcr.io:443/yourorg/app", "ghcr.io./yourorg/app", "registry-1.docker.io/library/nginx",
	"[::1]:5000/app", "a:5000", "x/y/z:tag:more",
}

const fuzzDigest = "sha256:0f3c4fe5a5a8c7d6b3a1e2f4d5c6b7a8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"

func digestSeeds(tb testing.TB) []string {
	return append([]string{fuzzDigest, "sha256:" + strings.Repeat("A", 64), "sha512:" + strings.Repeat("a", 128), "sha256:"},
		vectorDigests(tb)...)
}

// FuzzParse: a reference that parses names a valid sha256 digest, taken verbatim from its end; the
// parsed image prints as a reference that parses to itself; its repository is normalized (normalizing
// it again changes nothing), has no tag or digest, and go-containerregistry accepts it and the
// repository@digest reference that discovery builds from it.
func FuzzParse(f *testing.F) {
	for _, r := range repositorySeeds {
		f.Add(r)
		for _, d := range digestSeeds(f) {
			f.Add(r + "@" + d)
		}
	}
	f.Add("ghcr.io/yourorg/app:v1@" + fuzzDigest + "@" + fuzzDigest)
	f.Fuzz(func(t *testing.T, ref string) {
		repo, repoErr := NormalizeRepository(ref)
		if repoErr == nil {
			checkNormalized(t, ref, repo)
		}

		img, err := Parse(ref)
		if err != nil {
			if !strings.Contains(ref, "@") && !errors.Is(err, ErrNoDigest) {
				t.Fatalf("Parse(%q) without '@': %v, want ErrNoDigest", ref, err)
			}
			return
		}
		if !ValidDigest(img.Digest) {
			t.Fatalf("Parse(%q) gave digest %q, not sha256 and 64 lower-case hex", ref, img.Digest)
		}
		if !strings.HasSuffix(ref, "@"+img.Digest) {
			t.Fatalf("Parse(%q) gave digest %q, which the reference does not end with", ref, img.Digest)
		}
		if repoErr != nil || repo != img.Repository {
			t.Fatalf("Parse(%q) gave repository %q, NormalizeRepository %q (%v)", ref, img.Repository, repo, repoErr)
		}
		checkImage(t, ref, img)
	})
}

// FuzzFromContainerStatus: an image found from a container status names a valid digest that the
// status' imageID carries (or, with no imageID, the pod spec's image pins); a bare digest takes the spec
// image's repository; a tag is never resolved; and the image round-trips through its printed form.
func FuzzFromContainerStatus(f *testing.F) {
	specs := []string{"nginx:1.27", "ghcr.io/yourorg/app:v1", "redis", "x", "app:v1", "ghcr.io/yourorg/app@" + fuzzDigest}
	for _, d := range digestSeeds(f) {
		for _, prefix := range []string{"", "docker-pullable://", "docker://", "containerd://", "docker-pullable://nginx@", "mirror.local/yourorg/app@"} {
			for _, spec := range specs {
				f.Add(prefix+d, spec)
			}
		}
		f.Add("", "ghcr.io/yourorg/app@"+d)
	}
	f.Add("docker://ghcr.io/yourorg/app:v1", "ghcr.io/yourorg/app:v1")
	f.Add("", "ghcr.io/yourorg/app:v1")
	f.Fuzz(func(t *testing.T, imageID, specImage string) {
		img, err := FromContainerStatus(imageID, specImage)
		if err != nil {
			return
		}
		if !ValidDigest(img.Digest) {
			t.Fatalf("FromContainerStatus(%q, %q) gave digest %q, not sha256 and 64 lower-case hex", imageID, specImage, img.Digest)
		}
		id := imageID
		for _, prefix := range []string{"docker-pullable://", "docker://", "containerd://"} {
			id = strings.TrimPrefix(id, prefix)
		}
		switch {
		case id == "":
			if !strings.HasSuffix(specImage, "@"+img.Digest) {
				t.Fatalf("FromContainerStatus(%q, %q) gave digest %q, which the pinned spec image does not end with", imageID, specImage, img.Digest)
			}
		case id == img.Digest:
			want, err := NormalizeRepository(specImage)
			if err != nil || want != img.Repository {
				t.Fatalf("FromContainerStatus(%q, %q): bare digest with repository %q, want the spec image's %q (%v)", imageID, specImage, img.Repository, want, err)
			}
		default:
			if !strings.HasSuffix(id, "@"+img.Digest) {
				t.Fatalf("FromContainerStatus(%q, %q) gave digest %q, which the imageID does not end with", imageID, specImage, img.Digest)
			}
		}
		checkImage(t, imageID+" | "+specImage, img)
	})
}

// patternSeeds are image patterns from this package's and the policy tests.
var patternSeeds = []string{"ghcr.io/yourorg/**", "ghcr.io/yourorg/*", "ghcr.io/yourorg/app-*", "nginx", "yourorg/*", "**", "*/x",
	"index.docker.io/library/nginx", "ghcr.io/[x", "registry.example.com/platform/*", "localhost:5000/**", `\[::1\]:5000/**`,
	"GHCR.IO:443/yourorg/**", "ghcr.io./yourorg/app", "[::1]:5000/**"}

// FuzzPattern: normalizing a normalized pattern changes nothing (as NormalizePattern promises), and a
// valid pattern matches deterministically.
func FuzzPattern(f *testing.F) {
	for _, p := range patternSeeds {
		for _, r := range repositorySeeds {
			f.Add(p, r)
		}
	}
	f.Fuzz(func(t *testing.T, pattern, ref string) {
		p := NormalizePattern(pattern)
		if again := NormalizePattern(p); again != p {
			t.Fatalf("NormalizePattern(%q) = %q, and again %q", pattern, p, again)
		}
		repo, err := NormalizeRepository(ref)
		if err == nil && ValidatePattern(p) == nil && Match(p, repo) != Match(p, repo) {
			t.Fatalf("Match(%q, %q) is not deterministic", p, repo)
		}
	})
}

// FuzzPatternCoversImage: a policy that names an image's repository as it is written, or as sigwatch
// normalizes it, covers the image however it is spelled (issue 10, finding 4: GHCR.IO/…, ghcr.io:443/…,
// ghcr.io./…, registry-1.docker.io/…, and IPv6 hosts, whose brackets must not become a character class).
func FuzzPatternCoversImage(f *testing.F) {
	for _, r := range repositorySeeds {
		f.Add(r)
		f.Add(r + ":v1@" + fuzzDigest)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		repo, err := NormalizeRepository(ref)
		if err != nil {
			return
		}
		written, _, _ := strings.Cut(ref, "@")
		if i := strings.LastIndex(written, ":"); i > strings.LastIndex(written, "/") {
			written = written[:i]
		}
		if strings.ContainsAny(written, `*?{}\`) || strings.Count(written, "[") != strings.Count(written[:min(1, len(written))], "[") {
			return // glob characters: the pattern is not a literal name (an IPv6 host's brackets are allowed)
		}
		for _, literal := range []string{written, repo} {
			lp := NormalizePattern(literal)
			if err := ValidatePattern(lp); err != nil {
				t.Fatalf("the pattern %q that names the repository %q (image %q) is refused: %v", literal, repo, ref, err)
			}
			if !Match(lp, repo) {
				t.Fatalf("the pattern %q (normalized %q) does not cover the repository %q of image %q that it names", literal, lp, repo, ref)
			}
		}
	})
}

// checkNormalized checks a repository NormalizeRepository(ref) returned.
func checkNormalized(t *testing.T, ref, repo string) {
	t.Helper()
	if again, err := NormalizeRepository(repo); err != nil || again != repo {
		t.Fatalf("NormalizeRepository(%q) = %q, and again %q (%v)", ref, repo, again, err)
	}
	if strings.Contains(repo, "@") {
		t.Fatalf("NormalizeRepository(%q) = %q, which carries a digest", ref, repo)
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		t.Fatalf("NormalizeRepository(%q) = %q, which carries a tag", ref, repo)
	}
	if !strings.Contains(repo, "/") {
		t.Fatalf("NormalizeRepository(%q) = %q, which has no registry", ref, repo)
	}
	if _, err := name.NewRepository(repo); err != nil {
		t.Fatalf("NormalizeRepository(%q) = %q, which go-containerregistry refuses: %v", ref, repo, err)
	}
}

// checkImage checks an image parsed from input.
func checkImage(t *testing.T, input string, img Image) {
	t.Helper()
	checkNormalized(t, input, img.Repository)
	again, err := Parse(img.String())
	if err != nil || again != img {
		t.Fatalf("from %q: %+v prints as %q, which parses to %+v (%v)", input, img, img.String(), again, err)
	}
	d, err := name.NewDigest(img.String())
	if err != nil {
		t.Fatalf("from %q: go-containerregistry refuses %q: %v", input, img.String(), err)
	}
	if d.DigestStr() != img.Digest {
		t.Fatalf("from %q: go-containerregistry reads the digest of %q as %q", input, img.String(), d.DigestStr())
	}
}
