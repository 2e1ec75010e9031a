package catalog

import (
	"context"
	"flag"
	"fmt"
	"testing"
)

var (
	tune       = flag.Bool("tune", false, "sweep ranking parameters on the tuning split of shared/eval and log the figures")
	clauseOnly = flag.Bool("tune-clause", false, "TestTuneFusion: sweep the clause weight only")
	confOnly   = flag.Bool("tune-conf", false, "TestTuneFusion: sweep the vector-confidence scaling only")
)

func tuningSplit(t *testing.T) ([]Tool, []Query) {
	if !*tune {
		t.Skip("run with -tune")
	}
	tools, qs := loadShared(t)
	tq, _ := SplitQueries(qs, 0.3)
	return tools, tq
}

func TestTuneBM25(t *testing.T) {
	tools, tq := tuningSplit(t)
	ctx := context.Background()
	run := func(label string, p bm25Params, expW float32) {
		ix, _ := Build(ctx, tools, Options{tune: buildTuning{bm25: &p}})
		r, _ := Evaluate(ctx, ix, tq, EvalOptions{Search: SearchOptions{Mode: BM25, expW: &expW}})
		t.Logf("%-40s R@5 %.4f R@10 %.4f nDCG %.4f MRR %.4f multi R@5 %.4f", label, r.Recall5, r.Recall10, r.NDCG10, r.MRR, r.Kinds["multi"].Recall5)
	}
	for _, w := range []float64{0, 0.25, 0.5, 1, 1.5} {
		p := defaultBM25
		p.weight[fNameExp] = w
		run(fmt.Sprintf("wNameExp=%.2f", w), p, expansionWeight)
	}
	for _, e := range []float32{0, 0.2, 0.35, 0.5, 0.7, 1} {
		run(fmt.Sprintf("expW=%.2f", e), defaultBM25, e)
	}
	for _, k1 := range []float64{0.6, 0.9, 1.2, 1.6, 2.0} {
		p := defaultBM25
		p.k1 = k1
		run(fmt.Sprintf("k1=%.1f", k1), p, expansionWeight)
	}
	for _, w := range []float64{0.5, 1, 2, 3, 4} {
		p := defaultBM25
		p.weight[fName] = w
		run(fmt.Sprintf("wName=%.1f", w), p, expansionWeight)
	}
	for _, b := range []float64{0.3, 0.5, 0.75, 0.9} {
		p := defaultBM25
		p.b[fDesc] = b
		run(fmt.Sprintf("bDesc=%.2f", b), p, expansionWeight)
	}
}

// TestTuneFusion compares fusion methods and weights on the tuning split
// with the real model (vectors cached on disk between runs).
func TestTuneFusion(t *testing.T) {
	tools, tq := tuningSplit(t)
	e := realEmbedder(t)
	ctx := context.Background()
	cache := openFileCache(t, "vectors.bin")
	qv := queryVectors(t, e, cache, tq)
	for _, float := range []bool{false, true} {
		ix, err := Build(ctx, tools, Options{Embedder: e, VectorCache: cache, tune: buildTuning{floatVectors: float}})
		if err != nil {
			t.Fatal(err)
		}
		run := func(label string, so SearchOptions) {
			r, _ := Evaluate(ctx, ix, tq, EvalOptions{Search: so, queryVecs: qv})
			t.Logf("float=%v %-28s R@5 %.4f R@10 %.4f nDCG %.4f MRR %.4f | multi R@5 %.4f MRR %.4f", float, label,
				r.Recall5, r.Recall10, r.NDCG10, r.MRR, r.Kinds["multi"].Recall5, r.Kinds["multi"].MRR)
		}
		run("bm25", SearchOptions{Mode: BM25})
		run("vector", SearchOptions{Mode: Vector})
		if float {
			continue
		}
		if *clauseOnly {
			for _, w := range []float64{0.5, 0.6, 0.7} {
				for _, cw := range []float32{0, 0.5, 1} {
					fp := defaultFusion
					fp.vecWeight = w
					run(fmt.Sprintf("hybrid w=%.1f clauseW=%.2f", w, cw), SearchOptions{fusion: &fp, clauseW: &cw})
				}
			}
			return
		}
		if *confOnly {
			for _, c := range [][2]float64{{0, 0}, {0.15, 0.35}, {0.2, 0.4}, {0.25, 0.45}, {0.2, 0.6}, {0.3, 0.5}} {
				for _, w := range []float64{0.5, 0.6, 0.7, 0.8} {
					run(fmt.Sprintf("minmax w=%.1f conf=%.2f-%.2f", w, c[0], c[1]), SearchOptions{fusion: &fusionParams{vecWeight: w, confLo: c[0], confHi: c[1]}})
				}
			}
			return
		}
		for _, k := range []float64{10, 30, 60} {
			run(fmt.Sprintf("rrf k=%.0f", k), SearchOptions{fusion: &fusionParams{method: fuseRRF, rrfK: k}})
		}
		for _, m := range []int{fuseLinearMinMax, fuseLinearZ} {
			for _, w := range []float64{0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8} {
				run(fmt.Sprintf("%s w=%.1f", []string{"minmax", "z"}[m], w), SearchOptions{fusion: &fusionParams{method: m, vecWeight: w}})
			}
		}
	}
}

// TestSensitivityTasks shows how the fusion weights do on the real-server
// ranking and task cases (regression tests, too small to tune on).
func TestSensitivityTasks(t *testing.T) {
	if !*tune {
		t.Skip("run with -tune")
	}
	ctx := context.Background()
	tools := append(realTools(t), realTools(t, "tasks")...)
	ix, _ := Build(ctx, tools, Options{Embedder: testEmbedder(t)})
	for _, w := range []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8} {
		for _, cw := range []float32{0, 0.5, 1} {
			fp := defaultFusion
			fp.vecWeight = w
			found := 0
			for _, c := range taskCases {
				res, _ := ix.Search(ctx, c.query, SearchOptions{Limit: 8, fusion: &fp, clauseW: &cw})
				for _, need := range c.need {
					if wantIn(names(res), need, 8) {
						found++
					}
				}
			}
			rk := 0
			for _, c := range rankingCases {
				res, _ := ix.Search(ctx, c.query, SearchOptions{Limit: 8, fusion: &fp, clauseW: &cw})
				if wantIn(names(res), c.want, c.top) {
					rk++
				}
			}
			t.Logf("w=%.1f clauseW=%.1f: tasks %d/12, ranking %d/%d", w, cw, found, rk, len(rankingCases))
		}
	}
}
