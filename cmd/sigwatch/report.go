package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/report"
	"github.com/sigwatch/sigwatch/internal/scheme"
)

const reportUsage = `Usage: sigwatch report [--kubeconfig FILE] [--context NAME] [-n NAMESPACE] [-o text|json|markdown]
       [--signer SUBJECT | --signer-regexp RE] [--issuer URL] [--signed-after T] [--signed-before T]
       [--digest sha256:HEX ...] [--revocation FILE]
   or: kubectl sigwatch report ...

Reports the signing state of the running images from the cluster's SignedImages (the cluster of the
current kubeconfig, as kubectl reads it): the share verified, failed and unknown by namespace and by
policy, the signers behind what runs, and the failing images with their reason, workloads and why.

--signer, --signer-regexp, --issuer, --signed-after, --signed-before and --digest list the running images
signed by that identity, in that window of trusted signing time, or of those digests. --revocation FILE
says what a SignatureRevocation would do before it is applied: the images it would affect and those it
would turn Verified=False, matched as the controller matches.
`

// maxRevocationFileBytes bounds a revocation file that report reads.
const maxRevocationFileBytes = 1 << 20

type reportFlags struct {
	kubeconfig, context, namespace, output string
	signer, signerRegExp, issuer           string
	signedAfter, signedBefore              string
	digests                                stringList
	revocation                             string
	maxFailing                             int
	timeout                                time.Duration
}

func runReport(args []string, stdout, stderr io.Writer) int {
	var f reportFlags
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context `NAME` (default: the current one)")
	fs.StringVar(&f.namespace, "n", "", "only this `NAMESPACE` (default: all)")
	fs.StringVar(&f.namespace, "namespace", "", "only this `NAMESPACE` (default: all)")
	fs.StringVar(&f.output, "o", "text", "output `FORMAT`: text, json or markdown")
	fs.StringVar(&f.signer, "signer", "", "list the images signed by this certificate `SUBJECT` (exactly)")
	fs.StringVar(&f.signerRegExp, "signer-regexp", "", "list the images signed by a subject this `RE` (RE2, whole subject) matches")
	fs.StringVar(&f.issuer, "issuer", "", "with --signer or --signer-regexp: only certificates of this OIDC issuer `URL`")
	fs.StringVar(&f.signedAfter, "signed-after", "", "list the images signed at or after `TIME` (RFC 3339), by trusted signing time")
	fs.StringVar(&f.signedBefore, "signed-before", "", "list the images signed before `TIME` (RFC 3339), by trusted signing time")
	fs.Var(&f.digests, "digest", "list the images of this `DIGEST` (sha256:HEX), the one that runs or the one signed (repeatable)")
	fs.StringVar(&f.revocation, "revocation", "", "say what the SignatureRevocation in `FILE` (YAML) would do if it were applied")
	fs.IntVar(&f.maxFailing, "max-failing", 200, "list at most `N` failing images (0: all)")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "give up reading the cluster after `D`")
	setUsage(fs, reportUsage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sigwatch report: no arguments expected, got %q\n", fs.Args())
		return 2
	}
	opts, err := f.options()
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch report: %v\n", err)
		return 2
	}
	if f.output != "text" && f.output != "json" && f.output != "markdown" {
		fmt.Fprintf(stderr, "sigwatch report: -o must be text, json or markdown, not %q\n", f.output)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	images, contextName, err := f.signedImages(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch report: %v\n", err)
		return 2
	}
	opts.Context = contextName
	r, err := report.Build(images, opts)
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch report: %v\n", err)
		return 2
	}
	switch f.output {
	case "json":
		if err := r.JSON(stdout); err != nil {
			fmt.Fprintf(stderr, "sigwatch report: %v\n", err)
			return 2
		}
	case "markdown":
		r.Markdown(stdout)
	default:
		r.Text(stdout)
	}
	return 0
}

// options checks the flags and turns them into the report's options.
func (f *reportFlags) options() (report.Options, error) {
	opts := report.Options{Now: time.Now(), MaxFailing: f.maxFailing,
		Filter: report.Filter{Signer: f.signer, SignerRegExp: f.signerRegExp, Issuer: f.issuer, Digests: f.digests}}
	if f.signer != "" && f.signerRegExp != "" {
		return opts, errors.New("--signer and --signer-regexp: give one")
	}
	for _, t := range []struct {
		flag, value string
		into        *time.Time
	}{{"--signed-after", f.signedAfter, &opts.Filter.SignedAfter}, {"--signed-before", f.signedBefore, &opts.Filter.SignedBefore}} {
		if t.value == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.value)
		if err != nil {
			return opts, fmt.Errorf("%s: %q is not an RFC 3339 time (2026-12-01T10:00:00Z)", t.flag, t.value)
		}
		*t.into = v
	}
	if !opts.Filter.SignedAfter.IsZero() && !opts.Filter.SignedBefore.IsZero() && !opts.Filter.SignedAfter.Before(opts.Filter.SignedBefore) {
		return opts, errors.New("--signed-after must be before --signed-before")
	}
	for _, d := range f.digests {
		if !imageref.ValidDigest(d) {
			return opts, fmt.Errorf("--digest: %q is not sha256: and 64 hex digits", d)
		}
	}
	if f.revocation != "" {
		x, err := readRevocation(f.revocation)
		if err != nil {
			return opts, err
		}
		opts.Revocation = x
	}
	return opts, nil
}

// readRevocation reads a SignatureRevocation from a YAML (or JSON) file.
func readRevocation(path string) (*sigwatchv1alpha1.SignatureRevocation, error) {
	data, err := readBounded(path, maxRevocationFileBytes)
	if err != nil {
		return nil, fmt.Errorf("--revocation: %w", err)
	}
	if yamlDocuments(data) > 1 {
		return nil, fmt.Errorf("--revocation %s: one SignatureRevocation per file, this one holds several YAML documents", path)
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("--revocation %s: %w", path, err)
	}
	if tm.Kind != "SignatureRevocation" || tm.APIVersion != sigwatchv1alpha1.GroupVersion.String() {
		return nil, fmt.Errorf("--revocation %s: kind %q of %q, not a SignatureRevocation of %s", path, tm.Kind, tm.APIVersion, sigwatchv1alpha1.GroupVersion)
	}
	x := &sigwatchv1alpha1.SignatureRevocation{}
	if err := yaml.UnmarshalStrict(data, x); err != nil {
		return nil, fmt.Errorf("--revocation %s: %w", path, err)
	}
	if len(x.Spec.Signatures) == 0 {
		return nil, fmt.Errorf("--revocation %s: spec.signatures is empty", path)
	}
	if x.Name == "" {
		x.Name = "(unnamed)"
	}
	return x, nil
}

// yamlDocuments counts the documents of a YAML stream that hold more than comments and blank lines.
func yamlDocuments(data []byte) int {
	n, content := 0, false
	for _, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(line)
		switch {
		case bytes.HasPrefix(line, []byte("---")):
			if content {
				n++
			}
			content = false
		case len(t) > 0 && t[0] != '#':
			content = true
		}
	}
	if content {
		n++
	}
	return n
}

func readBounded(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// signedImages lists the SignedImages of the cluster (of the namespace), 500 at a time, and names the
// kubeconfig context it read.
func (f *reportFlags) signedImages(ctx context.Context) ([]sigwatchv1alpha1.SignedImage, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading the kubeconfig: %w", err)
	}
	contextName := f.context
	if raw, err := cc.RawConfig(); err == nil && contextName == "" {
		contextName = raw.CurrentContext
	}
	c, err := client.New(rc, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, "", err
	}
	var out []sigwatchv1alpha1.SignedImage
	opts := []client.ListOption{client.Limit(500)}
	if f.namespace != "" {
		opts = append(opts, client.InNamespace(f.namespace))
	}
	for cont := ""; ; {
		var list sigwatchv1alpha1.SignedImageList
		if err := c.List(ctx, &list, append(opts, client.Continue(cont))...); err != nil {
			return nil, "", fmt.Errorf("listing SignedImages: %w", err)
		}
		out = append(out, list.Items...)
		if cont = list.Continue; cont == "" {
			break
		}
	}
	if strings.TrimSpace(contextName) == "" {
		contextName = rc.Host
	}
	return out, contextName, nil
}
