package logmonitor

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"time"
)

// Rekor v1 indexes the subject digests of the in-toto statements of DSSE entries (what cosign v3 logs
// when it signs an image in the bundle format), so the log can be asked who else logged a signature of a
// digest. Rekor v2 has no such index.

// MaxSearchResults bounds the entries read for one digest.
const MaxSearchResults = 64

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

// Search returns the signers of the entries a Rekor v1 log holds for digest ("sha256:..."), at most
// MaxSearchResults, from a cache kept for Interval; truncated says there were more.
func (m *Monitor) Search(ctx context.Context, l Log, digest string) (found []LoggedSigner, truncated bool, err error) {
	if !l.V1 {
		return nil, false, fmt.Errorf("log %s has no search (Rekor v2)", l.Origin)
	}
	type answer struct {
		found     []LoggedSigner
		truncated bool
		at        time.Time
	}
	key := "search|" + l.Name() + "|" + digest
	if v, ok := m.searches.Get(key); ok {
		if a := v.(answer); m.opts.Clock().Sub(a.at) < m.opts.Interval {
			return a.found, a.truncated, nil
		}
	}
	v, err, _ := m.flight.Do(key, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.Timeout)
		defer cancel()
		found, truncated, err := m.search(sctx, l, digest)
		if err != nil {
			return nil, err
		}
		a := answer{found, truncated, m.opts.Clock()}
		m.searches.Add(key, a)
		return a, nil
	})
	if err != nil {
		return nil, false, err
	}
	a := v.(answer)
	return a.found, a.truncated, nil
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
		var answer []map[string]struct {
			Body           string `json:"body"`
			LogIndex       int64  `json:"logIndex"`
			IntegratedTime int64  `json:"integratedTime"`
		}
		if err := json.Unmarshal(data, &answer); err != nil {
			return nil, false, fmt.Errorf("the entries of %s do not parse: %w", l.Origin, err)
		}
		for _, byUUID := range answer {
			for uuid, e := range byUUID {
				raw, err := base64.StdEncoding.DecodeString(e.Body)
				if err != nil {
					continue
				}
				for _, v := range verifiers(raw) {
					s := LoggedSigner{UUID: uuid, LogIndex: e.LogIndex, IntegratedTime: time.Unix(e.IntegratedTime, 0)}
					if s.Certificate, s.PublicKey = parseVerifier(v); s.Certificate != nil || s.PublicKey != nil {
						out = append(out, s)
					}
				}
			}
		}
	}
	return out, truncated, nil
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
		for _, s := range e.Spec.Signatures {
			add(s.Verifier)
		}
	case "intoto":
		for _, s := range e.Spec.Content.Envelope.Signatures {
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
