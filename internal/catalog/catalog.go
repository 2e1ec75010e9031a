// Package catalog owns the tool index of the conductor: every tool of every
// upstream server, searchable by words (BM25F over name, description,
// parameters and server) and by meaning (vectors from an Embedder), fused
// into one ranking for search_tools, `conductor search` and `conductor eval`.
//
// An Index is an immutable snapshot: build a new one with Build when the
// tool set changes (vectors come from a VectorCache, so a rebuild embeds
// only new texts) and swap it in. An Index is safe for concurrent Search.
//
// The package imports no other internal package; the embedding model and
// the vector store are passed in through the Embedder and VectorCache
// interfaces by the wiring layer. Any package may import it.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Tool is one tool of one upstream server, as listed by tools/list.
type Tool struct {
	Server      string          `json:"server"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema,omitempty"`
}

// Key is the tool's public name, "server.tool".
func (t Tool) Key() string { return t.Server + "." + t.Name }

// Embedder turns texts into L2-normalized vectors of Dim() floats. Name
// identifies the model (and its version) in the VectorCache, so vectors of
// two models never mix. Implementations must be safe for concurrent use.
// An Embedder with a token window should also implement TokenCounter.
type Embedder interface {
	Name() string
	Dim() int
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// VectorCache keeps embedded vectors across restarts, keyed by the hex
// sha256 of the embedded text. Get returns only the keys it has; Put may be
// called concurrently with Get. Values are opaque to the cache.
type VectorCache interface {
	Get(ctx context.Context, model string, keys []string) (map[string][]byte, error)
	Put(ctx context.Context, model string, entries map[string][]byte) error
}

// Options configure Build. The zero value builds a BM25-only index.
type Options struct {
	// Embedder, when non-nil, adds vector search. A failing embedder makes
	// Build return an error wrapping ErrEmbed together with a usable
	// BM25-only index, so search keeps working without the model.
	Embedder Embedder
	// VectorCache, when non-nil, is asked before embedding and filled after.
	VectorCache VectorCache
	// Logger receives build diagnostics; nil discards them.
	Logger *slog.Logger

	// Tuning knobs for measurement; the zero values mean the defaults.
	tune buildTuning
}

type buildTuning struct {
	bm25         *bm25Params
	floatVectors bool // keep float32 vectors instead of int8
	embedStyle   int  // 0: name+description+params; 1: name+first sentence; 2: name+description
}

// ErrEmbed marks a Build whose vectors could not be computed; the returned
// Index still serves BM25 search.
var ErrEmbed = errors.New("catalog: embedding failed")

// Index is an immutable, searchable snapshot of a tool set.
type Index struct {
	tools    []Tool
	keys     []string
	byKey    map[string]int32
	summary  []string // first sentence of each description
	nameToks [][]string
	bm       bm25Index
	vec      vectorIndex
	embedder Embedder // set when vec is
	server   []int32  // server id of each tool
	nServers int
	group    []int32   // group id of each tool
	members  [][]int32 // tools of each group, in build order
	buildDur time.Duration
	embedded int // texts embedded (not found in the cache) by this build
}

// Build indexes tools. Tools with an empty server or name are skipped, as is
// a second tool with the same "server.tool" key (both logged). ctx bounds
// the embedding work only.
func Build(ctx context.Context, tools []Tool, opts Options) (*Index, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ix := &Index{byKey: make(map[string]int32, len(tools))}
	for _, t := range tools {
		if t.Server == "" || t.Name == "" {
			log.Warn("catalog: tool without server or name skipped", slog.String("server", t.Server), slog.String("tool", t.Name))
			continue
		}
		k := t.Key()
		if _, dup := ix.byKey[k]; dup {
			log.Warn("catalog: duplicate tool skipped", slog.String("tool", k))
			continue
		}
		ix.byKey[k] = int32(len(ix.tools))
		ix.tools = append(ix.tools, t)
		ix.keys = append(ix.keys, k)
	}
	ix.server = make([]int32, len(ix.tools))
	sid := map[string]int32{}
	for i, t := range ix.tools {
		id, ok := sid[t.Server]
		if !ok {
			id = int32(len(sid))
			sid[t.Server] = id
		}
		ix.server[i] = id
	}
	ix.nServers = len(sid)
	docs := analyze(ix.tools)
	ix.summary = make([]string, len(ix.tools))
	ix.nameToks = make([][]string, len(ix.tools))
	for i, t := range ix.tools {
		ix.summary[i] = firstSentence(t.Description, 160)
		ix.nameToks[i] = nameWords(t.Name)
	}
	p := defaultBM25
	if opts.tune.bm25 != nil {
		p = *opts.tune.bm25
	}
	ix.bm = buildBM25(docs, p)
	ix.groupTools(docs)

	var err error
	if opts.Embedder != nil {
		ix.vec, ix.embedded, err = buildVectors(ctx, ix.tools, docs, opts)
		if err != nil {
			ix.vec = vectorIndex{}
			log.Warn("catalog: vector search disabled", slog.String("err", err.Error()))
			err = fmt.Errorf("%w: %w", ErrEmbed, err)
		} else {
			ix.embedder = opts.Embedder
		}
	}
	ix.buildDur = time.Since(start)
	log.Debug("catalog: index built", slog.Int("tools", len(ix.tools)), slog.Int("embedded", ix.embedded),
		slog.Duration("took", ix.buildDur))
	return ix, err
}

// Stats describe an index for logs and `conductor doctor`.
type Stats struct {
	Tools  int
	Groups int    // tools after folding same-name near-duplicates
	Model  string // embedding model; empty without vectors
	Terms  int
	// Embedded is how many texts this build embedded (not found in the
	// VectorCache).
	Embedded int
	Build    time.Duration
	// IndexBytes estimates the memory of postings and vectors.
	IndexBytes int
}

// Stats returns figures about the index.
func (ix *Index) Stats() Stats {
	st := Stats{Tools: len(ix.tools), Groups: len(ix.members), Terms: len(ix.bm.idf), Embedded: ix.embedded, Build: ix.buildDur}
	if ix.embedder != nil {
		st.Model = ix.embedder.Name()
	}
	st.IndexBytes = 8*len(ix.bm.doc) + 8*len(ix.bm.idf) + len(ix.vec.q) + 4*len(ix.vec.scale) + 4*len(ix.vec.f)
	return st
}

// Len is the number of indexed tools.
func (ix *Index) Len() int { return len(ix.tools) }

// HasVectors reports whether vector search is available.
func (ix *Index) HasVectors() bool { return ix.vec.dim > 0 }

// Lookup returns the tool named "server.tool".
func (ix *Index) Lookup(name string) (Tool, bool) {
	i, ok := ix.byKey[name]
	if !ok {
		return Tool{}, false
	}
	return ix.tools[i], true
}

// Tools returns the indexed tools in build order. The slice is shared: do
// not modify it.
func (ix *Index) Tools() []Tool { return ix.tools }

// groupTools puts tools with the same name (case-insensitive) and a
// near-identical description into one group, so search shows one of them
// and notes the others (write_file on a dozen servers is one result).
func (ix *Index) groupTools(docs []docFields) {
	ix.group = make([]int32, len(ix.tools))
	byName := map[string][]int32{}
	for i := range ix.tools {
		n := strings.ToLower(ix.tools[i].Name)
		placed := false
		for _, g := range byName[n] {
			rep := ix.members[g][0]
			if nearSame(docs[rep].desc, docs[i].desc) {
				ix.group[i] = g
				ix.members[g] = append(ix.members[g], int32(i))
				placed = true
				break
			}
		}
		if !placed {
			g := int32(len(ix.members))
			ix.members = append(ix.members, []int32{int32(i)})
			ix.group[i] = g
			byName[n] = append(byName[n], g)
		}
	}
}

// nearSame says whether two token lists are near-identical descriptions
// (of tools that already share a name): Jaccard similarity of their term
// sets ≥ 0.7, or one set (of ≥ 4 terms) inside the other but for 10% —
// servers often append a caveat ("Use with care.") to the same text. Both
// empty counts as same.
func nearSame(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	sa := map[string]bool{}
	for _, t := range a {
		sa[t] = true
	}
	sb := map[string]bool{}
	inter := 0
	for _, t := range b {
		if !sb[t] {
			sb[t] = true
			if sa[t] {
				inter++
			}
		}
	}
	union := len(sa) + len(sb) - inter
	if union == 0 {
		return false
	}
	if float64(inter)/float64(union) >= 0.7 {
		return true
	}
	small := min(len(sa), len(sb))
	return small >= 4 && float64(inter)/float64(small) >= 0.9
}

// firstSentence returns the first sentence of s, whitespace collapsed, cut
// at a word boundary to at most max bytes (with "…").
func firstSentence(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	for i, r := range s {
		if r == '。' || r == '！' || r == '？' {
			s = s[:i+len(string(r))]
			break
		}
		if (r == '.' || r == '!' || r == '?') && (i+1 == len(s) || s[i+1] == ' ') {
			// Skip abbreviations such as "e.g." and "i.e.".
			if i >= 3 && (s[i-3:i] == "e.g" || s[i-3:i] == "i.e") {
				continue
			}
			s = s[:i+1]
			break
		}
	}
	if len(s) <= max {
		return s
	}
	cut := strings.LastIndexByte(s[:max], ' ')
	if cut < max/2 {
		cut = max
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
	}
	return strings.TrimRight(s[:cut], " ,;:") + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// round3 keeps scores short in answers: o200k_base spends a token per three
// digits, and a fourth decimal orders nothing an agent acts on.
func round3(x float64) float64 { return math.Round(x*1e3) / 1e3 }
