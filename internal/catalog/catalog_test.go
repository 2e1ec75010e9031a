package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScoreRanking(t *testing.T) {
	res := func(names ...string) []Result {
		var out []Result
		for _, n := range names {
			r := Result{Name: n}
			if a, b, ok := strings.Cut(n, "+"); ok {
				r = Result{Name: a, Also: []string{b}}
			}
			out = append(out, r)
		}
		return out
	}
	for _, c := range []struct {
		name              string
		res               []Result
		rel               []string
		r5, r10, ndcg, rr float64
	}{
		{"first", res("a", "b", "c"), []string{"a"}, 1, 1, 1, 1},
		{"third", res("x", "y", "a"), []string{"a"}, 1, 1, 0.5, 1.0 / 3},
		{"sixth", res("1", "2", "3", "4", "5", "a"), []string{"a"}, 0, 1, 1 / 2.807354922057604, 1.0 / 6},
		{"two of two", res("a", "x", "b"), []string{"a", "b"}, 1, 1, (1 + 0.5) / (1 + 1/1.584962500721156), 1},
		{"one of two", res("x", "b"), []string{"a", "b"}, 0.5, 0.5, (1 / 1.584962500721156) / (1 + 1/1.584962500721156), 0.5},
		{"missing", res("x", "y"), []string{"a"}, 0, 0, 0, 0},
		{"folded duplicate", res("x+a"), []string{"a"}, 1, 1, 1, 1},
		{"beyond 10", res("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "a"), []string{"a"}, 0, 0, 0, 1.0 / 11},
	} {
		r5, r10, nd, rr := scoreRanking(c.res, c.rel)
		if !approx(r5, c.r5) || !approx(r10, c.r10) || !approx(nd, c.ndcg) || !approx(rr, c.rr) {
			t.Errorf("%s: scoreRanking = %.4f %.4f %.4f %.4f, want %.4f %.4f %.4f %.4f", c.name, r5, r10, nd, rr, c.r5, c.r10, c.ndcg, c.rr)
		}
	}
}

func TestEvaluateTiny(t *testing.T) {
	ctx := context.Background()
	ix, err := Build(ctx, realTools(t, "filesystem", "memory"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	qs := []Query{
		{ID: "1", Query: "rename a file", Relevant: []string{"filesystem.move_file"}, Kind: "single"},
		{ID: "2", Query: "xyzzy plugh", Relevant: []string{"memory.read_graph"}, Kind: "single"},
		{ID: "3", Query: "create a directory and write a file", Relevant: []string{"filesystem.create_directory", "filesystem.write_file"}, Kind: "multi"},
	}
	r, err := Evaluate(ctx, ix, qs, EvalOptions{Search: SearchOptions{Mode: BM25}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Queries != 3 || r.Kinds["single"].Queries != 2 || r.Kinds["multi"].Queries != 1 {
		t.Fatalf("Evaluate counts = %d (single %d, multi %d), want 3 (2, 1)", r.Queries, r.Kinds["single"].Queries, r.Kinds["multi"].Queries)
	}
	// Query 2 matches nothing: recall 0, so the mean over singles is ≤ 0.5.
	if s := r.Kinds["single"]; s.Recall5 != 0.5 || s.MRR != 0.5 {
		t.Errorf("single R@5, MRR = %v, %v; want 0.5, 0.5", s.Recall5, s.MRR)
	}
	if m := r.Kinds["multi"]; m.Recall5 != 1 {
		t.Errorf("multi R@5 = %v, want 1", m.Recall5)
	}
	b, _ := json.Marshal(r)
	var shape map[string]any
	json.Unmarshal(b, &shape)
	for _, k := range []string{"queries", "recall@5", "recall@10", "ndcg@10", "mrr", "p50Ms", "p99Ms"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("report JSON %s lacks %q (DESIGN.md eval shape)", b, k)
		}
	}
}

func TestSplitQueriesDeterministic(t *testing.T) {
	var qs []Query
	for i := range 1000 {
		qs = append(qs, Query{ID: fmt.Sprintf("q-%d", i)})
	}
	a, b := SplitQueries(qs, 0.3)
	a2, _ := SplitQueries(qs, 0.3)
	if !slices.EqualFunc(a, a2, func(x, y Query) bool { return x.ID == y.ID }) {
		t.Fatal("SplitQueries is not deterministic")
	}
	if len(a)+len(b) != 1000 || len(a) < 250 || len(a) > 350 {
		t.Errorf("SplitQueries(1000, 0.3) = %d / %d", len(a), len(b))
	}
}

func TestVectorCachePersists(t *testing.T) {
	ctx := context.Background()
	tools := realTools(t)
	cache := &mapCache{}
	e1 := &hashEmbedder{dim: 64}
	ix, err := Build(ctx, tools, Options{Embedder: e1, VectorCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if e1.texts.Load() == 0 || !ix.HasVectors() {
		t.Fatalf("first build embedded %d texts (vectors %v), want > 0", e1.texts.Load(), ix.HasVectors())
	}
	// A restart: new embedder, same cache.
	e2 := &hashEmbedder{dim: 64}
	ix2, err := Build(ctx, tools, Options{Embedder: e2, VectorCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if n := e2.calls.Load(); n != 0 {
		t.Errorf("second build called Embed %d times, want 0", n)
	}
	q := "list the files in a folder"
	v, _ := e2.Embed(ctx, []string{q})
	r1 := ix.search(q, v[0], nil, SearchOptions{})
	r2 := ix2.search(q, v[0], nil, SearchOptions{})
	if diff := cmp.Diff(r1, r2); diff != "" {
		t.Errorf("search differs after restart (-first +second):\n%s", diff)
	}
	// One new tool: only its texts are embedded.
	e3 := &hashEmbedder{dim: 64}
	more := append(slices.Clone(tools), Tool{Server: "extra", Name: "ping", Description: "Check that a host answers."})
	if _, err := Build(ctx, more, Options{Embedder: e3, VectorCache: cache}); err != nil {
		t.Fatal(err)
	}
	if n := e3.texts.Load(); n != 1 {
		t.Errorf("build with one new tool embedded %d texts, want 1", n)
	}
}

func TestLongTextsEmbeddedInParts(t *testing.T) {
	var sb strings.Builder
	for i := range 30 {
		fmt.Fprintf(&sb, "Step %d of this tool does one more careful thing with the data it is given. ", i)
	}
	long := sb.String()
	e := &hashEmbedder{dim: 32}
	_, err := Build(context.Background(), []Tool{{Server: "s", Name: "long_tool", Description: long}}, Options{Embedder: e})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.texts.Load(); n < 4 {
		t.Errorf("a %d-word description was embedded as %d texts, want it split in parts of ≤ %d words", len(strings.Fields(long)), n, chunkWords)
	}
	parts := embedTexts(Tool{Name: "long_tool", Description: long}, docFields{}, nil, func(string) int { return 1 }, chunkWords, 0)
	var words int
	for i, p := range parts {
		n := len(strings.Fields(p))
		if n > chunkWords {
			t.Errorf("part %d has %d words, want ≤ %d", i, n, chunkWords)
		}
		if i > 0 && !strings.HasPrefix(p, "long tool: ") {
			t.Errorf("part %d = %.30q…, want the name words first", i, p)
		}
		words += n
	}
	if want := len(strings.Fields(long)) + 2; words < want {
		t.Errorf("parts hold %d words, want all %d (nothing cut)", words, want)
	}
}

type failingEmbedder struct{}

func (failingEmbedder) Name() string { return "broken" }
func (failingEmbedder) Dim() int     { return 8 }
func (failingEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return nil, errors.New("model file missing")
}

func TestEmbedFailureKeepsBM25(t *testing.T) {
	ctx := context.Background()
	ix, err := Build(ctx, realTools(t, "filesystem"), Options{Embedder: failingEmbedder{}})
	if !errors.Is(err, ErrEmbed) {
		t.Fatalf("Build error = %v, want ErrEmbed", err)
	}
	if ix == nil || ix.HasVectors() {
		t.Fatal("Build returned no BM25 index")
	}
	res, err := ix.Search(ctx, "move a file", SearchOptions{})
	if err != nil || len(res) == 0 || res[0].Name != "filesystem.move_file" {
		t.Errorf("Search = %v, %v; want filesystem.move_file first", names(res), err)
	}
}

func TestDedupSameToolAcrossServers(t *testing.T) {
	var tools []Tool
	for i := range 12 {
		desc := "Create a new file or overwrite an existing file with new content."
		if i%3 == 1 {
			desc = "Create a new file or completely overwrite an existing file with new content."
		}
		tools = append(tools, Tool{Server: fmt.Sprintf("fs%02d", i), Name: "write_file", Description: desc})
	}
	// Same name, different tool: stays apart.
	tools = append(tools, Tool{Server: "notes", Name: "write_file", Description: "Append a line to today's journal page in the notebook."})
	tools = append(tools, Tool{Server: "fs00", Name: "read_file", Description: "Read a file."})
	ix, err := Build(context.Background(), tools, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := ix.Search(context.Background(), "write content to a file", SearchOptions{Limit: 5})
	if len(res) < 2 {
		t.Fatalf("Search = %v", names(res))
	}
	var grouped *Result
	for i := range res {
		if res[i].Tool == "write_file" && res[i].Server != "notes" {
			if grouped != nil {
				t.Errorf("write_file shown twice: %v", names(res))
			}
			grouped = &res[i]
		}
	}
	if grouped == nil || len(grouped.Also) != 11 {
		t.Fatalf("grouped write_file = %+v, want one result noting 11 others", grouped)
	}
	if !slices.Contains(names(res), "notes.write_file") {
		t.Errorf("Search = %v, want notes.write_file kept apart", names(res))
	}
	// Excluding the shown one surfaces another member.
	res2, _ := ix.Search(context.Background(), "write content to a file", SearchOptions{Limit: 5, Exclude: func(k string) bool { return k == grouped.Name }})
	i := slices.IndexFunc(res2, func(r Result) bool { return r.Tool == "write_file" && r.Server != "notes" })
	if i < 0 || res2[i].Name == grouped.Name || len(res2[i].Also) != 10 {
		t.Errorf("with %s excluded: %+v, want another write_file noting 10", grouped.Name, res2)
	}
}

func TestSuggest(t *testing.T) {
	ix, err := Build(context.Background(), realTools(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want string
	}{
		{"filesystem.read_fil", "filesystem.read_file"},
		{"filesystem.listDirectory", "filesystem.list_directory"},
		{"fs.write_file", "filesystem.write_file"},
		{"memory.create_entity", "memory.create_entities"},
		{"everything.get_sum", "everything.get-sum"},
		{"memory.searchNodes", "memory.search_nodes"},
	} {
		got := ix.Suggest(c.in, 3)
		if len(got) == 0 || got[0] != c.want {
			t.Errorf("Suggest(%q) = %v, want %s first", c.in, got, c.want)
		}
	}
	if got := ix.Suggest("zzqx.qqqq", 3); len(got) != 0 {
		t.Errorf("Suggest(nonsense) = %v, want nothing", got)
	}
}

func TestEmptyAndForeignDescriptions(t *testing.T) {
	tools := append(realTools(t, "filesystem", "memory"),
		Tool{Server: "crm", Name: "get_customer_invoices", InputSchema: json.RawMessage(`{"type":"object","properties":{"customerId":{"type":"string"},"since":{"type":"string","description":"ISO date"}}}`)},
		Tool{Server: "crm", Name: "update_customer", Description: "Update a customer's address, phone or email."},
		Tool{Server: "jp", Name: "weather_jp", Description: "指定した都市の天気予報を取得します。"},
		Tool{Server: "fr", Name: "meteo", Description: "Obtenir la météo actuelle d'une ville."},
		Tool{Server: "de", Name: "wetter", Description: "Liefert die Wettervorhersage für eine Stadt."},
	)
	ix, err := Build(context.Background(), tools, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ q, want string }{
		{"invoices of a customer", "crm.get_customer_invoices"},
		{"天気予報", "jp.weather_jp"},
		{"la météo à Paris", "fr.meteo"},
		{"Wettervorhersage Berlin", "de.wetter"},
	} {
		res, _ := ix.Search(context.Background(), c.q, SearchOptions{Limit: 3})
		if len(res) == 0 || res[0].Name != c.want {
			t.Errorf("Search(%q) = %v, want %s first", c.q, names(res), c.want)
		}
	}
	if tl, ok := ix.Lookup("crm.get_customer_invoices"); !ok || tl.Server != "crm" {
		t.Errorf("Lookup = %+v, %v", tl, ok)
	}
}

func TestBoostExcludeLoaded(t *testing.T) {
	ctx := context.Background()
	ix, _ := Build(ctx, realTools(t), Options{})
	q := "read a file"
	base, _ := ix.Search(ctx, q, SearchOptions{Limit: 5})
	target := base[3].Name
	res, _ := ix.Search(ctx, q, SearchOptions{Limit: 5,
		Boost:   func(k string) float64 { return map[bool]float64{true: 10, false: 1}[k == target] },
		Exclude: func(k string) bool { return k == base[0].Name },
		Loaded:  func(k string) bool { return k == target },
	})
	if res[0].Name != target || !res[0].Loaded {
		t.Errorf("boosted first = %+v, want %s loaded", res[0], target)
	}
	if slices.Contains(names(res), base[0].Name) {
		t.Errorf("excluded %s still in %v", base[0].Name, names(res))
	}
}

func TestConcurrentSearch(t *testing.T) {
	ctx := context.Background()
	ix, err := Build(ctx, realTools(t), Options{Embedder: &hashEmbedder{dim: 64}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ix.Search(ctx, "list a directory", SearchOptions{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				got, err := ix.Search(ctx, "list a directory", SearchOptions{})
				if err != nil || !slices.Equal(names(got), names(want)) {
					t.Errorf("concurrent Search = %v, %v; want %v", names(got), err, names(want))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestServerLeavesAndReturns: the index is rebuilt from the current tool
// set; a server that disappears drops out of search, and when it comes
// back its vectors come from the cache.
func TestServerLeavesAndReturns(t *testing.T) {
	ctx := context.Background()
	cache := &mapCache{}
	e := &hashEmbedder{dim: 64}
	all := realTools(t)
	if _, err := Build(ctx, all, Options{Embedder: e, VectorCache: cache}); err != nil {
		t.Fatal(err)
	}
	without := slices.DeleteFunc(slices.Clone(all), func(tl Tool) bool { return tl.Server == "memory" })
	ix, err := Build(ctx, without, Options{Embedder: e, VectorCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := ix.Search(ctx, "remember that Alice works at Acme", SearchOptions{Limit: 20})
	for _, r := range res {
		if r.Server == "memory" {
			t.Fatalf("memory server gone, but Search returned %s", r.Name)
		}
	}
	if _, ok := ix.Lookup("memory.read_graph"); ok {
		t.Error("Lookup(memory.read_graph) found a tool of a server that left")
	}
	calls := e.calls.Load()
	ix, err = Build(ctx, all, Options{Embedder: e, VectorCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if e.calls.Load() != calls {
		t.Error("server came back: its tools were embedded again, want them from the cache")
	}
	res, _ = ix.Search(ctx, "remember that Alice works at Acme", SearchOptions{Limit: 3})
	if len(res) == 0 || res[0].Server != "memory" {
		t.Errorf("server back: Search = %v, want a memory tool first", names(res))
	}
}

// flakyEmbedder embeds tools but fails on queries.
type flakyEmbedder struct {
	hashEmbedder
	fail bool
}

func (f *flakyEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if f.fail {
		return nil, errors.New("model crashed")
	}
	return f.hashEmbedder.Embed(ctx, texts)
}

func TestQueryEmbedFailureFallsBackToBM25(t *testing.T) {
	ctx := context.Background()
	e := &flakyEmbedder{hashEmbedder: hashEmbedder{dim: 32}}
	ix, err := Build(ctx, realTools(t, "filesystem"), Options{Embedder: e})
	if err != nil {
		t.Fatal(err)
	}
	e.fail = true
	res, err := ix.Search(ctx, "move a file", SearchOptions{})
	if !errors.Is(err, ErrEmbed) || len(res) == 0 || res[0].Name != "filesystem.move_file" {
		t.Errorf("Search = %v, %v; want the BM25 ranking and ErrEmbed", names(res), err)
	}
	if st := ix.Stats(); st.Tools != 14 || st.Model != "hash-test" || st.IndexBytes == 0 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestPartsFitTheModelWindow: with the real model, every part of every
// real tool text fits in its 128-token window, and long texts have parts.
func TestPartsFitTheModelWindow(t *testing.T) {
	e := realEmbedder(t)
	tc := e.(TokenCounter)
	cost, budget := wordBudget(e)
	tools := append(realTools(t), realTools(t, "tasks")...)
	// Real descriptions fit in one part (the longest, read_text_file, is
	// 120 tokens with its parameters); a tool documenting a whole server
	// does not.
	var all []string
	for _, tl := range realTools(t, "filesystem") {
		all = append(all, tl.Description)
	}
	tools = append(tools, Tool{Server: "big", Name: "do_everything", Description: strings.Join(all, " ")})
	docs := analyze(tools)
	multi := 0
	for i, tl := range tools {
		parts := embedTexts(tl, docs[i], []string{"other tool"}, cost, budget, 0)
		if len(parts) > 1 {
			multi++
		}
		for _, p := range parts {
			if n := tc.TokenCount(p); n > tc.MaxTokens() {
				t.Errorf("%s: part of %d tokens > %d: %.60q…", tl.Key(), n, tc.MaxTokens(), p)
			}
		}
	}
	if multi == 0 {
		t.Error("no tool text needed more than one part")
	}
}
