package conductor

import (
	"context"
	"encoding/binary"
	"math"
	"sync"

	"github.com/mcp-conductor/conductor/internal/catalog"
)

// memVectors keeps the vectors of the current catalog in memory, in front
// of the store's cache (when catalog.cacheSpecs is on), so rebuilding the
// index after one server changed embeds only that server's new texts.
type memVectors struct {
	next catalog.VectorCache // nil: memory only

	mu      sync.Mutex
	m       map[string][]byte // model + "\x00" + text hash -> vector
	touched map[string]bool   // keys asked for since the last retain
}

func newMemVectors(next catalog.VectorCache) *memVectors {
	return &memVectors{next: next, m: map[string][]byte{}, touched: map[string]bool{}}
}

func (v *memVectors) Get(ctx context.Context, model string, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	var missing []string
	v.mu.Lock()
	for _, k := range keys {
		mk := model + "\x00" + k
		v.touched[mk] = true
		if b, ok := v.m[mk]; ok {
			out[k] = expand(b)
		} else {
			missing = append(missing, k)
		}
	}
	v.mu.Unlock()
	if len(missing) == 0 || v.next == nil {
		return out, nil
	}
	got, err := v.next.Get(ctx, model, missing)
	if err != nil {
		return out, nil // the store is a cache: embed what it cannot give
	}
	v.mu.Lock()
	for k, b := range got {
		out[k] = b
		v.m[model+"\x00"+k] = squeeze(b)
	}
	v.mu.Unlock()
	return out, nil
}

func (v *memVectors) Put(ctx context.Context, model string, entries map[string][]byte) error {
	v.mu.Lock()
	for k, b := range entries {
		v.m[model+"\x00"+k] = squeeze(b)
	}
	v.mu.Unlock()
	if v.next != nil {
		return v.next.Put(ctx, model, entries)
	}
	return nil
}

// squeeze keeps a vector (little-endian float32s) as int8 with one scale,
// a quarter of the memory; the index quantizes vectors to int8 the same way,
// so nothing it ranks with is lost.
func squeeze(b []byte) []byte {
	n := len(b) / 4
	if n == 0 || len(b)%4 != 0 {
		return b
	}
	var maxAbs float32
	for i := range n {
		x := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		maxAbs = max(maxAbs, float32(math.Abs(float64(x))))
	}
	out := make([]byte, 4+n)
	scale := maxAbs / 127
	binary.LittleEndian.PutUint32(out, math.Float32bits(scale))
	for i := range n {
		x := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		q := float32(0)
		if scale > 0 {
			q = float32(math.Round(float64(x / scale)))
		}
		out[4+i] = byte(int8(max(-127, min(127, q))))
	}
	return out
}

// expand undoes squeeze.
func expand(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	scale := math.Float32frombits(binary.LittleEndian.Uint32(b))
	n := len(b) - 4
	out := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(int8(b[4+i]))*scale))
	}
	return out
}

// retain drops vectors no build asked for since the last retain, so memory
// follows the catalog as servers come and go.
func (v *memVectors) retain() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.m {
		if !v.touched[k] {
			delete(v.m, k)
		}
	}
	v.touched = map[string]bool{}
}

// indexer rebuilds the tool index in the background when the upstream tool
// set changes. Changes that arrive during a rebuild are coalesced into one
// more rebuild; Close cancels a rebuild in progress.
type indexer struct {
	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startIndexer runs rebuilds until stopIndexer. After each rebuild the
// OnToolsChanged subscribers run.
func (c *Conductor) startIndexer() {
	ctx, cancel := context.WithCancel(context.Background())
	c.idx = &indexer{kick: make(chan struct{}, 1), cancel: cancel}
	c.idx.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.idx.kick:
			}
			c.rebuildIndex(ctx)
			if ctx.Err() != nil {
				return
			}
			c.subMu.Lock()
			subs := append([]func(){}, c.subs...)
			c.subMu.Unlock()
			for _, f := range subs {
				f()
			}
		}
	})
}

func (c *Conductor) stopIndexer() {
	if c.idx != nil {
		c.idx.cancel()
		c.idx.wg.Wait()
	}
}

// toolsChanged asks for a rebuild without waiting for it: the hub calls it
// from its own goroutines, which must not block on embedding.
func (c *Conductor) toolsChanged() {
	if c.idx == nil {
		return
	}
	select {
	case c.idx.kick <- struct{}{}:
	default: // a rebuild is already pending
	}
}
