package catalog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Query is one line of a queries.jsonl file in the shared/eval format.
type Query struct {
	ID       string   `json:"id"`
	Query    string   `json:"query"`
	Relevant []string `json:"relevant"` // "server.tool"; split on the first dot
	Kind     string   `json:"kind"`     // "single" or "multi"
}

// LoadTools reads a tools.jsonl file: one {"server","name","description",
// "inputSchema"} object per line.
func LoadTools(path string) ([]Tool, error) {
	var out []Tool
	err := readJSONL(path, func(line []byte) error {
		var t Tool
		if err := json.Unmarshal(line, &t); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

// LoadQueries reads a queries.jsonl file.
func LoadQueries(path string) ([]Query, error) {
	var out []Query
	err := readJSONL(path, func(line []byte) error {
		var q Query
		if err := json.Unmarshal(line, &q); err != nil {
			return err
		}
		if q.Kind == "" {
			q.Kind = "single"
			if len(q.Relevant) > 1 {
				q.Kind = "multi"
			}
		}
		out = append(out, q)
		return nil
	})
	return out, err
}

func readJSONL(path string, f func([]byte) error) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("eval data: %w", err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := f([]byte(line)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SplitQueries splits queries deterministically by a hash of their id:
// about frac of them (0..1) go to tune, the rest to held. The tuning part
// chooses weights; the held-out part reports quality.
func SplitQueries(qs []Query, frac float64) (tune, held []Query) {
	for _, q := range qs {
		h := fnv.New32a()
		h.Write([]byte(q.ID))
		if float64(h.Sum32()%1000) < frac*1000 {
			tune = append(tune, q)
		} else {
			held = append(held, q)
		}
	}
	return tune, held
}

// Metrics are retrieval quality and latency over a set of queries; the JSON
// shape is `conductor eval --json`'s (DESIGN.md).
type Metrics struct {
	Queries  int     `json:"queries"`
	Recall5  float64 `json:"recall@5"`
	Recall10 float64 `json:"recall@10"`
	NDCG10   float64 `json:"ndcg@10"`
	MRR      float64 `json:"mrr"`
	// P50Ms and P99Ms are the latency of a whole search, query embedding
	// included.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	// EmbedP50Ms/EmbedP99Ms: the query embedding alone (0 without vectors).
	EmbedP50Ms float64 `json:"embedP50Ms,omitempty"`
	EmbedP99Ms float64 `json:"embedP99Ms,omitempty"`
}

// Report is the result of Evaluate: metrics over all queries (flattened in
// JSON, as DESIGN.md's eval shape) and per kind ("single", "multi").
type Report struct {
	Metrics
	Mode  string             `json:"mode"`
	Kinds map[string]Metrics `json:"kinds,omitempty"`
}

// EvalOptions configure Evaluate.
type EvalOptions struct {
	// Search is used for every query; Limit is ignored (the whole ranking
	// is scored, so MRR is over the full ranking).
	Search SearchOptions

	queryVecs map[string][]float32 // measurement: query text → vector
}

// Evaluate runs every query against ix and scores the rankings: recall@5,
// recall@10, nDCG@10 with binary gain, MRR over the full ranking, and
// search latency (one search per query, the query embedded as in real use
// unless pre-computed vectors were given).
func Evaluate(ctx context.Context, ix *Index, queries []Query, opts EvalOptions) (Report, error) {
	type acc struct {
		m        Metrics
		lat, emb []float64
	}
	accs := map[string]*acc{}
	get := func(k string) *acc {
		if accs[k] == nil {
			accs[k] = &acc{}
		}
		return accs[k]
	}
	so := opts.Search
	so.Limit = ix.Len()
	needVec := so.Mode != BM25 && ix.HasVectors()
	for _, q := range queries {
		if err := ctx.Err(); err != nil {
			return Report{}, err
		}
		start := time.Now()
		var embedMs float64
		so.QueryVector, so.clauseVecs = nil, nil
		if needVec {
			if v, ok := opts.queryVecs[q.Query]; ok {
				so.QueryVector = v
				so.clauseVecs = [][]float32{}
				for _, c := range splitClauses(q.Query) {
					so.clauseVecs = append(so.clauseVecs, opts.queryVecs[c])
				}
			} else {
				// Embed as Search would (request and parts in one call), timed
				// on its own.
				texts := append([]string{q.Query}, splitClauses(q.Query)...)
				vs, err := ix.embedder.Embed(ctx, texts)
				if err != nil {
					return Report{}, fmt.Errorf("embed query %s: %w", q.ID, err)
				}
				so.QueryVector, so.clauseVecs = vs[0], vs[1:]
				embedMs = ms(time.Since(start))
			}
		}
		res, err := ix.Search(ctx, q.Query, so)
		if err != nil {
			return Report{}, fmt.Errorf("query %s: %w", q.ID, err)
		}
		lat := ms(time.Since(start))
		r5, r10, nd, rr := scoreRanking(res, q.Relevant)
		for _, k := range []string{"all", q.Kind} {
			a := get(k)
			a.m.Queries++
			a.m.Recall5 += r5
			a.m.Recall10 += r10
			a.m.NDCG10 += nd
			a.m.MRR += rr
			a.lat = append(a.lat, lat)
			if needVec {
				a.emb = append(a.emb, embedMs)
			}
		}
	}
	rep := Report{Mode: so.Mode.String(), Kinds: map[string]Metrics{}}
	if !needVec && so.Mode != BM25 {
		rep.Mode = "bm25 (no vectors)"
	}
	for k, a := range accs {
		n := float64(a.m.Queries)
		m := a.m
		m.Recall5, m.Recall10, m.NDCG10, m.MRR = round4(m.Recall5/n), round4(m.Recall10/n), round4(m.NDCG10/n), round4(m.MRR/n)
		m.P50Ms, m.P99Ms = percentile(a.lat, 50), percentile(a.lat, 99)
		if len(a.emb) > 0 && slices.Max(a.emb) > 0 {
			m.EmbedP50Ms, m.EmbedP99Ms = percentile(a.emb, 50), percentile(a.emb, 99)
		}
		if k == "all" {
			rep.Metrics = m
		} else {
			rep.Kinds[k] = m
		}
	}
	return rep, nil
}

// scoreRanking scores one ranking. A result stands for its folded
// duplicates (Also) at the same rank.
func scoreRanking(res []Result, relevant []string) (r5, r10, ndcg, rr float64) {
	if len(relevant) == 0 {
		return 0, 0, 0, 0
	}
	rel := map[string]bool{}
	for _, r := range relevant {
		rel[r] = true
	}
	found := map[string]bool{}
	var dcg float64
	for i, r := range res {
		rank := i + 1
		hit := 0
		for _, name := range append([]string{r.Name}, r.Also...) {
			if rel[name] && !found[name] {
				found[name] = true
				hit++
				if rank <= 5 {
					r5++
				}
				if rank <= 10 {
					r10++
				}
			}
		}
		if hit > 0 {
			if rr == 0 {
				rr = 1 / float64(rank)
			}
			if rank <= 10 {
				dcg += float64(hit) / math.Log2(float64(rank)+1)
			}
		}
	}
	var idcg float64
	for i := 1; i <= min(len(rel), 10); i++ {
		idcg += 1 / math.Log2(float64(i)+1)
	}
	n := float64(len(rel))
	return r5 / n, r10 / n, dcg / idcg, rr
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// percentile is the nearest-rank percentile, rounded to 1 µs.
func percentile(x []float64, p float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return math.Round(s[i]*1e3) / 1e3
}

// RunEvalOptions configure RunEval.
type RunEvalOptions struct {
	Build Options
	// Modes to evaluate; empty means BM25, Vector and Hybrid when the index
	// has vectors, BM25 alone otherwise.
	Modes []Mode
}

// RunEval loads a data set in the shared/eval format, builds an index and
// evaluates each mode — the body of `conductor eval`. A build whose
// embedding failed is still evaluated on BM25 and its error returned with
// the reports.
func RunEval(ctx context.Context, toolsPath, queriesPath string, opts RunEvalOptions) ([]Report, error) {
	tools, err := LoadTools(toolsPath)
	if err != nil {
		return nil, err
	}
	queries, err := LoadQueries(queriesPath)
	if err != nil {
		return nil, err
	}
	ix, buildErr := Build(ctx, tools, opts.Build)
	if ix == nil {
		return nil, buildErr
	}
	modes := opts.Modes
	if len(modes) == 0 {
		modes = []Mode{BM25}
		if ix.HasVectors() {
			modes = []Mode{BM25, Vector, Hybrid}
		}
	}
	var reps []Report
	for _, m := range modes {
		r, err := Evaluate(ctx, ix, queries, EvalOptions{Search: SearchOptions{Mode: m}})
		if err != nil {
			return reps, err
		}
		reps = append(reps, r)
	}
	return reps, buildErr
}

// WriteTable prints reports as a text table, one row per report and kind.
// label, when non-nil, names each report's row (default: its mode).
func WriteTable(w io.Writer, reps []Report, label func(i int) string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ranker\tqueries\tn\tR@5\tR@10\tnDCG@10\tMRR\tp50 ms\tp99 ms\tembed p50 ms\t")
	for i, r := range reps {
		name := r.Mode
		if label != nil {
			name = label(i)
		}
		row := func(kind string, m Metrics) {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.3f\t%.3f\t%.3f\t\n",
				name, kind, m.Queries, m.Recall5, m.Recall10, m.NDCG10, m.MRR, m.P50Ms, m.P99Ms, m.EmbedP50Ms)
		}
		row("all", r.Metrics)
		for _, k := range []string{"multi", "single"} {
			if m, ok := r.Kinds[k]; ok {
				row(k, m)
			}
		}
	}
	return tw.Flush()
}
