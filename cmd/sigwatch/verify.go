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
	policies        stringList
	trustedRoot     string
	insecure        bool
	offline         bool
	output          string
	timeout         time.Duration
	registryTimeout time.Duration
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f verifyFlags
	fs.Var(&f.policies, "policy", "file of ImageSignaturePolicy YAML documents (repeatable)")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json for every policy (default: the public-good root, or the policy's own)")
	fs.BoolVar(&f.insecure, "allow-insecure-registry", false, "reach the image's registry over plain HTTP")
	fs.BoolVar(&f.offline, "offline", false, "do not update the public-good trust root through TUF; use the embedded snapshot")
	fs.StringVar(&f.output, "o", "text", "output format: text or json")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "deadline of the whole verification")
	fs.DurationVar(&f.registryTimeout, "registry-timeout", 20*time.Second, "timeout of one registry request")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: sigwatch verify --policy FILE [--policy FILE ...] [--trusted-root FILE | --offline]\n       [--allow-insecure-registry] [--timeout D] [-o text|json] IMAGE@sha256:HEX")
		fmt.Fprintln(stderr, "\nVerifies an image digest against ImageSignaturePolicy files, as the controllers do.")
		fmt.Fprintln(stderr, "Exit 0: verified; 1: not verified; 2: could not verify, or bad input.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitVerified
		}
		return exitUndecided
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "sigwatch verify: exactly one IMAGE@sha256:HEX argument is required")
		fs.Usage()
		return exitUndecided
	}
	if len(f.policies) == 0 {
		fmt.Fprintln(stderr, "sigwatch verify: --policy is required")
		return exitUndecided
	}
	if f.output != "text" && f.output != "json" {
		fmt.Fprintf(stderr, "sigwatch verify: -o must be text or json, not %q\n", f.output)
		return exitUndecided
	}
	img, err := imageref.Parse(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch verify: %v\n", err)
		return exitUndecided
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	res, err := verifyImage(ctx, img, f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch verify: %v\n", err)
		return exitUndecided
	}
	if f.output == "json" {
		printJSON(stdout, res)
	} else {
		printText(stdout, res)
	}
	verdict, _, _ := res.Verdict()
	switch verdict {
	case sigwatchv1alpha1.PolicyVerified:
		return exitVerified
	case sigwatchv1alpha1.PolicyFailed:
		return exitNotVerified
	default:
		return exitUndecided
	}
}

// verifyImage loads and compiles the policies that cover img and runs the engine: the same code path as
// the controllers.
func verifyImage(ctx context.Context, img imageref.Image, f verifyFlags, stderr io.Writer) (*verification.Result, error) {
	var pols []*policy.Policy
	for _, file := range f.policies {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		objs, err := policy.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		for _, o := range objs {
			p, err := policy.Compile(o, policy.Inputs{})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if p.MatchesImage(img.Repository) {
				pols = append(pols, p)
			}
		}
	}
	roots, err := cliRoots(ctx, f, stderr)
	if err != nil {
		return nil, err
	}
	reg := registry.New(registry.Options{
		Keychain:       authn.DefaultKeychain,
		Insecure:       insecureHosts(f.insecure, img),
		RequestTimeout: f.registryTimeout,
		UserAgent:      "sigwatch/" + versionString(),
	})
	eng := verification.New(verification.Options{Registry: reg, Roots: roots, Timeout: f.timeout})
	return eng.Verify(ctx, verification.Request{Image: img, Policies: pols}), nil
}

func insecureHosts(allow bool, img imageref.Image) []string {
	if !allow {
		return nil
	}
	repo, err := name.NewRepository(img.Repository)
	if err != nil {
		return nil
	}
	return []string{repo.RegistryStr()}
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

func printText(w io.Writer, res *verification.Result) {
	verdict, reason, message := res.Verdict()
	fmt.Fprintf(w, "%s\n", res.Image)
	if verdict == sigwatchv1alpha1.PolicyVerified {
		fmt.Fprintf(w, "VERIFIED: %s\n", message)
	} else {
		fmt.Fprintf(w, "%s (%s): %s\n", strings.ToUpper(notVerb(verdict)), reason, message)
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
