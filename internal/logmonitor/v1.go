package logmonitor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"fmt"
	"net/http"
	"strconv"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// Rekor v1: the REST API. The signed tree head of a shard is GET /api/v1/log?treeID=, a consistency proof
// GET /api/v1/log/proof, and entries with an inclusion proof against the shard's current tree POST
// /api/v1/log/entries/retrieve, at most ten a request.

// maxRetrieve is the most entries one retrieval asks for (the API's bound).
const maxRetrieve = 10

// maxV1Response bounds one API answer: ten entries of at most a few hundred KiB (a DSSE envelope's
// entry holds hashes, not the payload), their proofs and checkpoints.
const maxV1Response = 4 << 20

// v1Checkpoint reads a shard's signed tree head.
func (m *Monitor) v1Checkpoint(ctx context.Context, l Log) ([]byte, error) {
	data, err := m.get(ctx, l, "checkpoint", fmt.Sprintf("%s/api/v1/log?treeID=%d", l.URL, l.TreeID), -maxV1Response)
	if err != nil {
		return nil, err
	}
	var info struct {
		SignedTreeHead string `json:"signedTreeHead"`
		TreeID         string `json:"treeID"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("the log info of %s does not parse: %w", l.Origin, err)
	}
	if info.TreeID != strconv.FormatInt(l.TreeID, 10) {
		return nil, fmt.Errorf("asked for tree %d of %s, the log answered for tree %q", l.TreeID, l.Origin, info.TreeID)
	}
	return []byte(info.SignedTreeHead), nil
}

// v1Consistency proves the tree old a prefix of next through the API's consistency proof.
func (m *Monitor) v1Consistency(ctx context.Context, l Log, next, old tlog.Tree) error {
	if old.N == 0 {
		return nil
	}
	data, err := m.get(ctx, l, "proof", fmt.Sprintf("%s/api/v1/log/proof?firstSize=%d&lastSize=%d&treeID=%d", l.URL, old.N, next.N, l.TreeID), -maxV1Response)
	if err != nil {
		return fmt.Errorf("reading the consistency proof from size %d to %d: %w", old.N, next.N, err)
	}
	var p struct {
		Hashes []string `json:"hashes"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("the consistency proof from size %d to %d does not parse: %w", old.N, next.N, err)
	}
	hashes, err := hexHashes(p.Hashes)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotConsistent, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(old.N), uint64(next.N), hashes, old.Hash[:], next.Hash[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrNotConsistent, err)
	}
	return nil
}

func hexHashes(in []string) ([][]byte, error) {
	if len(in) > 128 {
		return nil, fmt.Errorf("a proof of %d hashes", len(in))
	}
	out := make([][]byte, len(in))
	for i, h := range in {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("hash %d of the proof is not a SHA-256 in hex", i)
		}
		out[i] = b
	}
	return out, nil
}

// v1Entry is what the retrieval API says of one entry.
type v1Entry struct {
	Body           string `json:"body"`
	LogIndex       int64  `json:"logIndex"`
	IntegratedTime int64  `json:"integratedTime"`
	Verification   struct {
		InclusionProof *struct {
			LogIndex   int64    `json:"logIndex"`
			TreeSize   int64    `json:"treeSize"`
			RootHash   string   `json:"rootHash"`
			Hashes     []string `json:"hashes"`
			Checkpoint string   `json:"checkpoint"`
		} `json:"inclusionProof"`
	} `json:"verification"`
}

// v1Prove proves entries (of one shard, with the trusted tree of the shard verified) included: it
// retrieves them ten at a time, checks each body against the entry's leaf hash and its inclusion proof
// against the tree the proof is for, and that tree against the trusted one: the same tree, or one the
// trusted tree is proven (through the log's consistency proof) to extend or to be extended by, its
// checkpoint signed with the log's key. An entry proven in a tree that the trusted one is consistent
// with is in the trusted one.
func (m *Monitor) v1Prove(ctx context.Context, l Log, st *logState, v view, entries []Entry) []Result {
	trusted := *v.trusted
	out := make([]Result, len(entries))
	for start := 0; start < len(entries); start += maxRetrieve {
		batch := entries[start:min(start+maxRetrieve, len(entries))]
		found, err := m.v1Retrieve(ctx, l, batch)
		for i, e := range batch {
			r := Result{Log: l.Name(), Origin: l.Origin, Index: e.Index, TreeSize: trusted.Tree.N}
			switch {
			case err != nil:
				r.Status, r.Message = Unavailable, fmt.Sprintf("retrieving entry %d from log %s: %v", e.Global, l.Origin, err)
			default:
				r = m.v1Check(ctx, l, st, v, e, found[e.Global], r)
			}
			out[start+i] = r
		}
	}
	return out
}

func (m *Monitor) v1Retrieve(ctx context.Context, l Log, batch []Entry) (map[int64]v1Entry, error) {
	idx := make([]int64, len(batch))
	for i, e := range batch {
		idx[i] = e.Global
	}
	body, _ := json.Marshal(map[string]any{"logIndexes": idx})
	data, err := m.post(ctx, l, "entries", l.URL+"/api/v1/log/entries/retrieve", body, maxV1Response)
	if err != nil {
		return nil, err
	}
	var answer []map[string]v1Entry
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, fmt.Errorf("the entries do not parse: %w", err)
	}
	found := map[int64]v1Entry{}
	for _, byUUID := range answer {
		for _, e := range byUUID {
			found[e.LogIndex] = e
		}
	}
	return found, nil
}

// v1Check decides one retrieved entry. It says NotInLog only when the log proves, against a tree head it
// signed that is consistent with the trusted one, that another entry is at the index; anything it does
// not prove (no entry returned, a proof that does not verify) is Unavailable: a lagging backend or a
// mirror in the middle is not evidence.
func (m *Monitor) v1Check(ctx context.Context, l Log, st *logState, v view, e Entry, got v1Entry, r Result) Result {
	trusted := *v.trusted
	unavailable := func(why string) Result {
		r.Status, r.Message = Unavailable, fmt.Sprintf("entry %d of log %s: %s", e.Global, l.Origin, why)
		return r
	}
	ip := got.Verification.InclusionProof
	if got.Body == "" || ip == nil {
		return unavailable("the log returns no entry with an inclusion proof at that index")
	}
	body, err := base64.StdEncoding.DecodeString(got.Body)
	if err != nil {
		return unavailable("the log returns an entry whose body does not decode")
	}
	leaf := LeafHash(body)
	hashes, err := hexHashes(ip.Hashes)
	root, rerr := hex.DecodeString(ip.RootHash)
	if err != nil || rerr != nil || len(root) != tlog.HashSize || ip.TreeSize <= 0 || ip.LogIndex < 0 ||
		proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.LogIndex), uint64(ip.TreeSize), leaf[:], hashes, root) != nil {
		return unavailable("the log's inclusion proof does not verify")
	}
	var tree tlog.Tree
	tree.N = ip.TreeSize
	copy(tree.Hash[:], root)
	// The proof's tree: the trusted one, or one the log signed that is consistent with it.
	var cp Checkpoint
	if tree == trusted.Tree {
		cp = trusted
	} else {
		cp, err = VerifyCheckpoint(l, []byte(ip.Checkpoint))
		if err != nil || cp.Tree != tree {
			return unavailable(fmt.Sprintf("its inclusion proof is for a tree of size %d that no checkpoint signed by the log vouches for", tree.N))
		}
		newer, older := cp, trusted
		if cp.Tree.N < trusted.Tree.N {
			newer, older = trusted, cp
		}
		verdict, err := Compare(older.Tree, newer.Tree, func(next, old tlog.Tree) error { return m.v1Consistency(ctx, l, next, old) })
		switch {
		case verdict == Consistent:
		case verdict == Fork && older.Tree.N == newer.Tree.N:
			// Two signed tree heads of one size: a fork anyone can check.
			now := m.opts.Clock()
			m.inconsistent(ctx, l, st, now, v.gen, &Inconsistency{Kind: Fork, Detected: now, Message: err.Error(), Trusted: trusted.Raw, Conflicting: cp.Raw})
			r.Status, r.Message = Inconsistent, fmt.Sprintf("log %s is inconsistent: %v", l.Origin, err)
			return r
		default:
			// An unauthenticated API proof that does not verify: the next read of the log decides.
			return unavailable(fmt.Sprintf("its inclusion proof is for a tree of size %d not proven consistent with the trusted one of size %d: %v", tree.N, trusted.Tree.N, err))
		}
	}
	if got.LogIndex != e.Global || ip.LogIndex != e.Index {
		return unavailable(fmt.Sprintf("the log answers with entry %d (index %d of its tree) for entry %d (index %d)", got.LogIndex, ip.LogIndex, e.Global, e.Index))
	}
	if leaf != e.Leaf {
		r.Status, r.Message = NotInLog, fmt.Sprintf("entry %d is not in log %s: its tree of size %d holds another entry at that index", e.Global, l.Origin, tree.N)
		return r
	}
	r.Status, r.TreeSize = InLog, max(trusted.Tree.N, cp.Tree.N)
	r.Message = fmt.Sprintf("entry %d proven in log %s at tree size %d", e.Global, l.Origin, r.TreeSize)
	// Proven in a tree that the trusted one extends (or is): so is every later trusted tree, each proven
	// to extend the one before. One proven in a newer tree is proven again once the trusted one reaches it.
	r.cacheable = cp.Tree.N <= trusted.Tree.N
	return r
}

// post sends a JSON body to the log and reads the answer, at most limit bytes.
func (m *Monitor) post(ctx context.Context, l Log, kind, url string, body []byte, limit int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	data, code, err := m.do(req, limit)
	m.observe(l, kind, code, err)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", url, err)
	}
	return data, nil
}
