package catalog

import (
	"math"
	"strings"
)

// Fields of a tool document, in the order of bm25Params.weight.
const (
	fName = iota
	fServer
	fDesc
	fParamName
	fParamDesc
	fContext // the server's other tool names, only for tools without a description
	fNameExp // capability words of the name's words (list → show, enumerate, …)
	numFields
)

// docFields is the analyzed text of one tool, one term list per field.
type docFields struct {
	f      [numFields][]string
	desc   []string // == f[fDesc], kept for grouping
	params []Param
}

// analyze turns tools into field term lists. A tool with an empty (or
// near-empty) description gets a context field built from the names of its
// server's other tools, which is the only hint of what it belongs to.
func analyze(tools []Tool) []docFields {
	docs := make([]docFields, len(tools))
	byServer := map[string][]int{}
	for i, t := range tools {
		byServer[t.Server] = append(byServer[t.Server], i)
		d := &docs[i]
		d.f[fName] = tokenize(t.Name, nil)
		d.f[fServer] = tokenize(t.Server, nil)
		for _, w := range d.f[fName] {
			d.f[fNameExp] = append(d.f[fNameExp], expansions[w]...)
		}
		d.f[fDesc] = tokenize(t.Description, nil)
		d.desc = d.f[fDesc]
		d.params = extractParams(t.InputSchema)
		for _, p := range d.params {
			leaf := p.Path[strings.LastIndexByte(p.Path, '.')+1:]
			d.f[fParamName] = tokenize(leaf, d.f[fParamName])
			d.f[fParamDesc] = tokenize(p.Description, d.f[fParamDesc])
		}
	}
	for i := range docs {
		if len(docs[i].f[fDesc]) >= 3 {
			continue
		}
		var ctx []string
		for n, j := range byServer[tools[i].Server] {
			if j == i {
				continue
			}
			if n > 40 {
				break
			}
			ctx = tokenize(tools[j].Name, ctx)
		}
		docs[i].f[fContext] = ctx
	}
	return docs
}

// bm25Params are the BM25F constants: k1 saturation, and per field a weight
// and a length-normalization strength b.
type bm25Params struct {
	k1     float64
	weight [numFields]float64
	b      [numFields]float64
}

// defaultBM25 was chosen on the tuning split of shared/eval (see
// eval_test.go) and checked on the real-server ranking tests.
var defaultBM25 = bm25Params{
	k1:     1.5,
	weight: [numFields]float64{fName: 3.0, fServer: 0.5, fDesc: 1.0, fParamName: 0.6, fParamDesc: 0.3, fContext: 0.2, fNameExp: 0.35},
	b:      [numFields]float64{fName: 0.3, fServer: 0.3, fDesc: 0.5, fParamName: 0.5, fParamDesc: 0.75, fContext: 0.5, fNameExp: 0.35},
}

// bm25Index is an inverted index whose postings hold, per (term, tool), the
// BM25F pseudo term frequency already weighted and length-normalized, so a
// query only sums idf·tf/(k1+tf) over the postings of its terms.
type bm25Index struct {
	k1    float32
	terms map[string]int32
	idf   []float32
	off   []uint32 // postings of term t: doc[off[t]:off[t+1]]
	doc   []uint32
	tf    []float32
}

func buildBM25(docs []docFields, p bm25Params) bm25Index {
	var avg [numFields]float64
	for _, d := range docs {
		for f := range numFields {
			avg[f] += float64(len(d.f[f]))
		}
	}
	for f := range avg {
		avg[f] /= math.Max(1, float64(len(docs)))
		if avg[f] == 0 {
			avg[f] = 1
		}
	}
	type post struct {
		doc uint32
		tf  float32
	}
	terms := map[string]int32{}
	var lists [][]post
	acc := map[string]float64{}
	for i, d := range docs {
		clear(acc)
		for f := range numFields {
			if len(d.f[f]) == 0 || p.weight[f] == 0 {
				continue
			}
			norm := 1 - p.b[f] + p.b[f]*float64(len(d.f[f]))/avg[f]
			w := p.weight[f] / norm
			for _, t := range d.f[f] {
				acc[t] += w
			}
		}
		for t, tf := range acc {
			id, ok := terms[t]
			if !ok {
				id = int32(len(lists))
				terms[t] = id
				lists = append(lists, nil)
			}
			lists[id] = append(lists[id], post{uint32(i), float32(tf)})
		}
	}
	ix := bm25Index{k1: float32(p.k1), terms: terms, idf: make([]float32, len(lists)), off: make([]uint32, len(lists)+1)}
	n := float64(len(docs))
	total := 0
	for id, l := range lists {
		df := float64(len(l))
		ix.idf[id] = float32(math.Log(1 + (n-df+0.5)/(df+0.5)))
		total += len(l)
	}
	ix.doc = make([]uint32, 0, total)
	ix.tf = make([]float32, 0, total)
	for id, l := range lists {
		ix.off[id] = uint32(len(ix.doc))
		// Postings are appended in doc order already.
		for _, e := range l {
			ix.doc = append(ix.doc, e.doc)
			ix.tf = append(ix.tf, e.tf)
		}
	}
	ix.off[len(lists)] = uint32(len(ix.doc))
	return ix
}

// score adds the BM25F score of the weighted query terms to scores (one
// slot per tool).
func (b *bm25Index) score(q []qterm, scores []float32) {
	for _, t := range q {
		id, ok := b.terms[t.term]
		if !ok {
			continue
		}
		w := b.idf[id] * t.weight
		lo, hi := b.off[id], b.off[id+1]
		for j := lo; j < hi; j++ {
			tf := b.tf[j]
			scores[b.doc[j]] += w * tf * (b.k1 + 1) / (tf + b.k1)
		}
	}
}
