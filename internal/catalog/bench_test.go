package catalog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	benchDomains = []string{"github", "jira", "slack", "postgres", "s3", "stripe", "notion", "gmail", "calendar", "salesforce",
		"browser", "search", "weather", "maps", "shopify", "zendesk", "linear", "figma", "drive", "docker"}
	benchObjects = []string{"issue", "ticket", "message", "row", "bucket", "invoice", "page", "email", "event", "lead",
		"tab", "result", "forecast", "route", "order", "comment", "project", "frame", "folder", "container"}
)

// synthCatalog makes a deterministic catalog of n tools from the real
// servers' tools: each synthetic server is a domain with a copy of a real
// tool set whose names and descriptions are rewritten around the domain's
// objects, so terms, lengths and schemas look like real catalogs and
// near-duplicates occur as they do across real servers.
func synthCatalog(t testing.TB, n int) []Tool {
	base := realTools(t)
	r := rand.New(rand.NewPCG(1, 2))
	var out []Tool
	for s := 0; len(out) < n; s++ {
		dom := benchDomains[s%len(benchDomains)]
		obj := benchObjects[r.IntN(len(benchObjects))]
		server := fmt.Sprintf("%s-%d", dom, s/len(benchDomains))
		for _, bt := range base {
			if len(out) == n {
				break
			}
			name := bt.Name
			if r.IntN(3) > 0 {
				name = strings.NewReplacer("file", obj, "entities", obj+"s", "directory", dom+"_space").Replace(name)
			}
			desc := bt.Description
			if r.IntN(4) > 0 {
				desc = strings.ReplaceAll(desc, "file", dom+" "+obj) + fmt.Sprintf(" Works on %s %ss.", dom, obj)
			}
			out = append(out, Tool{Server: server, Name: name, Description: desc, InputSchema: bt.InputSchema})
		}
	}
	return out
}

var benchQueries = func() []string {
	var q []string
	for _, c := range rankingCases {
		q = append(q, c.query)
	}
	return append(q,
		"find the best selling GPUs on Amazon and give me the links",
		"post a message in the team channel when the deploy finishes",
		"which open tickets are assigned to me and overdue",
		"export last month's invoices to a spreadsheet and email it to finance",
		"get the weather forecast for Berlin tomorrow")
}()

// warmCache fills a map cache with the hash embedder's vectors of tools,
// standing in for the store after a previous run.
func warmCache(b testing.TB, tools []Tool, e Embedder) *mapCache {
	c := &mapCache{}
	if _, err := Build(context.Background(), tools, Options{Embedder: e, VectorCache: c}); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkSearch measures one hybrid search (query vector given: the
// query's embedding is BenchmarkEmbedQuery) at 1k and 10k tools, on one
// core, reporting p50/p99 over the queries.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			runtime.GOMAXPROCS(1)
			defer runtime.GOMAXPROCS(runtime.NumCPU())
			tools := synthCatalog(b, n)
			e := &hashEmbedder{dim: 512}
			ix, err := Build(context.Background(), tools, Options{Embedder: e})
			if err != nil {
				b.Fatal(err)
			}
			qv, _ := e.Embed(context.Background(), benchQueries)
			cv := make([][][]float32, len(benchQueries))
			for j, q := range benchQueries {
				cv[j], _ = e.Embed(context.Background(), splitClauses(q))
			}
			for _, mode := range []Mode{Hybrid, BM25} {
				b.Run(mode.String(), func(b *testing.B) {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					var lat, cpu []float64
					i := 0
					for b.Loop() {
						j := i % len(benchQueries)
						t0, c0 := time.Now(), threadCPU()
						ix.search(benchQueries[j], qv[j], cv[j], SearchOptions{Limit: 10, Mode: mode})
						cpu = append(cpu, ms(threadCPU()-c0))
						lat = append(lat, ms(time.Since(t0)))
						i++
					}
					b.ReportMetric(percentile(lat, 50), "p50-ms")
					b.ReportMetric(percentile(lat, 99), "p99-ms")
					b.ReportMetric(percentile(cpu, 50), "cpu-p50-ms")
					b.ReportMetric(percentile(cpu, 99), "cpu-p99-ms")
				})
			}
		})
	}
}

// BenchmarkSearchEndToEnd is a whole search as the conductor runs it:
// embedding the request and its parts with the int8 model it serves
// (LoadOptions.Quantize), then ranking 1k or 10k tools, p50/p99 over the
// queries. The index's tool vectors come from the hash embedder, which
// ranks differently but costs the same to score.
func BenchmarkSearchEndToEnd(b *testing.B) {
	q := int8Embedder(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			ix, err := Build(context.Background(), synthCatalog(b, n), Options{Embedder: &hashEmbedder{dim: 512}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var lat []float64
			i := 0
			for b.Loop() {
				text := benchQueries[i%len(benchQueries)]
				t0 := time.Now()
				parts := splitClauses(text)
				vs, err := q.Embed(ctx, append([]string{text}, parts...))
				if err != nil {
					b.Fatal(err)
				}
				ix.search(text, vs[0], vs[1:], SearchOptions{Limit: 10})
				lat = append(lat, ms(time.Since(t0)))
				i++
			}
			b.ReportMetric(percentile(lat, 50), "p50-ms")
			b.ReportMetric(percentile(lat, 99), "p99-ms")
		})
	}
}

// BenchmarkEmbedQuery is the query-embedding part of a real search with
// the local USE-lite model: the request and its parts, as Search embeds.
func BenchmarkEmbedQuery(b *testing.B) {
	e := realEmbedder(b)
	ctx := context.Background()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var lat, cpu []float64
	i := 0
	for b.Loop() {
		t0, c0 := time.Now(), threadCPU()
		q := benchQueries[i%len(benchQueries)]
		if _, err := e.Embed(ctx, append([]string{q}, splitClauses(q)...)); err != nil {
			b.Fatal(err)
		}
		cpu = append(cpu, ms(threadCPU()-c0))
		lat = append(lat, ms(time.Since(t0)))
		i++
	}
	b.ReportMetric(percentile(lat, 50), "p50-ms")
	b.ReportMetric(percentile(lat, 99), "p99-ms")
	b.ReportMetric(percentile(cpu, 50), "cpu-p50-ms")
	b.ReportMetric(percentile(cpu, 99), "cpu-p99-ms")
}

// BenchmarkBuild measures building an index with every vector already in
// the cache (a restart), and the heap the index holds per 1,000 tools.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			tools := synthCatalog(b, n)
			e := &hashEmbedder{dim: 512}
			cache := warmCache(b, tools, e)
			warm := e.calls.Load()
			var heap float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				ix, err := Build(context.Background(), tools, Options{Embedder: e, VectorCache: cache})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n) * 1000 / (1 << 20)
				runtime.KeepAlive(ix)
			}
			if n := e.calls.Load() - warm; n > 0 {
				b.Fatalf("build with a warm cache embedded texts (%d calls)", n)
			}
			b.ReportMetric(heap, "MB/1k-tools")
		})
	}
}

// TestSynthCatalog keeps the benchmark catalog honest: deterministic,
// unique keys.
func TestSynthCatalog(t *testing.T) {
	a, b := synthCatalog(t, 1000), synthCatalog(t, 1000)
	if !slices.EqualFunc(a, b, func(x, y Tool) bool { return x.Key() == y.Key() && x.Description == y.Description }) {
		t.Fatal("synthCatalog is not deterministic")
	}
	seen := map[string]bool{}
	for _, tl := range a {
		if seen[tl.Key()] {
			t.Fatalf("duplicate key %s", tl.Key())
		}
		seen[tl.Key()] = true
	}
}
