package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
)

// chunkWords bounds one embedded text when the embedder cannot count its
// tokens. USE-lite reads 128 SentencePiece tokens; English tool text
// averages about 1.3 pieces per word, so 80 words stay inside the window.
// Longer texts are embedded in parts and the parts averaged, never cut.
const chunkWords = 80

// TokenCounter may be implemented by an Embedder with a fixed input window
// (internal/embed's USE-lite reads 128 tokens): Build then sizes the parts
// of long tool texts by the model's own token count instead of chunkWords,
// so no part is cut by the model.
type TokenCounter interface {
	MaxTokens() int
	TokenCount(text string) int
}

// wordBudget returns a function giving the cost of a word and the budget
// of one part.
func wordBudget(e Embedder) (cost func(string) int, budget int) {
	if tc, ok := e.(TokenCounter); ok && tc.MaxTokens() > 16 {
		memo := map[string]int{}
		return func(w string) int {
			c, ok := memo[w]
			if !ok {
				c = max(1, tc.TokenCount(w))
				memo[w] = c
			}
			return c
		}, tc.MaxTokens() - 4
	}
	return func(string) int { return 1 }, chunkWords
}

// embedBatch is how many texts go to one Embed call.
const embedBatch = 64

// vectorIndex holds one unit vector per tool, int8-quantized with a
// per-vector scale (or float32 when measuring).
type vectorIndex struct {
	dim   int
	q     []int8    // n*dim, when quantized
	scale []float32 // per tool: value = q * scale
	f     []float32 // n*dim, when not quantized
}

// embedTexts returns the texts whose vectors make up a tool's vector: the
// first starts with the name's words and the description, later parts
// repeat the name words so every part is about the tool.
func embedTexts(t Tool, d docFields, others []string, cost func(string) int, budget int, style int) []string {
	name := strings.Join(nameWords(t.Name), " ")
	var b strings.Builder
	b.WriteString(name)
	desc := strings.Join(strings.Fields(t.Description), " ")
	if style == 1 {
		desc = firstSentence(desc, 1000)
	}
	if desc != "" {
		b.WriteString(": ")
		b.WriteString(desc)
	}
	if len(d.params) > 0 && style == 0 {
		b.WriteString(" Parameters:")
		for i, p := range d.params {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" ")
			b.WriteString(strings.Join(nameWords(p.Path), " "))
		}
		b.WriteString(".")
	}
	if len(strings.Fields(desc)) < 3 && len(others) > 0 {
		b.WriteString(" Other tools of the " + t.Server + " server: ")
		b.WriteString(strings.Join(others, ", "))
		b.WriteString(".")
	}
	words := strings.Fields(b.String())
	costs := make([]int, len(words))
	total := 0
	for i, w := range words {
		costs[i] = cost(w)
		total += costs[i]
	}
	if total <= budget {
		return []string{strings.Join(words, " ")}
	}
	var parts []string
	prefix := strings.Fields(name)
	prefixCost := 1
	for _, w := range prefix {
		prefixCost += cost(w)
	}
	for start := 0; start < len(words); {
		room := budget
		if start > 0 {
			room -= prefixCost
		}
		end, used := start, 0
		for end < len(words) && (end == start || used+costs[end] <= room) {
			used += costs[end]
			end++
		}
		// Prefer ending a part at a sentence end in its last third.
		if end < len(words) {
			u := used
			for e := end; e > start+1 && u > room*2/3; e-- {
				if strings.HasSuffix(words[e-1], ".") {
					end = e
					break
				}
				u -= costs[e-1]
			}
		}
		part := strings.Join(words[start:end], " ")
		if start > 0 {
			part = strings.Join(prefix, " ") + ": " + part
		}
		parts = append(parts, part)
		start = end
	}
	return parts
}

func textKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// buildVectors embeds every tool (cached parts are not embedded again) and
// returns the vector index and the number of texts embedded.
func buildVectors(ctx context.Context, tools []Tool, docs []docFields, opts Options) (vectorIndex, int, error) {
	e := opts.Embedder
	dim := e.Dim()
	model := e.Name()
	if dim <= 0 {
		return vectorIndex{}, 0, fmt.Errorf("embedder %q: dimension %d", model, dim)
	}
	byServer := map[string][]string{}
	for _, t := range tools {
		if len(byServer[t.Server]) < 20 {
			byServer[t.Server] = append(byServer[t.Server], strings.Join(nameWords(t.Name), " "))
		}
	}
	cost, budget := wordBudget(e)
	parts := make([][]string, len(tools))
	var keys []string
	text := map[string]string{}
	for i, t := range tools {
		var others []string
		for _, o := range byServer[t.Server] {
			if o != strings.Join(nameWords(t.Name), " ") {
				others = append(others, o)
			}
		}
		for _, p := range embedTexts(t, docs[i], others, cost, budget, opts.tune.embedStyle) {
			k := textKey(p)
			parts[i] = append(parts[i], k)
			if _, ok := text[k]; !ok {
				text[k] = p
				keys = append(keys, k)
			}
		}
	}
	vecs := make(map[string][]float32, len(keys))
	if opts.VectorCache != nil {
		got, err := opts.VectorCache.Get(ctx, model, keys)
		if err != nil {
			return vectorIndex{}, 0, fmt.Errorf("vector cache get: %w", err)
		}
		for k, b := range got {
			if v := decodeVector(b, dim); v != nil {
				vecs[k] = v
			}
		}
	}
	var missing []string
	for _, k := range keys {
		if vecs[k] == nil {
			missing = append(missing, k)
		}
	}
	for start := 0; start < len(missing); start += embedBatch {
		batch := missing[start:min(start+embedBatch, len(missing))]
		texts := make([]string, len(batch))
		for i, k := range batch {
			texts[i] = text[k]
		}
		out, err := e.Embed(ctx, texts)
		if err != nil {
			return vectorIndex{}, 0, fmt.Errorf("embed: %w", err)
		}
		if len(out) != len(texts) {
			return vectorIndex{}, 0, fmt.Errorf("embed: %d vectors for %d texts", len(out), len(texts))
		}
		put := make(map[string][]byte, len(batch))
		for i, k := range batch {
			if len(out[i]) != dim {
				return vectorIndex{}, 0, fmt.Errorf("embed: vector of %d floats, want %d", len(out[i]), dim)
			}
			vecs[k] = out[i]
			put[k] = encodeVector(out[i])
		}
		if opts.VectorCache != nil {
			if err := opts.VectorCache.Put(ctx, model, put); err != nil {
				return vectorIndex{}, 0, fmt.Errorf("vector cache put: %w", err)
			}
		}
	}

	vi := vectorIndex{dim: dim}
	if opts.tune.floatVectors {
		vi.f = make([]float32, len(tools)*dim)
	} else {
		vi.q = make([]int8, len(tools)*dim)
		vi.scale = make([]float32, len(tools))
	}
	sum := make([]float32, dim)
	for i := range tools {
		clear(sum)
		// The first part (name and the start of the description) counts
		// twice: it says what the tool is; later parts add detail.
		for j, k := range parts[i] {
			w := float32(1)
			if j == 0 && len(parts[i]) > 1 {
				w = 2
			}
			for d, x := range vecs[k] {
				sum[d] += w * x
			}
		}
		normalize(sum)
		if vi.f != nil {
			copy(vi.f[i*dim:], sum)
		} else {
			vi.scale[i] = quantize(vi.q[i*dim:(i+1)*dim], sum)
		}
	}
	return vi, len(missing), nil
}

func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

// quantize writes v as int8 into dst with a per-vector scale (max |v| maps
// to 127) and returns the scale.
func quantize(dst []int8, v []float32) float32 {
	var m float32
	for _, x := range v {
		m = max(m, float32(math.Abs(float64(x))))
	}
	if m == 0 {
		return 0
	}
	s := m / 127
	for i, x := range v {
		dst[i] = int8(math.Round(float64(x / s)))
	}
	return s
}

// encodeVector is the VectorCache value format: little-endian float32s.
func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVector(b []byte, dim int) []float32 {
	if len(b) != 4*dim {
		return nil
	}
	v := make([]float32, dim)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// cosines writes the cosine similarity of the unit query vector q with
// every tool into out.
func (vi *vectorIndex) cosines(q []float32, out []float32) {
	dim := vi.dim
	if vi.f != nil {
		for i := range out {
			out[i] = dotF(q, vi.f[i*dim:(i+1)*dim])
		}
		return
	}
	for i := range out {
		out[i] = dotQ(q, vi.q[i*dim:(i+1)*dim]) * vi.scale[i]
	}
}

// cosinesAt is cosines for the tools in idx only.
func (vi *vectorIndex) cosinesAt(q []float32, idx []int32, out []float32) {
	dim := vi.dim
	for _, i := range idx {
		if vi.f != nil {
			out[i] = dotF(q, vi.f[int(i)*dim:(int(i)+1)*dim])
		} else {
			out[i] = dotQ(q, vi.q[int(i)*dim:(int(i)+1)*dim]) * vi.scale[i]
		}
	}
}

func dotF(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

func dotQ(a []float32, b []int8) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * float32(b[i])
		s1 += a[i+1] * float32(b[i+1])
		s2 += a[i+2] * float32(b[i+2])
		s3 += a[i+3] * float32(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += a[i] * float32(b[i])
	}
	return s0 + s1 + s2 + s3
}
