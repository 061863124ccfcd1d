//go:build integration

package monitoring

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/sigwatch/sigwatch/test/envtest"
)

func dashboardJSON(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "config", "grafana", "sigwatch-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDashboardConfigMap: `kubectl apply -k config/grafana` installs the dashboard as the ConfigMap that
// the Grafana sidecar loads: label grafana_dashboard "1", a fixed name, the JSON as it is in the tree.
func TestDashboardConfigMap(t *testing.T) {
	g := NewWithT(t)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(envtest.RepoRoot(), "config", "grafana"))
	g.Expect(err).NotTo(HaveOccurred(), "kustomize build config/grafana")
	g.Expect(resMap.Resources()).To(HaveLen(1))
	cm := resMap.Resources()[0]
	g.Expect(cm.GetKind()).To(Equal("ConfigMap"))
	g.Expect(cm.GetName()).To(Equal("sigwatch-grafana-dashboard"))
	g.Expect(cm.GetNamespace()).To(Equal("sigwatch-system"))
	g.Expect(cm.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
	g.Expect(cm.GetDataMap()).To(HaveKeyWithValue("sigwatch.json", string(dashboardJSON(t))))
}

// TestDashboardUsesTheDatasourceVariable: every panel and target queries ${datasource}, so that the
// dashboard works with whatever the Prometheus data source is called.
func TestDashboardUsesTheDatasourceVariable(t *testing.T) {
	g := NewWithT(t)
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	type panel struct {
		Type       string      `json:"type"`
		Title      string      `json:"title"`
		Datasource *datasource `json:"datasource"`
		Targets    []struct {
			Datasource *datasource `json:"datasource"`
		} `json:"targets"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(dashboardJSON(t)))
	g.Expect(dec.Decode(&d)).To(Succeed())
	g.Expect(d.UID).To(Equal("sigwatch"))
	g.Expect(d.SchemaVersion).To(BeNumerically(">=", 39))
	want := &datasource{Type: "prometheus", UID: "${datasource}"}
	var check func([]panel)
	check = func(panels []panel) {
		for _, p := range panels {
			if p.Type != "row" {
				g.Expect(p.Datasource).To(Equal(want), p.Title)
				g.Expect(p.Targets).NotTo(BeEmpty(), p.Title)
			}
			for _, target := range p.Targets {
				g.Expect(target.Datasource).To(Equal(want), p.Title)
			}
			check(p.Panels)
		}
	}
	check(d.Panels)
}

// TestChartDashboardIsTheSame: the Helm chart ships a copy of the dashboard; it must not drift.
func TestChartDashboardIsTheSame(t *testing.T) {
	chart := filepath.Join(envtest.RepoRoot(), "charts", "sigwatch", "dashboards", "sigwatch.json")
	data, err := os.ReadFile(chart)
	if os.IsNotExist(err) {
		t.Skipf("%s does not exist", chart)
	}
	g := NewWithT(t)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal(string(dashboardJSON(t))), "charts/sigwatch/dashboards/sigwatch.json is a copy of config/grafana/sigwatch-dashboard.json: copy it again")
}
