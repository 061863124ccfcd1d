// Command sigwatch is the sigwatch operator and its command-line tools, as subcommands of one binary.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sigwatch/sigwatch/internal/version"
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"manager", "run the controllers (in a cluster, or against the current KUBECONFIG)", runManager},
		{"verify", "verify an image digest against ImageSignaturePolicy files", runVerify},
		{"verify-bundle", "verify a Sigstore bundle over an artifact, offline", runVerifyBundle},
		{"report", "report the signing state of the running images, and what a revocation would do", runReport},
		{"version", "print the version, revision and build date", runVersion},
	}
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "-v", "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "sigwatch: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "sigwatch verifies, continuously, the Sigstore signatures of the images that run in a cluster.")
	fmt.Fprintln(w, "\nUsage: sigwatch COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nFlags:\n  -h, --help     help (of a command: sigwatch COMMAND --help)\n  -v, --version  print the version")
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("o", "text", "output `FORMAT`: text or json")
	setUsage(fs, "Usage: sigwatch version [-o text|json]\n\nPrints the version of sigwatch, the commit it was built from, when, and with which Go.\n")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sigwatch version: no arguments expected, got %q\n", fs.Args())
		return 2
	}
	switch *output {
	case "text":
		printVersion(stdout, version.Get())
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(version.Get())
	default:
		fmt.Fprintf(stderr, "sigwatch version: -o must be text or json, not %q\n", *output)
		return 2
	}
	return 0
}

// printVersion writes the version on the first line ("sigwatch v0.3.0", as scripts read it), then the
// rest of the build.
func printVersion(w io.Writer, i version.Info) {
	fmt.Fprintf(w, "sigwatch %s\n", i.Version)
	fmt.Fprintf(w, "  revision:   %s\n", i.Revision)
	fmt.Fprintf(w, "  build date: %s\n", i.BuildDate)
	fmt.Fprintf(w, "  go:         %s\n", i.GoVersion)
}

// versionString is the version alone, as the User-Agent and the logs carry it.
func versionString() string { return version.Get().Version }
