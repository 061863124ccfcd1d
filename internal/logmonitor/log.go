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
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
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
	// ID is the log's ID in the trust root (hex sha256 of its public key's DER).
	ID string
	// URL is where its checkpoint and tiles are read (C2SP tlog-tiles), without a trailing slash.
	URL string
	// Verifier checks the signature of its checkpoints.
	Verifier sumdbnote.Verifier
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
	return Log{Origin: u.Hostname(), ID: hex.EncodeToString(id), URL: strings.TrimRight(tilesURL, "/"), Verifier: v}, nil
}

var notDNS = regexp.MustCompile(`[^a-z0-9.]+`)

// Name is the name of the log's TransparencyLog object: its origin made a DNS subdomain, and the first 8
// hex digits of its ID (two logs may share an origin after a key rotation).
func (l Log) Name() string {
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

// Entry is one entry to prove included: its index and its RFC 6962 leaf hash.
type Entry struct {
	Log   Log
	Index int64
	Leaf  tlog.Hash
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
}

func shortHash(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 16 {
		return s[:16]
	}
	return s
}
