package catalog

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var evalDir = flag.String("eval-dir", "../../../shared/eval", "directory of the shared/eval data set")

func loadShared(t testing.TB) ([]Tool, []Query) {
	t.Helper()
	tp, qp := filepath.Join(*evalDir, "tools.jsonl"), filepath.Join(*evalDir, "queries.jsonl")
	if _, err := os.Stat(tp); err != nil {
		t.Skipf("eval data not found: %v", err)
	}
	tools, err := LoadTools(tp)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := LoadQueries(qp)
	if err != nil {
		t.Fatal(err)
	}
	return tools, qs
}

// TestEvalSharedBM25 reports BM25F on both splits of shared/eval and
// checks it beats the README's plain BM25 baseline on the held-out part.
func TestEvalSharedBM25(t *testing.T) {
	tools, qs := loadShared(t)
	ctx := context.Background()
	ix, err := Build(ctx, tools, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tune, held := SplitQueries(qs, 0.3)
	var reps []Report
	for _, part := range [][]Query{tune, held} {
		r, err := Evaluate(ctx, ix, part, EvalOptions{Search: SearchOptions{Mode: BM25}})
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
	}
	var b strings.Builder
	WriteTable(&b, reps, func(i int) string { return []string{"bm25f tuning", "bm25f held-out"}[i] })
	t.Log("\n" + b.String())
	if r := reps[1]; r.Recall5 < 0.5098 || r.MRR < 0.4284 {
		t.Errorf("held-out BM25F R@5 %.4f MRR %.4f, want above the baseline 0.5098 / 0.4284", r.Recall5, r.MRR)
	}
}

var evalReport = flag.Bool("eval-report", false, "print the BM25 / vector / hybrid table on the tuning and held-out splits of shared/eval with the real model")

// TestEvalReport prints the quality table of the closing note:
//
//	go test ./internal/catalog/ -run TestEvalReport -eval-report -v
//
// Query vectors are computed once and cached on disk; latency columns are
// then the search alone (the query embedding is BenchmarkEmbedQuery).
func TestEvalReport(t *testing.T) {
	if !*evalReport {
		t.Skip("run with -eval-report")
	}
	tools, qs := loadShared(t)
	e := realEmbedder(t)
	ctx := context.Background()
	cache := openFileCache(t, "vectors.bin")
	qv := queryVectors(t, e, cache, qs)
	tune, held := SplitQueries(qs, 0.3)
	var reps []Report
	var labels []string
	for _, float := range []bool{false, true} {
		ix, err := Build(ctx, tools, Options{Embedder: e, VectorCache: cache, tune: buildTuning{floatVectors: float}})
		if err != nil {
			t.Fatal(err)
		}
		vecs := "int8"
		if float {
			vecs = "float32"
		}
		for _, mode := range []Mode{BM25, Vector, Hybrid} {
			if float && mode == BM25 {
				continue
			}
			for si, part := range [][]Query{tune, held} {
				r, err := Evaluate(ctx, ix, part, EvalOptions{Search: SearchOptions{Mode: mode}, queryVecs: qv})
				if err != nil {
					t.Fatal(err)
				}
				reps = append(reps, r)
				l := mode.String()
				if mode != BM25 {
					l += " " + vecs
				}
				labels = append(labels, l+" "+[]string{"tuning", "held-out"}[si])
			}
		}
	}
	var b strings.Builder
	WriteTable(&b, reps, func(i int) string { return labels[i] })
	t.Log("\n" + b.String())
}

// TestRunEvalLive runs RunEval as `conductor eval` will: one index, each
// query embedded when searched, so latency is the real total.
//
//	go test ./internal/catalog/ -run TestRunEvalLive -eval-report -v
func TestRunEvalLive(t *testing.T) {
	if !*evalReport {
		t.Skip("run with -eval-report")
	}
	loadShared(t)
	e := realEmbedder(t)
	reps, err := RunEval(context.Background(), filepath.Join(*evalDir, "tools.jsonl"), filepath.Join(*evalDir, "queries.jsonl"),
		RunEvalOptions{Build: Options{Embedder: e, VectorCache: openFileCache(t, "vectors.bin")}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	WriteTable(&b, reps, nil)
	t.Log("\n" + b.String())
	j, _ := json.Marshal(reps[len(reps)-1])
	t.Logf("--json of the hybrid run: %s", j)
}
