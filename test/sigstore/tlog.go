package sigstore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/rekor/pkg/pki"
	"github.com/sigstore/rekor/pkg/types"
	"github.com/sigstore/rekor/pkg/types/dsse"
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1" // registers dsse v0.0.1
	"github.com/sigstore/rekor/pkg/types/hashedrekord"
	_ "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1" // registers hashedrekord v0.0.1
	"github.com/sigstore/rekor/pkg/types/intoto"
	_ "github.com/sigstore/rekor/pkg/types/intoto/v0.0.2" // registers intoto v0.0.2
	"github.com/sigstore/rekor/pkg/util"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Rekor v1 entry kinds that sigstore-go verifies.
const (
	// KindHashedRekord is hashedrekord v0.0.1: a signature over the SHA-256 of an artifact (cosign's
	// legacy image signatures).
	KindHashedRekord = hashedrekord.KIND
	// KindDSSE is dsse v0.0.1: a DSSE envelope (cosign v3 bundles; cosign's legacy attestations since
	// --rekor-entry-type defaults to dsse).
	KindDSSE = dsse.KIND
	// KindIntoto is intoto v0.0.2: a DSSE envelope of an in-toto statement (older cosign attestations).
	KindIntoto = intoto.KIND
)

var entryVersions = map[string]string{KindHashedRekord: "0.0.1", KindDSSE: "0.0.1", KindIntoto: "0.0.2"}

// EntryRequest asks the log for an entry.
type EntryRequest struct {
	// Kind is KindHashedRekord, KindDSSE or KindIntoto.
	Kind string
	// Artifact is, for hashedrekord, the signed payload (the entry records its SHA-256); for dsse and
	// intoto, the DSSE envelope JSON, whose signature the log checks.
	Artifact []byte
	// Signature is the signature of a hashedrekord entry, over Artifact.
	Signature []byte
	// Verifier is the signer's PEM certificate or PEM public key.
	Verifier []byte
	// IntegratedTime is when the log says it integrated the entry (default now).
	IntegratedTime time.Time
	// LogIndex is the entry's index; 0 takes the log's next index.
	LogIndex int64
}

// LogEntry is a Rekor v1 entry as the log returns it: the canonicalized body, where and when it was
// integrated, the signed entry timestamp (SET) and an inclusion proof with a signed checkpoint.
type LogEntry struct {
	Kind, APIVersion string
	// Body is the canonicalized entry.
	Body           []byte
	IntegratedTime int64
	LogIndex       int64
	// LogID is the raw log ID (sha256 of the log's public key).
	LogID []byte
	// SET is the log's ECDSA signature over the canonical JSON of tlog.RekorPayload.
	SET []byte
	// The inclusion proof of the entry at LogIndex in a tree of TreeSize leaves with root RootHash.
	TreeSize   int64
	RootHash   []byte
	Hashes     [][]byte
	Checkpoint string
}

// LogEntry makes a Rekor v1 entry of req's kind with the rekor library, as the Rekor server would
// (types.NewProposedEntry, CreateVersionedEntry, CanonicalizeEntry), integrates it at req.IntegratedTime and
// req.LogIndex, and signs its SET and a checkpoint of a tree in which it is the last leaf.
func (s *Stack) LogEntry(req EntryRequest) (*LogEntry, error) {
	version, ok := entryVersions[req.Kind]
	if !ok {
		return nil, fmt.Errorf("unsupported Rekor entry kind %q", req.Kind)
	}
	props := types.ArtifactProperties{PublicKeyBytes: [][]byte{req.Verifier}, PKIFormat: string(pki.X509)}
	if req.Kind == KindHashedRekord {
		sum := sha256.Sum256(req.Artifact)
		props.ArtifactHash = hex.EncodeToString(sum[:])
		props.SignatureBytes = req.Signature
	} else {
		props.ArtifactBytes = req.Artifact
	}
	ctx := context.Background()
	proposed, err := types.NewProposedEntry(ctx, req.Kind, version, props)
	if err != nil {
		return nil, fmt.Errorf("proposing a %s entry: %w", req.Kind, err)
	}
	impl, err := types.CreateVersionedEntry(proposed)
	if err != nil {
		return nil, fmt.Errorf("creating a %s entry: %w", req.Kind, err)
	}
	body, err := types.CanonicalizeEntry(ctx, impl)
	if err != nil {
		return nil, fmt.Errorf("canonicalizing a %s entry: %w", req.Kind, err)
	}

	at := req.IntegratedTime
	if at.IsZero() {
		at = time.Now()
	}
	e := &LogEntry{Kind: req.Kind, APIVersion: version, Body: body, IntegratedTime: at.Unix(),
		LogIndex: req.LogIndex, LogID: s.logID}
	if e.LogIndex == 0 {
		e.LogIndex = s.nextIndex.Add(1)
	}
	if e.SET, err = s.signSET(e); err != nil {
		return nil, err
	}
	if err := s.prove(e); err != nil {
		return nil, err
	}
	return e, nil
}

// signSET signs the entry timestamp exactly as sigstore-go's tlog.VerifySET checks it: ECDSA over the
// SHA-256 of the canonical JSON of {body (base64), integratedTime, logIndex, logID (hex)}.
func (s *Stack) signSET(e *LogEntry) ([]byte, error) {
	payload, err := json.Marshal(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(e.Body),
		IntegratedTime: e.IntegratedTime,
		LogIndex:       e.LogIndex,
		LogID:          hex.EncodeToString(e.LogID),
	})
	if err != nil {
		return nil, err
	}
	canonical, err := jsoncanonicalizer.Transform(payload)
	if err != nil {
		return nil, fmt.Errorf("canonicalizing the SET payload: %w", err)
	}
	sum := sha256.Sum256(canonical)
	return ecdsa.SignASN1(rand.Reader, s.logKey, sum[:])
}

// prove makes an inclusion proof of e as the last leaf of a tree of LogIndex+1 leaves: the other leaves
// are unknown, so the proof's hashes (the roots of the complete subtrees to the left) are random, and
// the root follows from them. The log signs a Rekor v1 checkpoint ("<host> - <tree ID>") of that root.
func (s *Stack) prove(e *LogEntry) error {
	if e.LogIndex < 0 {
		return errors.New("a log index cannot be negative")
	}
	index := uint64(e.LogIndex)
	size := index + 1
	e.Hashes = make([][]byte, bits.OnesCount64(index))
	for i := range e.Hashes {
		e.Hashes[i] = make([]byte, sha256.Size)
		if _, err := rand.Read(e.Hashes[i]); err != nil {
			return err
		}
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(e.Body)
	rootHash, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, index, size, leaf, e.Hashes)
	if err != nil {
		return fmt.Errorf("computing the tree root: %w", err)
	}
	signer, err := signature.LoadECDSASignerVerifier(s.logKey, crypto.SHA256)
	if err != nil {
		return err
	}
	cp, err := util.CreateAndSignCheckpoint(context.Background(), rekorHost, rekorTreeID, size, rootHash, signer)
	if err != nil {
		return fmt.Errorf("signing the checkpoint: %w", err)
	}
	e.TreeSize, e.RootHash, e.Checkpoint = int64(size), rootHash, string(cp)
	return nil
}

// Proto returns the entry as a Sigstore bundle's TransparencyLogEntry, with both the inclusion promise
// (SET) and the inclusion proof, as cosign writes bundles from Rekor v1.
func (e *LogEntry) Proto() *protorekor.TransparencyLogEntry {
	return &protorekor.TransparencyLogEntry{
		LogIndex:         e.LogIndex,
		LogId:            &protocommon.LogId{KeyId: e.LogID},
		KindVersion:      &protorekor.KindVersion{Kind: e.Kind, Version: e.APIVersion},
		IntegratedTime:   e.IntegratedTime,
		InclusionPromise: &protorekor.InclusionPromise{SignedEntryTimestamp: e.SET},
		InclusionProof: &protorekor.InclusionProof{
			LogIndex:   e.LogIndex,
			RootHash:   e.RootHash,
			TreeSize:   e.TreeSize,
			Hashes:     e.Hashes,
			Checkpoint: &protorekor.Checkpoint{Envelope: e.Checkpoint},
		},
		CanonicalizedBody: e.Body,
	}
}

// CosignBundle is cosign's dev.sigstore.cosign/bundle annotation: the SET and the payload it signs.
type CosignBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	} `json:"Payload"`
}

// CosignBundle returns the entry as cosign's legacy dev.sigstore.cosign/bundle annotation value.
func (e *LogEntry) CosignBundle() ([]byte, error) {
	var b CosignBundle
	b.SignedEntryTimestamp = e.SET
	b.Payload.Body = base64.StdEncoding.EncodeToString(e.Body)
	b.Payload.IntegratedTime = e.IntegratedTime
	b.Payload.LogIndex = e.LogIndex
	b.Payload.LogID = hex.EncodeToString(e.LogID)
	return json.Marshal(b)
}
