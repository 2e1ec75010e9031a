package embed

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"
)

// WeightsFile is the name of the file, in the model directory, that holds
// the quantized model ready to map (see LoadWith): the int8 weights, their
// scales, the other values of the forward pass and the tokenizer's trie,
// laid out as a Model keeps them in memory. Install writes it, and so does the first LoadWith
// with LoadOptions.Quantize that finds it missing or stale.
//
// Mapped read-only and shared, its pages belong to the file rather than to
// the process: every conductor on the host (each editor window starts its
// own) shares one copy of the weights in the page cache instead of each
// holding about 8 MB of them on its heap, the kernel can drop the pages
// under memory pressure and read them back when needed, and a start skips
// decoding 28 MB of float32 shards, quantizing them and building the
// tokenizer from vocab.json.
//
// The file is only ever replaced by renaming a new one over it, which
// leaves existing mappings intact. Truncating or editing it in place
// would make processes that map it fail with SIGBUS; delete it instead,
// and the next load writes it again.
const WeightsFile = "weights-int8.bin"

// The weights file is, all little-endian:
//
//	magic    8 bytes, weightsMagic
//	version  uint32, weightsVersion
//	crc      uint32, CRC-32C of every byte after this field
//	size     uint64, the file's size
//	metaLen  uint32
//	         4 zero bytes
//	meta     metaLen bytes of JSON: weightsMeta
//	data     from the next multiple of weightsAlign: each slice of
//	         Model.fields at a multiple of weightsAlign
//
// meta names the model files the weights were made from, with their sizes
// and sha256 sums; LoadWith sums the files again and maps the weights only
// if all match, so a changed model is never served stale weights.
const (
	weightsMagic   = "USEint8\n"
	weightsVersion = 2
	weightsHeader  = 32
	weightsAlign   = 64
	maxWeightsSize = 64 << 20
)

// weightsFileOK reports whether this platform maps the weights file: it
// needs mmap, and a little-endian CPU, as the file holds values as they
// are in memory.
var weightsFileOK = canMap && binary.NativeEndian.Uint16([]byte{1, 0}) == 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// weightsMeta describes the contents of a weights file.
type weightsMeta struct {
	Sources  []source           `json:"sources"`
	Residual []bool             `json:"residual"` // per layer
	Ints     map[string]int     `json:"ints"`
	Floats   map[string]uint32  `json:"floats"` // float32 bits
	Slices   map[string]section `json:"slices"`
}

// section locates the values of one slice in the data of a weights file.
type section struct {
	Type string `json:"type"` // Go type of the values
	Size int    `json:"size"` // bytes per value
	Off  int    `json:"off"`  // bytes from the start of the data
	Len  int    `json:"len"`  // number of values
}

// scalarRef names a number of a Model, for the weights file.
type scalarRef struct {
	name string
	i    *int
	f    *float32
}

// sliceRef names a slice of values of a Model, for the weights file.
type sliceRef struct {
	name  string
	typ   string
	size  int
	bytes func() []byte  // the values as bytes, to write them
	point func(b []byte) // points the slice at b, to map it
}

// mappable are the types of the values the weights file holds.
type mappable interface {
	int8 | int32 | float32 | trieNode | trieEdge
}

func refTo[T mappable](name string, p *[]T) sliceRef {
	var zero T
	size := int(unsafe.Sizeof(zero))
	return sliceRef{
		name: name, typ: fmt.Sprintf("%T", zero), size: size,
		bytes: func() []byte {
			return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(*p))), len(*p)*size)
		},
		point: func(b []byte) {
			*p = unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/size)
		},
	}
}

// fields lists what the tokenizer and the quantized forward pass read of
// m: the numbers that shape them and the slices of values, each under a
// name. The weights file holds exactly these, so a field that they come to
// read must be listed here and checked in check, and weightsVersion
// raised. m.tok must be set.
func (m *Model) fields() ([]scalarRef, []sliceRef) {
	sc := []scalarRef{
		{name: "maxTokens", i: &m.maxTokens}, {name: "vocab", i: &m.vocab},
		{name: "embDim", i: &m.embDim}, {name: "dim", i: &m.dim},
		{name: "lnEps", f: &m.lnEps}, {name: "l2Eps", f: &m.l2Eps},
	}
	sl := []sliceRef{refTo("emb.q", &m.embQ), refTo("emb.scale", &m.embS), refTo("timing", &m.timing)}
	lin := func(p string, l *linear) {
		sc = append(sc, scalarRef{name: p + ".in", i: &l.in}, scalarRef{name: p + ".out", i: &l.out})
		sl = append(sl, refTo(p+".q", &l.q), refTo(p+".scale", &l.scale), refTo(p+".b", &l.b))
	}
	for i := range m.layers {
		l := &m.layers[i]
		p := fmt.Sprintf("layer%d.", i)
		sc = append(sc,
			scalarRef{name: p + "in", i: &l.in}, scalarRef{name: p + "width", i: &l.width},
			scalarRef{name: p + "heads", i: &l.heads}, scalarRef{name: p + "depth", i: &l.depth},
			scalarRef{name: p + "qkvSplit", i: &l.qkvSplit}, scalarRef{name: p + "qScale", f: &l.qScale})
		sl = append(sl,
			refTo(p+"lnAttn.scale", &l.lnAttnScale), refTo(p+"lnAttn.bias", &l.lnAttnBias),
			refTo(p+"lnFFN.scale", &l.lnFFNScale), refTo(p+"lnFFN.bias", &l.lnFFNBias))
		if l.residual != nil {
			lin(p+"residual", l.residual)
		}
		lin(p+"qkv", &l.qkv)
		lin(p+"proj", &l.proj)
		lin(p+"ffn1", &l.ffn1)
		lin(p+"ffn2", &l.ffn2)
	}
	lin("hidden", &m.hidden)
	sl = append(sl, refTo("tok.nodes", &m.tok.nodes), refTo("tok.edges", &m.tok.edges), refTo("tok.pieceLen", &m.tok.pieceLen))
	return sc, sl
}

// check verifies that the sizes of a model read from a weights file fit
// together, as build makes them for a model read from the graph, so that
// the forward pass reads no slice past its end.
func (m *Model) check() error {
	var errs []error
	want := func(name string, got, n int) {
		if got != n {
			errs = append(errs, fmt.Errorf("%s: %d values, want %d", name, got, n))
		}
	}
	lin := func(name string, l *linear, in, out int) {
		if l.in != in || l.out != out || l.wt != nil {
			errs = append(errs, fmt.Errorf("%s: %d×%d, want %d×%d int8", name, l.in, l.out, in, out))
		}
		want(name+".q", len(l.q), in*out)
		want(name+".scale", len(l.scale), out)
		want(name+".b", len(l.b), out)
	}
	if m.embDim%2 != 0 || m.emb != nil {
		errs = append(errs, fmt.Errorf("embedding: %d columns", m.embDim))
	}
	want("emb.q", len(m.embQ), m.vocab*m.embDim)
	want("emb.scale", len(m.embS), m.vocab)
	want("timing", len(m.timing), m.embDim/2)
	in := m.embDim
	for i := range m.layers {
		l := &m.layers[i]
		p := fmt.Sprintf("layer%d.", i)
		if l.in != in || l.qkvSplit != l.heads*l.depth {
			errs = append(errs, fmt.Errorf("%s: input %d, want %d; %d heads of %d, split %d", p, l.in, in, l.heads, l.depth, l.qkvSplit))
		}
		want(p+"lnAttn.scale", len(l.lnAttnScale), in)
		want(p+"lnAttn.bias", len(l.lnAttnBias), in)
		want(p+"lnFFN.scale", len(l.lnFFNScale), l.width)
		want(p+"lnFFN.bias", len(l.lnFFNBias), l.width)
		if l.residual != nil {
			lin(p+"residual", l.residual, in, l.width)
		} else if in != l.width {
			errs = append(errs, fmt.Errorf("%s: input %d, width %d, no residual projection", p, in, l.width))
		}
		lin(p+"qkv", &l.qkv, in, 3*l.qkvSplit)
		lin(p+"proj", &l.proj, l.qkvSplit, l.width)
		lin(p+"ffn1", &l.ffn1, l.width, l.ffn1.out)
		lin(p+"ffn2", &l.ffn2, l.ffn1.out, l.width)
		in = l.width
	}
	if m.dim != in {
		errs = append(errs, fmt.Errorf("dim %d, want %d", m.dim, in))
	}
	lin("hidden", &m.hidden, in, in)
	if err := m.tok.check(m.vocab); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// check verifies that the trie's indices stay within its slices, that
// every piece has a row in the embedding table of vocab rows, and that
// encode steps back by at least one code unit per piece it can choose (a
// piece of the trie, or the unknown piece 0).
func (t *tokenizer) check(vocab int) error {
	if len(t.nodes) == 0 || len(t.pieceLen) == 0 || len(t.pieceLen) > vocab || t.pieceLen[0] <= 0 {
		return fmt.Errorf("tokenizer: %d nodes, %d pieces for %d rows", len(t.nodes), len(t.pieceLen), vocab)
	}
	for i, nd := range t.nodes {
		if nd.first < 0 || nd.count < 0 || int(nd.first)+int(nd.count) > len(t.edges) || nd.runes < 0 ||
			nd.runes > 0 && (nd.index < 0 || int(nd.index) >= len(t.pieceLen) || t.pieceLen[nd.index] <= 0) {
			return fmt.Errorf("tokenizer: node %d: %+v", i, nd)
		}
	}
	for i, e := range t.edges {
		if e.child <= 0 || int(e.child) >= len(t.nodes) {
			return fmt.Errorf("tokenizer: edge %d: %+v", i, e)
		}
	}
	return nil
}

// createTemp is os.CreateTemp; tests make it fail as in a read-only
// directory, which root does not get from file modes.
var createTemp = os.CreateTemp

// writeWeights writes the weights file of the quantized model m, made from
// sources, into dir: to a temporary file that it renames into place, so
// that readers (other processes too) see the old file or the new one,
// whole.
func writeWeights(dir string, m *Model, sources []source) (err error) {
	if !weightsFileOK {
		return errors.ErrUnsupported
	}
	if m.embQ == nil {
		return errors.New("write weights: model not quantized")
	}
	scalars, slices := m.fields()
	meta := weightsMeta{Sources: sources, Ints: map[string]int{}, Floats: map[string]uint32{}, Slices: map[string]section{}}
	for _, l := range m.layers {
		meta.Residual = append(meta.Residual, l.residual != nil)
	}
	for _, s := range scalars {
		if s.i != nil {
			meta.Ints[s.name] = *s.i
		} else {
			meta.Floats[s.name] = math.Float32bits(*s.f)
		}
	}
	end := 0
	for _, s := range slices {
		n := len(s.bytes())
		meta.Slices[s.name] = section{Type: s.typ, Size: s.size, Off: end, Len: n / s.size}
		end += alignUp(n, weightsAlign)
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("write weights: %w", err)
	}
	dataOff := alignUp(weightsHeader+len(mj), weightsAlign)

	removeStaleWeights(dir)
	f, err := createTemp(dir, "."+WeightsFile+"-*")
	if err != nil {
		return fmt.Errorf("write weights: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write weights: %w", err)
		}
	}()
	var hdr [weightsHeader]byte
	copy(hdr[:], weightsMagic)
	binary.LittleEndian.PutUint32(hdr[8:], weightsVersion)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(dataOff+end))
	binary.LittleEndian.PutUint32(hdr[24:], uint32(len(mj)))
	bw := bufio.NewWriterSize(f, 64<<10)
	crc := crc32.New(castagnoli)
	w := io.MultiWriter(bw, crc)
	pad := make([]byte, weightsAlign)
	bw.Write(hdr[:16]) // errors stick in bw until Flush
	w.Write(hdr[16:])
	w.Write(mj)
	w.Write(pad[:dataOff-weightsHeader-len(mj)])
	for _, s := range slices {
		b := s.bytes()
		w.Write(b)
		w.Write(pad[:alignUp(len(b), weightsAlign)-len(b)])
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(hdr[12:], crc.Sum32())
	if _, err = f.WriteAt(hdr[12:16], 12); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	// Sync before the rename: after a crash the name never points at
	// blocks that were not written.
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, WeightsFile))
}

// removeStaleWeights deletes temporary weights files that writers killed
// more than an hour ago left behind.
func removeStaleWeights(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, "."+WeightsFile+"-*"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(p)
		}
	}
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// loadMapped maps the weights file of dir and builds the quantized model
// on it. It fails if the file is missing, damaged, of another version or
// made from other model files than those in dir.
func loadMapped(dir string) (*Model, error) {
	if !weightsFileOK {
		return nil, errors.ErrUnsupported
	}
	path := filepath.Join(dir, WeightsFile)
	data, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	m, err := modelOn(dir, data)
	if err != nil {
		munmap(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// mapFile maps the file at path read-only and shared.
func mapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < weightsHeader || fi.Size() > maxWeightsSize {
		return nil, fmt.Errorf("%s: %d bytes", path, fi.Size())
	}
	return mmap(f, int(fi.Size()))
}

// modelOn builds the quantized model of dir on the mapped weights file
// data, pointing its slices into data.
func modelOn(dir string, data []byte) (*Model, error) {
	le := binary.LittleEndian
	if len(data) < weightsHeader || string(data[:len(weightsMagic)]) != weightsMagic {
		return nil, errors.New("not a weights file")
	}
	if v := le.Uint32(data[8:]); v != weightsVersion {
		return nil, fmt.Errorf("format version %d, want %d", v, weightsVersion)
	}
	if n := le.Uint64(data[16:]); n != uint64(len(data)) {
		return nil, fmt.Errorf("%d bytes, want %d", len(data), n)
	}
	if crc32.Checksum(data[16:], castagnoli) != le.Uint32(data[12:]) {
		return nil, errors.New("checksum mismatch")
	}
	metaLen := int(le.Uint32(data[24:]))
	if metaLen > len(data)-weightsHeader {
		return nil, fmt.Errorf("meta of %d bytes", metaLen)
	}
	var meta weightsMeta
	dec := json.NewDecoder(bytes.NewReader(data[weightsHeader : weightsHeader+metaLen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	if err := checkSources(dir, meta.Sources); err != nil {
		return nil, err
	}

	m := &Model{name: ModelName + quantSuffix, dir: dir, tok: new(tokenizer), mapped: data}
	if len(meta.Residual) != len(m.layers) {
		return nil, fmt.Errorf("%d layers, want %d", len(meta.Residual), len(m.layers))
	}
	for i, r := range meta.Residual {
		if r {
			m.layers[i].residual = new(linear)
		}
	}
	scalars, slices := m.fields()
	if len(meta.Ints)+len(meta.Floats) != len(scalars) || len(meta.Slices) != len(slices) {
		return nil, fmt.Errorf("%d numbers and %d slices, want %d and %d",
			len(meta.Ints)+len(meta.Floats), len(meta.Slices), len(scalars), len(slices))
	}
	for _, s := range scalars {
		if s.i != nil {
			v, ok := meta.Ints[s.name]
			if !ok || v <= 0 || v > 1<<24 {
				return nil, fmt.Errorf("%s: %d", s.name, v)
			}
			*s.i = v
			continue
		}
		v, ok := meta.Floats[s.name]
		if !ok {
			return nil, fmt.Errorf("no %s", s.name)
		}
		*s.f = math.Float32frombits(v)
	}
	dataOff := alignUp(weightsHeader+metaLen, weightsAlign)
	for _, s := range slices {
		sec, ok := meta.Slices[s.name]
		if !ok || sec.Type != s.typ || sec.Size != s.size || sec.Off < 0 || sec.Off%weightsAlign != 0 ||
			sec.Len <= 0 || sec.Off > len(data) || sec.Len > len(data)/s.size ||
			dataOff+sec.Off+sec.Len*s.size > len(data) {
			return nil, fmt.Errorf("%s: section %+v of %s×%d", s.name, sec, s.typ, s.size)
		}
		start, end := dataOff+sec.Off, dataOff+sec.Off+sec.Len*s.size
		s.point(data[start:end:end])
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	m.weights = m.weightBytes()
	return m, nil
}

// checkSources reports whether the model files in dir are those, byte for
// byte, that the weights file was made from.
func checkSources(dir string, sources []source) error {
	seen := map[string]bool{}
	for _, s := range sources {
		if s.Name != filepath.Base(s.Name) || strings.ContainsAny(s.Name, `/\`) || s.Name == WeightsFile || seen[s.Name] {
			return fmt.Errorf("source %q", s.Name)
		}
		seen[s.Name] = true
		f, err := os.Open(filepath.Join(dir, s.Name))
		if err != nil {
			return err
		}
		h := newSourceHash(s.Name)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		if got := h.source(); got != s {
			return fmt.Errorf("made from another %s", s.Name)
		}
	}
	if !seen["model.json"] || !seen["vocab.json"] {
		return errors.New("sources lack model.json or vocab.json")
	}
	return nil
}

// ensureWeights makes sure that dir holds a weights file made from its
// model files, writing one if not.
func ensureWeights(dir string) error {
	if !weightsFileOK {
		return nil
	}
	if m, err := loadMapped(dir); err == nil {
		return munmap(m.mapped) // m is dropped unused
	}
	m, sources, err := loadShards(dir, true, true)
	if err != nil {
		return err
	}
	return writeWeights(dir, m, sources)
}
