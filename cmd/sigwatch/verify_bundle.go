package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sigwatch/sigwatch/internal/bundleverify"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// Exit codes of verify-bundle.
const (
	verifyBundleOK       = 0
	verifyBundleFailed   = 1
	verifyBundleBadInput = 2
)

// verifyBundle is the verify-bundle subcommand. publicGood configures how the public-good trust root is
// loaded when --trusted-root is not given.
type verifyBundle struct {
	publicGood trust.PublicGoodOptions
}

func runVerifyBundle(args []string, stdout, stderr io.Writer) int {
	return verifyBundle{}.run(args, stdout, stderr)
}

const verifyBundleUsage = `Usage: sigwatch verify-bundle --bundle FILE
         ( (--certificate-identity ID | --certificate-identity-regexp RE)
           (--certificate-oidc-issuer URL | --certificate-oidc-issuer-regexp RE) | --key FILE )
         [--trusted-root FILE | --offline] (ARTIFACT_FILE | sha256:HEX | sha512:HEX)

Verifies a Sigstore bundle over an artifact without contacting any log or registry. Regular expressions
must match the whole value. Without --trusted-root, the public-good trust root is used: updated through
TUF, or the embedded snapshot when TUF cannot be reached or --offline is given.
Exit status: 0 verified, 1 not verified, 2 bad input.
`

// verifyBundleFlags are the parsed command line.
type verifyBundleFlags struct {
	bundle, key, trustedRoot string
	offline                  bool
	identity                 bundleverify.Identity
	artifact                 string
	set                      map[string]bool
}

func (c verifyBundle) run(args []string, stdout, stderr io.Writer) int {
	f, err := parseVerifyBundleFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return verifyBundleOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch verify-bundle: %v\n", err)
		return verifyBundleBadInput
	}
	req, err := c.request(f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch verify-bundle: %v\n", err)
		return verifyBundleBadInput
	}
	res, err := bundleverify.Verify(context.Background(), req)
	switch {
	case errors.Is(err, bundleverify.ErrNotVerified):
		fmt.Fprintf(stderr, "Verification FAILED: %v\n", err)
		if errors.Is(err, bundleverify.ErrTrustRootMismatch) {
			fmt.Fprintln(stderr, "hint: pass that Sigstore's trusted_root.json with --trusted-root FILE")
		}
		return verifyBundleFailed
	case err != nil: // the request, not the bundle, is at fault
		fmt.Fprintf(stderr, "sigwatch verify-bundle: %v\n", err)
		return verifyBundleBadInput
	}
	fmt.Fprintln(stdout, verifyBundleSummary(res))
	return verifyBundleOK
}

// parseVerifyBundleFlags parses the flags (before or after the artifact) and checks their combination;
// errors name the flags at fault.
func parseVerifyBundleFlags(args []string, stderr io.Writer) (*verifyBundleFlags, error) {
	f := &verifyBundleFlags{set: map[string]bool{}}
	fs := flag.NewFlagSet("verify-bundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, verifyBundleUsage)
	fs.StringVar(&f.bundle, "bundle", "", "the Sigstore bundle `FILE` (JSON)")
	fs.StringVar(&f.identity.CertificateIdentity, "certificate-identity", "", "the exact `SAN` of the signing certificate")
	fs.StringVar(&f.identity.CertificateIdentityRegexp, "certificate-identity-regexp", "", "a regular expression (`RE`) the whole SAN must match")
	fs.StringVar(&f.identity.CertificateOIDCIssuer, "certificate-oidc-issuer", "", "the exact OIDC issuer (`URL`) of the signing certificate")
	fs.StringVar(&f.identity.CertificateOIDCIssuerRegexp, "certificate-oidc-issuer-regexp", "", "a regular expression (`RE`) the whole OIDC issuer must match")
	fs.StringVar(&f.key, "key", "", "the PEM public key `FILE` of a key-signed bundle")
	fs.StringVar(&f.trustedRoot, "trusted-root", "", "a trusted_root.json `FILE` (default: the public-good root)")
	fs.BoolVar(&f.offline, "offline", false, "use the embedded public-good trust root snapshot, without TUF")

	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	fs.Visit(func(fl *flag.Flag) {
		f.set[fl.Name] = true
		if err == nil && fl.Value.String() == "" {
			err = fmt.Errorf("--%s needs a non-empty value", fl.Name)
		}
	})
	if err != nil {
		return nil, err
	}
	if len(positional) != 1 {
		return nil, fmt.Errorf("want one ARTIFACT_FILE or sha256:HEX argument, got %d (%s)", len(positional), strings.Join(positional, " "))
	}
	f.artifact = positional[0]
	return f, f.check()
}

// parseInterspersed parses fs's flags wherever they are among the arguments (the artifact or image may
// come before, between or after them) and returns the arguments; everything after "--" is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// check enforces: --bundle; then either --key or an identity and an issuer, one flag of each pair.
func (f *verifyBundleFlags) check() error {
	if !f.set["bundle"] {
		return errors.New("--bundle is required")
	}
	identityFlags := []string{"certificate-identity", "certificate-identity-regexp", "certificate-oidc-issuer", "certificate-oidc-issuer-regexp"}
	if f.set["key"] {
		for _, name := range identityFlags {
			if f.set[name] {
				return fmt.Errorf("--key and --%s are mutually exclusive: a bundle is signed with a key or a certificate", name)
			}
		}
		return nil
	}
	for _, pair := range [][2]string{
		{"certificate-identity", "certificate-identity-regexp"},
		{"certificate-oidc-issuer", "certificate-oidc-issuer-regexp"},
	} {
		switch {
		case f.set[pair[0]] && f.set[pair[1]]:
			return fmt.Errorf("--%s and --%s are mutually exclusive", pair[0], pair[1])
		case !f.set[pair[0]] && !f.set[pair[1]]:
			return fmt.Errorf("one of --%s and --%s is required (or --key)", pair[0], pair[1])
		}
	}
	return nil
}

// request reads the files the flags name into a library request.
func (c verifyBundle) request(f *verifyBundleFlags, stderr io.Writer) (bundleverify.Request, error) {
	req := bundleverify.Request{Identity: f.identity}
	var err error
	if req.Bundle, err = readVerifyBundleFile("bundle", f.bundle); err != nil {
		return req, err
	}
	if f.set["key"] {
		if req.PublicKey, err = readVerifyBundleFile("key", f.key); err != nil {
			return req, err
		}
	}
	if bundleverify.IsDigest(f.artifact) {
		req.ArtifactDigest = f.artifact
	} else if req.Artifact, err = os.ReadFile(f.artifact); err != nil {
		return req, fmt.Errorf("reading the artifact: %w", err)
	}
	if f.offline {
		c.publicGood.Offline = true
	}
	if req.TrustRoot, err = c.trustRoot(f.trustedRoot, stderr); err != nil {
		return req, err
	}
	fmt.Fprintf(stderr, "Using trusted root: %s\n", req.TrustRoot.Source)
	return req, nil
}

func (c verifyBundle) trustRoot(path string, stderr io.Writer) (*trust.Root, error) {
	if path != "" {
		data, err := readVerifyBundleFile("trusted-root", path)
		if err != nil {
			return nil, err
		}
		r, err := trust.FromJSON(data, path)
		if err != nil {
			return nil, fmt.Errorf("--trusted-root: %w", err)
		}
		return r, nil
	}
	r, err := trust.PublicGood(context.Background(), c.publicGood)
	if r == nil {
		return nil, err
	}
	if err != nil {
		fmt.Fprintf(stderr, "Warning: %v; using the embedded snapshot\n", err)
	}
	return r, nil
}

func readVerifyBundleFile(name, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return data, nil
}

// verifyBundleSummary is the one line printed on success: who signed, when, in which log entry.
func verifyBundleSummary(res *bundleverify.Result) string {
	var b strings.Builder
	b.WriteString("Verified OK: signed by ")
	if res.Certificate != nil {
		fmt.Fprintf(&b, "%s (issuer %s)", res.Certificate.SubjectAlternativeName, res.Certificate.Issuer)
	} else {
		fmt.Fprintf(&b, "key %s", res.KeyID)
	}
	if at := res.SignedAt(); !at.IsZero() {
		fmt.Fprintf(&b, " at %s", at.UTC().Format(time.RFC3339))
	}
	if len(res.TlogEntries) == 0 {
		b.WriteString(", no transparency log entry")
		return b.String()
	}
	indexes := make([]string, len(res.TlogEntries))
	for i, e := range res.TlogEntries {
		indexes[i] = strconv.FormatInt(e.LogIndex, 10)
	}
	fmt.Fprintf(&b, ", transparency log index %s", strings.Join(indexes, ", "))
	return b.String()
}
