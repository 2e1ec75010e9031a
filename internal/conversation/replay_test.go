package conversation

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcp-conductor/conductor/internal/catalog"
	"github.com/mcp-conductor/conductor/internal/embed"
	"github.com/mcp-conductor/conductor/internal/store"
)

const evalDir = "../../../shared/eval"

type modelEmbedder struct{ m *embed.Model }

func (e modelEmbedder) Name() string { return e.m.Name() }
func (e modelEmbedder) Dim() int     { return e.m.Dim() }
func (e modelEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	return e.m.Embed(texts)
}

// replay is the co-usage experiment on the multi-tool queries of
// shared/eval: training queries record their gold pair as used together;
// each test query runs in a conversation that has loaded its first gold
// tool, and we check whether the other gold tool is among the first 5 new
// tools, with and without the conversation's affinity boost.
type replayResult struct {
	train, test          int
	without, withCoUsage float64
	vectors              bool
}

func replay(tb testing.TB) replayResult {
	tb.Helper()
	ctx := context.Background()
	toolsPath := filepath.Join(evalDir, "tools.jsonl")
	if _, err := os.Stat(toolsPath); err != nil {
		tb.Skipf("eval data set not found: %v", err)
	}
	tools, err := catalog.LoadTools(toolsPath)
	if err != nil {
		tb.Fatal(err)
	}
	qs, err := catalog.LoadQueries(filepath.Join(evalDir, "queries.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	var multi []catalog.Query
	for _, q := range qs {
		if q.Kind == "multi" && len(q.Relevant) == 2 {
			multi = append(multi, q)
		}
	}
	train, test := catalog.SplitQueries(multi, 0.5)

	var bopts catalog.Options
	if cache := os.Getenv("MCP_CONDUCTOR_CACHE"); cache != "" {
		if m, err := embed.Load(embed.DefaultDir(cache)); err == nil {
			bopts.Embedder = modelEmbedder{m}
		}
	}
	ix, err := catalog.Build(ctx, tools, bopts)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(tb.TempDir(), "state.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	for _, q := range train {
		if err := st.AddCoUsage(ctx, q.Relevant); err != nil {
			tb.Fatal(err)
		}
	}
	hit := func(res []catalog.Result, want string) bool {
		for i, r := range res {
			if i < 5 && r.Name == want && !r.Loaded {
				return true
			}
		}
		return false
	}
	var without, with int
	for _, q := range test {
		first, other := q.Relevant[0], q.Relevant[1]
		loaded := map[string]bool{first: true}
		res, err := Search(ctx, ix, q.Query, 5, loaded, nil, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if hit(res, other) {
			without++
		}
		a, err := LoadAffinity(ctx, st, []string{first}, nil)
		if err != nil {
			tb.Fatal(err)
		}
		res, err = Search(ctx, ix, q.Query, 5, loaded, a, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if hit(res, other) {
			with++
		}
	}
	n := float64(len(test))
	return replayResult{train: len(train), test: len(test),
		without: float64(without) / n, withCoUsage: float64(with) / n, vectors: ix.HasVectors()}
}

// TestCoUsageReplay checks that co-usage learnt from training sessions
// raises recall@5 of the second tool on held-out sessions.
func TestCoUsageReplay(t *testing.T) {
	r := replay(t)
	t.Logf("multi-tool replay (vectors=%v): %d train, %d test; recall@5 of the second tool: without co-usage %.3f, with %.3f",
		r.vectors, r.train, r.test, r.without, r.withCoUsage)
	if r.withCoUsage <= r.without {
		t.Errorf("recall@5 with co-usage = %.3f, want above %.3f (without)", r.withCoUsage, r.without)
	}
}

func BenchmarkCoUsageReplay(b *testing.B) {
	var r replayResult
	for b.Loop() {
		r = replay(b)
	}
	b.ReportMetric(r.without, "recall@5-without")
	b.ReportMetric(r.withCoUsage, "recall@5-with")
}
