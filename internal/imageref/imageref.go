// Package imageref parses and normalizes image references the way sigwatch reports them: a repository
// ("registry/path", with docker.io/library/ added where Docker adds it) and a sha256 digest. Tags are
// never resolved here or anywhere else in sigwatch.
package imageref

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/google/go-containerregistry/pkg/name"
)

// DockerHub is the registry that short names refer to, as Docker and Kubernetes write it.
const DockerHub = "docker.io"

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ErrNoDigest reports a reference that names a tag (or nothing) instead of a digest.
var ErrNoDigest = errors.New("the reference has no sha256 digest; sigwatch verifies digests, never tags")

// Image is a repository and a digest.
type Image struct {
	Repository string `json:"repository"` // normalized: docker.io/library/nginx, ghcr.io/yourorg/app
	Digest     string `json:"digest"`     // sha256:<64 hex>
}

// String returns repository@digest.
func (i Image) String() string { return i.Repository + "@" + i.Digest }

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex characters.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// NormalizeRepository returns the normalized repository of ref, which may carry a tag or digest (they are
// dropped): "nginx" -> "docker.io/library/nginx", "index.docker.io/x/y:1" -> "docker.io/x/y".
func NormalizeRepository(ref string) (string, error) {
	repo, _, _ := strings.Cut(ref, "@")
	// Drop a tag: a colon after the last slash.
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		return "", fmt.Errorf("invalid image repository %q: %w", ref, err)
	}
	return normalize(r), nil
}

func normalize(r name.Repository) string {
	reg := r.RegistryStr()
	if reg == name.DefaultRegistry || reg == DockerHub {
		reg = DockerHub
	}
	return reg + "/" + r.RepositoryStr()
}

// Parse parses "repo@sha256:..." (a tag between repository and digest is allowed and ignored).
func Parse(ref string) (Image, error) {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return Image{}, fmt.Errorf("%q: %w", ref, ErrNoDigest)
	}
	if !ValidDigest(digest) {
		return Image{}, fmt.Errorf("%q: digest %q is not sha256 and 64 lower-case hex characters", ref, digest)
	}
	nr, err := NormalizeRepository(repo)
	if err != nil {
		return Image{}, err
	}
	return Image{Repository: nr, Digest: digest}, nil
}

// FromContainerStatus returns the image a container runs from its status' imageID, in the forms the
// container runtimes write: "docker-pullable://repo@sha256:...", "docker://sha256:..." ,
// "repo@sha256:..." or a bare "sha256:..." whose repository is the container's image (specImage). When the
// imageID is empty and specImage is pinned by digest, that digest is used. A tag is never resolved:
// without a digest, ErrNoDigest.
func FromContainerStatus(imageID, specImage string) (Image, error) {
	id := imageID
	for _, prefix := range []string{"docker-pullable://", "docker://", "containerd://"} {
		id = strings.TrimPrefix(id, prefix)
	}
	switch {
	case id == "":
		return Parse(specImage)
	case ValidDigest(id):
		repo, err := NormalizeRepository(specImage)
		if err != nil {
			return Image{}, err
		}
		return Image{Repository: repo, Digest: id}, nil
	case strings.Contains(id, "@"):
		return Parse(id)
	default:
		return Image{}, fmt.Errorf("imageID %q of image %q: %w", imageID, specImage, ErrNoDigest)
	}
}

// NormalizePattern normalizes an image glob as NormalizeRepository does a repository: a pattern
// without a registry host refers to Docker Hub ("nginx" -> "docker.io/library/nginx",
// "yourorg/*" -> "docker.io/yourorg/*"); "index.docker.io" is written "docker.io".
func NormalizePattern(p string) string {
	first, rest, hasSlash := strings.Cut(p, "/")
	isHost := hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost")
	switch {
	case isHost && first == name.DefaultRegistry:
		return DockerHub + "/" + rest
	case isHost:
		return p
	case strings.HasPrefix(p, "*"):
		return p // "**" or "*/...": already spans registries
	case !hasSlash:
		return DockerHub + "/library/" + p
	default:
		return DockerHub + "/" + p
	}
}

// ValidatePattern reports whether p is a usable glob.
func ValidatePattern(p string) error {
	if !doublestar.ValidatePattern(p) {
		return fmt.Errorf("image pattern %q is not a valid glob", p)
	}
	return nil
}

// Match reports whether the normalized repository matches the normalized pattern: `*` matches within
// one path segment, `**` across segments.
func Match(pattern, repository string) bool {
	ok, err := doublestar.Match(pattern, repository)
	return err == nil && ok
}
