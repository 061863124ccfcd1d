package logmonitor

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore/pkg/signature"
	flog "github.com/transparency-dev/formats/log"
	sumdbnote "golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testLog is a tlog-tiles log in memory, served on loopback: entries are appended, a checkpoint signed by
// its key is published, and the checkpoint and tiles are served as a Rekor v2 log's CDN serves them.
type testLog struct {
	t      *testing.T
	origin string
	key    *ecdsa.PrivateKey
	signer sumdbnote.Signer

	mu       sync.Mutex
	hashes   []tlog.Hash
	n        int64
	served   []byte // the checkpoint served
	down     bool   // answer 500 to everything
	noPart   bool   // 404 for partial level-0 tiles
	requests map[string]int
	srv      *httptest.Server
}

func newTestLog(t *testing.T, origin string, key *ecdsa.PrivateKey) *testLog {
	t.Helper()
	if key == nil {
		var err error
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
	}
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewNoteSigner(context.Background(), origin, sv)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{t: t, origin: origin, key: key, signer: signer, requests: map[string]int{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.srv.Close)
	return l
}

// fork is a second log with this one's key and entries so far, served elsewhere, to be given other
// entries: a split view.
func (l *testLog) fork() *testLog {
	f := newTestLog(l.t, l.origin, l.key)
	l.mu.Lock()
	defer l.mu.Unlock()
	f.hashes, f.n = append([]tlog.Hash(nil), l.hashes...), l.n
	return f
}

func (l *testLog) log() Log {
	l.t.Helper()
	der, err := x509.MarshalPKIXPublicKey(l.key.Public())
	if err != nil {
		l.t.Fatal(err)
	}
	id := sha256.Sum256(der)
	lg, err := NewLog("https://"+l.origin, id[:], l.key.Public(), crypto.SHA256, l.srv.URL)
	if err != nil {
		l.t.Fatal(err)
	}
	return lg
}

func (l *testLog) HashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// add appends an entry and returns it as the monitor would be asked about it.
func (l *testLog) add(body string) Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs, err := tlog.StoredHashes(l.n, []byte(body), l.HashReader())
	if err != nil {
		l.t.Fatal(err)
	}
	l.hashes = append(l.hashes, hs...)
	e := Entry{Index: l.n, Leaf: LeafHash([]byte(body))}
	l.n++
	return e
}

// publish signs a checkpoint of the log as it is and serves it; it returns the signed note.
func (l *testLog) publish() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.served = l.sign(l.n, nil)
	return l.served
}

// sign signs a checkpoint of size n (its true root hash unless hash is set).
func (l *testLog) sign(n int64, hash *tlog.Hash) []byte {
	h, err := tlog.TreeHash(n, l.HashReader())
	if err != nil {
		l.t.Fatal(err)
	}
	if hash != nil {
		h = *hash
	}
	body := flog.Checkpoint{Origin: l.origin, Size: uint64(n), Hash: h[:]}.Marshal()
	signed, err := sumdbnote.Sign(&sumdbnote.Note{Text: string(body)}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return signed
}

// serveCheckpoint serves a given note as the checkpoint.
func (l *testLog) serveCheckpoint(raw []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.served = raw
}

func (l *testLog) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}

func (l *testLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests[kind]
}

func (l *testLog) serve(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/")
	kind := "tile"
	if path == "checkpoint" {
		kind = "checkpoint"
	}
	l.requests[kind]++
	if l.down {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if kind == "checkpoint" {
		if l.served == nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(l.served)
		return
	}
	if !strings.HasPrefix(path, "tile/") || strings.HasPrefix(path, "tile/entries/") {
		http.NotFound(w, r)
		return
	}
	if l.noPart && strings.HasPrefix(path, "tile/0/") && strings.Contains(path, ".p/") {
		http.NotFound(w, r)
		return
	}
	tile, err := tlog.ParseTilePath(strings.Replace(path, "tile/", fmt.Sprintf("tile/%d/", tileHeight), 1))
	if err != nil || tile.L < 0 {
		http.NotFound(w, r)
		return
	}
	data, err := tlog.ReadTileData(tile, l.HashReader())
	if err != nil {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(data)
}

// memStore is a Store in memory; each record made gets a new ID, as an object gets a new UID.
type memStore struct {
	mu    sync.Mutex
	recs  map[string]Record
	saves int
	ids   int
	err   error
}

func newMemStore() *memStore { return &memStore{recs: map[string]Record{}} }

func (s *memStore) Load(_ context.Context, l Log) (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return Record{}, false, s.err
	}
	r, ok := s.recs[l.Name()]
	return r, ok, nil
}

func (s *memStore) Save(_ context.Context, r Record) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", s.err
	}
	s.saves++
	if old, ok := s.recs[r.Log.Name()]; ok {
		r.ID = old.ID
		// As the TransparencyLog status does: never a smaller checkpoint, nor another of the same size.
		if len(old.Checkpoint) > 0 && (r.Tree.N < old.Tree.N || (r.Tree.N == old.Tree.N && r.Tree != old.Tree) || len(r.Checkpoint) == 0) {
			r.Checkpoint, r.Tree, r.VerifiedTime = old.Checkpoint, old.Tree, old.VerifiedTime
		}
	} else {
		s.ids++
		r.ID = fmt.Sprintf("uid-%d", s.ids)
	}
	s.recs[r.Log.Name()] = r
	return r.ID, nil
}

func (s *memStore) get(l Log) Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recs[l.Name()]
}

func (s *memStore) delete(l Log) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, l.Name())
}
