// Command rekor-server is Rekor v1 (github.com/sigstore/rekor), the REST API most existing signatures are
// in, as the live transparency log tests run it (test/rekorv1): upstream's API, handlers and settings,
// started the way upstream's `rekor-server serve` starts them (cmd/rekor-server/app/serve.go, Apache
// License 2.0), minus the Prometheus listener that upstream hard-wires to :2112 on every interface (a
// second server on the machine would fail to start, and the first listens beyond loopback).
//
// Usage: rekor-server --trillian-address 127.0.0.1:PORT --tree-id ID --port PORT --mysql-dsn DSN. The
// checkpoints are signed by upstream's "memory" signer, a fresh key per process served at
// /api/v1/log/publicKey; the search index is kept in MySQL (MariaDB); every other setting keeps upstream's
// default.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/go-openapi/loads"
	"github.com/spf13/viper"

	// Registers upstream's settings with their defaults in viper, where pkg/api reads them.
	_ "github.com/sigstore/rekor/cmd/rekor-server/app"
	"github.com/sigstore/rekor/pkg/api"
	"github.com/sigstore/rekor/pkg/generated/restapi"
	"github.com/sigstore/rekor/pkg/generated/restapi/operations"
	"github.com/sigstore/rekor/pkg/log"
	"github.com/sigstore/rekor/pkg/types"
	"github.com/sigstore/rekor/pkg/types/dsse"
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"
	"github.com/sigstore/rekor/pkg/types/hashedrekord"
	_ "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1"
	"github.com/sigstore/rekor/pkg/types/intoto"
	_ "github.com/sigstore/rekor/pkg/types/intoto/v0.0.1"
	_ "github.com/sigstore/rekor/pkg/types/intoto/v0.0.2"
)

func main() {
	trillian := flag.String("trillian-address", "127.0.0.1:8090", "Trillian log server's gRPC address")
	treeID := flag.Int64("tree-id", 0, "the Trillian tree of the log")
	port := flag.Int("port", 3000, "port to serve the API on, on 127.0.0.1")
	dsn := flag.String("mysql-dsn", "", "DSN of the search index's MySQL database")
	hostname := flag.String("hostname", "127.0.0.1", "the log's name, the origin of its checkpoints with the tree ID")
	flag.Parse()
	host, trillianPort, err := net.SplitHostPort(*trillian)
	exitOn(err)
	tp, err := strconv.Atoi(trillianPort)
	exitOn(err)

	log.ConfigureLogger("dev", "")
	viper.Set("trillian_log_server.address", host)
	viper.Set("trillian_log_server.port", tp)
	viper.Set("trillian_log_server.tlog_id", *treeID)
	viper.Set("rekor_server.hostname", *hostname)
	viper.Set("rekor_server.signer", "memory")
	viper.Set("search_index.storage_provider", "mysql")
	viper.Set("search_index.mysql.dsn", *dsn)
	viper.Set("enable_retrieve_api", true)
	viper.Set("enable_attestation_storage", false)
	types.SetAllowedKindsForSubmission([]string{hashedrekord.KIND, dsse.KIND, intoto.KIND})

	doc, err := loads.Embedded(restapi.SwaggerJSON, restapi.FlatSwaggerJSON)
	exitOn(err)
	server := restapi.NewServer(operations.NewRekorServerAPI(doc))
	defer func() {
		if err := server.Shutdown(); err != nil {
			log.Logger.Error(err)
		}
	}()
	server.Host = "127.0.0.1"
	server.Port = *port
	server.EnabledListeners = []string{"http"}
	api.ConfigureAPI(*treeID)
	server.ConfigureAPI()
	if err := server.Serve(); err != nil {
		log.Logger.Fatal(err)
	}
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "rekor-server:", err)
		os.Exit(2)
	}
}
