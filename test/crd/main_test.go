//go:build integration

// Package crd tests the sigwatch CRDs as a real kube-apiserver serves them: validation, immutability,
// the status subresource and the printer columns.
package crd

import (
	"os"
	"testing"

	"github.com/sigwatch/sigwatch/test/envtest"
)

var env *envtest.Environment

func TestMain(m *testing.M) { os.Exit(envtest.Run(m, &env)) }
