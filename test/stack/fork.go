package stack

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// RekorFork is a second Rekor v2 server over a copy of the stack's log, with the same key and origin:
// once each server is given other entries, the one log shows two histories (a split view), and every
// checkpoint of either is validly signed.
type RekorFork struct {
	// URL is the fork's server, TilesURL its checkpoint and tiles.
	URL, TilesURL string
	// SigningConfig sends cosign's entries to the fork (SignOptions.SigningConfig).
	SigningConfig string
}

var forkMu sync.Mutex

// ForkRekor copies the stack's log, while nothing is being signed, and starts a second Rekor v2 server
// over the copy with the stack's Rekor key and origin, serving its tiles; the stack stops it.
func (s *Stack) ForkRekor(ctx context.Context) (*RekorFork, error) {
	forkMu.Lock()
	defer forkMu.Unlock()
	n := len(s.forks) + 1
	dir := filepath.Join(s.Dir, fmt.Sprintf("rekor-fork-%d", n))
	storage := filepath.Join(dir, "log")
	if err := os.CopyFS(storage, os.DirFS(filepath.Join(s.Dir, "rekor", "log"))); err != nil {
		return nil, fmt.Errorf("copying Rekor's log: %w", err)
	}
	if err := filepath.WalkDir(storage, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, 0o700)
		}
		return os.Chmod(path, 0o600) // CopyFS copies read-only; the server writes its files in place
	}); err != nil {
		return nil, err
	}
	var p *process
	url, tiles, tilesURL, err := s.runRekor(ctx, s.rekorBin, fmt.Sprintf("rekor-fork-%d", n), dir, storage,
		filepath.Join(s.Dir, "rekor", "rekor.key"), s.readyTimeout, func(proc *process) { p = proc })
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	s.forks = append(s.forks, tiles)
	f := &RekorFork{URL: url, TilesURL: tilesURL, SigningConfig: filepath.Join(dir, "signing_config.json")}
	if err := s.signingConfig(ctx, s.began, url, f.SigningConfig); err != nil {
		return nil, err
	}
	return f, nil
}
