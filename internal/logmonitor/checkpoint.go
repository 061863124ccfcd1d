package logmonitor

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/rekor/pkg/util"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxCheckpointBytes bounds a checkpoint as read from a log (a signed note of a few lines and signatures).
const MaxCheckpointBytes = 16 << 10

// Checkpoint is a verified checkpoint: its signed note as served, and its tree. Verified, when known, is
// when it was first verified.
type Checkpoint struct {
	Raw      []byte
	Tree     tlog.Tree
	Verified time.Time
}

// ErrInvalidCheckpoint: a checkpoint does not parse, is for another origin, or its signature does not
// verify with the log's key.
var ErrInvalidCheckpoint = errors.New("invalid checkpoint")

// VerifyCheckpoint checks a signed note against the log: its size, its origin and its signature.
func VerifyCheckpoint(l Log, raw []byte) (Checkpoint, error) {
	if len(raw) > MaxCheckpointBytes {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidCheckpoint, len(raw), MaxCheckpointBytes)
	}
	if l.V1 {
		return verifyV1Checkpoint(l, raw)
	}
	cp, _, _, err := flog.ParseCheckpoint(raw, l.Origin, l.Verifier)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w of log %s: %v", ErrInvalidCheckpoint, l.Origin, err)
	}
	if len(cp.Hash) != tlog.HashSize || cp.Size > 1<<62 {
		return Checkpoint{}, fmt.Errorf("%w of log %s: root hash of %d bytes, size %d", ErrInvalidCheckpoint, l.Origin, len(cp.Hash), cp.Size)
	}
	var h tlog.Hash
	copy(h[:], cp.Hash)
	return Checkpoint{Raw: bytes.Clone(raw), Tree: tlog.Tree{N: int64(cp.Size), Hash: h}}, nil
}

// Verdict is what comparing a new checkpoint with a trusted one decided.
type Verdict int

const (
	// Consistent: the new checkpoint extends the trusted one (or is the same).
	Consistent Verdict = iota
	// Fork: same size with another hash, or a larger tree that the trusted one is not a prefix of.
	Fork
	// Rollback: a smaller tree than the trusted one.
	Rollback
	// Unproven: the consistency proof could not be read; nothing was decided.
	Unproven
)

// ConsistencyProver proves that the tree of size old.N is a prefix of next, reading next's tiles: nil when
// it is, ErrNotConsistent when the proof, authentic for next, does not lead to old's hash, and any other
// error when the proof could not be read.
type ConsistencyProver func(next, old tlog.Tree) error

// ErrNotConsistent: a consistency proof authentic for the newer tree does not lead to the older tree's
// hash.
var ErrNotConsistent = errors.New("not consistent")

// Compare decides whether next may follow trusted. It checks sizes and hashes itself, whatever a library
// would accept: the same size must have the same hash, a smaller size is a rollback, and only a larger
// size asks the prover.
func Compare(trusted, next tlog.Tree, prove ConsistencyProver) (Verdict, error) {
	switch {
	case next.N == trusted.N:
		if next.Hash != trusted.Hash {
			return Fork, fmt.Errorf("two checkpoints of size %d with different root hashes (%s, %s)", next.N, shortHash(trusted.Hash[:]), shortHash(next.Hash[:]))
		}
		return Consistent, nil
	case next.N < trusted.N:
		return Rollback, fmt.Errorf("a checkpoint of size %d after one of size %d", next.N, trusted.N)
	}
	err := prove(next, trusted)
	switch {
	case err == nil:
		return Consistent, nil
	case errors.Is(err, ErrNotConsistent):
		return Fork, fmt.Errorf("the tree of size %d (root %s) is not a prefix of the tree of size %d (root %s): %v",
			trusted.N, shortHash(trusted.Hash[:]), next.N, shortHash(next.Hash[:]), err)
	default:
		return Unproven, err
	}
}

// verifyV1Checkpoint checks a Rekor v1 signed tree head: its origin (the shard's "HOST - TREEID") and
// that every signature on it is the log key's.
func verifyV1Checkpoint(l Log, raw []byte) (Checkpoint, error) {
	var sc util.SignedCheckpoint
	if err := sc.UnmarshalText(raw); err != nil {
		return Checkpoint{}, fmt.Errorf("%w of log %s: %v", ErrInvalidCheckpoint, l.Origin, err)
	}
	if sc.Origin != l.Origin {
		return Checkpoint{}, fmt.Errorf("%w of log %s: its origin is %q", ErrInvalidCheckpoint, l.Origin, sc.Origin)
	}
	if l.Signer == nil || !sc.Verify(l.Signer) {
		return Checkpoint{}, fmt.Errorf("%w of log %s: its signature does not verify with the log's key", ErrInvalidCheckpoint, l.Origin)
	}
	if len(sc.Hash) != tlog.HashSize || sc.Size > 1<<62 {
		return Checkpoint{}, fmt.Errorf("%w of log %s: root hash of %d bytes, size %d", ErrInvalidCheckpoint, l.Origin, len(sc.Hash), sc.Size)
	}
	var h tlog.Hash
	copy(h[:], sc.Hash)
	return Checkpoint{Raw: bytes.Clone(raw), Tree: tlog.Tree{N: int64(sc.Size), Hash: h}}, nil
}
