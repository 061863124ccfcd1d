//go:build integration

package image

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

// TestMakeImage builds the release image with `make image` (ko) for linux/amd64 and linux/arm64 on a
// stand-in for distroless, pushes it to a loopback registry, and reads back what a cluster would pull.
func TestMakeImage(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, true)
	base := PushBase(t, reg, LinuxAMD64, LinuxARM64)
	const version = "v0.0.0-imagetest"
	ref, took := Build(t, reg.Repo("sigwatch")+":test", base, "linux/amd64,linux/arm64", version)
	t.Logf("built and pushed %s in %s", ref, took)

	desc, err := remote.Get(ref)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(desc.MediaType.IsIndex()).To(BeTrue(), "a multi-platform image is an index, got %s", desc.MediaType)
	idx, err := desc.ImageIndex()
	g.Expect(err).NotTo(HaveOccurred())
	im, err := idx.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	var platforms []string
	for _, m := range im.Manifests {
		g.Expect(m.Platform).NotTo(BeNil(), "manifest %s has no platform", m.Digest)
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	g.Expect(platforms).To(ConsistOf("linux/amd64", "linux/arm64"))

	// The tag names the same index.
	tagged, err := remote.Head(ref.Context().Tag("test"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tagged.Digest.String()).To(Equal(ref.DigestStr()))

	for _, p := range []v1.Platform{LinuxAMD64, LinuxARM64} {
		t.Run(p.Architecture, func(t *testing.T) {
			g := NewWithT(t)
			img := ImageFor(t, ref, p)
			cfg, err := img.ConfigFile()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cfg.OS).To(Equal(p.OS))
			g.Expect(cfg.Architecture).To(Equal(p.Architecture))
			g.Expect(cfg.Config.User).To(Equal(NonrootUser), "runs as distroless's nonroot user")
			g.Expect(cfg.Config.Entrypoint).To(Equal([]string{Entrypoint}))
			g.Expect(cfg.Config.Cmd).To(BeEmpty(), "the manifests pass `manager` and its flags as args")

			// The base's layer comes first, then ko's layer with the binary.
			layers, err := img.Layers()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(len(layers)).To(BeNumerically(">=", 2))
			baseImg := ImageFor(t, base, p)
			baseLayers, err := baseImg.Layers()
			g.Expect(err).NotTo(HaveOccurred())
			got, err := layers[0].Digest()
			g.Expect(err).NotTo(HaveOccurred())
			want, err := baseLayers[0].Digest()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(want), "built on KO_DEFAULTBASEIMAGE")

			bin := Binary(t, img, t.TempDir())
			checkBinary(t, bin, p.Architecture, version)
			if p.Architecture == runtime.GOARCH {
				out, err := exec.Command(bin, "version").CombinedOutput()
				g.Expect(err).NotTo(HaveOccurred(), string(out))
				g.Expect(string(out)).To(HavePrefix("sigwatch "+version+"\n"), "internal/version set by the ldflags of .ko.yaml")
				g.Expect(string(out)).To(ContainSubstring("revision:   " + BuildRevision + "\n"))
				g.Expect(string(out)).To(ContainSubstring("build date: " + BuildDate + "\n"))
				out, err = exec.Command(bin, "--help").CombinedOutput()
				g.Expect(err).NotTo(HaveOccurred(), string(out))
				g.Expect(string(out)).To(ContainSubstring("manager"))
			}
		})
	}
}

// checkBinary checks that bin is a static (CGO_ENABLED=0), stripped (-s -w) Linux executable for arch,
// built as .ko.yaml says.
func checkBinary(t *testing.T, bin, arch, version string) {
	t.Helper()
	g := NewWithT(t)
	bi, err := buildinfo.ReadFile(bin)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bi.Path).To(Equal("github.com/sigwatch/sigwatch/cmd/sigwatch"))
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	g.Expect(settings).To(HaveKeyWithValue("CGO_ENABLED", "0"))
	g.Expect(settings).To(HaveKeyWithValue("-trimpath", "true"))
	g.Expect(settings).To(HaveKeyWithValue("GOARCH", arch))
	// With -trimpath the build info leaves out -ldflags: look for the version -X wrote in the binary.
	data, err := os.ReadFile(filepath.Clean(bin))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bytes.Contains(data, []byte(version))).To(BeTrue(), "-X .../internal/version.version=%s", version)
	f, err := elf.Open(filepath.Clean(bin))
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	g.Expect(f.Machine).To(Equal(machine))
	g.Expect(f.Type).To(Equal(elf.ET_EXEC), "a static executable, not a position-independent one")
	g.Expect(slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })).
		To(BeFalse(), "no dynamic loader: built with CGO_ENABLED=0")
	g.Expect(f.Section(".symtab")).To(BeNil(), "stripped: -ldflags -s")
	g.Expect(f.Section(".debug_info")).To(BeNil(), "no DWARF: -ldflags -w")
}
