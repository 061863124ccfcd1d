package policyreport

import (
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// Served reads the API server's discovery: a group version it does not serve is false, one without
// namespaced policyreports false, and a failure to ask is an error, not a false.
func TestServed(t *testing.T) {
	const served = `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"wgpolicyk8s.io/v1alpha2","resources":[
		{"name":"policyreports","singularName":"policyreport","namespaced":true,"kind":"PolicyReport","verbs":["get","list","create"]},
		{"name":"clusterpolicyreports","singularName":"clusterpolicyreport","namespaced":false,"kind":"ClusterPolicyReport","verbs":["get"]}]}`
	const clusterOnly = `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"wgpolicyk8s.io/v1alpha2","resources":[
		{"name":"clusterpolicyreports","singularName":"clusterpolicyreport","namespaced":false,"kind":"ClusterPolicyReport","verbs":["get"]}]}`
	const notFound = `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"the server could not find the requested resource"}`
	for _, tc := range []struct {
		name    string
		code    int
		body    string
		want    bool
		wantErr bool
	}{
		{"served", http.StatusOK, served, true, false},
		{"not served", http.StatusNotFound, notFound, false, false},
		{"only cluster reports", http.StatusOK, clusterOnly, false, false},
		{"forbidden", http.StatusForbidden, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`, false, true},
		{"server error", http.StatusInternalServerError, "boom", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var asked string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked = r.URL.Path
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
			g.Expect(err).NotTo(HaveOccurred())
			got, err := Served(dc)
			g.Expect(asked).To(Equal("/apis/wgpolicyk8s.io/v1alpha2"))
			g.Expect(got).To(Equal(tc.want))
			if tc.wantErr {
				g.Expect(err).To(MatchError(ContainSubstring("asking the API server whether it serves wgpolicyk8s.io/v1alpha2 policyreports")))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
		})
	}
}
