package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// setUsage makes fs's help the text (usage line and description, ending in a newline) followed by its
// flags written as the docs write them: --long-flag VALUE, -o for one-letter flags. (Go's own
// PrintDefaults writes -long-flag.) Both -flag and --flag are accepted either way.
func setUsage(fs *flag.FlagSet, text string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, text)
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, fs)
	}
}

// printFlags lists fs's flags, sorted, each with its value's name, its usage and its default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, deprecatedPrefix) {
			return // kept working, no longer shown
		}
		fmt.Fprintf(w, "  %s\n", flagSynopsis(f))
		_, usage := flag.UnquoteUsage(f)
		if def := flagDefault(f); def != "" {
			usage += " (default " + def + ")"
		}
		for _, line := range wrap(usage, helpWidth-len(helpIndent)) {
			fmt.Fprintf(w, "%s%s\n", helpIndent, line)
		}
	})
}

const (
	helpWidth  = 100
	helpIndent = "      "
)

// wrap breaks s into lines of at most width characters at spaces (a longer word gets a line of its
// own).
func wrap(s string, width int) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			switch {
			case line == "":
				line = word
			case len(line)+1+len(word) <= width:
				line += " " + word
			default:
				lines = append(lines, line)
				line = word
			}
		}
		lines = append(lines, line)
	}
	return lines
}

// deprecatedPrefix starts the usage of a flag kept only for old scripts: help leaves it out.
const deprecatedPrefix = "DEPRECATED: "

// flagSynopsis is "--name VALUE" ("-o VALUE" for a one-letter flag; no VALUE for a bool).
func flagSynopsis(f *flag.Flag) string {
	dashes := "--"
	if len(f.Name) == 1 {
		dashes = "-"
	}
	s := dashes + f.Name
	name, _ := flag.UnquoteUsage(f)
	switch name {
	case "":
		return s
	case "value":
		name = "VALUE"
	}
	return s + " " + strings.ToUpper(name)
}

// flagDefault is the default to show: none when it is the zero value.
func flagDefault(f *flag.Flag) string {
	switch f.DefValue {
	case "", "false", "0", "0s", "[]":
		return ""
	}
	if name, _ := flag.UnquoteUsage(f); name == "string" {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}
