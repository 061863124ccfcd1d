package registry

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
)

func dockerConfig(host, user, pass string) string {
	return fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

func basicOf(g *WithT, kc authn.Keychain, repo string) *authn.AuthConfig {
	r, err := name.NewRepository(repo)
	g.Expect(err).NotTo(HaveOccurred())
	a, err := kc.Resolve(r)
	g.Expect(err).NotTo(HaveOccurred())
	cfg, err := a.Authorization()
	g.Expect(err).NotTo(HaveOccurred())
	return cfg
}

// writeMounted writes the file as the kubelet updates a mounted Secret: the new content in a new
// directory, then the ..data symlink swapped, the file itself a symlink through it.
func writeMounted(t *testing.T, dir, content string, version int) {
	t.Helper()
	data := filepath.Join(dir, fmt.Sprintf("..v%d", version))
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "config.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(data), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "config.json")); err != nil {
		if err := os.Symlink(filepath.Join("..data", "config.json"), filepath.Join(dir, "config.json")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConfigFileFollowsMountedSecret: the file's credentials are used for its registry only, and an
// update of the mounted Secret (the kubelet's symlink swap) is picked up by the next Load, with a new
// version; an unchanged file keeps its version.
func TestConfigFileFollowsMountedSecret(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writeMounted(t, dir, dockerConfig("registry.example.com", "robot", "one"), 1)
	f := NewConfigFile(filepath.Join(dir, "config.json"))

	kc, v1, err := f.Load()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(basicOf(g, kc, "registry.example.com/team/app")).To(Equal(&authn.AuthConfig{Username: "robot", Password: "one"}))
	g.Expect(basicOf(g, kc, "other.example.com/team/app")).To(Equal(&authn.AuthConfig{}), "another registry gets no credentials")
	_, again, _ := f.Load()
	g.Expect(again).To(Equal(v1))

	writeMounted(t, dir, dockerConfig("registry.example.com", "robot", "two"), 2)
	kc, v2, err := f.Load()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v2).NotTo(Equal(v1))
	g.Expect(basicOf(g, kc, "registry.example.com/team/app").Password).To(Equal("two"))
}

// TestConfigFileAbsentIsNoCredentials: the Secret is mounted as optional; without it there are no
// credentials, and no error. Once it appears, it is used.
func TestConfigFileAbsentIsNoCredentials(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "config.json")
	f := NewConfigFile(path)
	kc, v, err := f.Load()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v).To(Equal("absent"))
	g.Expect(basicOf(g, kc, "registry.example.com/app")).To(Equal(&authn.AuthConfig{}))

	g.Expect(os.WriteFile(path, []byte(dockerConfig("registry.example.com", "u", "p")), 0o600)).To(Succeed())
	kc, v, err = f.Load()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v).NotTo(Equal("absent"))
	g.Expect(basicOf(g, kc, "registry.example.com/app").Username).To(Equal("u"))
}

// TestConfigFileRefusesBadContent: too large, not JSON, or JSON without "auths": an error naming the
// file, until the file is fixed.
func TestConfigFileRefusesBadContent(t *testing.T) {
	for name, content := range map[string]string{
		"too large":  `{"auths":{},"pad":"` + strings.Repeat("x", MaxConfigFileBytes) + `"}`,
		"not JSON":   `auths: {}`,
		"no auths":   `{"registry.example.com":{"auth":"dTpw"}}`,
		"auths list": `{"auths":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			path := filepath.Join(t.TempDir(), "config.json")
			g.Expect(os.WriteFile(path, []byte(content), 0o600)).To(Succeed())
			f := NewConfigFile(path)
			_, _, err := f.Load()
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(path))

			g.Expect(os.WriteFile(path, []byte(dockerConfig("registry.example.com", "u", "p")), 0o600)).To(Succeed())
			// A rewrite may keep the size and, on coarse clocks, the modification time: touch it forward.
			later := time.Now().Add(time.Hour)
			g.Expect(os.Chtimes(path, later, later)).To(Succeed())
			_, _, err = f.Load()
			g.Expect(err).NotTo(HaveOccurred(), "fixed, it is read again")
		})
	}
}
