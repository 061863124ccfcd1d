// Command timestamp-server is the Sigstore timestamp authority (github.com/sigstore/timestamp-authority/v2)
// as the local keyless stack of the tests runs it (test/stack): upstream's REST API, handlers and in-memory
// signer, started the way upstream's `timestamp-server serve` starts them, minus two side listeners that
// upstream cannot move or turn off:
//
//   - the Prometheus server, hard-wired to :2112 on every interface: a second timestamp-server on the same
//     machine (two test packages running at once, or a test next to the demo) exits with "address already
//     in use", and the first one listens beyond loopback;
//   - the NTP monitor (unless --disable-ntp-monitoring), which queries public time servers.
//
// Usage: timestamp-server --host 127.0.0.1 --port PORT. The signer is always upstream's "memory" signer: a
// fresh ECDSA key and certificate chain per process, served at /api/v1/timestamp/certchain. The other
// flags are those of upstream's generated REST server (--read-timeout, --write-timeout, ...); every other
// setting keeps upstream's default.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	// Registers upstream's settings (signer, hash, policy OIDs, ...) with their defaults in viper, where
	// pkg/api reads them.
	_ "github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server/app"
	"github.com/sigstore/timestamp-authority/v2/pkg/log"
	"github.com/sigstore/timestamp-authority/v2/pkg/server"
)

func main() {
	// The generated REST server registers --host, --port, --read-timeout, ... on pflag.CommandLine.
	pflag.Parse()
	log.ConfigureLogger("dev")
	viper.Set("timestamp-signer", "memory")

	host, err := pflag.CommandLine.GetString("host")
	exitOn(err)
	port, err := pflag.CommandLine.GetInt("port")
	exitOn(err)
	readTimeout, err := pflag.CommandLine.GetDuration("read-timeout")
	exitOn(err)
	writeTimeout, err := pflag.CommandLine.GetDuration("write-timeout")
	exitOn(err)

	srv := server.NewRestAPIServer(host, port, []string{"http"}, false, readTimeout, writeTimeout)
	defer func() {
		if err := srv.Shutdown(); err != nil {
			log.Logger.Error(err)
		}
	}()
	if err := srv.Serve(); err != nil {
		log.Logger.Fatal(err)
	}
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "timestamp-server:", err)
		os.Exit(2)
	}
}
