// Package tufrepo is a real TUF repository for tests, built with go-tuf's metadata API and served over
// HTTP on 127.0.0.1: a root, targets, snapshot and timestamp role, each with its own ed25519 key,
// consistent snapshots, and one target, trusted_root.json, as a private Sigstore publishes it. Tests
// publish a new trust root, rotate the root key, and break the timestamp (expired, tampered).
package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Target is the name of the trust root in the repository, as sigstore-go asks for it.
const Target = "trusted_root.json"

// Repo is a served TUF repository.
type Repo struct {
	// URL is the repository's base URL (the mirror): metadata at URL/N.root.json, URL/timestamp.json...,
	// targets at URL/targets/HASH.trusted_root.json.
	URL string

	dir       string
	mu        sync.Mutex
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	keys      map[string]ed25519.PrivateKey
	initial   []byte
}

// Start builds a repository holding trustedRoot and serves it until the test ends.
func Start(t testing.TB, trustedRoot []byte) *Repo {
	t.Helper()
	r := &Repo{dir: t.TempDir(), keys: map[string]ed25519.PrivateKey{}}
	expires := time.Now().Add(365 * 24 * time.Hour)
	r.root = metadata.Root(expires)
	r.targets = metadata.Targets(expires)
	r.snapshot = metadata.Snapshot(expires)
	r.timestamp = metadata.Timestamp(expires)
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		r.setKey(t, role)
	}
	r.check(t, r.writeRoot())
	r.initial = r.read(t, "1.root.json")
	r.check(t, r.publishLocked(trustedRoot))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	r.check(t, err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(r.dir)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.URL = "http://" + ln.Addr().String()
	return r
}

// InitialRoot is 1.root.json: what a client is given to trust the repository first.
func (r *Repo) InitialRoot() []byte { return append([]byte(nil), r.initial...) }

// Publish makes trustedRoot the repository's target: new targets, snapshot and timestamp.
func (r *Repo) Publish(t testing.TB, trustedRoot []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.check(t, r.publishLocked(trustedRoot))
}

// RotateRoot replaces the root key with a new one in a new root version, signed by the old and the new
// key, as a TUF root rotation is: a client that trusts the old root follows it.
func (r *Repo) RotateRoot(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.keys[metadata.ROOT]
	oldKey, err := metadata.KeyFromPublicKey(old.Public())
	r.check(t, err)
	oldID, err := oldKey.ID()
	r.check(t, err)
	r.check(t, r.root.Signed.RevokeKey(oldID, metadata.ROOT))
	r.setKey(t, metadata.ROOT)
	r.root.Signed.Version++
	r.root.ClearSignatures()
	for _, k := range []ed25519.PrivateKey{old, r.keys[metadata.ROOT]} {
		r.check(t, sign(r.root, k))
	}
	r.check(t, r.root.ToFile(filepath.Join(r.dir, fmt.Sprintf("%d.root.json", r.root.Signed.Version)), true))
}

// ExpireTimestamp publishes a new timestamp.json, validly signed, that expired an hour ago.
func (r *Repo) ExpireTimestamp(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = time.Now().Add(-time.Hour)
	r.check(t, r.writeTimestamp())
}

// TamperTimestamp publishes a timestamp.json whose content changed after it was signed (a newer
// version, the old signature).
func (r *Repo) TamperTimestamp(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timestamp.Signed.Version += 10
	r.timestamp.Signed.Expires = time.Now().Add(24 * time.Hour)
	r.check(t, r.timestamp.ToFile(filepath.Join(r.dir, "timestamp.json"), true)) // signatures kept, not redone
}

func (r *Repo) setKey(t testing.TB, role string) {
	_, private, err := ed25519.GenerateKey(nil)
	r.check(t, err)
	r.keys[role] = private
	key, err := metadata.KeyFromPublicKey(private.Public())
	r.check(t, err)
	r.check(t, r.root.Signed.AddKey(key, role))
}

func (r *Repo) writeRoot() error {
	r.root.ClearSignatures()
	if err := sign(r.root, r.keys[metadata.ROOT]); err != nil {
		return err
	}
	return r.root.ToFile(filepath.Join(r.dir, fmt.Sprintf("%d.root.json", r.root.Signed.Version)), true)
}

// publishLocked writes the target (by its hash: consistent snapshots), then targets, snapshot and
// timestamp, each in a new version.
func (r *Repo) publishLocked(trustedRoot []byte) error {
	if err := os.MkdirAll(filepath.Join(r.dir, "targets"), 0o755); err != nil {
		return err
	}
	sum := sha256.Sum256(trustedRoot)
	if err := os.WriteFile(filepath.Join(r.dir, "targets", hex.EncodeToString(sum[:])+"."+Target), trustedRoot, 0o644); err != nil {
		return err
	}
	info, err := metadata.TargetFile().FromBytes(Target, trustedRoot, "sha256")
	if err != nil {
		return err
	}
	if r.exists(fmt.Sprintf("%d.targets.json", r.targets.Signed.Version)) {
		r.targets.Signed.Version++
	}
	r.targets.Signed.Targets = map[string]*metadata.TargetFiles{Target: info}
	r.targets.ClearSignatures()
	if err := sign(r.targets, r.keys[metadata.TARGETS]); err != nil {
		return err
	}
	if err := r.targets.ToFile(filepath.Join(r.dir, fmt.Sprintf("%d.targets.json", r.targets.Signed.Version)), true); err != nil {
		return err
	}
	if r.exists(fmt.Sprintf("%d.snapshot.json", r.snapshot.Signed.Version)) {
		r.snapshot.Signed.Version++
	}
	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(r.targets.Signed.Version)
	r.snapshot.ClearSignatures()
	if err := sign(r.snapshot, r.keys[metadata.SNAPSHOT]); err != nil {
		return err
	}
	if err := r.snapshot.ToFile(filepath.Join(r.dir, fmt.Sprintf("%d.snapshot.json", r.snapshot.Signed.Version)), true); err != nil {
		return err
	}
	if r.exists("timestamp.json") {
		r.timestamp.Signed.Version++
	}
	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
	r.timestamp.Signed.Expires = time.Now().Add(24 * time.Hour) // a fresh one, after an expired one too
	return r.writeTimestamp()
}

func (r *Repo) writeTimestamp() error {
	r.timestamp.ClearSignatures()
	if err := sign(r.timestamp, r.keys[metadata.TIMESTAMP]); err != nil {
		return err
	}
	return r.timestamp.ToFile(filepath.Join(r.dir, "timestamp.json"), true)
}

func (r *Repo) exists(name string) bool {
	_, err := os.Stat(filepath.Join(r.dir, name))
	return err == nil
}

func (r *Repo) read(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	r.check(t, err)
	return b
}

func (r *Repo) check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("TUF repository: %v", err)
	}
}

// signable is the part of metadata.Metadata that sign needs.
type signable interface {
	Sign(signer signature.Signer) (*metadata.Signature, error)
}

func sign(m signable, key ed25519.PrivateKey) error {
	s, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		return err
	}
	_, err = m.Sign(s)
	return err
}
