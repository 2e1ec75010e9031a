package embed

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

const (
	benchQuery    = "show me what is in this folder"
	benchToolText = "read_file: Read the complete contents of a file from the file system. " +
		"Handles various text encodings and provides detailed error messages if the file cannot be read. " +
		"Use this tool when you need to examine the contents of a single file. Only works within allowed directories. " +
		"Parameters: path"
)

// benchModes are the weight modes the benchmarks compare.
var benchModes = []struct {
	name string
	load func(testing.TB) *Model
}{
	{"float32", loadTestModel},
	{"int8", loadTestModelQ},
}

// BenchmarkEmbed measures one query (a short request, as search embeds
// per call) and one tool text (name, description and parameters, as the
// index embeds once per tool), on one goroutine, with float32 and int8
// weights.
func BenchmarkEmbed(b *testing.B) {
	for _, mode := range benchModes {
		m := mode.load(b)
		for _, bc := range []struct {
			name, text, metric string
		}{
			{"query", benchQuery, "ms/query"},
			{"tool-text", benchToolText, "ms/tool-text"},
			{"128-tokens", strings.Repeat("list the files of a directory ", 30), "ms/text"},
		} {
			b.Run(mode.name+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					if _, err := m.Embed([]string{bc.text}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), bc.metric)
				if cpu0 >= 0 {
					b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-"+bc.metric)
				}
				b.ReportMetric(float64(m.TokenCount(bc.text)), "tokens")
			})
		}
	}
}

// BenchmarkEmbedBatch embeds 100 distinct tool texts in one Embed call,
// which spreads them over GOMAXPROCS goroutines, as an index build does.
func BenchmarkEmbedBatch(b *testing.B) {
	texts := make([]string, 100)
	for i := range texts {
		texts[i] = fmt.Sprintf("tool_%d: %s", i, benchToolText)
	}
	for _, mode := range benchModes {
		m := mode.load(b)
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := m.Embed(texts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N*len(texts)), "ms/tool-text")
		})
	}
}

// BenchmarkLoad measures LoadWith and reports the heap the loaded model
// holds and its weights: with float32 weights, with int8 weights quantized
// from the shards onto the heap, and with int8 weights mapped from the
// weights file.
func BenchmarkLoad(b *testing.B) {
	dir := loadTestModel(b).dir
	mapped := copyModel(b, dir)
	if err := ensureWeights(mapped); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		dir  string
		opts LoadOptions
	}{
		{"float32", dir, LoadOptions{}},
		{"int8", dir, LoadOptions{Quantize: true, noFile: true}},
		{"int8-mapped", mapped, LoadOptions{Quantize: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var before, after runtime.MemStats
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&before)
				m, err := LoadWith(bc.dir, bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if bc.opts.Quantize && !bc.opts.noFile && m.mapped == nil {
					b.Fatal("weights not mapped")
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
				b.ReportMetric(float64(m.WeightBytes())/(1<<20), "weight-MB")
				runtime.KeepAlive(m)
				if m.mapped != nil {
					munmap(m.mapped) // m is dropped; the mappings would pile up
				}
			}
		})
	}
}

// BenchmarkQuantizedAgreement reports how close the int8 model's vectors
// are to TF.js's float32 ones on the golden texts (testdata/golden.json):
// the minimum and mean cosine similarity. The float32 model's figures are
// there for reference (1 up to float noise).
func BenchmarkQuantizedAgreement(b *testing.B) {
	for _, mode := range benchModes {
		m := mode.load(b)
		b.Run(mode.name, func(b *testing.B) {
			var lo, mean float64
			for b.Loop() {
				lo, mean = agreement(b, m)
			}
			b.ReportMetric(lo, "cos-min")
			b.ReportMetric(mean, "cos-mean")
		})
	}
}
