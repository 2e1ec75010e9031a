//go:build amd64 && !purego

package embed

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMatmulAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ n, in, out int }{
		{1, 16, 4}, {2, 256, 512}, {3, 512, 1536}, {4, 1536, 512}, {7, 32, 8}, {8, 24, 4}, {5, 16, 6},
	} {
		l := linear{in: tc.in, out: tc.out, wt: make([]float32, tc.in*tc.out), b: make([]float32, tc.out)}
		for i := range l.wt {
			l.wt[i] = rng.Float32()*2 - 1
		}
		for i := range l.b {
			l.b[i] = rng.Float32()
		}
		x := make([]float32, tc.n*tc.in)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		for _, quant := range []bool{false, true} {
			if quant {
				l.quantize()
			}
			want := make([]float32, tc.n*tc.out)
			got := make([]float32, tc.n*tc.out)
			matmulGeneric(want, x, tc.n, &l)
			matmulAVX2(got, x, tc.n, &l)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
					t.Fatalf("n=%d in=%d out=%d quantized=%v: matmulAVX2[%d] = %v, generic %v", tc.n, tc.in, tc.out, quant, i, got[i], want[i])
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
	m0, d0, a0 := matmul, dot, axpy
	matmul, dot, axpy = matmulGeneric, dotGeneric, axpyGeneric
	defer func() { matmul, dot, axpy = m0, d0, a0 }()
	TestEmbedGolden(t)
}
