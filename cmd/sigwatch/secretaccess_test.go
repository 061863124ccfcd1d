package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/sigwatch/sigwatch/controllers"
)

// The --secret-access, --secret-namespaces and --registry-config flags parse into the manager's
// options, and what cannot work stops the manager at start, saying which flag is wrong.
func TestSecretAccessFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		mode       controllers.SecretAccessMode
		namespaces []string
		file       string
		err        string
	}{
		{args: nil, mode: controllers.SecretAccessCluster},
		{args: []string{"--secret-access=none", "--registry-config=/etc/sigwatch/registry/config.json"}, mode: controllers.SecretAccessNone,
			file: "/etc/sigwatch/registry/config.json"},
		{args: []string{"--secret-access=namespaces", "--secret-namespaces=team-a, team-b", "--secret-namespaces=team-c"},
			mode: controllers.SecretAccessNamespaces, namespaces: []string{"team-a", "team-b", "team-c"}},
		{args: []string{"--registry-config=/creds/config.json"}, mode: controllers.SecretAccessCluster, file: "/creds/config.json"},
		{args: []string{"--secret-access=namespaces"}, err: "needs --secret-namespaces"},
		{args: []string{"--secret-access=namespaces", "--secret-namespaces=Team_A"}, err: "not a namespace name"},
		{args: []string{"--secret-namespaces=team-a"}, err: "only for --secret-access=namespaces"},
		{args: []string{"--secret-access=none", "--secret-namespaces=team-a"}, err: "only for --secret-access=namespaces"},
		{args: []string{"--registry-config=config.json"}, err: "--registry-config must be an absolute path"},
	} {
		fs := flag.NewFlagSet("manager", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o ManagerOptions
		o.bind(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		err := o.validate()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if o.SecretAccess.Mode != tc.mode || !slices.Equal(o.SecretAccess.Namespaces, tc.namespaces) || o.RegistryConfig != tc.file {
			t.Errorf("%v: %+v, file %q; want mode %s, namespaces %v, file %q", tc.args, o.SecretAccess, o.RegistryConfig, tc.mode, tc.namespaces, tc.file)
		}
	}
}

// An unknown mode is refused while the flags are parsed.
func TestSecretAccessFlagRefusesUnknownModes(t *testing.T) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o ManagerOptions
	o.bind(fs)
	err := fs.Parse([]string{"--secret-access=namespace"})
	if err == nil || !strings.Contains(err.Error(), "must be cluster, namespaces or none") {
		t.Errorf("error %v, want one naming the modes", err)
	}
}
