// Package imageref parses and normalizes image references the way sigwatch reports them: a repository
// ("registry/path", with docker.io/library/ added where Docker adds it) and a sha256 digest. Tags are
// never resolved here or anywhere else in sigwatch.
package imageref

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
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
// dropped): "nginx" -> "docker.io/library/nginx", "index.docker.io/x/y:1" -> "docker.io/x/y",
// "GHCR.IO:443/x/y" -> "ghcr.io/x/y". What it returns is in the grammar of repositoryPattern, which the
// SignedImage CRD's spec.image accepts; what a container runtime would not pull is an error.
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
	out := canonical(r.RegistryStr(), r.RepositoryStr())
	if !pullable(out) {
		return "", fmt.Errorf("invalid image repository %q: %q is not a registry host and path that a container runtime pulls from", ref, out)
	}
	return out, nil
}

// pullable reports whether a canonical repository is in the grammar of repositoryPattern, with a port
// that TCP has, and within the distribution spec's length.
func pullable(repo string) bool {
	if len(repo) > maxRepositoryLength || !repositoryRE.MatchString(repo) {
		return false
	}
	registry, _, _ := strings.Cut(repo, "/")
	if _, port, ok := splitHostPort(registry); ok {
		n, err := strconv.Atoi(port)
		return err == nil && n <= 65535 // the pattern has no leading zero, so n > 0
	}
	return true
}

// repositoryPattern is the grammar of a normalized repository: a lower-case host name or a bracketed
// IPv6 address, a port other than the default, and the path components of the distribution spec. The
// SignedImage CRD's spec.image rule (api/v1alpha1) is this expression; keep them equal.
const repositoryPattern = `^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[a-f0-9:.]+\])(:[1-9][0-9]{0,4})?(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$`

// maxRepositoryLength is the distribution spec's bound on a repository name, host included (and the
// CRD's MaxLength of spec.image).
const maxRepositoryLength = 255

var repositoryRE = regexp.MustCompile(repositoryPattern)

// dockerHubNames are the names Docker Hub is reached by: go-containerregistry's default registry, the
// host that serves its API, and its older name.
var dockerHubNames = map[string]bool{DockerHub: true, name.DefaultRegistry: true, "registry-1.docker.io": true, "registry.hub.docker.com": true}

// canonical joins a registry and a path in the one spelling that policies and running images are
// compared in: canonicalRegistry, and Docker Hub's implicit library/ before a one-component path
// (Docker's "nginx" is docker.io/library/nginx). Repositories and image patterns both go through it, so
// that a spelling matches a policy whichever side it is on.
func canonical(registry, path string) string {
	registry = canonicalRegistry(registry)
	if registry == DockerHub && path != "" && path != "**" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	return registry + "/" + path
}

// canonicalRegistry returns the one spelling of a registry "host[:port]": lower case (host names are
// case-insensitive), without the trailing dot of a fully qualified name or the default HTTPS port 443,
// a port without leading zeros, an IPv6 address in its RFC 5952 form, and Docker Hub's other names as
// docker.io. What it does not recognize (a glob in a pattern, a port that is not a number) is left as
// written, in lower case.
func canonicalRegistry(registry string) string {
	host, port, hasPort := splitHostPort(strings.ToLower(registry))
	if inner, ok := strings.CutPrefix(host, "["); ok && strings.HasSuffix(inner, "]") {
		if ip, err := netip.ParseAddr(strings.TrimSuffix(inner, "]")); err == nil && ip.Is6() && ip.Zone() == "" {
			host = "[" + ip.String() + "]"
		}
	}
	if n, err := strconv.Atoi(port); err == nil && strings.Trim(port, "0123456789") == "" && n > 0 && n <= 65535 {
		port = strconv.Itoa(n)
	}
	// Drop the dot and the port only while the host still reads as one: Docker takes a first path
	// component for a registry only if it has a dot or a colon or is localhost, so "myhost:443/app" is
	// not "myhost/app" (that is docker.io/myhost/app).
	// One trailing dot is a fully qualified name; more is not a host name, and is left as written (so
	// that normalizing twice changes nothing).
	if trimmed := strings.TrimSuffix(host, "."); !strings.HasSuffix(trimmed, ".") && (hasPort || readsAsHost(trimmed)) {
		host = trimmed
	}
	if hasPort && port == "443" && readsAsHost(host) {
		hasPort = false
	}
	if !hasPort {
		if dockerHubNames[host] {
			return DockerHub
		}
		return host
	}
	return host + ":" + port
}

// readsAsHost reports whether Docker (and go-containerregistry) read a first path component as a
// registry host rather than as a Docker Hub namespace.
func readsAsHost(s string) bool { return strings.ContainsAny(s, ".:") || s == "localhost" }

// splitHostPort splits "host:port", "[ipv6]:port", "host" or "[ipv6]".
func splitHostPort(s string) (host, port string, hasPort bool) {
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]"); i >= 0 {
			switch rest := s[i+1:]; {
			case rest == "":
				return s, "", false
			case strings.HasPrefix(rest, ":"):
				return s[:i+1], rest[1:], true
			}
		}
	}
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
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

// NormalizePattern normalizes an image glob as NormalizeRepository does a repository, with the same
// function: a pattern without a registry host refers to Docker Hub ("nginx" -> "docker.io/library/nginx",
// "yourorg/*" -> "docker.io/yourorg/*"), and a host is written in its canonical spelling
// ("GHCR.IO:443/yourorg/**" -> "ghcr.io/yourorg/**", "index.docker.io/nginx" -> "docker.io/library/nginx").
// The brackets of an IPv6 host are escaped, so that they are not a character class:
// "[::1]:5000/**" -> `\[::1\]:5000/**`. Normalizing a normalized pattern changes nothing.
func NormalizePattern(p string) string {
	first, rest, hasSlash := strings.Cut(p, "/")
	isHost := hasSlash && (readsAsHost(first) || strings.HasPrefix(first, "*"))
	switch {
	case isHost:
		return escapeIPv6(canonical(unescapeIPv6(first), rest))
	case strings.HasPrefix(p, "*"):
		return p // "**", "*": already spans registries
	default:
		return canonical(DockerHub, p)
	}
}

// unescapeIPv6 turns the escaped brackets of a normalized pattern's IPv6 host back into brackets.
func unescapeIPv6(host string) string {
	if rest, ok := strings.CutPrefix(host, `\[`); ok {
		return "[" + strings.Replace(rest, `\]`, "]", 1)
	}
	return host
}

// escapeIPv6 escapes the brackets of an IPv6 host at the start of a pattern, which doublestar would read
// as a character class. A bracket that does not enclose an IPv6 address stays a character class.
func escapeIPv6(p string) string {
	inner, ok := strings.CutPrefix(p, "[")
	if !ok {
		return p
	}
	end := strings.Index(inner, "]")
	if end < 0 {
		return p
	}
	if ip, err := netip.ParseAddr(inner[:end]); err != nil || !ip.Is6() {
		return p
	}
	return `\[` + inner[:end] + `\]` + inner[end+1:]
}

// ValidatePattern reports whether the normalized pattern p is a usable glob. Repository paths are lower
// case (the distribution spec) and NormalizePattern writes hosts in lower case, so an upper-case letter
// could never match: it is an error rather than a pattern that silently covers nothing.
func ValidatePattern(p string) error {
	if !doublestar.ValidatePattern(p) {
		return fmt.Errorf("image pattern %q is not a valid glob", p)
	}
	if strings.ToLower(p) != p {
		return fmt.Errorf("image pattern %q has upper-case letters in its path; repository paths are lower case", p)
	}
	return nil
}

// Match reports whether the normalized repository matches the normalized pattern: `*` matches within
// one path segment, `**` across segments.
func Match(pattern, repository string) bool {
	ok, err := doublestar.Match(pattern, repository)
	return err == nil && ok
}
