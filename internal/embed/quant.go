package embed

import "math"

// LoadOptions configures LoadWith. The zero value loads the exact float32
// model.
type LoadOptions struct {
	// Quantize stores the embedding table and every weight matrix as int8
	// with one float32 scale per row (per token, per output unit):
	// symmetric, scale = max|w|/127. Matrices are dequantized a few rows at
	// a time inside the matrix product. The weights take a quarter of the
	// memory (about 7 MB instead of 28 MB) and a short query embeds faster,
	// since the product of a few rows is bound by reading the weights;
	// vectors stay within a cosine of about 0.999 of the float32 ones
	// (BenchmarkQuantized prints the agreement). Model.Name gets the
	// suffix "-int8", so vectors stored under one mode are not mixed with
	// the other's.
	//
	// The quantized weights are kept in the weights file next to the model
	// (WeightsFile) and mapped read-only from it, rather than quantized
	// onto the heap at every load; see LoadWith.
	Quantize bool

	// noFile keeps quantized weights on the heap: LoadWith neither reads
	// nor writes the weights file. Tests compare the two paths with it.
	noFile bool
}

const quantSuffix = "-int8"

// quantizeRows quantizes the rows×cols matrix w row by row: q = round(w/s)
// with s = max|w|/127 of the row (1 for a zero row), so that w ≈ q*s.
func quantizeRows(w []float32, rows, cols int) ([]int8, []float32) {
	q := make([]int8, rows*cols)
	scale := make([]float32, rows)
	for r := range rows {
		row := w[r*cols : (r+1)*cols]
		var mx float32
		for _, v := range row {
			mx = max(mx, float32(math.Abs(float64(v))))
		}
		s := mx / 127
		if s == 0 {
			s = 1
		}
		scale[r] = s
		qr := q[r*cols : (r+1)*cols]
		for k, v := range row {
			qr[k] = int8(max(-127, min(127, math.Round(float64(v/s)))))
		}
	}
	return q, scale
}

// quantize replaces the float32 weights of l by int8 ones.
func (l *linear) quantize() {
	l.q, l.scale = quantizeRows(l.wt, l.out, l.in)
	l.wt = nil
}

// embedding writes the embedding of token id to dst (embDim values).
func (m *Model) embedding(dst []float32, id int) {
	d := m.embDim
	if m.embQ == nil {
		copy(dst, m.emb[id*d:(id+1)*d])
		return
	}
	s := m.embS[id]
	for k, v := range m.embQ[id*d : (id+1)*d] {
		dst[k] = float32(v) * s
	}
}
