package embed

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// graphFile is the part of a TF.js graph model (model.json) that the port
// reads: the node list, to check that the graph is the one ported and to
// find which constant feeds which op, and the weights manifest.
type graphFile struct {
	ModelTopology struct {
		Node []graphNode `json:"node"`
	} `json:"modelTopology"`
	WeightsManifest []struct {
		Paths   []string       `json:"paths"`
		Weights []weightRecord `json:"weights"`
	} `json:"weightsManifest"`
}

type graphNode struct {
	Name  string   `json:"name"`
	Op    string   `json:"op"`
	Input []string `json:"input"`
}

type weightRecord struct {
	Name         string `json:"name"`
	Shape        []int  `json:"shape"`
	Dtype        string `json:"dtype"`
	Quantization *struct {
		Dtype string  `json:"dtype"`
		Scale float32 `json:"scale"`
		Min   float32 `json:"min"`
	} `json:"quantization"`
}

// tensor is a constant of the graph: float32 values (int32 constants are
// converted; they are all small shape and axis values) and a shape. When
// the graph is read with quantize, weight matrices hold int8 values with
// one scale per row instead (q, scale; data is nil): the embedding table
// by rows, as stored, and the kernels of MatMul and Conv2D transposed (out
// × in), as graph.linear returns them.
type tensor struct {
	shape []int
	data  []float32
	q     []int8
	scale []float32
}

// graph is a loaded model.json with its weights.
type graph struct {
	nodes  map[string]graphNode
	consts map[string]tensor
	// sources are the files read, model.json first, with the sizes and
	// sha256 sums of the bytes read, when readGraph is asked to fingerprint
	// them (for the weights file).
	sources []source
}

// source is a model file as the weights file records it: the weights file
// serves only while every source still has this size and sum.
type source struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// sourceHash sums the bytes of one source as they are read.
type sourceHash struct {
	name string
	h    hash.Hash
	n    int64
}

func newSourceHash(name string) *sourceHash { return &sourceHash{name: name, h: sha256.New()} }

func (s *sourceHash) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	return s.h.Write(p)
}

func (s *sourceHash) source() source {
	return source{Name: s.name, Size: s.n, SHA256: hex.EncodeToString(s.h.Sum(nil))}
}

// sourceOf is the source of a file read whole.
func sourceOf(name string, b []byte) source {
	h := newSourceHash(name)
	h.Write(b)
	return h.source()
}

// opCounts is the op histogram of the USE-lite graph this package ports
// (module_apply_default/Encoder_en: sparse input, clip to 128 tokens,
// embedding lookup, timing signal, two transformer layers, mean pooling,
// tanh layer, l2 normalisation). Load refuses any other graph rather than
// compute something else silently.
var opCounts = map[string]int{
	"Const": 61, "StridedSlice": 24, "Reshape": 21, "Shape": 21, "Add": 17,
	"Mul": 14, "ConcatV2": 12, "ExpandDims": 12, "Pack": 12, "GatherV2": 11,
	"BiasAdd": 10, "Mean": 8, "Transpose": 8, "Prod": 8, "Cast": 6,
	"MatMul": 6, "Squeeze": 6, "ScatterNd": 5, "Square": 5, "Rsqrt": 5,
	"GatherNd": 4, "Sub": 4, "Conv2D": 4, "BatchMatMul": 4, "Maximum": 3,
	"Sum": 3, "Placeholder": 2, "Less": 2, "Where": 2, "SplitV": 2,
	"Slice": 2, "Softmax": 2, "Relu": 2, "Max": 1, "SparseToDense": 1,
	"Greater": 1, "LogicalNot": 1, "Sin": 1, "Cos": 1, "Range": 1,
	"RealDiv": 1, "Tanh": 1,
}

// readGraph reads model.json and its weights. With quantize, it quantizes
// the weight matrices as it reads them (see tensor), so that the float32
// weights never all exist at once: loading holds one float32 matrix at a
// time besides the int8 ones. With fingerprint, it records the files it
// reads in g.sources, summing the very bytes it uses.
func readGraph(dir string, quantize, fingerprint bool) (*graph, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no model.json in %s", ErrModelMissing, dir)
		}
		return nil, err
	}
	var gf graphFile
	if err := json.Unmarshal(raw, &gf); err != nil {
		return nil, fmt.Errorf("model.json: %w", err)
	}
	g := &graph{nodes: make(map[string]graphNode), consts: make(map[string]tensor)}
	if fingerprint {
		g.sources = append(g.sources, sourceOf("model.json", raw))
	}
	raw = nil
	counts := make(map[string]int)
	// use says how a quantized graph stores a weight: 'r' by rows, 'm' as
	// a transposed matrix.
	use := make(map[string]byte)
	for _, n := range gf.ModelTopology.Node {
		g.nodes[n.Name] = n
		counts[n.Op]++
		switch {
		case (n.Op == "MatMul" || n.Op == "Conv2D") && len(n.Input) > 1:
			use[n.Input[1]] = 'm'
		case n.Op == "GatherV2" && len(n.Input) > 0:
			use[n.Input[0]] = 'r'
		}
	}
	for op, want := range opCounts {
		if counts[op] != want {
			return nil, fmt.Errorf("model.json: %d %s ops, want %d: not the USE-lite graph this package ports", counts[op], op, want)
		}
	}
	if len(counts) != len(opCounts) {
		return nil, fmt.Errorf("model.json: unexpected ops %v: not the USE-lite graph this package ports", counts)
	}
	for _, group := range gf.WeightsManifest {
		if err := g.readGroup(dir, group.Paths, group.Weights, quantize, fingerprint, use); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// readGroup reads the weights of one manifest group from its shards, in
// order, without holding the shards in memory.
func (g *graph) readGroup(dir string, paths []string, weights []weightRecord, quantize, fingerprint bool, use map[string]byte) error {
	var files []io.Reader
	var sums []*sourceHash
	for _, p := range paths {
		if strings.Contains(p, "/") || strings.Contains(p, `\`) || strings.Contains(p, "..") {
			return fmt.Errorf("model.json: weight path %q escapes the model directory", p)
		}
		f, err := os.Open(filepath.Join(dir, p))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: %v", ErrModelMissing, err)
			}
			return err
		}
		defer f.Close()
		if !fingerprint {
			files = append(files, f)
			continue
		}
		h := newSourceHash(p)
		sums = append(sums, h)
		files = append(files, io.TeeReader(f, h))
	}
	r := io.MultiReader(files...)
	buf := make([]byte, 256<<10)
	var fbuf, tbuf []float32
	for _, w := range weights {
		n := 1
		for _, d := range w.Shape {
			n *= d
		}
		size, err := weightSize(w, n)
		if err != nil {
			return fmt.Errorf("model.json: weight %s: %w", w.Name, err)
		}
		// A weight quantized here is decoded (and transposed) into buffers
		// reused from weight to weight, which leaves no float32 garbage.
		q := quantize && len(w.Shape) >= 2 && use[w.Name] != 0
		t := tensor{shape: w.Shape}
		if q {
			fbuf = grow(fbuf, n)
			t.data = fbuf
		} else {
			t.data = make([]float32, n)
		}
		// Decode in chunks of whole values.
		per := size / max(n, 1)
		for done := 0; done < n; {
			k := min(n-done, len(buf)/4)
			if _, err := io.ReadFull(r, buf[:k*per]); err != nil {
				return fmt.Errorf("model.json: weight %s: shards too short: %w", w.Name, err)
			}
			if _, err := decodeWeight(t.data[done:done+k], buf[:k*per], w); err != nil {
				return fmt.Errorf("model.json: weight %s: %w", w.Name, err)
			}
			done += k
		}
		if q {
			cols := w.Shape[len(w.Shape)-1]
			if use[w.Name] == 'r' {
				t.q, t.scale = quantizeRows(t.data, w.Shape[0], n/w.Shape[0])
			} else {
				tbuf = grow(tbuf, n)
				transposeTo(tbuf, t.data, n/cols, cols)
				t.q, t.scale = quantizeRows(tbuf, cols, n/cols)
			}
			t.data = nil
		}
		g.consts[w.Name] = t
	}
	if k, _ := r.Read(make([]byte, 1)); k != 0 {
		return errors.New("model.json: shards hold more bytes than the weights use")
	}
	// Every shard has now been read to its end, through its hash.
	for _, h := range sums {
		g.sources = append(g.sources, h.source())
	}
	return nil
}

// weightSize is the number of shard bytes of a weight of n values.
func weightSize(w weightRecord, n int) (int, error) {
	if q := w.Quantization; q != nil {
		switch q.Dtype {
		case "uint8":
			return n, nil
		case "uint16":
			return 2 * n, nil
		default:
			return 0, fmt.Errorf("quantization %q not supported", q.Dtype)
		}
	}
	return 4 * n, nil
}

// decodeWeight fills dst from the shard bytes b as TF.js's
// decodeWeights does and returns the number of bytes used: little-endian
// float32 or int32, or affine-quantised uint8/uint16 (q*scale + min).
// The shipped model is plain float32.
func decodeWeight(dst []float32, b []byte, w weightRecord) (int, error) {
	n := len(dst)
	if q := w.Quantization; q != nil {
		if w.Dtype != "float32" {
			return 0, fmt.Errorf("quantized %s weights not supported", w.Dtype)
		}
		switch q.Dtype {
		case "uint8":
			if len(b) < n {
				return 0, errors.New("shards too short")
			}
			for i := range dst {
				dst[i] = float32(b[i])*q.Scale + q.Min
			}
			return n, nil
		case "uint16":
			if len(b) < 2*n {
				return 0, errors.New("shards too short")
			}
			for i := range dst {
				dst[i] = float32(binary.LittleEndian.Uint16(b[2*i:]))*q.Scale + q.Min
			}
			return 2 * n, nil
		default:
			return 0, fmt.Errorf("quantization %q not supported", q.Dtype)
		}
	}
	if len(b) < 4*n {
		return 0, errors.New("shards too short")
	}
	switch w.Dtype {
	case "float32":
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "int32":
		for i := range dst {
			dst[i] = float32(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	default:
		return 0, fmt.Errorf("dtype %q not supported", w.Dtype)
	}
	return 4 * n, nil
}

// input returns the constant that feeds input i of the named node.
func (g *graph) input(node string, i int) (tensor, error) {
	n, ok := g.nodes[node]
	if !ok {
		return tensor{}, fmt.Errorf("model.json: no node %s", node)
	}
	if i >= len(n.Input) {
		return tensor{}, fmt.Errorf("model.json: node %s has %d inputs", node, len(n.Input))
	}
	t, ok := g.consts[n.Input[i]]
	if !ok {
		return tensor{}, fmt.Errorf("model.json: input %d of %s (%s) is not a weight", i, node, n.Input[i])
	}
	return t, nil
}

// scalar is input for a constant of one element.
func (g *graph) scalar(node string, i int) (float32, error) {
	t, err := g.input(node, i)
	if err != nil {
		return 0, err
	}
	if len(t.data) != 1 {
		return 0, fmt.Errorf("model.json: input %d of %s: %d values, want 1", i, node, len(t.data))
	}
	return t.data[0], nil
}

// vector is input for a constant of shape [n].
func (g *graph) vector(node string, i, n int) ([]float32, error) {
	t, err := g.input(node, i)
	if err != nil {
		return nil, err
	}
	if len(t.data) != n {
		return nil, fmt.Errorf("model.json: input %d of %s: %d values, want %d", i, node, len(t.data), n)
	}
	return t.data, nil
}

// linear is x·W + b for the kernel W (in×out values: a MatMul operand, or
// a 1×1 Conv2D filter) of the matmul node and the bias of the biasAdd
// node. W is kept transposed, out×in, so the forward pass takes dot
// products of contiguous rows.
func (g *graph) linear(matmul, biasAdd string, in, out int) (linear, error) {
	t, err := g.input(matmul, 1)
	if err != nil {
		return linear{}, err
	}
	n := len(t.data) + len(t.q)
	if n != in*out || t.shape[len(t.shape)-1] != out {
		return linear{}, fmt.Errorf("model.json: input 1 of %s: shape %v, want %d×%d", matmul, t.shape, in, out)
	}
	l := linear{in: in, out: out, q: t.q, scale: t.scale}
	if t.q == nil {
		l.wt = transpose(t.data, in, out)
	}
	if l.b, err = g.vector(biasAdd, 1, out); err != nil {
		return linear{}, err
	}
	return l, nil
}

// transpose returns the transpose of the rows×cols matrix w.
func transpose(w []float32, rows, cols int) []float32 {
	wt := make([]float32, rows*cols)
	transposeTo(wt, w, rows, cols)
	return wt
}

// transposeTo writes the transpose of the rows×cols matrix w to wt.
func transposeTo(wt, w []float32, rows, cols int) {
	for r := range rows {
		for c := range cols {
			wt[c*rows+r] = w[r*cols+c]
		}
	}
}

// grow returns b resized to n values, reallocated if too small.
func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}
