// Package trust loads Sigstore trust roots (Fulcio CAs, Rekor logs, timestamp authorities, CT logs):
// the public-good root through TUF with an embedded snapshot as the offline fallback, or a
// trusted_root.json given by a policy or a flag.
package trust

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

//go:embed embedded/public-good.trusted_root.json
var embeddedPublicGood []byte

// Source names where a trust root came from.
const (
	SourceTUF      = "public-good (TUF)"
	SourceEmbedded = "public-good (embedded snapshot)"
)

// ErrUnavailable wraps every failure to load a trust root.
var ErrUnavailable = errors.New("trusted root unavailable")

// Root is a loaded trust root.
type Root struct {
	// Material is what sigstore-go verifies against.
	Material *root.TrustedRoot
	// Source says where it came from: SourceTUF, SourceEmbedded, or a ConfigMap or file name.
	Source string
	// Version is the sha256 of the trusted_root.json: it changes exactly when the root changes, so it
	// keys cached results.
	Version string
	// Fallback, for the public-good root, says why TUF could not deliver a current one and this one
	// stands in ("" when it is current, or the snapshot was asked for).
	Fallback string
}

// RequireSCT reports whether certificates must carry a signed certificate timestamp: exactly when the
// root lists certificate transparency logs (the public-good root does; a private stack may not).
func (r *Root) RequireSCT() bool { return len(r.Material.CTLogs()) > 0 }

// FromJSON parses a trusted_root.json; source names it in messages.
func FromJSON(data []byte, source string) (*Root, error) {
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing trusted_root.json from %s: %v", ErrUnavailable, source, err)
	}
	sum := sha256.Sum256(data)
	return &Root{Material: tr, Source: source, Version: hex.EncodeToString(sum[:])}, nil
}

// Embedded returns the embedded snapshot of the public-good trust root.
func Embedded() (*Root, error) { return FromJSON(embeddedPublicGood, SourceEmbedded) }

// PublicGoodOptions configure the TUF client.
type PublicGoodOptions struct {
	// Offline skips TUF and uses the embedded snapshot.
	Offline bool
	// CacheDir is the TUF cache; empty means $HOME/.sigstore/root.
	CacheDir string
	// Timeout bounds the whole TUF update (default 30s).
	Timeout time.Duration
}

// PublicGood loads the public-good trust root through sigstore-go's TUF client and falls back to the
// embedded snapshot when TUF cannot be reached. The returned error, if any, says why TUF failed; the root
// is then the snapshot (never nil).
func PublicGood(ctx context.Context, opts PublicGoodOptions) (*Root, error) {
	snapshot, err := Embedded()
	if err != nil {
		return nil, err // the embedded file is part of the binary: only a broken build gets here
	}
	if opts.Offline {
		return snapshot, nil
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	tufOpts := tuf.DefaultOptions().WithContext(ctx)
	if opts.CacheDir != "" {
		tufOpts = tufOpts.WithCachePath(opts.CacheDir)
	}
	data, err := fetchTarget(ctx, tufOpts, timeout, "trusted_root.json")
	if err != nil {
		return snapshot, err
	}
	tr, err := FromJSON(data, SourceTUF)
	if err != nil {
		return snapshot, fmt.Errorf("TUF trusted_root.json unusable: %w", err)
	}
	return tr, nil
}

// fetchTarget updates the TUF metadata (root rotations, timestamp, snapshot, targets, each verified as
// TUF specifies: signatures, thresholds, versions, expiry) and returns the target, hash-checked against
// the targets metadata. ctx and timeout bound it all.
func fetchTarget(ctx context.Context, tufOpts *tuf.Options, timeout time.Duration, target string) ([]byte, error) {
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(&http.Client{Timeout: timeout})
	tufOpts = tufOpts.WithFetcher(f)

	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := tuf.New(tufOpts)
		if err != nil {
			done <- result{err: err}
			return
		}
		data, err := c.GetTarget(target)
		done <- result{data: data, err: err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("TUF update failed: %w", r.err)
		}
		return r.data, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("TUF update timed out after %s", timeout)
	}
}

// TUFOptions name a TUF repository that publishes a Sigstore trusted_root.json: a private Sigstore's,
// as sigstore-go's TUF client takes it.
type TUFOptions struct {
	// Mirror is the repository's base URL: metadata at MIRROR/N.root.json, MIRROR/timestamp.json...
	Mirror string
	// Root is the initial root.json the repository is first trusted with; later roots are followed
	// through the repository's own rotations (each signed by the root before it).
	Root []byte
	// CacheDir keeps the metadata and the target on disk, so that a restart continues from the last
	// verified root; empty: in memory only.
	CacheDir string
	// Timeout bounds the whole update (default 30s).
	Timeout time.Duration
}

// SourceOfTUF is how a root from the TUF repository at mirror is named.
func SourceOfTUF(mirror string) string { return "TUF " + mirror }

// FromTUF loads the trusted_root.json target of a TUF repository. Unlike PublicGood there is no
// snapshot to fall back to: the error says why the repository could not deliver.
func FromTUF(ctx context.Context, opts TUFOptions) (*Root, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tufOpts := tuf.DefaultOptions().WithContext(ctx).WithRepositoryBaseURL(opts.Mirror).WithRoot(opts.Root)
	if opts.CacheDir != "" {
		tufOpts = tufOpts.WithCachePath(opts.CacheDir)
	} else {
		tufOpts = tufOpts.WithDisableLocalCache()
	}
	data, err := fetchTarget(ctx, tufOpts, timeout, "trusted_root.json")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, opts.Mirror, err)
	}
	return FromJSON(data, SourceOfTUF(opts.Mirror))
}
