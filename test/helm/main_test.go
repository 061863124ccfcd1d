//go:build integration

// Package helm tests the Helm chart charts/sigwatch: rendered with `helm template` (bin/helm, built from
// hack/tools/helm) with its defaults and with every value set, the API server accepts every object
// (server-side dry-run, strict); the chart deploys what config/default and config/sharded deploy; and
// every manager flag can be set through a value, to a value the manager accepts.
package helm

import (
	"fmt"
	"os"
	"testing"

	"github.com/sigwatch/sigwatch/test/envtest"
)

var (
	env *envtest.Environment
	// binDir holds the sigwatch binary the flag tests build (once).
	binDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sigwatch-helm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := envtest.Run(m, &env)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
