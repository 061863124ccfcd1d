package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// JSON writes the report as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// table is a header and rows, written as aligned text or as a Markdown table.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

func (t *table) markdown(w io.Writer) {
	esc := func(cells []string) string {
		out := make([]string, len(cells))
		for i, c := range cells {
			out[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		return "| " + strings.Join(out, " | ") + " |"
	}
	fmt.Fprintln(w, esc(t.header))
	sep := make([]string, len(t.header))
	for i := range sep {
		sep[i] = "---"
	}
	fmt.Fprintln(w, "|"+strings.Join(sep, "|")+"|")
	for _, r := range t.rows {
		fmt.Fprintln(w, esc(r))
	}
}

func pct(c Counts, n int) string { return fmt.Sprintf("%d (%.0f%%)", n, c.Share(n)) }

func countsRow(name string, c Counts) []string {
	return []string{name, fmt.Sprint(c.Images), pct(c, c.Verified), pct(c, c.Failed), pct(c, c.Unknown)}
}

// sections are the report's parts, in order: a title and its table, or a line of text.
func (r *Report) sections() []section {
	var out []section
	head := []string{"", "IMAGES", "VERIFIED", "FAILED", "UNKNOWN"}
	totals := &table{header: head}
	totals.add(countsRow("all", r.Totals)...)
	out = append(out, section{title: "Running images", table: totals})
	ns := &table{header: append([]string{"NAMESPACE"}, head[1:]...)}
	for _, n := range r.Namespaces {
		ns.add(countsRow(n.Namespace, n.Counts)...)
	}
	out = append(out, section{title: "By namespace", table: ns})
	pol := &table{header: append([]string{"POLICY"}, head[1:]...)}
	for _, p := range r.Policies {
		pol.add(countsRow(p.Policy, p.Counts)...)
	}
	out = append(out, section{title: "By policy", table: pol})
	signers := &table{header: []string{"SIGNER", "ISSUER", "IMAGES"}}
	for _, s := range r.Signers {
		signers.add(s.Name(), s.Issuer, fmt.Sprint(s.Images))
	}
	out = append(out, section{title: "Signers of what runs (accepted signatures)", table: signers})
	failing := &table{header: []string{"NAMESPACE", "SIGNEDIMAGE", "IMAGE", "REASON", "WORKLOADS", "WHY"}}
	for _, f := range r.Failing {
		failing.add(f.Namespace, f.Name, short(f), f.Reason, strings.Join(f.Workloads, ","), f.Why)
	}
	title := fmt.Sprintf("Failing images (%d)", len(r.Failing))
	if len(r.Failing) < r.Totals.Failed {
		title = fmt.Sprintf("Failing images (the first %d of %d: --max-failing)", len(r.Failing), r.Totals.Failed)
	}
	out = append(out, section{title: title, table: failing})
	if r.Filter != "" {
		out = append(out, section{title: fmt.Sprintf("Images signed as %s (%d)", r.Filter, len(r.Matches)), table: signaturesTable(r.Matches, false)})
	}
	if p := r.Prediction; p != nil {
		title := fmt.Sprintf("SignatureRevocation %s would affect %d %s; %d would turn Verified=False (%s)", p.Revocation, p.Affected,
			plural(p.Affected, "image", "images"), p.WouldFail, p.Reason)
		out = append(out, section{title: title, table: signaturesTable(p.Images, true)})
		if p.Invalid != "" {
			out = append(out, section{title: "Entries that would not apply: " + p.Invalid})
		}
		if len(p.Untimed) > 0 {
			out = append(out, section{title: "Not revoked: signatures without a trusted signing time, which a window never matches", table: signaturesTable(p.Untimed, false)})
		}
	}
	return out
}

type section struct {
	title string
	table *table
}

func signaturesTable(images []Image, prediction bool) *table {
	t := &table{header: []string{"NAMESPACE", "SIGNEDIMAGE", "IMAGE", "VERIFIED", "SIGNER", "SIGNED", "VERDICT"}}
	if prediction {
		t.header = append(t.header, "WOULD FAIL")
	}
	for _, img := range images {
		for _, s := range img.Signatures {
			signed := "no trusted time"
			if s.SignedTime != nil {
				signed = s.SignedTime.Format(time.RFC3339) + " (" + s.TimeSource + ")"
			}
			what := s.Signer
			if s.PredicateType != "" {
				what += " (attestation " + s.PredicateType + ")"
			}
			row := []string{img.Namespace, img.Name, short(img), img.Verified, what, signed, s.Verdict}
			if prediction {
				row = append(row, fmt.Sprint(img.WouldFail))
			}
			t.add(row...)
		}
	}
	return t
}

func short(img Image) string {
	d := strings.TrimPrefix(img.Digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return img.Image + "@" + d
}

// Text writes the report as aligned tables.
func (r *Report) Text(w io.Writer) {
	fmt.Fprintf(w, "sigwatch report of %s, %s\n", orCurrent(r.Context), r.Generated.UTC().Format(time.RFC3339))
	for _, s := range r.sections() {
		fmt.Fprintf(w, "\n%s\n", s.title)
		if s.table != nil && len(s.table.rows) > 0 {
			s.table.text(w)
		} else if s.table != nil {
			fmt.Fprintln(w, "  (none)")
		}
	}
}

// Markdown writes the report as Markdown, for a ticket.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "# sigwatch report of %s, %s\n", orCurrent(r.Context), r.Generated.UTC().Format(time.RFC3339))
	for _, s := range r.sections() {
		fmt.Fprintf(w, "\n## %s\n\n", s.title)
		if s.table != nil && len(s.table.rows) > 0 {
			s.table.markdown(w)
		} else if s.table != nil {
			fmt.Fprintln(w, "(none)")
		}
	}
}

func orCurrent(ctx string) string {
	if ctx == "" {
		return "the current cluster"
	}
	return "context " + ctx
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
