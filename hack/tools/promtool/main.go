// Command promtool-test runs Prometheus rule unit tests, as `promtool test rules` does: unittest.go is
// promtool's own code (github.com/prometheus/prometheus v0.316.0, cmd/promtool/unittest.go, Apache
// License 2.0, copied unchanged). The rest of promtool (service discovery for every cloud, TSDB tools) is
// left out, so that this builds in seconds rather than minutes. It is a module of its own, like
// hack/tools/promql, so that github.com/prometheus/prometheus stays out of the operator's go.mod;
// test/monitoring builds and runs it.
//
// Usage: promtool-test [-run REGEXP] TEST.yaml...
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
)

func main() {
	var run multi
	flag.Var(&run, "run", "run only the test groups whose name matches (repeatable)")
	diff := flag.Bool("diff", false, "print a diff of the expected and actual alerts")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: promtool-test [-run REGEXP] [-diff] TEST.yaml...")
		os.Exit(2)
	}
	// The options of `promtool test rules` without feature flags.
	os.Exit(RulesUnitTestResult(io.Discard,
		promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true},
		parser.NewParser(parser.Options{}), run, *diff, false, false, flag.Args()...))
}

type multi []string

func (m *multi) String() string     { return fmt.Sprint(*m) }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// What unittest.go takes from the rest of promtool (cmd/promtool/main.go and query.go, unchanged).
const (
	successExitCode = 0
	failureExitCode = 1
)

func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}
