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
// Short texts go through the model together, in batches of up to
// batchRows tokens, so that one pass over the weights serves them all. A
// lone batch shares its steps with helper goroutines on spare CPUs (see
// team); several batches run on up to GOMAXPROCS goroutines. Embed waits
// for all of them. The error is always nil today; it is there for models
// that can fail.
func (m *Model) Embed(texts []string) ([][]float32, error) {
	ids := make([][]int, len(texts))
	for i, t := range texts {
		ids[i] = m.tok.encode(t)
	}
	return m.embedAll(ids), nil
}

// batchRows bounds the tokens of the texts one pass embeds together (a
// longer text takes a pass of its own): enough for a request and its
// parts, little enough that the pass's scratch stays pooled.
const batchRows = 64

// maxHelpers bounds the goroutines that help with one batch (see team).
const maxHelpers = 3

// embedAll embeds texts given as token ids, in batches of consecutive
// texts of at most batchRows tokens in all.
func (m *Model) embedAll(ids [][]int) [][]float32 {
	out := make([][]float32, len(ids))
	var bounds []int // batch b is ids[bounds[b]:bounds[b+1]]
	rows := 0
	for i := range ids {
		if len(ids[i]) > m.maxTokens {
			ids[i] = ids[i][:m.maxTokens]
		}
		if i == 0 || rows+len(ids[i]) > batchRows {
			bounds = append(bounds, i)
			rows = 0
		}
		rows += len(ids[i])
	}
	bounds = append(bounds, len(ids))
	batches := len(bounds) - 1
	workers := min(runtime.GOMAXPROCS(0), batches)
	if workers <= 1 {
		for b := range batches {
			m.embedBatch(ids[bounds[b]:bounds[b+1]], out[bounds[b]:bounds[b+1]], maxHelpers)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				b := int(next.Add(1) - 1)
				if b >= batches {
					return
				}
				m.embedBatch(ids[bounds[b]:bounds[b+1]], out[bounds[b]:bounds[b+1]], 0)
			}
		})
	}
	wg.Wait()
	return out
}

// embedIDs embeds one text given as token ids.
func (m *Model) embedIDs(ids []int) []float32 {
	return m.embedAll([][]int{ids})[0]
}

// embedBatch runs the graph for texts of at most maxTokens tokens each,
// their rows side by side, and stores their vectors in out. It follows
// the TF.js graph op by op for a batch of one row with no padding, where
// the sparse plumbing (Where, GatherNd, ScatterNd, SequenceMask) reduces
// to the identity:
//
//	x   = e + (e + timing)           the graph adds the embedding twice
//	Layer_0 (256 -> 512), Layer_1 (512):
//	  a = MHA(LN(x)) + residual(x)   residual: dense 256->512 in Layer_0
//	  x = FFN(LN(a)) + a             FFN: relu(a·W1+b1)·W2+b2
//	out = l2norm(tanh(mean(x)·W + b))
//
// Only attention and the mean mix rows, and they stay within a text. A
// batch of at least teamMinRows rows shares its steps with up to helpers
// other goroutines (see team).
func (m *Model) embedBatch(ids [][]int, out [][]float32, helpers int) {
	off := make([]int, len(ids)+1) // text t has rows off[t]:off[t+1]
	for t, s := range ids {
		off[t+1] = off[t] + len(s)
	}
	n := off[len(ids)]
	p := &pass{ar: getArena(n)}
	defer putArena(p.ar, n)
	if n >= teamMinRows {
		if p.tm = newTeam(helpers); p.tm != nil {
			defer p.tm.close()
		}
	}
	pooled := m.encode(p, ids, off)
	h := p.ar.takeDirty(len(ids) * m.dim)
	p.matmul(h, pooled, len(ids), &m.hidden, epilogue{})
	p.each(len(ids), func(t int, _ *[]float32) {
		v := make([]float32, m.dim)
		var ss float32
		for i, x := range h[t*m.dim : (t+1)*m.dim] {
			th := float32(math.Tanh(float64(x)))
			v[i] = th
			ss += th * th
		}
		r := float32(1 / math.Sqrt(float64(max(ss, m.l2Eps))))
		for i := range v {
			v[i] *= r
		}
		out[t] = v
	})
}

// encode returns, per text, the mean over its tokens of the
// transformer's output (zero for a text of no tokens).
func (m *Model) encode(p *pass, ids [][]int, off []int) []float32 {
	d, half := m.embDim, m.embDim/2
	n := off[len(ids)]
	x := p.ar.takeDirty(n * d)
	signal := m.timingSignal()
	p.rows(n, func(r0, r1 int) {
		t := 0
		for r := r0; r < r1; r++ {
			for off[t+1] <= r {
				t++
			}
			pos, id := r-off[t], ids[t][r-off[t]]
			if id < 0 || id >= m.vocab {
				panic(fmt.Sprintf("embed: token id %d outside vocabulary", id))
			}
			row, sig := x[r*d:(r+1)*d], signal[pos*d:(pos+1)*d]
			m.embedding(row, id)
			for k := range half {
				row[k] = row[k] + (row[k] + sig[k])
				row[half+k] = row[half+k] + (row[half+k] + sig[half+k])
			}
		}
	})
	last := len(m.layers) - 1
	for i := range m.layers[:last] {
		x = m.layers[i].forward(p, x, off, m.lnEps)
	}
	return m.layers[last].forwardMean(p, x, off, m.lnEps)
}

// timingSignal returns the timing signal the graph adds to the token at
// each position below maxTokens: embDim values, sin(p*timing[k]) then
// cos(p*timing[k]).
func (m *Model) timingSignal() []float32 {
	m.signalOnce.Do(func() {
		d, half := m.embDim, m.embDim/2
		sig := make([]float32, m.maxTokens*d)
		for p := range m.maxTokens {
			for k := range half {
				sin, cos := math.Sincos(float64(float32(p) * m.timing[k]))
				sig[p*d+k], sig[p*d+half+k] = float32(sin), float32(cos)
			}
		}
		m.signal = sig
	})
	return m.signal
}

// forward runs one transformer layer on the rows of x (l.in values each)
// and returns as many rows of l.width values.
func (l *layer) forward(p *pass, x []float32, off []int, eps float32) []float32 {
	n := off[len(off)-1]
	out := p.ar.takeDirty(n * l.width)
	defer p.ar.release(p.ar.off)
	hid, a := l.attend(p, x, off, eps, nil, nil)
	p.matmul(out, hid, n, &l.ffn2, epilogue{add: a})
	return out
}

// forwardMean is forward followed by the mean over each text's rows (zero
// for a text of no rows). The mean commutes with the FFN's second matrix
// product, so that product runs on one row per text instead of one per
// token.
func (l *layer) forwardMean(p *pass, x []float32, off []int, eps float32) []float32 {
	texts := len(off) - 1
	out := p.ar.takeDirty(texts * l.width)
	defer p.ar.release(p.ar.off)
	mh := p.ar.take(texts * l.ffn2.in)
	ma := p.ar.take(texts * l.width)
	l.attend(p, x, off, eps, mh, ma)
	p.matmul(out, mh, texts, &l.ffn2, epilogue{add: ma})
	for t := range texts {
		if off[t] == off[t+1] {
			clear(out[t*l.width : (t+1)*l.width])
		}
	}
	return out
}

// attend runs a layer up to the FFN's second matrix product: it returns
// relu(LN(a)·W1+b1) and a = MHA(LN(x)) + residual(x), for every row. With
// mh and ma (zero, a row per text), it stores their means over each
// text's rows there instead, and returns no hid.
func (l *layer) attend(p *pass, x []float32, off []int, eps float32, mh, ma []float32) (hid, a []float32) {
	n := off[len(off)-1]
	ln := p.ar.takeDirty(n * l.in)
	p.rows(n, func(r0, r1 int) {
		layerNorm(ln[r0*l.in:r1*l.in], x[r0*l.in:r1*l.in], r1-r0, l.in, l.lnAttnScale, l.lnAttnBias, eps)
	})

	// Residual input: the layer input, widened in Layer_0.
	a = x
	qkv := p.ar.takeDirty(n * 3 * l.qkvSplit)
	if l.residual != nil {
		a = p.ar.takeDirty(n * l.width)
		p.products(n, product{a, x, l.residual, epilogue{}}, product{qkv, ln, &l.qkv, epilogue{}})
	} else {
		p.matmul(qkv, ln, n, &l.qkv, epilogue{})
	}
	ctx := p.ar.take(n * l.qkvSplit)
	p.each((len(off)-1)*l.heads, func(i int, buf *[]float32) {
		t, h := i/l.heads, i%l.heads
		r0, r1 := off[t], off[t+1]
		l.attention(ctx[r0*l.qkvSplit:r1*l.qkvSplit], qkv[r0*3*l.qkvSplit:r1*3*l.qkvSplit], r1-r0, h, buf)
	})
	p.matmul(a, ctx, n, &l.proj, epilogue{add: a, mean: ma, off: off})

	ln2 := p.ar.takeDirty(n * l.width)
	p.rows(n, func(r0, r1 int) {
		layerNorm(ln2[r0*l.width:r1*l.width], a[r0*l.width:r1*l.width], r1-r0, l.width, l.lnFFNScale, l.lnFFNBias, eps)
	})
	if mh == nil {
		hid = p.ar.takeDirty(n * l.ffn1.out)
	}
	p.matmul(hid, ln2, n, &l.ffn1, epilogue{relu: true, mean: mh, off: off})
	return hid, a
}

// attention is scaled dot-product attention of head h over n positions,
// none of them padding. qkv holds per row q, k, v of heads*depth values
// each; ctx, zero on entry, receives per row the head's output in its
// place among the heads' (combine_heads). buf is scratch.
func (l *layer) attention(ctx, qkv []float32, n, h int, buf *[]float32) {
	stride := 3 * l.qkvSplit
	dep := l.depth
	if cap(*buf) < n+dep {
		*buf = make([]float32, n+dep)
	}
	scores, q := (*buf)[:n], (*buf)[n:n+dep]
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

// layerNormGeneric is layerNorm in plain Go. The sums run in float64,
// four at a time.
func layerNormGeneric(dst, x []float32, n, c int, scale, bias []float32, eps float32) {
	for r := range n {
		row := x[r*c : (r+1)*c]
		out := dst[r*c : (r+1)*c]
		var s0, s1, s2, s3 float64
		k := 0
		for ; k+4 <= c; k += 4 {
			s0 += float64(row[k])
			s1 += float64(row[k+1])
			s2 += float64(row[k+2])
			s3 += float64(row[k+3])
		}
		for ; k < c; k++ {
			s0 += float64(row[k])
		}
		mean := float32((s0 + s1 + s2 + s3) / float64(c))
		s0, s1, s2, s3 = 0, 0, 0, 0
		for k = 0; k+4 <= c; k += 4 {
			d0, d1, d2, d3 := row[k]-mean, row[k+1]-mean, row[k+2]-mean, row[k+3]-mean
			out[k], out[k+1], out[k+2], out[k+3] = d0, d1, d2, d3
			s0 += float64(d0) * float64(d0)
			s1 += float64(d1) * float64(d1)
			s2 += float64(d2) * float64(d2)
			s3 += float64(d3) * float64(d3)
		}
		for ; k < c; k++ {
			d := row[k] - mean
			out[k] = d
			s0 += float64(d) * float64(d)
		}
		ss := s0 + s1 + s2 + s3
		rs := float32(1 / math.Sqrt(float64(float32(ss/float64(c))+eps)))
		for k := range out {
			out[k] = scale[k]*rs*out[k] + bias[k]
		}
	}
}

// arena hands out the scratch slices of one embedBatch call from one
// buffer, so that a short batch embeds with few allocations. It is a
// stack: release(mark) takes back the slices handed out since off was
// mark. A slice that does not fit is allocated on its own, and the next
// use of the arena (after reset) makes room for the whole call.
type arena struct {
	buf       []float32
	off, peak int // values handed out, as if all fit, and their most
}

// take returns n zeroed values, valid until reset or a release past them.
func (a *arena) take(n int) []float32 {
	s := a.takeDirty(n)
	clear(s)
	return s
}

// takeDirty is take for a slice the caller overwrites whole: its values
// are left as they were.
func (a *arena) takeDirty(n int) []float32 {
	var s []float32
	if a.off+n <= len(a.buf) {
		s = a.buf[a.off : a.off+n : a.off+n]
	} else {
		s = make([]float32, n)
	}
	a.off += n
	a.peak = max(a.peak, a.off)
	return s
}

// release takes back the slices handed out since off was mark.
func (a *arena) release(mark int) { a.off = mark }

func (a *arena) reset() {
	if a.peak > len(a.buf) {
		a.buf = make([]float32, a.peak)
	}
	a.off, a.peak = 0, 0
}

// pooledTokens bounds the batches whose arenas are pooled: queries and
// their parts are short and latency counts there; a long batch's arena
// (about 24 KB per token) would stay in the pool and in the process's
// memory.
const pooledTokens = batchRows

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

// arenaCap is the size of the arena of a batch of pooledTokens tokens,
// generously: 8,000 values per token (Layer_1 takes about 6,000), plus
// the rest.
const arenaCap = pooledTokens*8<<10 + 8<<10
