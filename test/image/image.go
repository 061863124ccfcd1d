// Package image builds sigwatch's container image as a release does, `make image` with ko, into a
// loopback registry, and reads it back: for the image tests, and for the dogfood test that signs the image
// keyless and verifies it with the sample policy for sigwatch's own image.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

const (
	// Entrypoint is where ko puts the binary, and what the image runs.
	Entrypoint = "/ko-app/sigwatch"
	// NonrootUser is the user of distroless's nonroot images, which the image keeps from its base.
	NonrootUser = "65532"
	// BuildTimeout bounds `make image`: the cold cross-compile of the whole binary for two platforms takes
	// minutes on 2 cores (and ko itself is built first if bin/ko is missing or stale).
	BuildTimeout = 30 * time.Minute
)

// Platforms of the release image, as `make image` builds them by default.
var (
	LinuxAMD64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	LinuxARM64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// PushBase pushes to HOST/base:latest a small image index that stands in for distroless static nonroot,
// which cannot be pulled here: for each platform, an OCI image whose config runs as user 65532, with one
// small layer holding /etc/passwd. It returns the index's digest reference.
func PushBase(t testing.TB, reg *testregistry.Registry, platforms ...v1.Platform) name.Digest {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(passwdTar(t))), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			t.Fatalf("base layer: %v", err)
		}
		img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
			OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
			Config: v1.Config{
				User:       NonrootUser,
				WorkingDir: "/home/nonroot",
				Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			},
		})
		if err != nil {
			t.Fatalf("base config: %v", err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatalf("base layer: %v", err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	tag, err := name.NewTag(reg.Repo("base")+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatalf("pushing the base image: %v", err)
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Digest(h.String())
}

// passwdTar is a layer with distroless's /etc/passwd, so that user 65532 has a name and a home.
func passwdTar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	passwd := []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	for _, h := range []*tar.Header{
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))},
		{Name: "home/nonroot/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 65532, Gid: 65532},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(passwd); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The revision and build date that Build stamps into the binary (make image's REVISION and BUILD_DATE).
const (
	BuildRevision = "0123456789abcdef0123456789abcdef01234567"
	BuildDate     = "2026-01-02T03:04:05Z"
)

// Build runs `make image IMG=img` in the repository root with base as KO_DEFAULTBASEIMAGE, for platforms
// ("linux/amd64,linux/arm64") and with version as the binary's version (and BuildRevision and
// BuildDate as its revision and build date), and returns the digest reference
// that make image prints (marked insecure: the registry is plain HTTP on loopback) and how long it took.
// ko speaks plain HTTP to 127.0.0.1 registries by itself. The make and ko environment is the test's, less
// what would change the build: an outer make's MAKEFLAGS, ko's KO_* variables and registry credentials.
func Build(t testing.TB, img string, base name.Reference, platforms, version string) (name.Digest, time.Duration) {
	t.Helper()
	timeout := BuildTimeout
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok && time.Until(deadline)-30*time.Second < timeout {
			timeout = time.Until(deadline) - 30*time.Second // fail with make's output rather than go test's panic
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "image",
		"IMG="+img, "KO_DEFAULTBASEIMAGE="+base.String(), "KO_PLATFORMS="+platforms, "VERSION="+version,
		"REVISION="+BuildRevision, "BUILD_DATE="+BuildDate)
	cmd.Dir = envtest.RepoRoot()
	cmd.Env = append(buildEnv(), "DOCKER_CONFIG="+t.TempDir())
	cmd.WaitDelay = 10 * time.Second
	began := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(began)
	if ctx.Err() != nil {
		t.Fatalf("make image: no result after %s (a cold build for %s; is go test's -timeout long enough?):\n%s", timeout, platforms, out)
	}
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(line, "pushed "); ok {
			ref, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			d, err := name.NewDigest(ref, name.Insecure)
			if err != nil {
				t.Fatalf("make image printed %q: %v", line, err)
			}
			t.Logf("make image for %s took %s: %s", platforms, took.Round(time.Second), strings.TrimSpace(line))
			return d, took
		}
	}
	t.Fatalf("make image printed no \"pushed REF\" line:\n%s", out)
	return name.Digest{}, took
}

func buildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "MAKEFLAGS", k == "MFLAGS", k == "MAKELEVEL", k == "DOCKER_CONFIG", k == "VERSION", k == "REVISION", k == "BUILD_DATE",
			strings.HasPrefix(k, "KO_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Binary writes the sigwatch binary of img, read from its layers, to dir and returns its path.
func Binary(t testing.TB, img v1.Image, dir string) string {
	t.Helper()
	data := File(t, img, Entrypoint)
	if data == nil {
		t.Fatalf("the image has no %s", Entrypoint)
	}
	path := filepath.Join(dir, "sigwatch")
	if err := os.WriteFile(path, data, 0o755); err != nil { //nolint:gosec // an executable
		t.Fatal(err)
	}
	return path
}

// File returns the contents of the regular file at path in img's flattened file system, nil if there is
// none.
func File(t testing.TB, img v1.Image, path string) []byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	want := strings.TrimPrefix(path, "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			t.Fatalf("reading the image's layers: %v", err)
		}
		if strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/") == want && h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// ImageFor returns the image of ref for platform: ref itself if it is an image, else the index's
// manifest for the platform (os and architecture).
func ImageFor(t testing.TB, ref name.Digest, platform v1.Platform) v1.Image {
	t.Helper()
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS == platform.OS && m.Platform.Architecture == platform.Architecture {
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("%s has no image for %s/%s", ref, platform.OS, platform.Architecture)
	return nil
}
