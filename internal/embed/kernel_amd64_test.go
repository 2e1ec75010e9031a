//go:build amd64 && !purego

package embed

import (
	"math"
	"math/rand/v2"
	"testing"
)

// matmulImpls are the matmul implementations this CPU can run, by name.
func matmulImpls() []struct {
	name string
	f    func(dst, x []float32, n int, l *linear)
} {
	impls := []struct {
		name string
		f    func(dst, x []float32, n int, l *linear)
	}{{"generic", matmulGeneric}}
	if useAVX2 {
		impls = append(impls, struct {
			name string
			f    func(dst, x []float32, n int, l *linear)
		}{"avx2", matmulAVX2})
	}
	if useAVX512 {
		impls = append(impls, struct {
			name string
			f    func(dst, x []float32, n int, l *linear)
		}{"avx512", matmulAVX512}, struct {
			name string
			f    func(dst, x []float32, n int, l *linear)
		}{"avx512-kernZ", func(dst, x []float32, n int, l *linear) {
			if l.in%16 != 0 || l.out%4 != 0 || n == 0 {
				matmulAVX512(dst, x, n, l)
				return
			}
			kernels512(dst, x, n, l, 0)
		}}, struct {
			name string
			f    func(dst, x []float32, n int, l *linear)
		}{"avx512-kernY", func(dst, x []float32, n int, l *linear) {
			if l.in%16 != 0 || l.out%4 != 0 || n == 0 {
				matmulAVX512(dst, x, n, l)
				return
			}
			kernels512(dst, x, n, l, l.out&^7)
		}})
	}
	return impls
}

// TestMatmulKernels compares each matmul the CPU can run with
// matmulGeneric, with float32 and int8 weights, on the model's shapes and
// on edge ones: every row count from 1 to 9 (the AVX-512 kernels take
// three or four rows at a time, then the rest), the smallest widths, eight
// columns and a last four, and widths the kernels leave to the fallback.
// Each AVX-512 kernel also runs on every shape alone.
func TestMatmulKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type shape struct{ n, in, out int }
	shapes := []shape{
		{2, 256, 512}, {3, 512, 1536}, {7, 256, 768}, {4, 1536, 512}, {67, 512, 512}, {1, 512, 512},
		{7, 32, 8}, {8, 24, 4}, {5, 16, 6}, {3, 16, 4}, {6, 48, 20},
	}
	for n := 1; n <= 9; n++ {
		shapes = append(shapes, shape{n, 64, 12}, shape{n, 16, 4}, shape{n, 32, 24})
	}
	for _, sh := range shapes {
		l := linear{in: sh.in, out: sh.out, wt: make([]float32, sh.in*sh.out), b: make([]float32, sh.out)}
		for i := range l.wt {
			l.wt[i] = rng.Float32()*2 - 1
		}
		for i := range l.b {
			l.b[i] = rng.Float32()
		}
		x := make([]float32, sh.n*sh.in)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		for _, quant := range []bool{false, true} {
			if quant {
				l.quantize()
			}
			want := make([]float32, sh.n*sh.out)
			matmulGeneric(want, x, sh.n, &l)
			for _, impl := range matmulImpls()[1:] {
				// One value past dst must stay untouched.
				got := make([]float32, sh.n*sh.out+1)
				got[sh.n*sh.out] = 42
				impl.f(got[:sh.n*sh.out], x, sh.n, &l)
				if got[sh.n*sh.out] != 42 {
					t.Errorf("%s(n=%d in=%d out=%d quantized=%v) wrote past dst", impl.name, sh.n, sh.in, sh.out, quant)
				}
				for i := range want {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
						t.Fatalf("%s(n=%d in=%d out=%d quantized=%v)[%d] = %v, generic %v", impl.name, sh.n, sh.in, sh.out, quant, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func TestDequantAVX(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA")
	}
	src := make([]int8, 48)
	for i := range src {
		src[i] = int8(i*11 - 127)
	}
	dst := make([]float32, len(src)+1)
	dequantAVX(&dst[0], &src[0], len(src), 0.5)
	for i, v := range src {
		if dst[i] != float32(v)*0.5 {
			t.Errorf("dequantAVX[%d] = %v, want %v", i, dst[i], float32(v)*0.5)
		}
	}
	if dst[len(src)] != 0 {
		t.Errorf("dequantAVX wrote past n")
	}
}

func TestDotAxpyAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{8, 16, 64, 128, 13} {
		x, y := make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], y[i] = rng.Float32()*2-1, rng.Float32()*2-1
		}
		if got, want := dotAVX2(x, y), dotGeneric(x, y); math.Abs(float64(got-want)) > 1e-5 {
			t.Errorf("dotAVX2(n=%d) = %v, generic %v", n, got, want)
		}
		y1, y2 := append([]float32(nil), y...), append([]float32(nil), y...)
		axpyAVX2(0.37, x, y1)
		axpyGeneric(0.37, x, y2)
		for i := range y1 {
			if math.Abs(float64(y1[i]-y2[i])) > 1e-6 {
				t.Fatalf("axpyAVX2(n=%d)[%d] = %v, generic %v", n, i, y1[i], y2[i])
			}
		}
	}
}

// TestEmbedGoldenGeneric checks the plain Go path against TF.js too.
func TestEmbedGoldenGeneric(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow; the AVX2 path covers the same code under -race")
	}
	loadTestModel(t)
	m0, d0, a0, l0 := matmul, dot, axpy, layerNorm
	matmul, dot, axpy, layerNorm = matmulGeneric, dotGeneric, axpyGeneric, layerNormGeneric
	defer func() { matmul, dot, axpy, layerNorm = m0, d0, a0, l0 }()
	TestEmbedGolden(t)
}

// TestLayerNormAVX512 compares layerNormAVX512 with the generic code,
// which it matches but for the order of the float64 sums.
func TestLayerNormAVX512(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, sh := range []struct{ n, c int }{{1, 16}, {3, 256}, {5, 512}, {2, 1536}, {2, 24}} {
		x := make([]float32, sh.n*sh.c)
		scale, bias := make([]float32, sh.c), make([]float32, sh.c)
		for i := range x {
			x[i] = float32(rng.NormFloat64()*3 + 1)
		}
		for i := range scale {
			scale[i], bias[i] = rng.Float32()*2, rng.Float32()-0.5
		}
		want := make([]float32, sh.n*sh.c)
		got := make([]float32, sh.n*sh.c+1)
		layerNormGeneric(want, x, sh.n, sh.c, scale, bias, 1e-6)
		layerNormAVX512(got[:sh.n*sh.c], x, sh.n, sh.c, scale, bias, 1e-6)
		if got[sh.n*sh.c] != 0 {
			t.Errorf("layerNormAVX512(n=%d c=%d) wrote past dst", sh.n, sh.c)
		}
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-6 {
				t.Fatalf("layerNormAVX512(n=%d c=%d)[%d] = %v, generic %v", sh.n, sh.c, i, got[i], want[i])
			}
		}
	}
}

// TestEmbedGoldenAVX2 checks the AVX2 kernels against TF.js, float32 and
// int8, where AVX-512 would otherwise take over: the AVX2 path is what
// CPUs without AVX-512 run.
func TestEmbedGoldenAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA")
	}
	mq := loadTestModelQ(t)
	m0, l0 := matmul, layerNorm
	matmul, layerNorm = matmulAVX2, layerNormGeneric
	defer func() { matmul, layerNorm = m0, l0 }()
	TestEmbedGolden(t)
	if lo, _ := agreement(t, mq); lo < 0.99 {
		t.Errorf("quantized, AVX2 kernels: min cosine with float32 %.4f, want >= 0.99", lo)
	}
}
