package embed

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

var (
	testModelQOnce sync.Once
	testModelQ     *Model
	testModelQErr  error
)

// loadTestModelQ is loadTestModel with LoadOptions{Quantize: true}, with
// the weights on the heap: the shared cache gets no weights file.
func loadTestModelQ(t testing.TB) *Model {
	t.Helper()
	m := loadTestModel(t)
	testModelQOnce.Do(func() {
		testModelQ, testModelQErr = LoadWith(m.dir, LoadOptions{Quantize: true, noFile: true})
	})
	if testModelQErr != nil {
		t.Fatalf("LoadWith(Quantize): %v", testModelQErr)
	}
	return testModelQ
}

func TestQuantizeRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 5, 40
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	clear(w[2*cols : 3*cols]) // a zero row
	q, s := quantizeRows(w, rows, cols)
	for r := range rows {
		var mx float64
		for k := range cols {
			mx = max(mx, math.Abs(float64(w[r*cols+k])))
		}
		for k := range cols {
			got := float64(q[r*cols+k]) * float64(s[r])
			if d := math.Abs(got - float64(w[r*cols+k])); d > float64(s[r])/2+1e-7 {
				t.Errorf("row %d col %d: %v*%v = %v, want %v within half a step", r, k, q[r*cols+k], s[r], got, w[r*cols+k])
			}
			if mx > 0 && math.Abs(float64(q[r*cols+k])) > 127 {
				t.Errorf("row %d col %d: q = %d out of range", r, k, q[r*cols+k])
			}
		}
	}
}

// cosine is the cosine similarity of a and b.
func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// agreement embeds the golden texts with m and returns the min and mean
// cosine similarity with TF.js's float32 vectors.
func agreement(t testing.TB, m *Model) (lo, mean float64) {
	g := readGolden(t)
	texts := make([]string, len(g.Cases))
	for i, c := range g.Cases {
		texts[i] = c.Text
	}
	got, err := m.Embed(texts)
	if err != nil {
		t.Fatal(err)
	}
	lo = 1
	for i, c := range g.Cases {
		cs := cosine(got[i], c.Vector)
		lo = min(lo, cs)
		mean += cs
	}
	return lo, mean / float64(len(g.Cases))
}

func TestQuantizedAgreement(t *testing.T) {
	m := loadTestModel(t)
	mq := loadTestModelQ(t)
	if mq.Name() != "use-lite-0.2.0-int8" || mq.Dim() != m.Dim() || mq.MaxTokens() != m.MaxTokens() {
		t.Errorf("quantized Name, Dim, MaxTokens = %q, %d, %d", mq.Name(), mq.Dim(), mq.MaxTokens())
	}
	if f, q := m.WeightBytes(), mq.WeightBytes(); q > f*3/10 {
		t.Errorf("WeightBytes: quantized %d, float32 %d; want under 30%%", q, f)
	}
	lo, mean := agreement(t, mq)
	t.Logf("int8 vs TF.js float32 on the golden texts: cosine min %.5f, mean %.5f; weights %.1f MB (float32 %.1f MB)",
		lo, mean, float64(mq.WeightBytes())/1e6, float64(m.WeightBytes())/1e6)
	if lo < 0.99 {
		t.Errorf("quantized vectors: min cosine with float32 %.4f, want >= 0.99", lo)
	}
	// Long texts take the same path part by part.
	long := strings.Repeat("Read the complete contents of a file from the file system. ", 30)
	a, _ := m.EmbedLong(long)
	b, _ := mq.EmbedLong(long)
	if cs := cosine(a, b); cs < 0.99 {
		t.Errorf("EmbedLong: cosine float32 vs int8 %.4f, want >= 0.99", cs)
	}
}

func TestQuantizedGeneric(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow")
	}
	mq := loadTestModelQ(t)
	m0, d0, a0, l0 := matmul, dot, axpy, layerNorm
	matmul, dot, axpy, layerNorm = matmulGeneric, dotGeneric, axpyGeneric, layerNormGeneric
	defer func() { matmul, dot, axpy, layerNorm = m0, d0, a0, l0 }()
	lo, _ := agreement(t, mq)
	if lo < 0.99 {
		t.Errorf("quantized, generic kernels: min cosine with float32 %.4f, want >= 0.99", lo)
	}
}
