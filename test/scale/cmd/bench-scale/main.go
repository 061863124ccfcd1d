// Command bench-scale runs the sigwatch scale benchmark (make bench-scale): see package
// github.com/sigwatch/sigwatch/test/scale. It prints one line per phase and a summary, and exits non-zero
// when a phase fails or a verdict is wrong.
//
//	go run ./test/scale/cmd/bench-scale -digests 500 -pods 2500 -namespaces 20
//	go run ./test/scale/cmd/bench-scale -manager /tmp/sigwatch-old -manager-arg=--max-concurrent-verifications=16
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/scale"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	o := scale.DefaultOptions()
	var managerArgs, managerEnv repeated
	flag.IntVar(&o.Digests, "digests", scale.DefaultDigests, "distinct images pushed (and run)")
	flag.IntVar(&o.Pods, "pods", scale.DefaultPods, "pods that run them (at least -digests): pod j runs digest j%digests")
	flag.IntVar(&o.Namespaces, "namespaces", scale.DefaultNamespaces, "namespaces: digest i and its pods live in namespace i%namespaces")
	flag.IntVar(&o.Unsigned, "unsigned", -1, "digests left unsigned (-1: 1% of -digests, at least 1 from 10 digests)")
	flag.IntVar(&o.Repositories, "repositories", scale.DefaultRepositories, "registry repositories that hold the images")
	flag.IntVar(&o.Clients, "clients", scale.DefaultClients, "concurrent API writers of the harness")
	flag.StringVar(&o.ManagerBinary, "manager", "", "sigwatch binary to measure (default: build ./cmd/sigwatch of this tree)")
	flag.Var(&managerArgs, "manager-arg", "extra `flag` of sigwatch manager (repeatable), e.g. -manager-arg=--max-concurrent-verifications=16")
	flag.Var(&managerEnv, "manager-env", "extra `NAME=value` of the manager's environment (repeatable), e.g. -manager-env=GOMEMLIMIT=460MiB as the Deployment sets it")
	flag.BoolVar(&o.KubeconfigEnv, "kubeconfig-env", false, "pass the kubeconfig as $KUBECONFIG, not --kubeconfig: the manager then has no client-side rate limit, as in a cluster")
	flag.BoolVar(&o.PolicyReports, "policy-reports", false, "install the PolicyReport CRD, so that the manager writes PolicyReports too")
	flag.DurationVar(&o.SettleTimeout, "timeout", scale.DefaultSettleTimeout, "bound of each of the cold and forced phases")
	flag.BoolVar(&o.Progress, "progress", false, "print a progress line every 10s while a phase settles")
	flag.StringVar(&o.Dir, "dir", "", "directory of the kubeconfig and the manager's log (default: a new temporary directory, kept)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench-scale: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	o.ManagerArgs, o.ManagerEnv = managerArgs, managerEnv
	o.Out = os.Stdout
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		_ = os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(envtest.RepoRoot(), "bin", "k8s"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := scale.Run(ctx, o)
	if rep != nil {
		fmt.Printf("summary digests=%d unsigned=%d pods=%d namespaces=%d signedimages=%d creation_writes_per_s=%.1f "+
			"cold_s=%.2f cold_manager_writes=%d forced_s=%.2f forced_after_annotations_s=%.2f forced_status_patches=%d forced_registry_gets=%d "+
			"revoked_s=%.2f revoked_statuses_s=%.2f revoked_registry_requests=%d restored_s=%.2f "+
			"peak_rss_mib=%.1f write_rate_ratio=%.4f signedimage_write_ratio=%.4f wrong_verdicts=%d manager_log=%s result=%s\n",
			rep.Digests, rep.Unsigned, rep.Pods, rep.Namespaces, rep.SignedImages, rep.Creation.WritesPerSecond,
			rep.Cold.Seconds, rep.Cold.ManagerWrites, rep.Forced.Seconds, rep.Forced.AfterTriggerSeconds,
			rep.Forced.APIWrites.Count("PATCH", "signedimages", "status")+rep.Forced.LateWrites.Count("PATCH", "signedimages", "status"),
			rep.Forced.RegistryGets(), rep.Revoked.Seconds, rep.Revoked.StatusesSeconds, rep.Revoked.RegistryRequests(), rep.Restored.Seconds, float64(rep.PeakRSSBytes)/(1<<20), rep.WriteRateRatio, rep.SignedImageWriteRatio, rep.WrongVerdicts,
			rep.ManagerLog, result(err))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-scale: %v\n", err)
		os.Exit(1)
	}
}

func result(err error) string {
	if err != nil {
		return "FAIL"
	}
	return "ok"
}
