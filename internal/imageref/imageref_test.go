package imageref

import (
	"errors"
	"strings"
	"testing"

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
