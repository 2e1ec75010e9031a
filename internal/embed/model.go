package embed

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
)

// ModelName names the model and version this package runs.
const ModelName = "use-lite-0.2.0"

// ErrModelMissing reports that the model files are not installed (see
// Install). Callers fall back to keyword search when Load fails with it.
var ErrModelMissing = errors.New("embedding model not installed")

// Node name prefixes of the USE-lite graph.
const (
	kona  = "module_apply_default/Encoder_en/KonaTransformer/"
	stack = kona + "Encode/TransformerStack/"
	head  = "module_apply_default/Encoder_en/hidden_layers/"
)

// Model is the Universal Sentence Encoder Lite (USE-lite) run in Go. It
// is immutable after Load and safe for concurrent use.
//
// A quantized Model may keep its weights in a read-only mapping of the
// weights file (see LoadWith) rather than on the heap. The mapping lives as
// long as the process: a Model has no Close, because the conductor keeps
// one for its whole life and nothing could tell when the last Embed that
// reads the mapping has returned. Each LoadWith maps the file anew; the
// mappings share their pages.
type Model struct {
	name      string
	dir       string
	tok       *tokenizer
	maxTokens int
	mapped    []byte // the weights file the weights point into, or nil

	emb    []float32 // vocabulary × embDim, nil when quantized
	embQ   []int8    // quantized emb, one scale per row (token)
	embS   []float32
	embDim int
	vocab  int
	timing []float32 // inverse timescales, embDim/2

	// signal is the timing signal of positions 0..maxTokens-1, embDim
	// values each (sines, then cosines), made on first use.
	signalOnce sync.Once
	signal     []float32

	layers [2]layer

	hidden linear // pooled -> output, then tanh
	dim    int

	lnEps   float32
	l2Eps   float32
	weights int // bytes the weights take
}

// linear is x·W + b with W kept transposed (out × in): either as float32
// (wt) or, when quantized, as int8 (q) with one scale per output row, so
// that row j of W is q[j*in:(j+1)*in] * scale[j].
type linear struct {
	in, out int
	wt      []float32
	q       []int8
	scale   []float32
	b       []float32
}

type layer struct {
	in, width    int // input width, model width
	heads, depth int
	qScale       float32
	lnAttnScale  []float32
	lnAttnBias   []float32
	residual     *linear // Layer_0 widens its residual input
	qkv          linear
	proj         linear
	lnFFNScale   []float32
	lnFFNBias    []float32
	ffn1, ffn2   linear
	qkvSplit     int
}

// Load reads a model installed by Install, with float32 weights; it is
// LoadWith(dir, LoadOptions{}).
func Load(dir string) (*Model, error) { return LoadWith(dir, LoadOptions{}) }

// LoadWith reads a model installed by Install. The error wraps
// ErrModelMissing when the directory does not hold the model files.
//
// With LoadOptions.Quantize, LoadWith maps the weights file of dir (see
// WeightsFile) when it matches the model files; otherwise it reads and
// quantizes the shards as without the file, then writes the file and maps
// it, so that the weights leave the heap even on the first load. A weights
// file that is missing, damaged, of another format version or made from
// other model files is never used; one that cannot be written (a read-only
// directory) leaves the weights on the heap. Either way the vectors are the
// same, bit for bit.
func LoadWith(dir string, opts LoadOptions) (*Model, error) {
	file := opts.Quantize && !opts.noFile && canMap
	if file {
		if m, err := loadMapped(dir); err == nil {
			return m, nil
		}
	}
	m, sources, err := loadShards(dir, opts.Quantize, file)
	if err != nil {
		return nil, fmt.Errorf("load embedding model: %w", err)
	}
	if file && writeWeights(dir, m, sources) == nil {
		if mm, err := loadMapped(dir); err == nil {
			return mm, nil
		}
	}
	return m, nil
}

// loadShards reads the model from model.json, its weight shards and
// vocab.json, quantized or not. With fingerprint, it also returns the files
// it read, as the weights file records them.
func loadShards(dir string, quantize, fingerprint bool) (*Model, []source, error) {
	g, err := readGraph(dir, quantize, fingerprint)
	if err != nil {
		return nil, nil, err
	}
	vocab, vsrc, err := readVocab(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, nil, err
	}
	tok, err := newTokenizer(vocab)
	if err != nil {
		return nil, nil, err
	}
	m := &Model{name: ModelName, dir: dir, tok: tok}
	if quantize {
		m.name = ModelName + quantSuffix
	}
	if err := m.build(g, quantize); err != nil {
		return nil, nil, err
	}
	var sources []source
	if fingerprint {
		sources = append(g.sources, vsrc)
	}
	return m, sources, nil
}

// build takes the weights and the few constants that shape the
// computation from the graph, each by following the input of the op that
// uses it.
func (m *Model) build(g *graph, quantize bool) error {
	maxLen, err := g.scalar(kona+"ClipToMaxLength/Less", 1)
	if err != nil {
		return err
	}
	m.maxTokens = int(maxLen)

	emb, err := g.input(kona+"Encode/embedding_lookup", 0)
	if err != nil {
		return err
	}
	if len(emb.shape) != 2 {
		return fmt.Errorf("model.json: embedding shape %v", emb.shape)
	}
	m.emb, m.embQ, m.embS, m.vocab, m.embDim = emb.data, emb.q, emb.scale, emb.shape[0], emb.shape[1]
	if quantize && m.embQ == nil {
		m.embQ, m.embS = quantizeRows(m.emb, m.vocab, m.embDim)
		m.emb = nil
	}
	m.timing, err = g.vector(stack+"Layer_0/AddTimingSignal/TimingSignal/mul_2", 1, m.embDim/2)
	if err != nil {
		return err
	}
	m.lnEps, err = g.scalar(stack+"Layer_0/TransformerLayer/layer_prepostprocess/layer_norm/add", 1)
	if err != nil {
		return err
	}
	m.l2Eps, err = g.scalar(head+"l2_normalize/Maximum", 1)
	if err != nil {
		return err
	}
	in := m.embDim
	for i := range m.layers {
		if err := m.layers[i].build(g, fmt.Sprintf("%sLayer_%d/TransformerLayer/", stack, i), in); err != nil {
			return err
		}
		in = m.layers[i].width
	}
	m.dim = in
	if m.hidden, err = g.linear(head+"tanh_layer_0/MatMul", head+"tanh_layer_0/BiasAdd", in, in); err != nil {
		return err
	}
	if quantize {
		for i := range m.layers {
			l := &m.layers[i]
			for _, x := range []*linear{l.residual, &l.qkv, &l.proj, &l.ffn1, &l.ffn2} {
				if x != nil && x.q == nil {
					x.quantize()
				}
			}
		}
		if m.hidden.q == nil {
			m.hidden.quantize()
		}
	}
	if len(m.tok.pieceLen) > m.vocab {
		return fmt.Errorf("vocab.json: %d pieces, embedding table has %d rows", len(m.tok.pieceLen), m.vocab)
	}
	m.weights = m.weightBytes()
	return nil
}

// weightBytes is the bytes the weights take.
func (m *Model) weightBytes() int {
	n := 4*(len(m.emb)+len(m.embS)+len(m.timing)) + len(m.embQ) + m.hidden.size()
	for _, l := range m.layers {
		n += l.size()
	}
	return n
}

func (l *layer) build(g *graph, p string, in int) error {
	mha := p + "MultiheadAttention/"
	heads, err := g.input(mha+"split_heads/split_last_dimension/Reshape/shape", 2)
	if err != nil {
		return err
	}
	depth, err := g.input(mha+"split_heads/split_last_dimension/Reshape/shape", 3)
	if err != nil {
		return err
	}
	l.in, l.heads, l.depth = in, int(heads.data[0]), int(depth.data[0])
	if l.qScale, err = g.scalar(mha+"mul", 1); err != nil {
		return err
	}
	split, err := g.input(mha+"split", 1)
	if err != nil {
		return err
	}
	l.qkvSplit = l.heads * l.depth
	for _, s := range split.data {
		if int(s) != l.qkvSplit {
			return fmt.Errorf("model.json: %ssplit sizes %v, want %d each", mha, split.data, l.qkvSplit)
		}
	}
	ln := p + "layer_prepostprocess/layer_norm/"
	if l.lnAttnScale, err = g.vector(ln+"mul", 0, in); err != nil {
		return err
	}
	if l.lnAttnBias, err = g.vector(ln+"add_1", 1, in); err != nil {
		return err
	}
	if l.qkv, err = g.linear(mha+"qkv_transform_single/Conv2D", mha+"qkv_transform_single/BiasAdd", in, 3*l.qkvSplit); err != nil {
		return err
	}
	proj := g.nodes[mha+"output_transform_single/Conv2D"]
	if len(proj.Input) < 2 {
		return fmt.Errorf("model.json: no %soutput_transform_single/Conv2D", mha)
	}
	out := g.consts[proj.Input[1]].shape
	l.width = out[len(out)-1]
	if l.proj, err = g.linear(mha+"output_transform_single/Conv2D", mha+"output_transform_single/BiasAdd", l.qkvSplit, l.width); err != nil {
		return err
	}
	if _, ok := g.nodes[p+"AdjustResidualInput/dense/MatMul"]; ok {
		r, err := g.linear(p+"AdjustResidualInput/dense/MatMul", p+"AdjustResidualInput/dense/BiasAdd", in, l.width)
		if err != nil {
			return err
		}
		l.residual = &r
	} else if in != l.width {
		return fmt.Errorf("model.json: %s: input width %d, output %d, no residual projection", p, in, l.width)
	}
	ffln := p + "FFN/layer_prepostprocess/layer_norm/"
	if l.lnFFNScale, err = g.vector(ffln+"mul", 0, l.width); err != nil {
		return err
	}
	if l.lnFFNBias, err = g.vector(ffln+"add_1", 1, l.width); err != nil {
		return err
	}
	hid, err := g.input(p+"FFN/conv1/Tensordot/MatMul", 1)
	if err != nil {
		return err
	}
	inner := hid.shape[len(hid.shape)-1]
	if l.ffn1, err = g.linear(p+"FFN/conv1/Tensordot/MatMul", p+"FFN/conv1/BiasAdd", l.width, inner); err != nil {
		return err
	}
	if l.ffn2, err = g.linear(p+"FFN/conv2/Tensordot/MatMul", p+"FFN/conv2/BiasAdd", inner, l.width); err != nil {
		return err
	}
	return nil
}

// size is the bytes the layer's weights take.
func (l *layer) size() int {
	n := 4 * (len(l.lnAttnScale) + len(l.lnAttnBias) + len(l.lnFFNScale) + len(l.lnFFNBias))
	for _, x := range []*linear{l.residual, &l.qkv, &l.proj, &l.ffn1, &l.ffn2} {
		if x != nil {
			n += x.size()
		}
	}
	return n
}

// size is the bytes the weights take.
func (l *linear) size() int { return 4*(len(l.wt)+len(l.scale)+len(l.b)) + len(l.q) }

// Dim is the length of an embedding: 512.
func (m *Model) Dim() int { return m.dim }

// Name identifies the model, its version and its weights:
// "use-lite-0.2.0", or "use-lite-0.2.0-int8" when loaded with
// LoadOptions.Quantize. Stored vectors keyed by it stay valid as long as
// the name does.
func (m *Model) Name() string { return m.name }

// MaxTokens is the number of tokens the model reads: the graph keeps only
// tokens at positions below 128 (ClipToMaxLength) and ignores the rest.
// Use EmbedLong for longer texts.
func (m *Model) MaxTokens() int { return m.maxTokens }

// TokenCount is the number of tokens of text, including any beyond
// MaxTokens.
func (m *Model) TokenCount(text string) int { return len(m.tok.encode(text)) }

// WeightBytes is the memory the model's weights take: about 28 MB of
// float32 values, as in the shards, or about 7 MB quantized, on the heap
// or in the mapped weights file.
func (m *Model) WeightBytes() int { return m.weights }
