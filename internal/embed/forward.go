package embed

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Embed returns one L2-normalised vector of Dim values per text. The
// graph ends in l2_normalize, so vectors have unit length and cosine
// similarity is a dot product. Each text is embedded on its own, which
// gives what TF.js gives for that text alone (and, up to float noise, in a
// batch). Only the first MaxTokens tokens count; see EmbedLong. The empty
// text (or one that normalises to nothing) gets the vector TF.js computes
// for an empty row of a batch: the normalised tanh of the output bias.
// Several texts are embedded on up to GOMAXPROCS goroutines, which Embed
// waits for. The error is always nil today; it is there for models that
// can fail.
func (m *Model) Embed(texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	if workers <= 1 {
		for i, t := range texts {
			out[i] = m.embedIDs(m.tok.encode(t))
		}
		return out, nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) {
					return
				}
				out[i] = m.embedIDs(m.tok.encode(texts[i]))
			}
		})
	}
	wg.Wait()
	return out, nil
}

// embedIDs runs the graph for one sentence. It follows the TF.js graph op
// by op for a batch of one row with no padding, where the sparse plumbing
// (Where, GatherNd, ScatterNd, SequenceMask) reduces to the identity:
//
//	x   = e + (e + timing)           the graph adds the embedding twice
//	Layer_0 (256 -> 512), Layer_1 (512):
//	  a = MHA(LN(x)) + residual(x)   residual: dense 256->512 in Layer_0
//	  x = FFN(LN(a)) + a             FFN: relu(a·W1+b1)·W2+b2
//	out = l2norm(tanh(mean(x)·W + b))
func (m *Model) embedIDs(ids []int) []float32 {
	if len(ids) > m.maxTokens {
		ids = ids[:m.maxTokens]
	}
	n := len(ids)
	a := getArena(n)
	defer putArena(a, n)
	pooled := a.take(m.dim)
	if n > 0 {
		m.encode(ids, pooled, a)
	}
	h := make([]float32, m.dim)
	matmul(h, pooled, 1, &m.hidden)
	var ss float32
	for i, v := range h {
		t := float32(math.Tanh(float64(v)))
		h[i] = t
		ss += t * t
	}
	r := float32(1 / math.Sqrt(float64(max(ss, m.l2Eps))))
	for i := range h {
		h[i] *= r
	}
	return h
}

// encode writes the mean over the n tokens of the transformer's output.
func (m *Model) encode(ids []int, pooled []float32, a *arena) {
	n := len(ids)
	d := m.embDim
	x := a.take(n * d)
	half := d / 2
	for p, id := range ids {
		if id < 0 || id >= m.vocab {
			panic(fmt.Sprintf("embed: token id %d outside vocabulary", id))
		}
		row := x[p*d : (p+1)*d]
		m.embedding(row, id)
		for k := range half {
			s := float32(p) * m.timing[k]
			sin, cos := math.Sincos(float64(s))
			row[k] = row[k] + (row[k] + float32(sin))
			row[half+k] = row[half+k] + (row[half+k] + float32(cos))
		}
	}
	for i := range m.layers {
		x = m.layers[i].forward(x, n, m.lnEps, a)
	}
	w := m.dim
	for p := range n {
		row := x[p*w : (p+1)*w]
		for k, v := range row {
			pooled[k] += v
		}
	}
	div := float32(n)
	for k := range pooled {
		pooled[k] /= div
	}
}

// forward runs one transformer layer on n rows of l.in values and returns
// n rows of l.width values.
func (l *layer) forward(x []float32, n int, eps float32, ar *arena) []float32 {
	ln := ar.take(n * l.in)
	layerNorm(ln, x, n, l.in, l.lnAttnScale, l.lnAttnBias, eps)

	// Residual input: the layer input, widened in Layer_0.
	a := x
	if l.residual != nil {
		a = ar.take(n * l.width)
		matmul(a, x, n, l.residual)
	}

	qkv := ar.take(n * 3 * l.qkvSplit)
	matmul(qkv, ln, n, &l.qkv)
	ctx := ar.take(n * l.qkvSplit)
	l.attention(ctx, qkv, n, ar)
	att := ar.take(n * l.width)
	matmul(att, ctx, n, &l.proj)
	for i := range a {
		a[i] = att[i] + a[i]
	}

	ln2 := ar.take(n * l.width)
	layerNorm(ln2, a, n, l.width, l.lnFFNScale, l.lnFFNBias, eps)
	hid := ar.take(n * l.ffn1.out)
	matmul(hid, ln2, n, &l.ffn1)
	for i, v := range hid {
		hid[i] = max(v, 0)
	}
	out := ar.take(n * l.width)
	matmul(out, hid, n, &l.ffn2)
	for i := range out {
		out[i] += a[i]
	}
	return out
}

// attention is scaled dot-product attention with l.heads heads over n
// positions, none of them padding. qkv holds per row q, k, v of
// heads*depth values each; ctx, zero on entry, receives per row the heads'
// outputs side by side (combine_heads).
func (l *layer) attention(ctx, qkv []float32, n int, ar *arena) {
	stride := 3 * l.qkvSplit
	dep := l.depth
	scores := ar.take(n)
	q := ar.take(dep)
	for h := range l.heads {
		for i := range n {
			qi := qkv[i*stride+h*dep : i*stride+(h+1)*dep]
			for k, v := range qi {
				q[k] = v * l.qScale
			}
			mx := float32(math.Inf(-1))
			for j := range n {
				kj := qkv[j*stride+l.qkvSplit+h*dep : j*stride+l.qkvSplit+(h+1)*dep]
				s := dot(q, kj)
				scores[j] = s
				mx = max(mx, s)
			}
			var sum float32
			for j, s := range scores {
				e := float32(math.Exp(float64(s - mx)))
				scores[j] = e
				sum += e
			}
			out := ctx[i*l.qkvSplit+h*dep : i*l.qkvSplit+(h+1)*dep]
			for j, s := range scores {
				w := s / sum
				axpy(w, qkv[j*stride+2*l.qkvSplit+h*dep:j*stride+2*l.qkvSplit+(h+1)*dep], out)
			}
		}
	}
}

// layerNorm normalises n rows of c values as the graph's layer_norm ops
// do: scale*rsqrt(var+eps)*(x-mean) + bias.
func layerNorm(dst, x []float32, n, c int, scale, bias []float32, eps float32) {
	for r := range n {
		row := x[r*c : (r+1)*c]
		out := dst[r*c : (r+1)*c]
		var sum float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := float32(sum / float64(c))
		var ss float64
		for k, v := range row {
			d := v - mean
			out[k] = d
			ss += float64(d) * float64(d)
		}
		rs := float32(1 / math.Sqrt(float64(float32(ss/float64(c))+eps)))
		for k := range out {
			out[k] = scale[k]*rs*out[k] + bias[k]
		}
	}
}

// arena hands out the zeroed scratch slices of one embedIDs call from one
// buffer, so a short text embeds with few allocations. A slice it cannot
// fit is allocated on its own, and the next use of the arena (after
// reset) makes room for the whole call.
type arena struct {
	buf       []float32
	off, need int
}

// take returns n zeroed values, valid until reset.
func (a *arena) take(n int) []float32 {
	a.need += n
	if a.off+n > len(a.buf) {
		return make([]float32, n)
	}
	s := a.buf[a.off : a.off+n : a.off+n]
	a.off += n
	clear(s)
	return s
}

func (a *arena) reset() {
	if a.need > len(a.buf) {
		a.buf = make([]float32, a.need)
	}
	a.off, a.need = 0, 0
}

// pooledTokens bounds the texts whose arenas are pooled: queries are short
// and latency counts there; a long text's arena (about 40 KB per token)
// would stay in the pool and in the process's memory.
const pooledTokens = 32

var arenas = sync.Pool{New: func() any { return new(arena) }}

func getArena(n int) *arena {
	if n > pooledTokens {
		return new(arena)
	}
	return arenas.Get().(*arena)
}

func putArena(a *arena, n int) {
	if n > pooledTokens {
		return
	}
	a.reset()
	if len(a.buf) <= arenaCap {
		arenas.Put(a)
	}
}

// arenaCap is the size of the arena of a text of pooledTokens tokens,
// generously: 2 layers of about 10,000 values per token, plus the rest.
const arenaCap = pooledTokens*24<<10 + 8<<10
