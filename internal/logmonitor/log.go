// Package logmonitor checks, live, that the transparency log entries of accepted signatures are still in
// their log and that the log was never rewritten: for each log it reads the current signed checkpoint,
// verifies its signature with the log's key, proves it consistent with the last checkpoint it verified
// (persisted through a Store, so that a restart or another replica continues from it), and proves each
// entry included in the current tree. Rekor v2 logs are read as C2SP tlog-tiles (checkpoint and hash
// tiles over HTTP); full tiles are immutable and cached, so a cycle over many entries costs requests per
// log and per tile touched, not per entry.
package logmonitor

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore/pkg/signature"
	sumdbnote "golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Log is one transparency log, as a trust root describes it.
type Log struct {
	// Origin is the first line of its checkpoints: for Rekor v2, the host of its baseUrl.
	Origin string
	// ID is the hex sha256 of the public key's DER (a trust root's log ID, for the logs that follow the
	// convention).
	ID string
	// URL is where its checkpoint and tiles are read (C2SP tlog-tiles), without a trailing slash.
	URL string
	// Verifier checks the signature of its checkpoints (Rekor v2).
	Verifier sumdbnote.Verifier
	// V1 is set for a Rekor v1 log, read through its REST API at URL: TreeID is its shard's tree (the
	// origin of its checkpoints is "HOST - TREEID"), and Signer checks its signed tree heads.
	V1     bool
	TreeID int64
	Signer signature.Verifier
	// name is Name(), computed once by the constructors.
	name string
}

// NewV1Log describes one shard (tree) of a Rekor v1 log from its trust root entry (baseUrl, ID, key) and
// the origin of a checkpoint of the shard ("HOST - TREEID", as the bundles' inclusion proofs carry it,
// already verified offline). url, if set, is where its API is read instead of the baseUrl.
func NewV1Log(baseURL string, id []byte, key crypto.PublicKey, hash crypto.Hash, origin, apiURL string) (Log, error) {
	_, tree, ok := strings.Cut(origin, " - ")
	treeID, err := strconv.ParseInt(tree, 10, 64)
	if !ok || err != nil || treeID <= 0 {
		return Log{}, fmt.Errorf("transparency log %x: checkpoint origin %q does not name a Rekor v1 tree", id, origin)
	}
	if hash == 0 {
		hash = crypto.SHA256
	}
	sv, err := signature.LoadVerifier(key, hash)
	if err != nil {
		return Log{}, fmt.Errorf("transparency log %s: loading its key: %w", origin, err)
	}
	if apiURL == "" {
		apiURL = baseURL
	}
	if _, err := url.Parse(apiURL); err != nil {
		return Log{}, fmt.Errorf("transparency log %s: %w", origin, err)
	}
	l := Log{Origin: origin, ID: keyID(key, id), URL: strings.TrimRight(apiURL, "/"), V1: true, TreeID: treeID, Signer: sv}
	l.name = l.computeName()
	return l, nil
}

// keyID is the hex sha256 of the key's PKIX DER: what identifies a log's state is the key that signs its
// checkpoints, not the ID a trust root declares for it (two roots could declare one ID for two keys).
func keyID(key crypto.PublicKey, declared []byte) string {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return hex.EncodeToString(declared)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// NewLog describes a Rekor v2 log from its trust root entry: its baseUrl (whose host is the checkpoints'
// origin, and, unless url is set, where its tiles are read), its ID and its public key.
func NewLog(baseURL string, id []byte, key crypto.PublicKey, hash crypto.Hash, tilesURL string) (Log, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Hostname() == "" {
		return Log{}, fmt.Errorf("transparency log %x: baseUrl %q is not a URL", id, baseURL)
	}
	if hash == 0 {
		hash = crypto.SHA256
	}
	sv, err := signature.LoadVerifier(key, hash)
	if err != nil {
		return Log{}, fmt.Errorf("transparency log %s: loading its key: %w", u.Hostname(), err)
	}
	v, err := note.NewNoteVerifier(u.Hostname(), sv)
	if err != nil {
		return Log{}, fmt.Errorf("transparency log %s: %w", u.Hostname(), err)
	}
	if tilesURL == "" {
		tilesURL = baseURL
	}
	l := Log{Origin: u.Hostname(), ID: keyID(key, id), URL: strings.TrimRight(tilesURL, "/"), Verifier: v}
	l.name = l.computeName()
	return l, nil
}

var notDNS = regexp.MustCompile(`[^a-z0-9.]+`)

// Name is the name of the log's TransparencyLog object: its origin made a DNS subdomain, and the first 8
// hex digits of its ID (two logs may share an origin after a key rotation).
func (l Log) Name() string {
	if l.name != "" {
		return l.name
	}
	return l.computeName()
}

func (l Log) computeName() string {
	o := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(l.Origin), "-"), "-.")
	if len(o) > 200 {
		o = o[:200]
	}
	id := l.ID
	if len(id) > 8 {
		id = id[:8]
	}
	if o == "" {
		return "log-" + id
	}
	return o + "-" + id
}

// Entry is one entry to prove included: its index in its tree and its RFC 6962 leaf hash. Global is, for
// a Rekor v1 log, the entry's index across the log's shards, by which the API retrieves it.
type Entry struct {
	Log    Log
	Index  int64
	Global int64
	Leaf   tlog.Hash
}

// LeafHash is the RFC 6962 leaf hash of an entry's canonicalized body.
func LeafHash(body []byte) tlog.Hash { return tlog.RecordHash(body) }

// Key identifies the entry within the process's caches.
func (e Entry) key() string {
	return e.Log.Name() + "|" + fmt.Sprint(e.Index) + "|" + hex.EncodeToString(e.Leaf[:])
}

// Status is the outcome of a live check of one entry.
type Status string

const (
	InLog        Status = "InLog"
	NotInLog     Status = "NotInLog"
	Inconsistent Status = "Inconsistent"
	Unavailable  Status = "Unavailable"
)

// Result is the live check of one entry.
type Result struct {
	Status Status
	// Log names the log's TransparencyLog; Origin is its checkpoint origin.
	Log, Origin string
	Index       int64
	// TreeSize is the size of the tree the entry was proven in (InLog), or that was examined.
	TreeSize int64
	Message  string
	// cacheable: a Rekor v1 entry proven in a tree that the trusted one is, or extends.
	cacheable bool
}

func shortHash(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 16 {
		return s[:16]
	}
	return s
}
