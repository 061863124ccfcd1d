package image

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/sigwatch/sigwatch/test/envtest"
)

// TestDeploymentRunsTheImageEntrypoint: the manager's container in config/default sets no command, so
// that the image's entrypoint (ko's /ko-app/sigwatch) runs, and passes the subcommand as the first arg.
func TestDeploymentRunsTheImageEntrypoint(t *testing.T) {
	g := NewWithT(t)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(envtest.RepoRoot(), "config", "default"))
	g.Expect(err).NotTo(HaveOccurred())
	var deployments int
	for _, r := range resMap.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		deployments++
		data, err := r.AsYAML()
		g.Expect(err).NotTo(HaveOccurred())
		var dep appsv1.Deployment
		g.Expect(yaml.UnmarshalStrict(data, &dep)).To(Succeed())
		g.Expect(dep.Spec.Template.Spec.Containers).To(HaveLen(1))
		c := dep.Spec.Template.Spec.Containers[0]
		g.Expect(c.Command).To(BeEmpty(), "the image's entrypoint is %s", Entrypoint)
		g.Expect(c.Args).NotTo(BeEmpty())
		g.Expect(c.Args[0]).To(Equal("manager"))
	}
	g.Expect(deployments).To(Equal(1))
}

// TestKoConfig: .ko.yaml builds ./cmd/sigwatch statically, stripped, with the version, on distroless
// static nonroot, for the two release platforms. (TestMakeImage checks what ko makes of it, on a stand-in
// base: distroless cannot be pulled here.)
func TestKoConfig(t *testing.T) {
	g := NewWithT(t)
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), ".ko.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var cfg struct {
		DefaultBaseImage string   `json:"defaultBaseImage"`
		DefaultPlatforms []string `json:"defaultPlatforms"`
		Builds           []struct {
			ID      string   `json:"id"`
			Main    string   `json:"main"`
			Env     []string `json:"env"`
			Ldflags []string `json:"ldflags"`
		} `json:"builds"`
	}
	g.Expect(yaml.UnmarshalStrict(data, &cfg)).To(Succeed())
	g.Expect(cfg.DefaultBaseImage).To(Equal("gcr.io/distroless/static-debian12:nonroot"))
	g.Expect(cfg.DefaultPlatforms).To(ConsistOf("linux/amd64", "linux/arm64"))
	g.Expect(cfg.Builds).To(HaveLen(1))
	b := cfg.Builds[0]
	g.Expect(b.Main).To(Equal("./cmd/sigwatch"))
	g.Expect(b.Env).To(ContainElement("CGO_ENABLED=0"))
	const pkg = "github.com/sigwatch/sigwatch/internal/version"
	g.Expect(b.Ldflags).To(ConsistOf("-s -w", "-X "+pkg+".version={{.Env.VERSION}}",
		"-X "+pkg+".revision={{.Env.REVISION}}", "-X "+pkg+".buildDate={{.Env.BUILD_DATE}}"))
}
