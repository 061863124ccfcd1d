// Command demo runs the sigwatch demo (make demo): see package github.com/sigwatch/sigwatch/test/demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sigwatch/sigwatch/test/demo"
)

func main() {
	sigwatch := flag.String("sigwatch", "bin/sigwatch", "the sigwatch binary")
	kubectl := flag.String("kubectl", "kubectl", "the kubectl binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := demo.Run(ctx, demo.Options{Out: os.Stdout, Sigwatch: *sigwatch, Kubectl: *kubectl, Keep: os.Getenv("DEMO_KEEP") == "1"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}
