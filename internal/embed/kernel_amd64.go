//go:build amd64 && !purego

package embed

import (
	"math"
	"sync"

	"golang.org/x/sys/cpu"
)

// The AVX2+FMA kernels compute blocks of dot products of rows of x with
// rows of the transposed weights; see kernel_amd64.s.

//go:noescape
func kern1x4(x, w *float32, in int, out *[4]float32)

//go:noescape
func kern3x4(x, w *float32, in int, out *[12]float32)

//go:noescape
func dequantAVX(dst *float32, src *int8, n int, s float32)

//go:noescape
func dotAVX(x, y *float32, n int) float32

//go:noescape
func axpyAVX(a float32, x, y *float32, n int)

// The AVX-512 kernels compute four (kernZ) or eight (kernY) columns of
// dst for all rows of x; see kernel512_amd64.s and kernel512y_amd64.s.

//go:noescape
func kernZ(x, w *float32, in, n int, dst *float32, out int, b *float32)

//go:noescape
func kernZq(x *float32, w *int8, in, n int, dst *float32, out int, b, s *float32)

//go:noescape
func kernY(x, w *float32, in, n int, dst *float32, out int, b *float32)

//go:noescape
func kernYq(x *float32, w *int8, in, n int, dst *float32, out int, b, s *float32)

//go:noescape
func sumZ(x *float32, n int) float64

//go:noescape
func centerZ(dst, x *float32, n int, mean float32) float64

//go:noescape
func scaleShiftZ(dst, scale, bias *float32, n int, rs float32)

var (
	useAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	useAVX512 = useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL
)

func init() {
	if useAVX2 {
		matmul = matmulAVX2
		dot = dotAVX2
		axpy = axpyAVX2
	}
	if useAVX512 {
		matmul = matmulAVX512
		layerNorm = layerNormAVX512
	}
}

// layerNormAVX512 is layerNorm for c % 16 == 0, falling back to the
// generic code for other shapes. It rounds as the generic code does but
// for the order of the float64 sums.
func layerNormAVX512(dst, x []float32, n, c int, scale, bias []float32, eps float32) {
	if c%16 != 0 || c == 0 || len(x) < n*c || len(dst) < n*c || len(scale) < c || len(bias) < c {
		layerNormGeneric(dst, x, n, c, scale, bias, eps)
		return
	}
	for r := range n {
		row, out := &x[r*c], &dst[r*c]
		mean := float32(sumZ(row, c) / float64(c))
		ss := centerZ(out, row, c, mean)
		rs := float32(1 / math.Sqrt(float64(float32(ss/float64(c))+eps)))
		scaleShiftZ(out, &scale[0], &bias[0], c, rs)
	}
}

// matmulAVX512 is matmul for in % 16 == 0 and out % 4 == 0, falling back
// to matmulAVX2 for other shapes. Int8 weights are widened inside the
// kernels and the sums scaled, as matmulQGeneric does. Up to four rows
// take kernZ, which does them in one group; more take kernY, eight
// columns at a time (then kernZ for the last four), which reads each x
// row half as often: 10-25% faster from 5 rows on.
func matmulAVX512(dst, x []float32, n int, l *linear) {
	in, out := l.in, l.out
	if n == 0 {
		return
	}
	q := l.q != nil
	sized := len(l.wt) >= in*out
	if q {
		sized = len(l.q) >= in*out && len(l.scale) >= out
	}
	if in%16 != 0 || out%4 != 0 || len(x) < n*in || len(dst) < n*out || !sized || len(l.b) < out {
		matmulAVX2(dst, x, n, l)
		return
	}
	wide := 0
	if n > 4 {
		wide = out &^ 7
	}
	kernels512(dst, x, n, l, wide)
}

// kernels512 runs kernY on columns 0:wide (wide % 8 == 0) and kernZ on
// the rest, with the shape checks of matmulAVX512 done.
func kernels512(dst, x []float32, n int, l *linear, wide int) {
	in, out := l.in, l.out
	j := 0
	for ; j < wide; j += 8 {
		if l.q != nil {
			kernYq(&x[0], &l.q[j*in], in, n, &dst[j], out, &l.b[j], &l.scale[j])
		} else {
			kernY(&x[0], &l.wt[j*in], in, n, &dst[j], out, &l.b[j])
		}
	}
	for ; j < out; j += 4 {
		if l.q != nil {
			kernZq(&x[0], &l.q[j*in], in, n, &dst[j], out, &l.b[j], &l.scale[j])
		} else {
			kernZ(&x[0], &l.wt[j*in], in, n, &dst[j], out, &l.b[j])
		}
	}
}

func dotAVX2(x, y []float32) float32 {
	if len(x)%16 != 0 || len(x) == 0 || len(y) < len(x) {
		return dotGeneric(x, y)
	}
	return dotAVX(&x[0], &y[0], len(x))
}

func axpyAVX2(a float32, x, y []float32) {
	if len(x)%8 != 0 || len(x) == 0 || len(y) < len(x) {
		axpyGeneric(a, x, y)
		return
	}
	axpyAVX(a, &x[0], &y[0], len(x))
}

// matmulAVX2 is matmul for in % 16 == 0 and out % 4 == 0, three rows of
// x at a time, falling back to the generic code for other shapes. Int8
// weights are dequantized four rows of W at a time into a float32 block
// that the same kernels then use for all n rows of x: the conversion is
// paid once per weight, not once per row of x.
func matmulAVX2(dst, x []float32, n int, l *linear) {
	in, out := l.in, l.out
	q := l.q != nil
	sized := len(l.wt) >= in*out
	if q {
		sized = len(l.q) >= in*out && len(l.scale) >= out
	}
	if in%16 != 0 || out%4 != 0 || len(x) < n*in || len(dst) < n*out || !sized || len(l.b) < out {
		matmulGeneric(dst, x, n, l)
		return
	}
	var block []float32
	if q {
		bp := blocks.Get().(*[]float32)
		defer blocks.Put(bp)
		if cap(*bp) < 4*in {
			*bp = make([]float32, 4*in)
		}
		block = (*bp)[:4*in]
	}
	var o1 [4]float32
	var o3 [12]float32
	for j := 0; j < out; j += 4 {
		var w *float32
		if q {
			for k := range 4 {
				dequantAVX(&block[k*in], &l.q[(j+k)*in], in, l.scale[j+k])
			}
			w = &block[0]
		} else {
			w = &l.wt[j*in]
		}
		b := l.b[j : j+4]
		r := 0
		for ; r+3 <= n; r += 3 {
			kern3x4(&x[r*in], w, in, &o3)
			for k := range 3 {
				d := dst[(r+k)*out+j : (r+k)*out+j+4]
				d[0] = o3[4*k] + b[0]
				d[1] = o3[4*k+1] + b[1]
				d[2] = o3[4*k+2] + b[2]
				d[3] = o3[4*k+3] + b[3]
			}
		}
		for ; r < n; r++ {
			kern1x4(&x[r*in], w, in, &o1)
			d := dst[r*out+j : r*out+j+4]
			d[0] = o1[0] + b[0]
			d[1] = o1[1] + b[1]
			d[2] = o1[2] + b[2]
			d[3] = o1[3] + b[3]
		}
	}
}

// blocks holds the float32 blocks matmulAVX2 dequantizes into (4 rows of
// at most 1536 values for USE-lite: 24 KB).
var blocks = sync.Pool{New: func() any { return new([]float32) }}
