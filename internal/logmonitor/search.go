package logmonitor

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Rekor v1 indexes the subject digests of the in-toto statements of DSSE entries (what cosign v3 logs
// when it signs an image in the bundle format), so the log can be asked who else logged a signature of a
// digest. Rekor v2 has no such index.

// MaxSearchResults bounds the entries read for one digest, and the signers kept of them.
const MaxSearchResults = 32

// maxSignaturesPerEntry bounds the signatures read of one entry.
const maxSignaturesPerEntry = 4

// LoggedSigner is who made an entry the log holds for a digest: the certificate or the public key of the
// entry's signature, as the log recorded it (the log checked the signature when it accepted the entry;
// sigwatch does not check it again).
type LoggedSigner struct {
	UUID           string
	LogIndex       int64
	IntegratedTime time.Time
	// Certificate is set for a keyless signature, PublicKey for a key's.
	Certificate *x509.Certificate
	PublicKey   crypto.PublicKey
}

var uuidPattern = regexp.MustCompile(`^([0-9a-f]{64}|[0-9a-f]{80})$`)

// searchAnswer is a search's outcome as cached: the last good answer, and the last failure.
type searchAnswer struct {
	found     []LoggedSigner
	truncated bool
	at        time.Time
	good      bool
	err       error
	failed    time.Time
}

// Search returns the signers of the entries a Rekor v1 log holds for digest ("sha256:..."), at most
// MaxSearchResults, from a cache kept for Interval; truncated says there were more. A failed search is
// remembered for RetryInterval, and the last good answer is returned meanwhile (a log that fails now
// and then does not make the answer flap); it waits no longer than ctx.
func (m *Monitor) Search(ctx context.Context, l Log, digest string) (found []LoggedSigner, truncated bool, err error) {
	if !l.V1 {
		return nil, false, fmt.Errorf("log %s has no search (Rekor v2)", l.Origin)
	}
	key := "search|" + l.Name() + "|" + digest
	now := m.opts.Clock()
	var last searchAnswer
	if v, ok := m.searches.Get(key); ok {
		last = v.(searchAnswer)
		switch {
		case last.good && now.Sub(last.at) < m.opts.Interval:
			return last.found, last.truncated, nil
		case last.err != nil && now.Sub(last.failed) < m.opts.RetryInterval:
			if last.good {
				return last.found, last.truncated, nil
			}
			return nil, false, last.err
		}
	}
	ch := m.flight.DoChan(key, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.Timeout)
		defer cancel()
		a := last
		found, truncated, err := m.search(sctx, l, digest)
		if err != nil {
			a.err, a.failed = err, m.opts.Clock()
		} else {
			a = searchAnswer{found: found, truncated: truncated, at: m.opts.Clock(), good: true}
		}
		m.searches.Add(key, a)
		return a, nil
	})
	select {
	case r := <-ch:
		a := r.Val.(searchAnswer)
		if a.good {
			return a.found, a.truncated, nil
		}
		return nil, false, a.err
	case <-ctx.Done():
		if last.good {
			return last.found, last.truncated, nil
		}
		return nil, false, fmt.Errorf("searching log %s did not finish in time: %w", l.Origin, ctx.Err())
	}
}

func (m *Monitor) search(ctx context.Context, l Log, digest string) ([]LoggedSigner, bool, error) {
	body, _ := json.Marshal(map[string]string{"hash": digest})
	data, err := m.post(ctx, l, "search", l.URL+"/api/v1/index/retrieve", body, 1<<20)
	if err != nil {
		return nil, false, err
	}
	var uuids []string
	if err := json.Unmarshal(data, &uuids); err != nil {
		return nil, false, fmt.Errorf("the search answer of %s does not parse: %w", l.Origin, err)
	}
	truncated := len(uuids) > MaxSearchResults
	uuids = uuids[:min(len(uuids), MaxSearchResults)]
	var out []LoggedSigner
	for start := 0; start < len(uuids); start += maxRetrieve {
		batch := uuids[start:min(start+maxRetrieve, len(uuids))]
		for _, u := range batch {
			if !uuidPattern.MatchString(u) {
				return nil, false, fmt.Errorf("the search of %s answered %q, not an entry UUID", l.Origin, u)
			}
		}
		q, _ := json.Marshal(map[string]any{"entryUUIDs": batch})
		data, err := m.post(ctx, l, "entries", l.URL+"/api/v1/log/entries/retrieve", q, maxV1Response)
		if err != nil {
			return nil, false, err
		}
		var answer []map[string]v1Entry
		if err := json.Unmarshal(data, &answer); err != nil {
			return nil, false, fmt.Errorf("the entries of %s do not parse: %w", l.Origin, err)
		}
		asked := map[string]bool{}
		for _, u := range batch {
			asked[u] = true
		}
		for _, byUUID := range answer {
			for uuid, e := range byUUID {
				if !asked[uuid] {
					continue // only what was asked for, once
				}
				delete(asked, uuid)
				raw, ok := m.provenEntry(l, uuid, e)
				if !ok {
					continue
				}
				for _, v := range verifiers(raw) {
					s := LoggedSigner{UUID: uuid, LogIndex: e.LogIndex, IntegratedTime: time.Unix(e.IntegratedTime, 0)}
					if s.Certificate, s.PublicKey = parseVerifier(v); (s.Certificate != nil || s.PublicKey != nil) && len(out) < MaxSearchResults {
						out = append(out, s)
					}
				}
			}
		}
	}
	return out, truncated, nil
}

// provenEntry returns an entry's body when the log proves it: the UUID names its leaf hash, and its
// inclusion proof leads to a tree head signed by the log's key (of any of its shards). An entry a mirror
// made up is left out.
func (m *Monitor) provenEntry(l Log, uuid string, e v1Entry) ([]byte, bool) {
	raw, err := base64.StdEncoding.DecodeString(e.Body)
	ip := e.Verification.InclusionProof
	if err != nil || ip == nil {
		return nil, false
	}
	leaf := LeafHash(raw)
	if !strings.HasSuffix(uuid, hex.EncodeToString(leaf[:])) {
		return nil, false
	}
	hashes, err := hexHashes(ip.Hashes)
	root, rerr := hex.DecodeString(ip.RootHash)
	if err != nil || rerr != nil || ip.TreeSize <= 0 || ip.LogIndex < 0 ||
		proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(ip.LogIndex), uint64(ip.TreeSize), leaf[:], hashes, root) != nil {
		return nil, false
	}
	shard := l
	shard.Origin, _, _ = strings.Cut(ip.Checkpoint, "\n")
	cp, err := VerifyCheckpoint(shard, []byte(ip.Checkpoint))
	if err != nil || cp.Tree.N != ip.TreeSize || !bytes.Equal(cp.Tree.Hash[:], root) {
		return nil, false
	}
	return raw, true
}

// verifiers returns the PEM verifiers (certificates or public keys) of an entry's signatures: dsse
// v0.0.1 and intoto v0.0.2, the kinds that carry an in-toto statement's subjects.
func verifiers(body []byte) [][]byte {
	var e struct {
		Kind string `json:"kind"`
		Spec struct {
			Signatures []struct {
				Verifier string `json:"verifier"`
			} `json:"signatures"`
			Content struct {
				Envelope struct {
					Signatures []struct {
						PublicKey string `json:"publicKey"`
					} `json:"signatures"`
				} `json:"envelope"`
			} `json:"content"`
		} `json:"spec"`
	}
	if json.Unmarshal(body, &e) != nil {
		return nil
	}
	var out [][]byte
	add := func(b64 string) {
		if pemBytes, err := base64.StdEncoding.DecodeString(b64); err == nil && len(pemBytes) < 64<<10 {
			out = append(out, pemBytes)
		}
	}
	switch e.Kind {
	case "dsse":
		for _, s := range e.Spec.Signatures[:min(len(e.Spec.Signatures), maxSignaturesPerEntry)] {
			add(s.Verifier)
		}
	case "intoto":
		sigs := e.Spec.Content.Envelope.Signatures
		for _, s := range sigs[:min(len(sigs), maxSignaturesPerEntry)] {
			add(s.PublicKey)
		}
	}
	return out
}

func parseVerifier(pemBytes []byte) (*x509.Certificate, crypto.PublicKey) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, nil
	}
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil
		}
		return cert, nil
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, nil
		}
		return nil, key
	}
	return nil, nil
}
