package policyreport

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// Bounds of one report. etcd refuses objects over 1.5 MiB; a report holds at most MaxResults results
// and MaxBytes of them as JSON, so that it stays near a third of that however long the names, messages
// and workload lists are. A namespace with more results gets more reports.
const (
	MaxResults = 500
	MaxBytes   = 512 << 10
	// MaxMessageBytes cuts a result's message (the SignedImage's is at most 1024 already).
	MaxMessageBytes = 1024
	// MaxResources is the most workloads named in one result; the rest are counted in the
	// omittedWorkloads property.
	MaxResources = 16
)

// Property names of a result.
const (
	PropertyImage            = "image"
	PropertySignedImage      = "signedImage"
	PropertyMode             = "mode"
	PropertyExemption        = "exemption"
	PropertyAuthority        = "authority"
	PropertyOmittedWorkloads = "omittedWorkloads"
	// PropertyPolicySeverity is the policy's own severity, on the results of Audit policies (whose
	// severity is SeverityInfo).
	PropertyPolicySeverity = "policySeverity"
)

// SeverityInfo is the severity of every result of an Audit policy: its failures are reported but raise
// only info-level alerts, as the Events and the PrometheusRule alerts do.
const SeverityInfo = "info"

// Status of a result, as the CRD spells it.
const (
	StatusPass  = "pass"
	StatusFail  = "fail"
	StatusWarn  = "warn"
	StatusError = "error"
	StatusSkip  = "skip"
)

// status maps a policy result onto a report status: a result sigwatch does not know is an error.
func status(r sigwatchv1alpha1.PolicyResultType) string {
	switch r {
	case sigwatchv1alpha1.PolicyVerified:
		return StatusPass
	case sigwatchv1alpha1.PolicyFailed:
		return StatusFail
	case sigwatchv1alpha1.PolicyExempt:
		return StatusSkip
	default:
		return StatusError
	}
}

// severity is the policy's severity, high when empty or not one the CRD accepts.
func severity(s sigwatchv1alpha1.PolicySeverity) string {
	switch s {
	case sigwatchv1alpha1.SeverityCritical, sigwatchv1alpha1.SeverityHigh, sigwatchv1alpha1.SeverityMedium, sigwatchv1alpha1.SeverityLow:
		return string(s)
	default:
		return string(sigwatchv1alpha1.SeverityHigh)
	}
}

// workloadAPIVersion is the API version of a workload kind, as far as it is known ("" for another
// controller's kind: the SignedImage records only the kind).
func workloadAPIVersion(kind string) string {
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
		return "apps/v1"
	case "Job", "CronJob":
		return "batch/v1"
	case "Pod":
		return "v1"
	default:
		return ""
	}
}

// cut shortens s to at most n bytes (n > 3), ending with "…" when it was cut. It cuts before the
// first byte of a rune, so a valid string stays valid; bytes that are not UTF-8 are left to the JSON
// encoder (which writes them as U+FFFD).
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	end := n - len(ellipsis)
	// A rune is at most utf8.UTFMax bytes: more continuation bytes than that are not UTF-8 anyway.
	for i := end; i > 0 && i > end-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + ellipsis
		}
	}
	return s[:end] + ellipsis
}

// resources are the workloads that run the image (sorted, at most MaxResources), and how many were
// left out; the SignedImage itself when no workload runs it (one made by hand).
func resources(si *sigwatchv1alpha1.SignedImage) ([]ObjectReference, int) {
	if len(si.Status.Workloads) == 0 {
		return []ObjectReference{{APIVersion: sigwatchv1alpha1.GroupVersion.String(), Kind: "SignedImage",
			Namespace: si.Namespace, Name: si.Name, UID: string(si.UID)}}, 0
	}
	refs := make([]ObjectReference, 0, len(si.Status.Workloads))
	for _, w := range si.Status.Workloads {
		refs = append(refs, ObjectReference{APIVersion: workloadAPIVersion(w.Kind), Kind: w.Kind, Namespace: si.Namespace, Name: w.Name})
	}
	slices.SortFunc(refs, func(a, b ObjectReference) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	refs = slices.Compact(refs)
	if len(refs) > MaxResources {
		return refs[:MaxResources], len(refs) - MaxResources
	}
	return refs, 0
}

// results are the results of one SignedImage, one per policy that covers it, sorted by policy.
func results(si *sigwatchv1alpha1.SignedImage) []Result {
	if len(si.Status.Policies) == 0 {
		return nil // NoMatchingPolicy (or not verified yet): nothing judged it
	}
	refs, omitted := resources(si)
	var ts *Timestamp
	if t := si.Status.LastAttemptTime; t != nil {
		ts = &Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
	}
	out := make([]Result, 0, len(si.Status.Policies))
	for _, p := range si.Status.Policies {
		mode := p.Mode
		if mode == "" {
			mode = sigwatchv1alpha1.PolicyModeEnforce
		}
		props := map[string]string{
			PropertyImage:       si.Spec.Image + "@" + si.Spec.Digest,
			PropertySignedImage: si.Name,
			PropertyMode:        string(mode),
		}
		sev := severity(p.Severity)
		if mode == sigwatchv1alpha1.PolicyModeAudit {
			props[PropertyPolicySeverity] = sev
			sev = SeverityInfo
		}
		if p.Exemption != "" {
			props[PropertyExemption] = p.Exemption
		}
		if p.Authority != "" {
			props[PropertyAuthority] = p.Authority
		}
		if omitted > 0 {
			props[PropertyOmittedWorkloads] = strconv.Itoa(omitted)
		}
		rule := p.Reason
		if rule == "" {
			rule = string(p.Result)
		}
		out = append(out, Result{
			Source: Source, Policy: p.Name, Rule: rule, Category: Category, Severity: sev,
			Timestamp: ts, Result: status(p.Result), Scored: true, Message: cut(p.Message, MaxMessageBytes),
			Resources: slices.Clone(refs), Properties: props,
		})
	}
	slices.SortFunc(out, func(a, b Result) int { return cmp.Compare(a.Policy, b.Policy) })
	return out
}

// key identifies a result across reports: the SignedImage and the policy.
func key(r Result) string { return r.Properties[PropertySignedImage] + "\x00" + r.Policy }

// sameExceptTime says whether two results differ only in their timestamps.
func sameExceptTime(a, b Result) bool {
	a.Timestamp, b.Timestamp = nil, nil
	return reflect.DeepEqual(a, b)
}

// Build computes the reports of a namespace from its SignedImages: one result per (SignedImage, policy)
// in status.policies, sorted by SignedImage and policy, split into reports of at most MaxResults
// results and MaxBytes. A result that is the same as in the previous reports but for its timestamp
// keeps the previous timestamp: the time its verdict was first found, so that reverifying with the
// same outcome writes nothing. No results, no reports.
func Build(namespace string, images []sigwatchv1alpha1.SignedImage, previous []Report) []Report {
	before := map[string]Result{}
	for _, r := range previous {
		if !r.Managed {
			continue
		}
		for _, res := range r.Results {
			before[key(res)] = res
		}
	}
	sorted := make([]*sigwatchv1alpha1.SignedImage, 0, len(images))
	for i := range images {
		// An image no pod runs any more (status.unusedSince, kept for the garbage collector's grace) is
		// not reported: a report says what runs, as the metrics do.
		if images[i].Namespace == namespace && images[i].DeletionTimestamp.IsZero() && images[i].Status.UnusedSince == nil {
			sorted = append(sorted, &images[i])
		}
	}
	slices.SortFunc(sorted, func(a, b *sigwatchv1alpha1.SignedImage) int { return cmp.Compare(a.Name, b.Name) })

	var reports []Report
	var current *Report
	size := 0
	for _, si := range sorted {
		for _, res := range results(si) {
			if old, ok := before[key(res)]; ok && sameExceptTime(old, res) {
				res.Timestamp = old.Timestamp
			}
			n := jsonSize(res)
			if current == nil || len(current.Results) >= MaxResults || size+n > MaxBytes {
				reports = append(reports, Report{Namespace: namespace, Name: ChunkName(len(reports)), Managed: true})
				current, size = &reports[len(reports)-1], 0
			}
			current.Results = append(current.Results, res)
			current.Summary.add(res.Result)
			size += n
		}
	}
	return reports
}

// jsonSize is the size of a result in the report's JSON (and a comma).
func jsonSize(r Result) int {
	b, err := json.Marshal(r)
	if err != nil {
		return MaxBytes // cannot happen with these types; counts as a report of its own
	}
	return len(b) + 1
}

func (s *Summary) add(status string) {
	switch status {
	case StatusPass:
		s.Pass++
	case StatusFail:
		s.Fail++
	case StatusWarn:
		s.Warn++
	case StatusSkip:
		s.Skip++
	default:
		s.Error++
	}
}

// ChunkName is the name of a namespace's i-th report (from 0): sigwatch, sigwatch-2, sigwatch-3…
func ChunkName(i int) string {
	if i == 0 {
		return Name
	}
	return Name + "-" + strconv.Itoa(i+1)
}

// IsChunkName says whether name is one ChunkName gives.
func IsChunkName(name string) bool {
	if name == Name {
		return true
	}
	n, ok := strings.CutPrefix(name, Name+"-")
	if !ok {
		return false
	}
	i, err := strconv.Atoi(n)
	return err == nil && i >= 2 && strconv.Itoa(i) == n
}

// Plan is what to write to turn the existing reports into the desired ones.
type Plan struct {
	// Create are reports that do not exist yet.
	Create []Report
	// Update are reports whose content changed, with the existing report's resourceVersion.
	Update []Report
	// Delete are the names of sigwatch's reports that are no longer needed.
	Delete []string
	// Conflict are the names of desired reports held by a report without sigwatch's label: they are
	// not written (someone else's report is never taken over).
	Conflict []string
}

// Empty says whether the plan writes nothing.
func (p Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// Diff plans the writes from the existing reports of a namespace to the desired ones: a report is only
// written when its summary or results differ. Existing reports that are sigwatch's (label and chunk
// name) and not desired are deleted; reports without the label are never touched, even when they hold
// a desired name (a Conflict).
func Diff(existing, desired []Report) Plan {
	have := map[string]Report{}
	for _, r := range existing {
		have[r.Name] = r
	}
	var p Plan
	want := map[string]bool{}
	for _, d := range desired {
		want[d.Name] = true
		e, ok := have[d.Name]
		switch {
		case !ok:
			p.Create = append(p.Create, d)
		case !e.Managed:
			p.Conflict = append(p.Conflict, d.Name)
		case Changed(e, d):
			d.ResourceVersion = e.ResourceVersion
			p.Update = append(p.Update, d)
		}
	}
	for _, e := range existing {
		if !want[e.Name] && e.Managed && IsChunkName(e.Name) {
			p.Delete = append(p.Delete, e.Name)
		}
	}
	slices.Sort(p.Delete)
	return p
}

// Changed says whether writing the desired report would change the existing one: its summary or its
// results (in order; timestamps included, which Build keeps from the existing results that did not
// change otherwise).
func Changed(existing, desired Report) bool {
	return existing.Summary != desired.Summary || !reflect.DeepEqual(normalize(existing.Results), normalize(desired.Results))
}
