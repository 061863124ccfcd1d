package imageref

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
)

const dig = "sha256:0f3c4fe5a5a8c7d6b3a1e2f4d5c6b7a8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"

func TestNormalizeRepository(t *testing.T) {
	cases := map[string]string{
		"nginx":                           "docker.io/library/nginx",
		"nginx:1.27":                      "docker.io/library/nginx",
		"library/nginx@" + dig:            "docker.io/library/nginx",
		"index.docker.io/yourorg/app:v1":  "docker.io/yourorg/app",
		"docker.io/yourorg/app":           "docker.io/yourorg/app",
		"ghcr.io/yourorg/app:v1@" + dig:   "ghcr.io/yourorg/app",
		"127.0.0.1:5000/team/app:latest":  "127.0.0.1:5000/team/app",
		"localhost:5000/app":              "localhost:5000/app",
		"registry.example.com/a/b/c/d:v2": "registry.example.com/a/b/c/d",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := NormalizeRepository(in)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(want))
		})
	}
	_, err := NormalizeRepository("UPPER/case")
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring(`"UPPER/case"`)))
}

func TestFromContainerStatus(t *testing.T) {
	cases := []struct {
		name, imageID, specImage string
		want                     Image
		wantErr                  string
	}{
		{"docker-pullable", "docker-pullable://nginx@" + dig, "nginx:1.27", Image{"docker.io/library/nginx", dig}, ""},
		{"containerd repo@digest", "ghcr.io/yourorg/app@" + dig, "ghcr.io/yourorg/app:v1", Image{"ghcr.io/yourorg/app", dig}, ""},
		{"repo differs from spec (mirror)", "mirror.local/yourorg/app@" + dig, "ghcr.io/yourorg/app:v1", Image{"mirror.local/yourorg/app", dig}, ""},
		{"bare digest takes the spec repository", dig, "ghcr.io/yourorg/app:v1", Image{"ghcr.io/yourorg/app", dig}, ""},
		{"docker:// bare digest", "docker://" + dig, "redis", Image{"docker.io/library/redis", dig}, ""},
		{"no imageID, spec pinned", "", "ghcr.io/yourorg/app@" + dig, Image{"ghcr.io/yourorg/app", dig}, ""},
		{"no imageID, spec tag only", "", "ghcr.io/yourorg/app:v1", Image{}, "never tags"},
		{"imageID without digest", "docker://ghcr.io/yourorg/app:v1", "ghcr.io/yourorg/app:v1", Image{}, "never tags"},
		{"sha512 is refused", "ghcr.io/yourorg/app@sha512:" + strings.Repeat("a", 128), "x", Image{}, "not sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := FromContainerStatus(tc.imageID, tc.specImage)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
	_, err := FromContainerStatus("", "app:v1")
	NewWithT(t).Expect(errors.Is(err, ErrNoDigest)).To(BeTrue())
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		pattern, repo string
		match         bool
	}{
		{"ghcr.io/yourorg/**", "ghcr.io/yourorg/app", true},
		{"ghcr.io/yourorg/**", "ghcr.io/yourorg/team/app", true},
		{"ghcr.io/yourorg/*", "ghcr.io/yourorg/team/app", false},
		{"ghcr.io/yourorg/*", "ghcr.io/yourorg/app", true},
		{"ghcr.io/yourorg/**", "ghcr.io/yourorgevil/app", false},
		{"ghcr.io/yourorg/app", "ghcr.io/yourorg/app-evil", false},
		{"ghcr.io/yourorg/app-*", "ghcr.io/yourorg/app-web", true},
		{"nginx", "docker.io/library/nginx", true},
		{"yourorg/*", "docker.io/yourorg/app", true},
		{"index.docker.io/library/nginx", "docker.io/library/nginx", true},
		{"127.0.0.1:*/**", "127.0.0.1:5000/a/b", true},
		{"**", "quay.io/x/y", true},
	}
	for _, tc := range cases {
		t.Run(tc.pattern+" "+tc.repo, func(t *testing.T) {
			g := NewWithT(t)
			p := NormalizePattern(tc.pattern)
			g.Expect(ValidatePattern(p)).To(Succeed())
			g.Expect(Match(p, tc.repo)).To(Equal(tc.match))
		})
	}
	NewWithT(t).Expect(ValidatePattern("ghcr.io/[a")).To(HaveOccurred())
}

// TestNormalizeRepositorySpellings: every spelling of one registry names the one canonical repository
// (finding 4 of issue 10): the host is case-insensitive, :443 is the default port, a trailing dot ends
// the same DNS name, and registry-1.docker.io / index.docker.io are Docker Hub. Different registries stay
// different.
func TestNormalizeRepositorySpellings(t *testing.T) {
	cases := []struct{ in, want string }{
		{"GHCR.IO/yourorg/app", "ghcr.io/yourorg/app"},
		{"ghcr.io:443/yourorg/app", "ghcr.io/yourorg/app"},
		{"ghcr.io./yourorg/app", "ghcr.io/yourorg/app"},
		{"Ghcr.Io.:443/yourorg/app:v1", "ghcr.io/yourorg/app"},
		{"ghcr.io:0443/yourorg/app", "ghcr.io/yourorg/app"},
		{"registry-1.docker.io/library/nginx", "docker.io/library/nginx"},
		{"registry-1.docker.io/nginx", "docker.io/library/nginx"},
		{"REGISTRY-1.DOCKER.IO:443/nginx:1.27", "docker.io/library/nginx"},
		{"index.docker.io/nginx", "docker.io/library/nginx"},
		{"index.docker.io:443/yourorg/app", "docker.io/yourorg/app"},
		{"docker.io./nginx", "docker.io/library/nginx"},
		{"DOCKER.IO/nginx", "docker.io/library/nginx"},
		{"LocalHost:5000/app", "localhost:5000/app"},
		{"[::1]:5000/team/app", "[::1]:5000/team/app"},
		{"[::1]/team/app", "[::1]/team/app"},
		{"[::1]:443/team/app", "[::1]/team/app"},
		{"[0:0:0:0:0:0:0:1]:5000/team/app", "[::1]:5000/team/app"},
		{"[FE80::A]:5000/team/app:v1", "[fe80::a]:5000/team/app"},
		{"[::ffff:102:304]:5000/team/app", "[::ffff:1.2.3.4]:5000/team/app"},
		// Other registries, not spellings of these.
		{"ghcr.io:4443/yourorg/app", "ghcr.io:4443/yourorg/app"},
		{"ghcr.io:80/yourorg/app", "ghcr.io:80/yourorg/app"},
		{"ghcr.io.evil.com/yourorg/app", "ghcr.io.evil.com/yourorg/app"},
		{"docker.io.evil/library/nginx", "docker.io.evil/library/nginx"},
		{"registry-1.docker.io:5000/nginx", "registry-1.docker.io:5000/nginx"},
		{"[::2]:5000/team/app", "[::2]:5000/team/app"},
		// A host without a dot keeps the port that marks it as a host: "myhost/app" is Docker Hub's.
		{"myhost:443/app", "myhost:443/app"},
		{"myhost.:443/app", "myhost:443/app"},
		{"myhost.:5000/app", "myhost:5000/app"},
		{"localhost.:443/app", "localhost/app"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := NormalizeRepository(tc.in)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
			again, err := NormalizeRepository(got)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(got), "the canonical form is a fixed point")
			g.Expect(got).To(MatchRegexp(repositoryPattern), "the canonical form is what the SignedImage CRD accepts")
		})
	}
}

// TestNormalizeRepositoryRejects: what a container runtime would not pull is not a repository here either,
// so that whatever NormalizeRepository returns can be written into a SignedImage.
func TestNormalizeRepositoryRejects(t *testing.T) {
	for _, in := range []string{
		"ghcr.io:/yourorg/app",                // empty port
		"ghcr.io:0/yourorg/app",               // port 0
		"ghcr.io:65536/yourorg/app",           // port out of range
		"ghcr.io../yourorg/app",               // an empty DNS label
		"-ghcr.io/yourorg/app",                // a label starting with a hyphen
		"ghcr-.io/yourorg/app",                // a label ending with a hyphen
		"ghcr_io.example/yourorg/app",         // an underscore in the host
		"[fe80::1%eth0]:5000/team/app",        // a zone
		"[::1:5000/team/app",                  // an unclosed bracket
		"[1.2.3.4]:5000/team/app",             // IPv4 in brackets
		"ghcr.io/" + strings.Repeat("a", 250), // longer than 255 characters
	} {
		t.Run(in, func(t *testing.T) {
			_, err := NormalizeRepository(in)
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}
}

// TestIPv6RoundTrips: an IPv6 registry parses, prints and parses again to the same image.
func TestIPv6RoundTrips(t *testing.T) {
	g := NewWithT(t)
	img, err := Parse("[::1]:5000/team/app:v1@" + dig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(img).To(Equal(Image{"[::1]:5000/team/app", dig}))
	g.Expect(img.String()).To(Equal("[::1]:5000/team/app@" + dig))
	again, err := Parse(img.String())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(img))
	r, err := name.NewRepository(img.Repository)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.RegistryStr()).To(Equal("[::1]:5000"), "the registry client reaches the same host")
	fromStatus, err := FromContainerStatus("containerd://[::1]:5000/team/app@"+dig, "[::1]:5000/team/app:v1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fromStatus).To(Equal(img))
}

func TestFromContainerStatusSpellings(t *testing.T) {
	cases := []struct {
		name, imageID, specImage string
		want                     Image
	}{
		{"upper-case host in the imageID", "docker-pullable://GHCR.IO/yourorg/app@" + dig, "GHCR.IO/yourorg/app:v1", Image{"ghcr.io/yourorg/app", dig}},
		{"default port in the imageID", "ghcr.io:443/yourorg/app@" + dig, "ghcr.io:443/yourorg/app:v1", Image{"ghcr.io/yourorg/app", dig}},
		{"trailing dot in the imageID", "ghcr.io./yourorg/app@" + dig, "ghcr.io./yourorg/app:v1", Image{"ghcr.io/yourorg/app", dig}},
		{"Docker Hub endpoint in the imageID", "registry-1.docker.io/library/nginx@" + dig, "nginx", Image{"docker.io/library/nginx", dig}},
		{"bare digest, spec spelled registry-1.docker.io", dig, "registry-1.docker.io/nginx:1.27", Image{"docker.io/library/nginx", dig}},
		{"no imageID, spec spelled index.docker.io:443", "", "index.docker.io:443/nginx@" + dig, Image{"docker.io/library/nginx", dig}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := FromContainerStatus(tc.imageID, tc.specImage)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestNormalizePattern(t *testing.T) {
	cases := map[string]string{
		"GHCR.IO/yourorg/**":              "ghcr.io/yourorg/**",
		"ghcr.io:443/yourorg/*":           "ghcr.io/yourorg/*",
		"ghcr.io./yourorg/**":             "ghcr.io/yourorg/**",
		"ghcr.io:4443/yourorg/**":         "ghcr.io:4443/yourorg/**",
		"docker.io/nginx":                 "docker.io/library/nginx",
		"docker.io/*":                     "docker.io/library/*",
		"docker.io/**":                    "docker.io/**",
		"registry-1.docker.io/nginx":      "docker.io/library/nginx",
		"index.docker.io:443/yourorg/*":   "docker.io/yourorg/*",
		"nginx":                           "docker.io/library/nginx",
		"yourorg/*":                       "docker.io/yourorg/*",
		"127.0.0.1:*/**":                  "127.0.0.1:*/**",
		"**":                              "**",
		"*/yourorg/**":                    "*/yourorg/**",
		"[::1]:5000/team/**":              `\[::1\]:5000/team/**`,
		"[0:0:0:0:0:0:0:1]:*/**":          `\[::1\]:*/**`,
		"[::1]:443/team/app":              `\[::1\]/team/app`,
		"registry-1.docker.io:5000/nginx": "registry-1.docker.io:5000/nginx",
		"ghcr.io.evil.com/yourorg/**":     "ghcr.io.evil.com/yourorg/**",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			g := NewWithT(t)
			got := NormalizePattern(in)
			g.Expect(got).To(Equal(want))
			g.Expect(NormalizePattern(got)).To(Equal(got), "normalizing twice changes nothing")
			g.Expect(ValidatePattern(got)).To(Succeed())
		})
	}
}

// TestSpellingsMatchTheCanonicalPattern: a running image matches a policy's glob however either is
// spelled, and what is another registry does not.
func TestSpellingsMatchTheCanonicalPattern(t *testing.T) {
	cases := []struct {
		pattern string
		image   string
		match   bool
	}{
		{"ghcr.io/yourorg/**", "GHCR.IO/yourorg/app", true},
		{"ghcr.io/yourorg/**", "ghcr.io:443/yourorg/app", true},
		{"ghcr.io/yourorg/**", "ghcr.io./yourorg/app", true},
		{"ghcr.io/yourorg/**", "Ghcr.Io.:443/yourorg/team/app", true},
		{"GHCR.IO/yourorg/**", "ghcr.io/yourorg/app", true},
		{"ghcr.io:443/yourorg/**", "ghcr.io/yourorg/app", true},
		{"ghcr.io./yourorg/**", "ghcr.io/yourorg/app", true},
		{"docker.io/library/nginx", "registry-1.docker.io/library/nginx", true},
		{"docker.io/library/nginx", "registry-1.docker.io/nginx", true},
		{"docker.io/library/nginx", "index.docker.io/nginx", true},
		{"docker.io/library/nginx", "index.docker.io:443/library/nginx", true},
		{"docker.io/library/nginx", "docker.io/nginx", true},
		{"docker.io/library/nginx", "nginx", true},
		{"docker.io/library/nginx", "DOCKER.IO./nginx", true},
		{"docker.io/nginx", "nginx", true},
		{"registry-1.docker.io/nginx", "nginx", true},
		{"docker.io/*", "nginx", true},
		{"[::1]:5000/team/**", "[::1]:5000/team/app", true},
		{"[::1]:5000/team/**", "[0:0:0:0:0:0:0:1]:5000/team/app", true},
		{"[::1]:*/**", "[::1]:5000/team/app", true},
		{"**", "[::1]:5000/team/app", true},

		{"ghcr.io/yourorg/**", "ghcr.io.evil.com/yourorg/x", false},
		{"ghcr.io/yourorg/**", "ghcr.io:4443/yourorg/x", false},
		{"ghcr.io/yourorg/**", "ghcr.io.:4443/yourorg/x", false},
		{"ghcr.io/yourorg/**", "evilghcr.io/yourorg/x", false},
		{"ghcr.io:4443/yourorg/**", "ghcr.io/yourorg/x", false},
		{"docker.io/library/nginx", "docker.io.evil/library/nginx", false},
		{"docker.io/library/nginx", "registry-1.docker.io.evil/library/nginx", false},
		{"docker.io/library/nginx", "registry-1.docker.io:5000/library/nginx", false},
		{"docker.io/library/nginx", "docker.io/yourorg/nginx", false},
		{"docker.io/library/nginx", "nginx-evil", false},
		{"docker.io/*", "yourorg/app", false},
		{"[::1]:5000/team/**", "[::2]:5000/team/app", false},
		{"[::1]:5000/team/**", "1:5000/team/app", false},
		{"[::1]:5000/team/**", "[::1]:5001/team/app", false},
	}
	for _, tc := range cases {
		t.Run(tc.pattern+" "+tc.image, func(t *testing.T) {
			g := NewWithT(t)
			repo, err := NormalizeRepository(tc.image)
			g.Expect(err).NotTo(HaveOccurred())
			p := NormalizePattern(tc.pattern)
			g.Expect(ValidatePattern(p)).To(Succeed())
			g.Expect(Match(p, repo)).To(Equal(tc.match), "pattern %q, repository %q", p, repo)
		})
	}
}
