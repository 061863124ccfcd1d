package logmonitor

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/sigstore/rekor/pkg/util"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/tlog"
)

const v1Tree = 42

// v1Log is a Rekor v1 API in memory over a testLog's tree: signed tree heads, consistency proofs and the
// bulk retrieval of entries with inclusion proofs, as rekor-server answers them.
type v1Log struct {
	*testLog
	mu        sync.Mutex
	bodies    [][]byte
	sth       []byte // served instead of a fresh tree head, when set
	badProof  bool   // consistency proofs of the wrong hashes
	swap      map[int64][]byte
	index     map[string][]string // digest -> entry UUIDs
	byUUID    map[string]int64    // entry UUID -> index in the tree
	retrieves int
	srv       *httptest.Server
}

func newV1Log(t *testing.T) *v1Log {
	l := &v1Log{testLog: newTestLog(t, "rekor.test", nil), swap: map[int64][]byte{}, index: map[string][]string{}, byUUID: map[string]int64{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serveV1))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *v1Log) origin() string { return fmt.Sprintf("rekor.test - %d", v1Tree) }

func (l *v1Log) v1log() Log {
	der, _ := x509.MarshalPKIXPublicKey(l.key.Public())
	id := sha256.Sum256(der)
	lg, err := NewV1Log("https://rekor.test", id[:], l.key.Public(), crypto.SHA256, l.origin(), l.srv.URL)
	if err != nil {
		l.t.Fatal(err)
	}
	return lg
}

// addV1 logs an entry; its global index is 1000 more than its index in the tree (an older shard before).
func (l *v1Log) addV1(body string) Entry {
	e := l.add(body)
	l.mu.Lock()
	l.bodies = append(l.bodies, []byte(body))
	l.mu.Unlock()
	e.Global = e.Index + 1000
	e.Log = l.v1log()
	return e
}

func (l *v1Log) signedHead(n int64) []byte {
	l.testLog.mu.Lock()
	defer l.testLog.mu.Unlock()
	h, err := tlog.TreeHash(n, l.HashReader())
	if err != nil {
		l.t.Fatal(err)
	}
	sv, _ := signature.LoadECDSASignerVerifier(l.key, crypto.SHA256)
	out, err := util.CreateAndSignCheckpoint(context.Background(), "rekor.test", v1Tree, uint64(n), h[:], sv)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (l *v1Log) size() int64 {
	l.testLog.mu.Lock()
	defer l.testLog.mu.Unlock()
	return l.n
}

func hexes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

func (l *v1Log) serveV1(w http.ResponseWriter, r *http.Request) {
	n := l.size()
	switch r.URL.Path {
	case "/api/v1/log":
		l.mu.Lock()
		sth := l.sth
		l.mu.Unlock()
		if sth == nil {
			sth = l.signedHead(n)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"treeID": strconv.Itoa(v1Tree), "treeSize": n, "signedTreeHead": string(sth)})
	case "/api/v1/log/proof":
		first, _ := strconv.ParseInt(r.URL.Query().Get("firstSize"), 10, 64)
		last, _ := strconv.ParseInt(r.URL.Query().Get("lastSize"), 10, 64)
		l.testLog.mu.Lock()
		p, err := tlog.ProveTree(last, first, l.HashReader())
		l.testLog.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		if l.badProof && len(p) > 0 {
			p[0][0] ^= 1
		}
		l.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"hashes": hexes(p)})
	case "/api/v1/index/retrieve":
		var q struct {
			Hash string `json:"hash"`
		}
		_ = json.NewDecoder(r.Body).Decode(&q)
		l.mu.Lock()
		uuids := l.index[q.Hash]
		l.mu.Unlock()
		_ = json.NewEncoder(w).Encode(append([]string{}, uuids...))
	case "/api/v1/log/entries/retrieve":
		var q struct {
			LogIndexes []int64  `json:"logIndexes"`
			EntryUUIDs []string `json:"entryUUIDs"`
		}
		_ = json.NewDecoder(r.Body).Decode(&q)
		l.mu.Lock()
		l.retrieves++
		var out []map[string]any
		for _, u := range q.EntryUUIDs {
			if i, ok := l.byUUID[u]; ok {
				q.LogIndexes = append(q.LogIndexes, i+1000)
			}
		}
		l.mu.Unlock()
		for _, g := range q.LogIndexes {
			i := g - 1000
			if i < 0 || i >= n {
				continue
			}
			l.testLog.mu.Lock()
			p, _ := tlog.ProveRecord(n, i, l.HashReader())
			root, _ := tlog.TreeHash(n, l.HashReader())
			l.testLog.mu.Unlock()
			l.mu.Lock()
			body := l.bodies[i]
			if b, ok := l.swap[i]; ok {
				body = b
			}
			l.mu.Unlock()
			leaf := LeafHash(body)
			out = append(out, map[string]any{hex.EncodeToString(leaf[:]): map[string]any{
				"body": base64.StdEncoding.EncodeToString(body), "logIndex": g, "integratedTime": 1_800_000_000,
				"verification": map[string]any{"inclusionProof": map[string]any{"logIndex": i, "treeSize": n,
					"rootHash": hex.EncodeToString(root[:]), "hashes": hexes(p), "checkpoint": string(l.signedHead(n))}},
			}})
		}
		_ = json.NewEncoder(w).Encode(out)
	default:
		http.NotFound(w, r)
	}
}

func fillV1(l *v1Log, n int, prefix string) []Entry {
	var out []Entry
	for i := range n {
		out = append(out, l.addV1(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return out
}

func TestV1InclusionAndConsistency(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	l := newV1Log(t)
	es := fillV1(l, 25, "a")
	store := newMemStore()
	m := newMonitor(store, c)
	for _, r := range m.Check(context.Background(), es) {
		g.Expect(r.Status).To(Equal(InLog), r.Message)
		g.Expect(r.TreeSize).To(Equal(int64(25)))
	}
	g.Expect(l.retrieves).To(Equal(3), "25 entries, ten a retrieval")
	g.Expect(store.get(l.v1log()).Tree.N).To(Equal(int64(25)))
	g.Expect(m.Check(context.Background(), es[:1])[0].Message).To(ContainSubstring("entry 1000 proven in log rekor.test - 42"))

	// The log grows: the new tree head is proven consistent through the API; the entries already
	// proven hold without another retrieval.
	fillV1(l, 30, "b")
	c.add(2 * time.Minute)
	for _, r := range m.Check(context.Background(), es) {
		g.Expect(r.Status).To(Equal(InLog), r.Message)
		g.Expect(r.TreeSize).To(Equal(int64(55)))
	}
	g.Expect(l.retrieves).To(Equal(3))
	g.Expect(store.get(l.v1log()).Tree.N).To(Equal(int64(55)))

	// An entry logged after the tree head was read is proven against the larger tree of its proof.
	fresh := l.addV1("fresh")
	r := m.Check(context.Background(), []Entry{fresh})[0]
	g.Expect(r.Status).To(Equal(InLog), r.Message)
}

func TestV1NegativeCases(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	t.Run("another body at the index", func(t *testing.T) {
		g := NewWithT(t)
		l := newV1Log(t)
		es := fillV1(l, 5, "a")
		// A body its inclusion proof does not prove: nothing is proven either way.
		l.swap[2] = []byte("someone else's entry")
		r := newMonitor(nil, c).Check(context.Background(), es[2:3])[0]
		g.Expect(r.Status).To(Equal(Unavailable), r.Message)
		g.Expect(r.Message).To(ContainSubstring("inclusion proof does not verify"))
	})
	t.Run("no entry returned", func(t *testing.T) {
		g := NewWithT(t)
		l := newV1Log(t)
		es := fillV1(l, 5, "a")
		e := es[1]
		e.Global = 5 // an index the log does not answer for: a lagging backend proves nothing
		r := newMonitor(nil, c).Check(context.Background(), []Entry{e})[0]
		g.Expect(r.Status).To(Equal(Unavailable), r.Message)
	})
	t.Run("another leaf than the bundle's, proven", func(t *testing.T) {
		g := NewWithT(t)
		l := newV1Log(t)
		es := fillV1(l, 5, "a")
		e := es[1]
		e.Leaf = LeafHash([]byte("the bundle's entry"))
		r := newMonitor(nil, c).Check(context.Background(), []Entry{e})[0]
		g.Expect(r.Status).To(Equal(NotInLog), r.Message)
		g.Expect(r.Message).To(ContainSubstring("holds another entry at that index"))
	})
	t.Run("forged tree head", func(t *testing.T) {
		g := NewWithT(t)
		l := newV1Log(t)
		es := fillV1(l, 5, "a")
		other := newV1Log(t)
		fillV1(other, 5, "x")
		l.sth = other.signedHead(5) // another key
		store := newMemStore()
		r := newMonitor(store, c).Check(context.Background(), es[:1])[0]
		g.Expect(r.Status).To(Equal(Unavailable), r.Message)
		g.Expect(r.Message).To(ContainSubstring("does not verify"))
		g.Expect(store.get(l.v1log()).Inconsistency).To(BeNil())
	})
	t.Run("a consistency proof that does not verify", func(t *testing.T) {
		g := NewWithT(t)
		l := newV1Log(t)
		es := fillV1(l, 5, "a")
		store := newMemStore()
		cl := &clock{now: c.now}
		m := newMonitor(store, cl)
		g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
		fillV1(l, 5, "b")
		l.badProof = true
		cl.add(2 * time.Minute)
		// An API proof is not authenticated: a bad one proves nothing anyone could check. Unavailable,
		// for as long as the log gives no valid one.
		for range 3 {
			r := m.Check(context.Background(), es[:1])[0]
			g.Expect(r.Status).To(Equal(Unavailable), r.Message)
			g.Expect(r.Message).To(ContainSubstring("gives no valid consistency proof"))
			cl.add(6 * time.Minute)
		}
		g.Expect(store.get(l.v1log()).Inconsistency).To(BeNil())
		l.badProof = false
		g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
	})
	t.Run("an older tree head for longer than the grace", func(t *testing.T) {
		g := NewWithT(t)
		l := newV1Log(t)
		es := fillV1(l, 5, "a")
		old := l.signedHead(3)
		store := newMemStore()
		cl := &clock{now: c.now}
		m := newMonitor(store, cl)
		g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(InLog))
		l.sth = old
		cl.add(2 * time.Minute)
		g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(Unavailable))
		cl.add(6 * time.Minute)
		g.Expect(m.Check(context.Background(), es[:1])[0].Status).To(Equal(Inconsistent))
		g.Expect(store.get(l.v1log()).Inconsistency.Kind).To(Equal(Rollback))
	})
	t.Run("a checkpoint of another tree", func(t *testing.T) {
		g := NewWithT(t)
		_, err := NewV1Log("https://rekor.test", []byte{1}, nil, crypto.SHA256, "rekor.test", "")
		g.Expect(err).To(MatchError(ContainSubstring("does not name a Rekor v1 tree")))
	})
}

func TestSearchFindsTheSignersOfADigest(t *testing.T) {
	g := NewWithT(t)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	l := newV1Log(t)
	other := newTestLog(t, "x", nil)
	der, _ := x509.MarshalPKIXPublicKey(other.key.Public())
	keyPEM := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	many := make([]string, 9)
	for i := range many {
		many[i] = fmt.Sprintf(`{"signature":"c2ln","verifier":%q}`, keyPEM)
	}
	bodies := []string{
		fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"signatures":[{"signature":"c2ln","verifier":%q}]}}`, keyPEM),
		fmt.Sprintf(`{"apiVersion":"0.0.2","kind":"intoto","spec":{"content":{"envelope":{"signatures":[{"publicKey":%q}]}}}}`, keyPEM),
		`{"kind":"hashedrekord"}`,
		`{"apiVersion":"0.0.1","kind":"dsse","spec":{"signatures":[` + strings.Join(many, ",") + `]}}`, // at most 4 read
	}
	digest := "sha256:" + strings.Repeat("d", 64)
	for _, b := range bodies {
		e := l.addV1(b)
		u := hex.EncodeToString(e.Leaf[:])
		l.byUUID[u] = e.Index
		l.index[digest] = append(l.index[digest], u)
	}
	// An entry the log does not hold, named by a UUID of its own: never read.
	l.index[digest] = append(l.index[digest], strings.Repeat("a", 64))
	m := newMonitor(nil, c)
	found, truncated, err := m.Search(context.Background(), l.v1log(), digest)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(truncated).To(BeFalse())
	g.Expect(found).To(HaveLen(1+1+4), "a hashedrekord entry names no statement subject; at most 4 signatures an entry")
	for _, f := range found {
		g.Expect(f.PublicKey).NotTo(BeNil())
	}
	// Answered from the cache within the interval.
	before := l.retrieves
	_, _, _ = m.Search(context.Background(), l.v1log(), digest)
	g.Expect(l.retrieves).To(Equal(before))

	// A search answer that is not entry UUIDs is refused; one of more than MaxSearchResults is cut.
	bad := "sha256:" + strings.Repeat("e", 64)
	l.index[bad] = []string{"../../etc/passwd"}
	_, _, err = m.Search(context.Background(), l.v1log(), bad)
	g.Expect(err).To(MatchError(ContainSubstring("not an entry UUID")))
	lots := make([]string, MaxSearchResults+5)
	for i := range lots {
		lots[i] = fmt.Sprintf("%064x", i)
	}
	l.index["sha256:"+strings.Repeat("f", 64)] = lots
	_, truncated, err = m.Search(context.Background(), l.v1log(), "sha256:"+strings.Repeat("f", 64))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(truncated).To(BeTrue())

	_, _, err = m.Search(context.Background(), newTestLog(t, "v2.example", nil).log(), digest)
	g.Expect(err).To(MatchError(ContainSubstring("has no search")))
}
