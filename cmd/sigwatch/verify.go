package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// Exit codes of verify and verify-bundle.
const (
	exitVerified    = 0
	exitNotVerified = 1
	exitUndecided   = 2 // could not verify, or bad input
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type verifyFlags struct {
	policies           stringList
	trustedRoot        string
	insecureRegistries stringList
	allowInsecure      bool // deprecated: --insecure-registry HOST
	offline            bool
	output             string
	indexes            stringList
	timeout            time.Duration
	registryTimeout    time.Duration
}

// insecureRegistryUsage is --insecure-registry's usage, in the manager and in verify: one flag, one
// meaning (registry.Options.Insecure).
const insecureRegistryUsage = "host or host:port `PATTERN` (with * wildcards) that may be reached over plain HTTP (repeatable)"

// maxPolicyFileBytes bounds a policy file that verify reads.
const maxPolicyFileBytes = 4 << 20

const verifyUsage = `Usage: sigwatch verify --policy FILE [--policy FILE ...] [--trusted-root FILE | --offline]
       [--insecure-registry PATTERN ...] [--index sha256:HEX ...] [--timeout D] [-o text|json]
       IMAGE@sha256:HEX

Verifies an image digest against ImageSignaturePolicy files, as the controllers do.
Exit 0: verified; 1: not verified; 2: could not verify, or bad input.
`

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f verifyFlags
	fs.Var(&f.policies, "policy", "`FILE` of ImageSignaturePolicy YAML documents (repeatable)")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json `FILE` for every policy (default: the public-good root, or the policy's own)")
	fs.Var(&f.insecureRegistries, "insecure-registry", insecureRegistryUsage)
	fs.BoolVar(&f.allowInsecure, "allow-insecure-registry", false, deprecatedPrefix+"use --insecure-registry HOST; reaches the image's registry over plain HTTP")
	fs.BoolVar(&f.offline, "offline", false, "do not update the public-good trust root through TUF; use the embedded snapshot")
	fs.StringVar(&f.output, "o", "text", "output `FORMAT`: text or json")
	fs.Var(&f.indexes, "index", "`DIGEST` of an image index the pod spec pins, for a platform manifest IMAGE without a signature of its own: its signatures count when it lists IMAGE (repeatable, as the controllers do)")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "deadline of the whole verification")
	fs.DurationVar(&f.registryTimeout, "registry-timeout", 20*time.Second, "timeout of one registry request")
	setUsage(fs, verifyUsage)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitVerified
		}
		return exitUndecided
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "sigwatch verify: exactly one IMAGE@sha256:HEX argument is required, got %d\n", len(positional))
		fs.Usage()
		return exitUndecided
	}
	ref := positional[0]
	if len(f.policies) == 0 {
		fmt.Fprintln(stderr, "sigwatch verify: --policy is required")
		return exitUndecided
	}
	if f.output != "text" && f.output != "json" {
		fmt.Fprintf(stderr, "sigwatch verify: -o must be text or json, not %q\n", f.output)
		return exitUndecided
	}
	img, err := imageref.Parse(ref)
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch verify: %v\n", err)
		printDigestHint(stderr, ref)
		return exitUndecided
	}
	for _, d := range f.indexes {
		if !imageref.ValidDigest(d) {
			fmt.Fprintf(stderr, "sigwatch verify: --index %q: want sha256: and 64 lower-case hex characters\n", d)
			return exitUndecided
		}
	}
	if f.allowInsecure {
		host := registryHost(img)
		fmt.Fprintf(stderr, "sigwatch verify: --allow-insecure-registry is deprecated; use --insecure-registry %s\n", host)
		f.insecureRegistries = append(f.insecureRegistries, host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	res, err := verifyImage(ctx, img, f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch verify: %v\n", err)
		return exitUndecided
	}
	if f.output == "json" {
		printJSON(stdout, res.Result)
	} else {
		printText(stdout, res)
	}
	verdict, _, _ := res.Verdict()
	switch {
	case verdict == sigwatchv1alpha1.PolicyVerified, res.auditOnly():
		return exitVerified // an Audit policy reports, it does not fail
	}
	switch verdict {
	case sigwatchv1alpha1.PolicyFailed:
		return exitNotVerified
	default:
		return exitUndecided
	}
}

// printDigestHint says how to get the digest of a reference given by tag (or with a broken digest).
func printDigestHint(w io.Writer, ref string) {
	tagged, _, _ := strings.Cut(ref, "@")
	fmt.Fprintf(w, `sigwatch verify checks one image digest (IMAGE@sha256:HEX). Get the digest of a tag with
  crane digest %[1]s
  docker buildx imagetools inspect %[1]s     (the Digest: line)
or, in GitHub Actions, use what docker/build-push-action outputs: IMAGE@${{ steps.build.outputs.digest }}
`, tagged)
}

// verifyOutcome is the engine's result and what verify read to get it.
type verifyOutcome struct {
	*verification.Result
	// files are the policy files; loaded the policies in them, and patterns their spec.images.
	files    []string
	loaded   int
	patterns []string
	// audit are the covering policies in Audit mode: their failures are reported, and do not fail verify.
	audit map[string]bool
}

// auditOnly reports whether the image is not verified only because of policies in Audit mode.
func (o *verifyOutcome) auditOnly() bool {
	bad := false
	for _, p := range o.Policies {
		if p.Result == sigwatchv1alpha1.PolicyVerified {
			continue
		}
		if !o.audit[p.Policy] {
			return false
		}
		bad = true
	}
	return bad
}

// verifyImage loads and compiles the policies that cover img and runs the engine: the same code path as
// the controllers.
func verifyImage(ctx context.Context, img imageref.Image, f verifyFlags, stderr io.Writer) (*verifyOutcome, error) {
	out := &verifyOutcome{files: f.policies, audit: map[string]bool{}}
	var pols []*policy.Policy
	for _, file := range f.policies {
		data, err := readPolicyFile(file)
		if err != nil {
			return nil, err
		}
		objs, err := policy.DecodeFile(file, data)
		if err != nil {
			return nil, err // names the file and the line
		}
		for i, o := range objs {
			p, err := policy.Compile(o, policy.Inputs{})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fileLine(file, data, i, err), err)
			}
			out.loaded++
			for _, pattern := range o.Spec.Images {
				out.patterns = append(out.patterns, string(pattern))
			}
			if p.MatchesImage(img.Repository) {
				pols = append(pols, p)
				out.audit[p.Name] = o.Spec.EffectiveMode() == sigwatchv1alpha1.PolicyModeAudit
			}
		}
	}
	roots, err := cliRoots(ctx, f, stderr)
	if err != nil {
		return nil, err
	}
	reg := registry.New(registry.Options{
		Keychain:       authn.DefaultKeychain,
		Insecure:       f.insecureRegistries,
		RequestTimeout: f.registryTimeout,
		UserAgent:      "sigwatch/" + versionString(),
	})
	eng := verification.New(verification.Options{Registry: reg, Roots: roots, Timeout: f.timeout})
	out.Result = eng.Verify(ctx, verification.Request{Image: img, Policies: pols, Indexes: f.indexes})
	return out, nil
}

// fileLine is "file:line" of the field a compile error of the i-th policy in data names, else file.
func fileLine(file string, data []byte, i int, err error) string {
	var perr *policy.Error
	if errors.As(err, &perr) && perr.Field != "" {
		if line := policy.FieldLine(data, i, perr.Field); line > 0 {
			return fmt.Sprintf("%s:%d", file, line)
		}
	}
	return file
}

// readPolicyFile reads a policy file of at most maxPolicyFileBytes.
func readPolicyFile(file string) ([]byte, error) {
	fh, err := os.Open(file) //nolint:gosec // the user names the file to read
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxPolicyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > maxPolicyFileBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB: not a policy file", file, maxPolicyFileBytes>>20)
	}
	return data, nil
}

// registryHost is the host (and port) of img's registry, as --insecure-registry takes it.
func registryHost(img imageref.Image) string {
	repo, err := name.NewRepository(img.Repository)
	if err != nil {
		return img.Repository
	}
	return repo.RegistryStr()
}

// cliRoots resolves trust roots for the CLI: --trusted-root for every policy; else a policy's own root
// cannot be read (it lives in a ConfigMap), and the others use the public-good root, loaded once.
func cliRoots(ctx context.Context, f verifyFlags, stderr io.Writer) (verification.RootResolver, error) {
	if f.trustedRoot != "" {
		data, err := os.ReadFile(f.trustedRoot)
		if err != nil {
			return nil, err
		}
		tr, err := trust.FromJSON(data, f.trustedRoot)
		if err != nil {
			return nil, err
		}
		return func(context.Context, *policy.Policy) (*trust.Root, error) { return tr, nil }, nil
	}
	publicGood := &trust.PublicGoodCache{Options: trust.PublicGoodOptions{Offline: f.offline},
		Warn: func(err error) { fmt.Fprintf(stderr, "sigwatch verify: %v; using the embedded snapshot\n", err) }}
	return func(ctx context.Context, p *policy.Policy) (*trust.Root, error) {
		if p.TrustedRootTUF != nil {
			return nil, fmt.Errorf("%w: policy %s uses the trusted root of TUF repository %s; pass the root it publishes with --trusted-root",
				trust.ErrUnavailable, p.Name, p.TrustedRootTUF.Mirror)
		}
		if p.TrustedRoot != nil {
			return nil, fmt.Errorf("%w: policy %s uses the trusted root in ConfigMap %s/%s; pass it with --trusted-root",
				trust.ErrUnavailable, p.Name, p.TrustedRoot.Namespace, p.TrustedRoot.Name)
		}
		tr, err := publicGood.Get(ctx)
		if err != nil {
			return nil, errors.Join(trust.ErrUnavailable, err)
		}
		return tr, nil
	}, nil
}

func printJSON(w io.Writer, res *verification.Result) {
	verdict, reason, message := res.Verdict()
	out := struct {
		Verdict sigwatchv1alpha1.PolicyResultType `json:"verdict"`
		Reason  string                            `json:"reason"`
		Message string                            `json:"message"`
		*verification.Result
	}{verdict, reason, message, res}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

// maxPatternsShown bounds the image patterns listed when no policy covers the image.
const maxPatternsShown = 10

func printText(w io.Writer, res *verifyOutcome) {
	verdict, reason, message := res.Verdict()
	fmt.Fprintf(w, "%s\n", res.Image)
	if verdict == sigwatchv1alpha1.PolicyVerified {
		fmt.Fprintf(w, "VERIFIED: %s\n", message)
	} else {
		fmt.Fprintf(w, "%s (%s): %s\n", strings.ToUpper(notVerb(verdict)), reason, message)
		if res.auditOnly() {
			fmt.Fprintln(w, "Only policies in Audit mode did not verify it: reported, not enforced (exit status 0).")
		}
	}
	if len(res.Policies) == 0 {
		fmt.Fprintln(w, noPolicyCovers(res))
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPOLICY\tRESULT\tREASON\tAUTHORITY\tTRUST ROOT")
	for _, p := range res.Policies {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Policy, p.Result, p.Reason, dash(p.Authority), dash(p.TrustedRoot))
	}
	if len(res.Signatures) > 0 {
		fmt.Fprintln(tw, "\nSIGNATURE\tFORMAT\tSIGNER\tTIME\tACCEPTED")
		for _, s := range res.Signatures {
			kind := "signature"
			if s.PredicateType != "" {
				kind = "attestation " + s.PredicateType
			}
			if s.SignedDigest != "" {
				kind += " (on index " + s.SignedDigest[:len("sha256:")+12] + ")"
			}
			signer := verification.Signer(s.Subject, s.KeyID)
			accepted := "yes, by " + s.Authority
			if !s.Verified() {
				accepted = "no: " + s.Reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", kind, s.Format, dash(signer), timeOf(s), accepted)
		}
	}
	_ = tw.Flush()
}

// noPolicyCovers is the one line printed instead of an empty table: which policies were read and the
// images they cover.
func noPolicyCovers(res *verifyOutcome) string {
	policies := "policies"
	if res.loaded == 1 {
		policies = "policy"
	}
	patterns := res.patterns
	more := ""
	if len(patterns) > maxPatternsShown {
		more = fmt.Sprintf(" and %d more", len(patterns)-maxPatternsShown)
		patterns = patterns[:maxPatternsShown]
	}
	return fmt.Sprintf("None of the %d %s in %s covers %s; their spec.images: %s%s", res.loaded, policies,
		strings.Join(res.files, ", "), res.Image.Repository, strings.Join(patterns, ", "), more)
}

func notVerb(v sigwatchv1alpha1.PolicyResultType) string {
	if v == sigwatchv1alpha1.PolicyFailed {
		return "not verified"
	}
	return "could not verify"
}

func timeOf(s verification.Signature) string {
	switch {
	case s.TimestampTime != nil:
		return s.TimestampTime.UTC().Format(time.RFC3339) + " (TSA)"
	case s.IntegratedTime != nil:
		return s.IntegratedTime.UTC().Format(time.RFC3339) + " (log)"
	default:
		return "-"
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
