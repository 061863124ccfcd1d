package logmonitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is the height of C2SP tlog-tiles hash tiles: 256 hashes wide.
const tileHeight = 8

// errNotFound: the log has no such resource (HTTP 404).
var errNotFound = errors.New("not found")

// tilePath is a tile's path under the log's URL in the C2SP tlog-tiles layout ("tile/L/N[.p/W]"): the Go
// checksum database's layout without the height.
func tilePath(t tlog.Tile) string {
	return strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", tileHeight), "tile/", 1)
}

// tileReader reads one log's hash tiles for x/mod's tlog.TileHashReader, which authenticates every tile
// it is given against the tree's hash before using it and then calls SaveTiles: only tiles saved that
// way enter the cache.
type tileReader struct {
	ctx context.Context
	m   *Monitor
	log Log
	// gen is the log's generation (logState.gen), part of the cache's keys; uncached reads every tile
	// afresh and keeps none.
	gen      int
	uncached bool
}

func (r tileReader) key(t tlog.Tile) string {
	return fmt.Sprintf("%s/%d/%s", r.log.Name(), r.gen, tilePath(t))
}

func (r tileReader) Height() int { return tileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	errs := make([]error, len(tiles))
	var wg sync.WaitGroup
	for i, t := range tiles {
		if data, ok := r.m.tiles.Get(r.key(t)); ok && !r.uncached {
			out[i] = data.([]byte)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = r.read(t)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// read fetches one tile, sharing the request with concurrent readers of the same tile. A partial tile
// that the log no longer serves is read from the full tile (C2SP tlog-tiles allows deleting them).
func (r tileReader) read(t tlog.Tile) ([]byte, error) {
	want := t.W * tlog.HashSize
	v, err, _ := r.m.flight.Do(fmt.Sprintf("tile|%t|%s", r.uncached, r.key(t)), func() (any, error) {
		data, err := r.m.get(r.ctx, r.log, "tile", r.log.URL+"/"+tilePath(t), want)
		if errors.Is(err, errNotFound) && t.W < 1<<tileHeight {
			full := t
			full.W = 1 << tileHeight
			data, err = r.m.get(r.ctx, r.log, "tile", r.log.URL+"/"+tilePath(full), full.W*tlog.HashSize)
			if err == nil {
				data = data[:want]
			}
		}
		return data, err
	})
	if err != nil {
		return nil, err
	}
	data := v.([]byte)
	if len(data) != want {
		return nil, fmt.Errorf("tile %s of log %s: %d bytes, want %d", tilePath(t), r.log.Origin, len(data), want)
	}
	return data, nil
}

func (r tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	if r.uncached {
		return
	}
	for i, t := range tiles {
		if i < len(data) && len(data[i]) == t.W*tlog.HashSize {
			r.m.tiles.Add(r.key(t), data[i])
		}
	}
}

// get reads a resource of the log and counts the request: exactly n bytes when n is positive (a tile), at
// most -n when it is negative, at most MaxCheckpointBytes when it is 0.
func (m *Monitor) get(ctx context.Context, l Log, kind, url string, n int) ([]byte, error) {
	exact, limit := n, n
	switch {
	case n == 0:
		limit = MaxCheckpointBytes
	case n < 0:
		exact, limit = 0, -n
	}
	data, code, err := m.fetch(ctx, url, limit)
	m.observe(l, kind, code, err)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if exact > 0 && len(data) != exact {
		return nil, fmt.Errorf("reading %s: %d bytes, want %d", url, len(data), exact)
	}
	return data, nil
}

func (m *Monitor) fetch(ctx context.Context, url string, limit int) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	return m.do(req, limit)
}

// do sends a request and reads a 200 answer of at most limit bytes.
func (m *Monitor) do(req *http.Request, limit int) ([]byte, int, error) {
	req.Header.Set("User-Agent", "sigwatch")
	resp, err := m.opts.HTTP.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, resp.StatusCode, errNotFound
	case resp.StatusCode != http.StatusOK:
		return nil, resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if len(data) > limit {
		return nil, resp.StatusCode, fmt.Errorf("more than %d bytes", limit)
	}
	return data, resp.StatusCode, nil
}
