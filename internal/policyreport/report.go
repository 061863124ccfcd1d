// Package policyreport turns SignedImage verdicts into wgpolicyk8s.io/v1alpha2 PolicyReports, the
// Kubernetes Policy WG's report format that Kyverno, Kubewarden and Trivy Operator write and Policy
// Reporter shows: one report per namespace (split in chunks of bounded size), one result per (image
// digest, policy). It is plain Go: the reconciler lists, this package decides, the reconciler writes.
//
// The report types are small local structs with the upstream CRD's JSON names
// (config/crd/policyreport): the upstream Go types live in modules (sigs.k8s.io/wg-policy-prototypes,
// Kyverno's api) that pull in old or large dependency graphs for four structs.
package policyreport

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// Group, Version and Kind of the reports sigwatch writes.
	Group   = "wgpolicyk8s.io"
	Version = "v1alpha2"
	Kind    = "PolicyReport"
	// Resource is the plural the API server serves them as.
	Resource = "policyreports"

	// Name is the name of a namespace's first report; the next are Name-2, Name-3…
	Name = "sigwatch"
	// ManagedByLabel with ManagedByValue marks the reports sigwatch writes (and deletes).
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "sigwatch"
	// Source is every result's source (the policy engine).
	Source = "sigwatch"
	// Category is every result's category: the one Kyverno's image verification policies use, so
	// that Policy Reporter shows sigwatch's results next to theirs.
	Category = "Software Supply Chain Security"
)

// GroupVersionKind is the reports' GroupVersionKind.
var GroupVersionKind = schema.GroupVersionKind{Group: Group, Version: Version, Kind: Kind}

// Report is one PolicyReport, as far as sigwatch writes it.
type Report struct {
	// Namespace and Name of the report.
	Namespace, Name string
	// ResourceVersion of an existing report (empty for a new one).
	ResourceVersion string
	// Managed says whether the report carries sigwatch's managed-by label.
	Managed bool
	Summary Summary
	Results []Result
}

// Summary counts the results by status.
type Summary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// Result is one policy's verdict on one image digest.
type Result struct {
	Source     string            `json:"source,omitempty"`
	Policy     string            `json:"policy"`
	Rule       string            `json:"rule,omitempty"`
	Category   string            `json:"category,omitempty"`
	Severity   string            `json:"severity,omitempty"`
	Timestamp  *Timestamp        `json:"timestamp,omitempty"`
	Result     string            `json:"result,omitempty"`
	Scored     bool              `json:"scored,omitempty"`
	Message    string            `json:"message,omitempty"`
	Resources  []ObjectReference `json:"resources,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

// Timestamp is the protobuf-style time the CRD stores (seconds and nanos since the epoch, UTC).
type Timestamp struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

// ObjectReference is a resource a result is about (the CRD's core/v1 ObjectReference, the fields used).
type ObjectReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
	UID        string `json:"uid,omitempty"`
}

// content is the part of a report sigwatch owns.
type content struct {
	Summary Summary  `json:"summary"`
	Results []Result `json:"results,omitempty"`
}

// New is the object that creates the report.
func New(r Report) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(GroupVersionKind)
	u.SetNamespace(r.Namespace)
	u.SetName(r.Name)
	if err := ApplyTo(u, r); err != nil {
		return nil, err
	}
	return u, nil
}

// ApplyTo writes the report's content (label, summary, results) into an existing object, leaving its
// other metadata (other labels, annotations) as they are.
func ApplyTo(u *unstructured.Unstructured, r Report) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&content{Summary: r.Summary, Results: r.Results})
	if err != nil {
		return fmt.Errorf("PolicyReport %s/%s: %w", r.Namespace, r.Name, err)
	}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedByValue
	u.SetLabels(labels)
	u.Object["summary"] = m["summary"]
	if results, ok := m["results"]; ok {
		u.Object["results"] = results
	} else {
		delete(u.Object, "results")
	}
	return nil
}

// FromUnstructured reads an existing report. When its summary or results cannot be read (someone
// wrote them by hand), it returns the report without them and the error: a managed report in that
// state differs from any desired one, so it is rewritten.
func FromUnstructured(u *unstructured.Unstructured) (Report, error) {
	r := Report{Namespace: u.GetNamespace(), Name: u.GetName(), ResourceVersion: u.GetResourceVersion(),
		Managed: u.GetLabels()[ManagedByLabel] == ManagedByValue}
	var c content
	part := map[string]any{}
	for _, k := range []string{"summary", "results"} {
		if v, ok := u.Object[k]; ok {
			part[k] = v
		}
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(part, &c); err != nil {
		r.Summary = Summary{Pass: -1} // no desired report has it
		return r, fmt.Errorf("reading PolicyReport %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	r.Summary, r.Results = c.Summary, normalize(c.Results)
	return r, nil
}

// normalize makes empty lists and maps nil, as they read back from the API server.
func normalize(rs []Result) []Result {
	if len(rs) == 0 {
		return nil
	}
	for i := range rs {
		if len(rs[i].Resources) == 0 {
			rs[i].Resources = nil
		}
		if len(rs[i].Properties) == 0 {
			rs[i].Properties = nil
		}
	}
	return rs
}
