package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigwatch/sigwatch/internal/cloudauth"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

// A manager given --kubeconfig is not held to client-go's default 5 requests a second.
func TestKubeconfigIsUnthrottled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := restConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QPS != -1 || cfg.RateLimiter != nil {
		t.Errorf("QPS %v, rate limiter %v: want no client-side rate limit (QPS -1)", cfg.QPS, cfg.RateLimiter)
	}
}

func TestShardFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pod  string
		want sharding.Shard
		err  string
	}{
		{nil, "", sharding.Shard{Index: 0, Total: 1}, ""},
		{[]string{"--total-shards=3", "--shard=2"}, "", sharding.Shard{Index: 2, Total: 3}, ""},
		{[]string{"--total-shards=3", "--shard=-1"}, "sigwatch-controller-manager-1", sharding.Shard{Index: 1, Total: 3}, ""},
		{[]string{"--total-shards=3", "--shard=3"}, "", sharding.Shard{}, "between 0 and 2"},
		{[]string{"--total-shards=0"}, "", sharding.Shard{}, "at least 1"},
		{[]string{"--total-shards=2", "--shard=-1"}, "sigwatch-controller-manager-5", sharding.Shard{}, "between 0 and 1"},
		{[]string{"--total-shards=2", "--shard=-1"}, "", sharding.Shard{}, "POD_NAME"},
		// Replicas of one template with --total-shards and no --shard do not all become shard 0.
		{[]string{"--total-shards=3"}, "sigwatch-7d9f8-xk2p4", sharding.Shard{}, "-<ordinal>"},
		{[]string{"--total-shards=3"}, "sigwatch-controller-manager-2", sharding.Shard{Index: 2, Total: 3}, ""},
		{[]string{"--pod-workers=0"}, "", sharding.Shard{}, "--pod-workers"},
	} {
		fs := flag.NewFlagSet("manager", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o ManagerOptions
		o.bind(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		o.PodName = tc.pod
		err := o.validate()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v (pod %q): error %v, want one saying %q", tc.args, tc.pod, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if got, _ := o.shard(); got != tc.want {
			t.Errorf("%v (pod %q): shard %v, want %v", tc.args, tc.pod, got, tc.want)
		}
	}
}

// Each shard elects its own leader; an unsharded manager keeps its lease name across upgrades.
func TestLeaderElectionIDs(t *testing.T) {
	if got := leaderElectionID(sharding.Whole); got != "sigwatch.sigwatch.dev" {
		t.Errorf("unsharded: %s", got)
	}
	ids := map[string]bool{}
	for i := range 3 {
		ids[leaderElectionID(sharding.Shard{Index: i, Total: 3})] = true
	}
	if len(ids) != 3 || ids["sigwatch.sigwatch.dev"] {
		t.Errorf("shard leases %v: want three of their own", ids)
	}
}

// TestCloudCredentialFlags: the cloud keychain of the flags; a wrong value fails at start, naming the
// flag.
func TestCloudCredentialFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		host      string
		want      string // provider of host ("": anonymous)
		parseErr  string
		configErr string
	}{
		{args: nil, host: "eu.gcr.io", want: "gcp"},
		{args: nil, host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", want: "aws"},
		{args: nil, host: "team.azurecr.io", want: "azure"},
		{args: nil, host: "mirror.example.com"},
		{args: []string{"--cloud-credentials=none"}, host: "eu.gcr.io"},
		{args: []string{"--cloud-credentials=aws"}, host: "eu.gcr.io"},
		{args: []string{"--cloud-registry=gcp=mirror.example.com"}, host: "mirror.example.com", want: "gcp"},
		{args: []string{"--cloud-credentials=aws", "--cloud-registry=gcp=mirror.example.com"}, configErr: "--cloud-registry: cloud registry gcp=mirror.example.com: provider gcp is not enabled"},
		{args: []string{"--cloud-credentials=gcp,ibm"}, configErr: "--cloud-credentials: unknown cloud provider \"ibm\""},
		{args: []string{"--cloud-registry=gcp=*"}, parseErr: "not match every host"},
	} {
		fs := flag.NewFlagSet("manager", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o ManagerOptions
		o.bind(fs)
		err := fs.Parse(tc.args)
		if tc.parseErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.parseErr) {
				t.Errorf("%v: parse error %v, want %q", tc.args, err, tc.parseErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		err = o.validate()
		if tc.configErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.configErr) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.configErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		co, _ := o.cloudOptions()
		k, err := cloudauth.New(co)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := k.ProviderFor(tc.host); string(p) != tc.want {
			t.Errorf("%v: %s gets %q credentials, want %q", tc.args, tc.host, p, tc.want)
		}
	}
}
