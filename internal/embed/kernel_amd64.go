//go:build amd64 && !purego

package embed

import "golang.org/x/sys/cpu"

// The AVX2+FMA kernels compute blocks of dot products of rows of x with
// rows of the transposed weights; see kernel_amd64.s.

//go:noescape
func kern1x4(x, w *float32, in int, out *[4]float32)

//go:noescape
func kern3x4(x, w *float32, in int, out *[12]float32)

//go:noescape
func dotAVX(x, y *float32, n int) float32

//go:noescape
func axpyAVX(a float32, x, y *float32, n int)

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

func init() {
	if useAVX2 {
		matmul = matmulAVX2
		dot = dotAVX2
		axpy = axpyAVX2
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
// x at a time, falling back to the generic code for other shapes.
func matmulAVX2(dst, x []float32, n int, l *linear) {
	in, out := l.in, l.out
	if in%16 != 0 || out%4 != 0 || len(x) < n*in || len(dst) < n*out || len(l.wt) < in*out || len(l.b) < out {
		matmulGeneric(dst, x, n, l)
		return
	}
	var o1 [4]float32
	var o3 [12]float32
	for j := 0; j < out; j += 4 {
		w := &l.wt[j*in]
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
