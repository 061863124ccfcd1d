package policyreport

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var checked = metav1.NewTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))

// image is a SignedImage of namespace "team" run by one Deployment, judged by the given policies.
func image(name string, policies ...sigwatchv1alpha1.PolicyResult) sigwatchv1alpha1.SignedImage {
	return sigwatchv1alpha1.SignedImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, UID: types.UID("uid-" + name)},
		Spec:       sigwatchv1alpha1.SignedImageSpec{Image: "ghcr.io/org/" + name, Digest: digest},
		Status: sigwatchv1alpha1.SignedImageStatus{
			Policies:        policies,
			Workloads:       []sigwatchv1alpha1.WorkloadReference{{Kind: "Deployment", Name: name, Containers: []string{"app"}}},
			LastAttemptTime: &checked,
		},
	}
}

func verifiedBy(policy string) sigwatchv1alpha1.PolicyResult {
	return sigwatchv1alpha1.PolicyResult{Name: policy, Result: sigwatchv1alpha1.PolicyVerified, Reason: sigwatchv1alpha1.VerifiedReason,
		Message: "signed by the release workflow", Authority: "release", Severity: sigwatchv1alpha1.SeverityCritical}
}

func failedBy(policy string) sigwatchv1alpha1.PolicyResult {
	return sigwatchv1alpha1.PolicyResult{Name: policy, Result: sigwatchv1alpha1.PolicyFailed, Reason: sigwatchv1alpha1.UntrustedSignerReason,
		Message: "no signature by an accepted identity", Severity: sigwatchv1alpha1.SeverityCritical}
}

// only is the one result of Build over one image with one policy.
func only(t *testing.T, p sigwatchv1alpha1.PolicyResult) Result {
	t.Helper()
	reports := Build("team", []sigwatchv1alpha1.SignedImage{image("app", p)}, nil)
	if len(reports) != 1 || len(reports[0].Results) != 1 {
		t.Fatalf("want one report with one result, got %+v", reports)
	}
	return reports[0].Results[0]
}

// Each policy result becomes its report status, severity, rule and properties.
func TestResultMapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy sigwatchv1alpha1.PolicyResult
		want   Result
	}{{
		name:   "Verified is pass, at the policy's severity",
		policy: verifiedBy("prod"),
		want: Result{Result: StatusPass, Severity: "critical", Rule: "Verified", Message: "signed by the release workflow",
			Properties: map[string]string{PropertyMode: "Enforce", PropertyAuthority: "release"}},
	}, {
		name:   "Failed is fail",
		policy: failedBy("prod"),
		want: Result{Result: StatusFail, Severity: "critical", Rule: "UntrustedSigner", Message: "no signature by an accepted identity",
			Properties: map[string]string{PropertyMode: "Enforce"}},
	}, {
		name: "Unknown is error, never fail: could not verify is not unverified",
		policy: sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyUnknown, Reason: sigwatchv1alpha1.RegistryUnavailableReason,
			Message: "registry answered 503", Severity: sigwatchv1alpha1.SeverityLow, Mode: sigwatchv1alpha1.PolicyModeEnforce},
		want: Result{Result: StatusError, Severity: "low", Rule: "RegistryUnavailable", Message: "registry answered 503",
			Properties: map[string]string{PropertyMode: "Enforce"}},
	}, {
		name: "Exempt is skip, naming the exemption",
		policy: sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyExempt, Reason: sigwatchv1alpha1.ExemptReason,
			Message: "exempted until 2025-04-01", Exemption: "legacy-batch", Severity: sigwatchv1alpha1.SeverityMedium},
		want: Result{Result: StatusSkip, Severity: "medium", Rule: "Exempt", Message: "exempted until 2025-04-01",
			Properties: map[string]string{PropertyMode: "Enforce", PropertyExemption: "legacy-batch"}},
	}, {
		name: "an Audit policy's results are info, with its own severity as a property",
		policy: sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyFailed, Reason: sigwatchv1alpha1.SignatureMissingReason,
			Message: "no signature", Severity: sigwatchv1alpha1.SeverityCritical, Mode: sigwatchv1alpha1.PolicyModeAudit},
		want: Result{Result: StatusFail, Severity: SeverityInfo, Rule: "SignatureMissing", Message: "no signature",
			Properties: map[string]string{PropertyMode: "Audit", PropertyPolicySeverity: "critical"}},
	}, {
		name:   "no severity is high; no reason is the result",
		policy: sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyVerified},
		want:   Result{Result: StatusPass, Severity: "high", Rule: "Verified", Properties: map[string]string{PropertyMode: "Enforce"}},
	}, {
		name:   "a severity the CRD does not accept is high",
		policy: sigwatchv1alpha1.PolicyResult{Name: "prod", Result: sigwatchv1alpha1.PolicyFailed, Reason: "InvalidSignature", Severity: "info\"}"},
		want:   Result{Result: StatusFail, Severity: "high", Rule: "InvalidSignature", Properties: map[string]string{PropertyMode: "Enforce"}},
	}, {
		name:   "a result sigwatch does not know is error",
		policy: sigwatchv1alpha1.PolicyResult{Name: "prod", Result: "Maybe", Reason: "Pending"},
		want:   Result{Result: StatusError, Severity: "high", Rule: "Pending", Properties: map[string]string{PropertyMode: "Enforce"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			want := tc.want
			want.Source, want.Policy, want.Category, want.Scored = Source, "prod", Category, true
			want.Timestamp = &Timestamp{Seconds: checked.Unix()}
			want.Resources = []ObjectReference{{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team", Name: "app"}}
			want.Properties[PropertyImage] = "ghcr.io/org/app@" + digest
			want.Properties[PropertySignedImage] = "app"
			g.Expect(only(t, tc.policy)).To(Equal(want))
		})
	}
}

func TestSummaryCounts(t *testing.T) {
	g := NewWithT(t)
	exempt := sigwatchv1alpha1.PolicyResult{Name: "e", Result: sigwatchv1alpha1.PolicyExempt, Exemption: "x"}
	unknown := sigwatchv1alpha1.PolicyResult{Name: "u", Result: sigwatchv1alpha1.PolicyUnknown}
	reports := Build("team", []sigwatchv1alpha1.SignedImage{
		image("a", verifiedBy("p"), failedBy("q")), image("b", exempt, unknown, verifiedBy("p")),
	}, nil)
	g.Expect(reports).To(HaveLen(1))
	g.Expect(reports[0].Summary).To(Equal(Summary{Pass: 2, Fail: 1, Error: 1, Skip: 1}))
	g.Expect(reports[0].Name).To(Equal("sigwatch"))
	g.Expect(reports[0].Namespace).To(Equal("team"))
	g.Expect(reports[0].Managed).To(BeTrue())
}

// A message longer than the bound is cut before a rune, never inside one.
func TestCutMessage(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "fits", 8, "fits"},
		{"exactly n", "12345678", 8, "12345678"},
		{"ascii", "123456789", 8, "12345…"},
		{"inside a 2-byte rune", "1234é6789", 8, "1234…"},
		{"after a 2-byte rune", "123é56789", 8, "123é…"},
		{"inside a 4-byte rune", "12🔑456789", 8, "12…"},
		{"inside a 3-byte rune", "1€€€", 8, "1€…"},
		// Not UTF-8 (the API server never returns such a string, but the function does not loop on it).
		{"continuation bytes only", strings.Repeat("\x80", 20), 8, strings.Repeat("\x80", 5) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cut(tc.in, tc.n)
			if got != tc.want {
				t.Errorf("cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
			if len(got) > tc.n {
				t.Errorf("cut(%q, %d) is %d bytes", tc.in, tc.n, len(got))
			}
			if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
				t.Errorf("cut(%q, %d) = %q is not UTF-8", tc.in, tc.n, got)
			}
		})
	}

	g := NewWithT(t)
	p := failedBy("prod")
	p.Message = strings.Repeat("é", 2000) // 4000 bytes: more than the CRD allows, but a Go value may hold it
	msg := only(t, p).Message
	g.Expect(len(msg)).To(BeNumerically("<=", MaxMessageBytes))
	g.Expect(len(msg)).To(BeNumerically(">", MaxMessageBytes-utf8.UTFMax-len("…")))
	g.Expect(utf8.ValidString(msg)).To(BeTrue())
	g.Expect(msg).To(HaveSuffix("é…"))
}

// The workloads are the resources: sorted, without duplicates, with their API versions, at most
// MaxResources (the rest counted); an image no workload runs names its SignedImage.
func TestResources(t *testing.T) {
	g := NewWithT(t)
	si := image("app", failedBy("prod"))
	si.Status.Workloads = nil
	for i := 20; i > 0; i-- {
		si.Status.Workloads = append(si.Status.Workloads, sigwatchv1alpha1.WorkloadReference{Kind: "StatefulSet", Name: fmt.Sprintf("db-%02d", i)})
	}
	si.Status.Workloads = append(si.Status.Workloads,
		sigwatchv1alpha1.WorkloadReference{Kind: "CronJob", Name: "nightly"},
		sigwatchv1alpha1.WorkloadReference{Kind: "CronJob", Name: "nightly", Containers: []string{"sidecar"}}, // same workload, other container
		sigwatchv1alpha1.WorkloadReference{Kind: "Rollout", Name: "canary"},
		sigwatchv1alpha1.WorkloadReference{Kind: "Pod", Name: "debug"})
	res := Build("team", []sigwatchv1alpha1.SignedImage{si}, nil)[0].Results[0]
	g.Expect(res.Resources).To(HaveLen(MaxResources))
	g.Expect(res.Resources[0]).To(Equal(ObjectReference{APIVersion: "batch/v1", Kind: "CronJob", Namespace: "team", Name: "nightly"}))
	g.Expect(res.Resources[1]).To(Equal(ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: "team", Name: "debug"}))
	g.Expect(res.Resources[2]).To(Equal(ObjectReference{Kind: "Rollout", Namespace: "team", Name: "canary"}), "another controller's kind has no known API version")
	g.Expect(res.Resources[3]).To(Equal(ObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: "team", Name: "db-01"}))
	g.Expect(res.Resources[15].Name).To(Equal("db-13"))
	// 23 unique workloads (the CronJob twice), 16 named.
	g.Expect(res.Properties).To(HaveKeyWithValue(PropertyOmittedWorkloads, "7"))

	si.Status.Workloads = nil
	res = Build("team", []sigwatchv1alpha1.SignedImage{si}, nil)[0].Results[0]
	g.Expect(res.Resources).To(Equal([]ObjectReference{{APIVersion: "sigwatch.dev/v1alpha1", Kind: "SignedImage", Namespace: "team", Name: "app", UID: "uid-app"}}))
	g.Expect(res.Properties).NotTo(HaveKey(PropertyOmittedWorkloads))
}

// Only what was judged, of the namespace, and not being deleted, is reported.
func TestBuildSelects(t *testing.T) {
	g := NewWithT(t)
	other := image("elsewhere", failedBy("prod"))
	other.Namespace = "other"
	deleting := image("deleting", failedBy("prod"))
	deleting.DeletionTimestamp = &checked
	deleting.Finalizers = []string{"x"}
	unjudged := image("unjudged") // no policy covers it, or not verified yet
	unused := image("unused", failedBy("prod"))
	unused.Status.UnusedSince = &checked // no pod runs it; kept for the garbage collector's grace
	g.Expect(Build("team", []sigwatchv1alpha1.SignedImage{other, deleting, unjudged, unused}, nil)).To(BeEmpty(), "no results, no reports")

	reports := Build("team", []sigwatchv1alpha1.SignedImage{other, deleting, unjudged, unused, image("app", failedBy("prod"))}, nil)
	g.Expect(reports).To(HaveLen(1))
	g.Expect(reports[0].Results).To(HaveLen(1))
	g.Expect(reports[0].Results[0].Properties[PropertySignedImage]).To(Equal("app"))
}

// images are n SignedImages with one policy each, the i-th failing when fail(i).
func images(n int, fail func(int) bool) []sigwatchv1alpha1.SignedImage {
	out := make([]sigwatchv1alpha1.SignedImage, n)
	for i := range out {
		p := verifiedBy("prod")
		if fail != nil && fail(i) {
			p = failedBy("prod")
		}
		out[i] = image(fmt.Sprintf("app-%04d", i), p)
	}
	return out
}

// resultsJSON is the size of a report's results as JSON.
func resultsJSON(t *testing.T, r Report) int {
	t.Helper()
	b, err := json.Marshal(r.Results)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// All the results, in the order of the reports.
func flatten(reports []Report) []Result {
	var out []Result
	for _, r := range reports {
		out = append(out, r.Results...)
	}
	return out
}

// 1,200 small results are three reports of 500, 500 and 200, named sigwatch, sigwatch-2, sigwatch-3.
func TestChunksByCount(t *testing.T) {
	g := NewWithT(t)
	reports := Build("team", images(1200, func(i int) bool { return i%3 == 0 }), nil)
	g.Expect(reports).To(HaveLen(3))
	for i, want := range []struct {
		name  string
		count int
	}{{"sigwatch", 500}, {"sigwatch-2", 500}, {"sigwatch-3", 200}} {
		g.Expect(reports[i].Name).To(Equal(want.name))
		g.Expect(reports[i].Results).To(HaveLen(want.count))
		s := reports[i].Summary
		g.Expect(s.Pass + s.Fail).To(Equal(want.count))
		g.Expect(resultsJSON(t, reports[i])).To(BeNumerically("<=", MaxBytes))
	}
	g.Expect(reports[0].Summary.Fail + reports[1].Summary.Fail + reports[2].Summary.Fail).To(Equal(400))
	all := flatten(reports)
	g.Expect(all).To(HaveLen(1200))
	g.Expect(all[0].Properties[PropertySignedImage]).To(Equal("app-0000"))
	g.Expect(all[500].Properties[PropertySignedImage]).To(Equal("app-0500"))
	g.Expect(all[1199].Properties[PropertySignedImage]).To(Equal("app-1199"))

	g.Expect(Build("team", images(500, nil), nil)).To(HaveLen(1), "exactly MaxResults fit in one report")
	g.Expect(Build("team", images(501, nil), nil)).To(HaveLen(2))
}

// Results as large as the SignedImage API allows fill a report by bytes before they reach 500.
func TestChunksByBytes(t *testing.T) {
	g := NewWithT(t)
	var big []sigwatchv1alpha1.SignedImage
	for i := range 300 {
		si := image(fmt.Sprintf("%s-%03d", strings.Repeat("n", 240), i))
		si.Spec.Image = "registry.example.com/" + strings.Repeat("r", 230)
		si.Status.Workloads = nil
		for w := range 20 {
			si.Status.Workloads = append(si.Status.Workloads, sigwatchv1alpha1.WorkloadReference{Kind: "Deployment", Name: fmt.Sprintf("%s-%02d", strings.Repeat("w", 250), w)})
		}
		for p := range 2 {
			si.Status.Policies = append(si.Status.Policies, sigwatchv1alpha1.PolicyResult{
				Name: fmt.Sprintf("%s-%d", strings.Repeat("p", 250), p), Result: sigwatchv1alpha1.PolicyExempt, Reason: sigwatchv1alpha1.ExemptReason,
				Message: strings.Repeat("m", 1024), Exemption: strings.Repeat("x", 253), Authority: strings.Repeat("a", 63),
				Mode: sigwatchv1alpha1.PolicyModeAudit, Severity: sigwatchv1alpha1.SeverityLow,
			})
		}
		big = append(big, si)
	}
	reports := Build("team", big, nil)
	g.Expect(len(reports)).To(BeNumerically(">", 1))
	for i, r := range reports {
		g.Expect(r.Name).To(Equal(ChunkName(i)))
		g.Expect(len(r.Results)).To(BeNumerically("<", MaxResults), "the byte bound, not the count, splits these")
		g.Expect(resultsJSON(t, r)).To(BeNumerically("<=", MaxBytes))
		if i < len(reports)-1 {
			// Full: the next result would not have fitted.
			next := reports[i+1].Results[0]
			g.Expect(resultsJSON(t, r) + jsonSize(next)).To(BeNumerically(">", MaxBytes))
		}
		// The whole object, as the API server stores it, stays far below etcd's 1.5 MiB.
		u, err := New(r)
		g.Expect(err).NotTo(HaveOccurred())
		b, err := json.Marshal(u.Object)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(len(b)).To(BeNumerically("<", MaxBytes+4096))
	}
	g.Expect(flatten(reports)).To(HaveLen(600))
}

// The same SignedImages, in any order, give the same reports.
func TestBuildIsDeterministic(t *testing.T) {
	g := NewWithT(t)
	in := images(1100, func(i int) bool { return i%7 == 0 })
	for i := range in {
		in[i].Status.Policies = append(in[i].Status.Policies, failedBy("b-policy"), verifiedBy("a-policy"))
	}
	want := Build("team", in, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		shuffled := append([]sigwatchv1alpha1.SignedImage(nil), in...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for i := range shuffled {
			ps := shuffled[i].Status.Policies
			rng.Shuffle(len(ps), func(a, b int) { ps[a], ps[b] = ps[b], ps[a] })
		}
		g.Expect(Build("team", shuffled, nil)).To(Equal(want))
	}
	first := want[0].Results[:3]
	g.Expect([]string{first[0].Policy, first[1].Policy, first[2].Policy}).To(Equal([]string{"a-policy", "b-policy", "prod"}))
}

// readBack is what the API server returns of the objects written from reports: JSON, then
// unstructured, then a Report again.
func readBack(t *testing.T, reports []Report) []Report {
	t.Helper()
	var out []Report
	for i, r := range reports {
		u, err := New(r)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		back := &unstructured.Unstructured{}
		if err := back.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		back.SetResourceVersion(fmt.Sprint(100 + i))
		got, err := FromUnstructured(back)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	return out
}

// Reverifying with the same outcomes writes nothing: the reports read back equal the ones built again,
// whose results keep the times their verdicts were first found.
func TestUnchangedWritesNothing(t *testing.T) {
	g := NewWithT(t)
	in := images(1200, func(i int) bool { return i%5 == 0 })
	in[3].Status.Workloads = nil // names its SignedImage, with a UID
	existing := readBack(t, Build("team", in, nil))
	g.Expect(existing).To(HaveLen(3))

	later := metav1.NewTime(checked.Add(time.Hour))
	for i := range in {
		in[i].Status.LastAttemptTime = &later
	}
	again := Build("team", in, existing)
	g.Expect(again[0].Results[0].Timestamp).To(Equal(&Timestamp{Seconds: checked.Unix()}), "the time the verdict was found, not the last check")
	p := Diff(existing, again)
	g.Expect(p.Empty()).To(BeTrue(), "plan %+v", p)
	for i := range existing {
		g.Expect(Changed(existing[i], again[i])).To(BeFalse())
	}

	// One verdict changes: only its report is written, and its result has the new time.
	in[701].Status.Policies = []sigwatchv1alpha1.PolicyResult{failedBy("prod")}
	g.Expect(existing[1].Results[201].Properties[PropertySignedImage]).To(Equal("app-0701"))
	g.Expect(existing[1].Results[201].Result).To(Equal(StatusPass), "the test must change a verdict")
	changed := Build("team", in, existing)
	p = Diff(existing, changed)
	g.Expect(p.Create).To(BeEmpty())
	g.Expect(p.Delete).To(BeEmpty())
	g.Expect(p.Update).To(HaveLen(1))
	g.Expect(p.Update[0].Name).To(Equal("sigwatch-2"))
	g.Expect(p.Update[0].ResourceVersion).To(Equal("101"))
	g.Expect(p.Update[0].Results[201].Result).To(Equal(StatusFail))
	g.Expect(p.Update[0].Results[201].Timestamp).To(Equal(&Timestamp{Seconds: later.Unix()}))
	g.Expect(p.Update[0].Results[200].Timestamp).To(Equal(&Timestamp{Seconds: checked.Unix()}))
	g.Expect(p.Update[0].Summary.Fail).To(Equal(existing[1].Summary.Fail + 1))
}

func TestDiff(t *testing.T) {
	one := func(name string, managed bool, rv string, results ...Result) Report {
		r := Report{Namespace: "team", Name: name, Managed: managed, ResourceVersion: rv, Results: results}
		for _, res := range results {
			r.Summary.add(res.Result)
		}
		return r
	}
	pass := Result{Policy: "p", Result: StatusPass, Properties: map[string]string{PropertySignedImage: "a"}}
	fail := Result{Policy: "p", Result: StatusFail, Properties: map[string]string{PropertySignedImage: "a"}}
	for _, tc := range []struct {
		name              string
		existing, desired []Report
		want              Plan
	}{{
		name:    "nothing exists: create",
		desired: []Report{one("sigwatch", true, "", pass), one("sigwatch-2", true, "", fail)},
		want:    Plan{Create: []Report{one("sigwatch", true, "", pass), one("sigwatch-2", true, "", fail)}},
	}, {
		name:     "the same: nothing",
		existing: []Report{one("sigwatch", true, "7", pass)},
		desired:  []Report{one("sigwatch", true, "", pass)},
	}, {
		name:     "a result changed: update, with the existing resourceVersion",
		existing: []Report{one("sigwatch", true, "7", pass)},
		desired:  []Report{one("sigwatch", true, "", fail)},
		want:     Plan{Update: []Report{one("sigwatch", true, "7", fail)}},
	}, {
		name:     "the same results with a wrong summary: update",
		existing: []Report{{Namespace: "team", Name: "sigwatch", Managed: true, ResourceVersion: "7", Results: []Result{pass}}},
		desired:  []Report{one("sigwatch", true, "", pass)},
		want:     Plan{Update: []Report{one("sigwatch", true, "7", pass)}},
	}, {
		name:     "fewer chunks: delete the surplus ones, in order",
		existing: []Report{one("sigwatch-3", true, "9", pass), one("sigwatch", true, "7", pass), one("sigwatch-2", true, "8", pass)},
		desired:  []Report{one("sigwatch", true, "", pass)},
		want:     Plan{Delete: []string{"sigwatch-2", "sigwatch-3"}},
	}, {
		name:     "no results: delete every chunk",
		existing: []Report{one("sigwatch", true, "7", pass)},
		want:     Plan{Delete: []string{"sigwatch"}},
	}, {
		name: "reports without the label, or with a name sigwatch does not give, are never deleted",
		existing: []Report{one("sigwatch-2", false, "8", pass), one("kyverno-abc", false, "1"), one("sigwatch-02", true, "2"),
			one("sigwatch-1", true, "3"), one("sigwatch-x", true, "4"), one("sigwatch-3", true, "5")},
		want: Plan{Delete: []string{"sigwatch-3"}},
	}, {
		name:     "a desired name held by a report without the label: a conflict, not written",
		existing: []Report{one("sigwatch", false, "7", fail)},
		desired:  []Report{one("sigwatch", true, "", pass), one("sigwatch-2", true, "", pass)},
		want:     Plan{Create: []Report{one("sigwatch-2", true, "", pass)}, Conflict: []string{"sigwatch"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got := Diff(tc.existing, tc.desired)
			g.Expect(got).To(Equal(tc.want))
			g.Expect(got.Empty()).To(Equal(len(tc.want.Create)+len(tc.want.Update)+len(tc.want.Delete) == 0))
		})
	}
}

func TestChunkNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect([]string{ChunkName(0), ChunkName(1), ChunkName(9)}).To(Equal([]string{"sigwatch", "sigwatch-2", "sigwatch-10"}))
	for i := range 1000 {
		g.Expect(IsChunkName(ChunkName(i))).To(BeTrue(), ChunkName(i))
	}
	for _, name := range []string{"sigwatch-1", "sigwatch-0", "sigwatch-02", "sigwatch-", "sigwatch--2", "sigwatch-+2", "sigwatch-2a", "sigwatchx", "kyverno", "xsigwatch-2", ""} {
		g.Expect(IsChunkName(name)).To(BeFalse(), name)
	}
}

// Objects round-trip, the label is set without dropping others', and a report whose content cannot
// be read is rewritten rather than trusted.
func TestObjects(t *testing.T) {
	g := NewWithT(t)
	r := Build("team", []sigwatchv1alpha1.SignedImage{image("app", failedBy("prod"))}, nil)[0]
	u, err := New(r)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u.GetAPIVersion()).To(Equal("wgpolicyk8s.io/v1alpha2"))
	g.Expect(u.GetKind()).To(Equal("PolicyReport"))
	g.Expect(u.GetLabels()).To(Equal(map[string]string{ManagedByLabel: ManagedByValue}))

	existing := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
		"metadata": map[string]any{"name": "sigwatch", "namespace": "team", "resourceVersion": "5",
			"labels": map[string]any{ManagedByLabel: ManagedByValue, "team": "payments"}, "annotations": map[string]any{"note": "kept"}},
		"summary": map[string]any{"pass": "many"}, "results": "not a list",
	}}
	got, err := FromUnstructured(existing)
	g.Expect(err).To(HaveOccurred())
	g.Expect(got.Name).To(Equal("sigwatch"))
	g.Expect(got.Managed).To(BeTrue())
	p := Diff([]Report{got}, []Report{r})
	g.Expect(p.Update).To(HaveLen(1), "an unreadable managed report is rewritten")
	g.Expect(p.Update[0].ResourceVersion).To(Equal("5"))

	g.Expect(ApplyTo(existing, p.Update[0])).To(Succeed())
	g.Expect(existing.GetLabels()).To(Equal(map[string]string{ManagedByLabel: ManagedByValue, "team": "payments"}))
	g.Expect(existing.GetAnnotations()).To(Equal(map[string]string{"note": "kept"}))
	back, err := FromUnstructured(existing)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(Changed(back, r)).To(BeFalse())
}

func TestMode(t *testing.T) {
	for _, s := range []string{"", "on", "True", "yes", "auto "} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) succeeded", s)
		}
	}
	for _, tc := range []struct {
		mode    string
		served  bool
		enabled bool
		fails   bool
		why     string
	}{
		{"auto", true, true, false, "the API server serves wgpolicyk8s.io/v1alpha2 policyreports"},
		{"auto", false, false, false, "the API server does not serve wgpolicyk8s.io/v1alpha2 policyreports (install the CRD and restart to write them)"},
		{"true", true, true, false, "--policy-reports=true"},
		{"true", false, false, true, ""},
		{"false", true, false, false, "--policy-reports=false"},
		{"false", false, false, false, "--policy-reports=false"},
	} {
		t.Run(fmt.Sprintf("%s/served=%v", tc.mode, tc.served), func(t *testing.T) {
			g := NewWithT(t)
			m, err := ParseMode(tc.mode)
			g.Expect(err).NotTo(HaveOccurred())
			enabled, why, err := m.Enabled(tc.served)
			g.Expect(enabled).To(Equal(tc.enabled))
			g.Expect(why).To(Equal(tc.why))
			if tc.fails {
				g.Expect(err).To(MatchError(ContainSubstring("install the PolicyReport CRD")))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
		})
	}
}
