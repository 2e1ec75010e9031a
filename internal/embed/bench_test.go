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

// BenchmarkEmbed measures one query (a short request, as search embeds
// per call) and one tool text (name, description and parameters, as the
// index embeds once per tool), on one goroutine.
func BenchmarkEmbed(b *testing.B) {
	m := loadTestModel(b)
	for _, bc := range []struct {
		name, text, metric string
	}{
		{"query", benchQuery, "ms/query"},
		{"tool-text", benchToolText, "ms/tool-text"},
		{"128-tokens", strings.Repeat("list the files of a directory ", 30), "ms/text"},
	} {
		b.Run(bc.name, func(b *testing.B) {
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

// BenchmarkEmbedBatch embeds 100 distinct tool texts in one Embed call,
// which spreads them over GOMAXPROCS goroutines, as an index build does.
func BenchmarkEmbedBatch(b *testing.B) {
	m := loadTestModel(b)
	texts := make([]string, 100)
	for i := range texts {
		texts[i] = fmt.Sprintf("tool_%d: %s", i, benchToolText)
	}
	for b.Loop() {
		if _, err := m.Embed(texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N*len(texts)), "ms/tool-text")
}

// BenchmarkLoad measures Load and reports the heap the loaded model holds.
func BenchmarkLoad(b *testing.B) {
	m := loadTestModel(b)
	dir := m.dir
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		m2, err := Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
		runtime.KeepAlive(m2)
	}
}
