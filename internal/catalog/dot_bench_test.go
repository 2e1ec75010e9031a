package catalog

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkDot compares the kernels of the vector scan (per 512-dim tool).
func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	a := make([]float32, 512)
	for i := range a {
		a[i] = r.Float32() - 0.5
	}
	d8 := make([]int8, 512)
	for i := range d8 {
		d8[i] = int8(r.IntN(255) - 127)
	}
	var sink float32
	b.Run("f32xi8", func(b *testing.B) {
		for b.Loop() {
			sink += dotQ(a, d8)
		}
	})
	b.Run("f32xf32", func(b *testing.B) {
		for b.Loop() {
			sink += dotF(a, a)
		}
	})
	_ = sink
}
