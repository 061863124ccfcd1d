package sigstore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/sigwatch/sigwatch/test/sigstore"
)

// A keyless signature of a GitHub Actions workflow, in cosign v3's bundle format, and the trusted root
// that verifies it.
func Example() {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()

	stack, err := sigstore.NewStack()
	if err != nil {
		log.Fatal(err)
	}
	w := &sigstore.Writer{Registry: strings.TrimPrefix(srv.URL, "http://")}
	ctx := context.Background()
	img, err := w.PushRandomImage(ctx, "demo/app:v1")
	if err != nil {
		log.Fatal(err)
	}
	signer := &sigstore.KeylessSigner{Stack: stack, Identity: sigstore.GitHubActions("acme/app", "release.yml", "refs/heads/main")}
	res, err := w.SignBundle(ctx, img, signer, sigstore.SignOptions{Timestamp: true})
	if err != nil {
		log.Fatal(err)
	}
	trustedRoot, err := stack.TrustedRootJSON() // what the verifier trusts
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Certificate.URIs[0])
	fmt.Println(res.LogEntry.Kind, res.Timestamp != nil, len(trustedRoot) > 0)
	// Output:
	// https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main
	// dsse true true
}
