package catalog

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Mode selects the signals a search uses.
type Mode int

const (
	// Hybrid fuses BM25F and vector similarity; it is BM25 alone when the
	// index has no vectors. The zero Mode.
	Hybrid Mode = iota
	// BM25 ranks by words only.
	BM25
	// Vector ranks by embedding similarity only (empty without vectors).
	Vector
)

func (m Mode) String() string {
	switch m {
	case Hybrid:
		return "hybrid"
	case BM25:
		return "bm25"
	case Vector:
		return "vector"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// SearchOptions tune one search. The zero value returns up to 10 results
// in Hybrid mode.
type SearchOptions struct {
	Limit int
	Mode  Mode
	// Boost, when non-nil, multiplies the score of the tool named by key
	// ("server.tool"); 1 means no change. The caller supplies
	// conversation-aware boosts: loaded tools, their servers, co-usage.
	Boost func(key string) float64
	// Exclude, when non-nil, drops the tools it returns true for.
	Exclude func(key string) bool
	// Loaded, when non-nil, sets Result.Loaded.
	Loaded func(key string) bool
	// QueryVector, when non-nil, is used instead of embedding the query
	// (callers that embedded it already, e.g. evaluation).
	QueryVector []float32

	fusion     *fusionParams // measurement only; nil means defaultFusion
	expW       *float32      // measurement only; nil means expansionWeight
	clauseW    *float32      // measurement only; nil means clauseWeight
	clauseVecs [][]float32   // vectors of splitClauses(query), when known
}

// Result is one ranked tool, compact enough to hand to an agent.
type Result struct {
	Name        string  `json:"name"` // "server.tool"
	Server      string  `json:"-"`
	Tool        string  `json:"-"`
	Description string  `json:"description"` // first sentence
	Score       float64 `json:"score"`
	Loaded      bool    `json:"loaded"`
	// Also names the same tool on other servers (same name, near-identical
	// description), which the ranking folded into this result.
	Also []string `json:"also,omitempty"`
}

// fusion methods.
const (
	fuseLinearMinMax = iota
	fuseLinearZ
	fuseRRF
)

// fusionParams say how BM25F and cosine scores combine in Hybrid mode.
type fusionParams struct {
	method int
	// vecWeight is the weight of the vector signal in a linear mix (the
	// BM25 signal gets 1-vecWeight).
	vecWeight float64
	rrfK      float64
	// confLo/confHi scale the vector weight by how sure the model is: a
	// best cosine ≤ confLo means the vectors are noise for this request
	// (weight 0), ≥ confHi means full weight. Zero confHi disables it.
	confLo, confHi float64
	// serverWeight adds this share of the tool's server's evidence (mean
	// of its three best tools) to every tool of that server: a request
	// that several tools of one server match is probably about that
	// server. Off by default: it changed nothing measurable (the eval set
	// has one server; the real-server ranking cases pass either way).
	serverWeight float64
}

// defaultFusion was chosen on the tuning split of shared/eval
// (TestTuneFusion): a min-max linear mix weighted towards the vectors beat
// reciprocal rank fusion (R@5 0.782 at w=0.7 vs 0.761 for RRF k=10) and
// equalled z-score mixing (0.781). The weight (with clauseWeight) maximizes
// the mean of single and multi R@5 on the tuning split, because the target
// is long task-style requests: w=0.6 with parts at 1.0 gives single 0.763,
// multi 0.846 (w=0.7 with parts at 0.5: 0.781, 0.804). The confidence ramp
// costs nothing there and keeps noise vectors (best cosine ≈ 0.25) from
// outvoting a clear keyword match on real servers ("remember that Alice
// works at Acme").
var defaultFusion = fusionParams{method: fuseLinearMinMax, vecWeight: 0.6, rrfK: 60, confLo: 0.15, confHi: 0.35}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

type scratch struct {
	bm, vec, fused []float32
	part, best     []float32
	top3           []float32
	heap           []int32
}

func (s *scratch) reset(n int) {
	grow := func(b []float32) []float32 {
		if cap(b) < n {
			return make([]float32, n)
		}
		b = b[:n]
		clear(b)
		return b
	}
	s.bm, s.vec, s.fused = grow(s.bm), grow(s.vec), grow(s.fused)
	s.part, s.best = grow(s.part), grow(s.best)
	s.heap = s.heap[:0]
}

// Search ranks the tools for query. It embeds the query (and the parts of
// a long request, in the same call) when the mode needs vectors, unless
// opts.QueryVector is set; ctx bounds that call. An index without vectors
// answers Hybrid searches with BM25 alone; so does a Hybrid search whose
// query embedding fails, which returns that ranking together with an error
// wrapping ErrEmbed.
func (ix *Index) Search(ctx context.Context, query string, opts SearchOptions) ([]Result, error) {
	qv := opts.QueryVector
	cv := opts.clauseVecs
	if opts.Mode != BM25 && ix.HasVectors() && ix.embedder != nil && (qv == nil || cv == nil) {
		texts := []string{query}
		clauses := splitClauses(query)
		if qv != nil {
			texts = nil
		}
		texts = append(texts, clauses...)
		if len(texts) > 0 {
			v, err := ix.embedder.Embed(ctx, texts)
			if err == nil && len(v) != len(texts) {
				err = fmt.Errorf("%d vectors for %d texts", len(v), len(texts))
			}
			for _, x := range v {
				if err == nil && len(x) != ix.vec.dim {
					err = fmt.Errorf("vector of %d floats, want %d", len(x), ix.vec.dim)
				}
			}
			if err != nil {
				err = fmt.Errorf("%w: query: %w", ErrEmbed, err)
				if opts.Mode == Vector {
					return nil, err
				}
				bm := opts
				bm.Mode = BM25
				return ix.search(query, nil, nil, bm), err
			}
			if qv == nil {
				qv, v = v[0], v[1:]
			}
			cv = v
		}
	}
	return ix.search(query, qv, cv, opts), nil
}

// splitClauses splits a long request into its parts ("find the best
// selling GPUs on Amazon and give me the links" → two), each of which may
// need its own tool. A request of one part yields nothing.
func splitClauses(q string) []string {
	var parts []string
	for _, p := range clauseSep.Split(q, -1) {
		if len(tokenize(p, nil)) >= 2 {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	if len(parts) < 2 {
		return nil
	}
	return parts[:min(len(parts), 4)]
}

var clauseSep = regexp.MustCompile(`(?i)[;,.!?]\s+|\s+(?:and then|and also|and|then|also|plus|as well as|after that)\s+`)

// signals says which rankings a search uses: keywords unless only vectors
// were asked for, vectors when the index and the query have them.
func (ix *Index) signals(qv []float32, opts SearchOptions) (useBM, useVec bool) {
	return opts.Mode != Vector, opts.Mode != BM25 && ix.HasVectors() && len(qv) == ix.vec.dim
}

// scoreKeywords writes the BM25F scores of text into dst.
func (ix *Index) scoreKeywords(text string, opts SearchOptions, dst []float32) {
	expW := float32(expansionWeight)
	if opts.expW != nil {
		expW = *opts.expW
	}
	ix.bm.score(queryTerms(text, expW), dst)
}

// scoreText writes the scores of every tool for one text (the request or
// one of its parts) into out, and says whether it is all-positive (a
// vector signal was used).
func (ix *Index) scoreText(text string, qv []float32, opts SearchOptions, s *scratch, out []float32) (dense bool) {
	clear(s.bm)
	clear(s.vec)
	useBM, useVec := ix.signals(qv, opts)
	if useBM {
		ix.scoreKeywords(text, opts, s.bm)
	}
	if useVec {
		ix.vec.cosines(qv, s.vec)
	}
	fp := defaultFusion
	if opts.fusion != nil {
		fp = *opts.fusion
	}
	switch {
	case useBM && useVec:
		fuse(fp, s.bm, s.vec, out)
	case useBM:
		copy(out, s.bm)
	case useVec:
		copy(out, s.vec)
	default:
		clear(out)
	}
	if fp.serverWeight > 0 && ix.nServers > 1 {
		ix.addServerEvidence(out, fp.serverWeight, s)
	}
	return useVec
}

func (ix *Index) search(query string, qv []float32, cv [][]float32, opts SearchOptions) []Result {
	limit := opts.Limit
	if limit <= 0 {
		limit = 10
	}
	n := len(ix.tools)
	if n == 0 {
		return nil
	}
	if opts.Mode == Vector && (!ix.HasVectors() || len(qv) != ix.vec.dim) {
		return nil
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.reset(n)

	fused := s.fused
	dense := ix.scoreText(query, qv, opts, s, fused)
	cw := float32(clauseWeight)
	if opts.clauseW != nil {
		cw = *opts.clauseW
	}
	if clauses := splitClauses(query); len(clauses) > 1 && cw > 0 {
		// Each part of a long request votes for its own best tools, so
		// a tool only one part needs is not drowned by the others. Parts
		// are scored on candidates only (the request's best tools and
		// the part's best keyword matches) to keep long requests fast on
		// large catalogs.
		normMax(fused)
		best := s.best
		clear(best)
		base := topN(fused, clauseCandidates)
		for c, text := range clauses {
			var v []float32
			if c < len(cv) {
				v = cv[c]
			}
			ix.scorePart(text, v, base, opts, s)
			for i, x := range s.part {
				best[i] = max(best[i], x)
			}
		}
		for i := range fused {
			fused[i] += cw * best[i]
		}
	}

	// Top candidates: extra room so folding duplicates still fills limit.
	k := min(n, limit*3+8)
	h := s.heap
	for i := range n {
		sc := fused[i]
		if !dense && sc <= 0 {
			continue
		}
		if opts.Exclude != nil && opts.Exclude(ix.keys[i]) {
			continue
		}
		if opts.Boost != nil {
			sc *= float32(opts.Boost(ix.keys[i]))
			fused[i] = sc
		}
		h = pushTop(h, k, int32(i), fused)
	}
	s.heap = h
	order := slices.Clone(h)
	slices.SortFunc(order, func(a, b int32) int {
		if c := cmp.Compare(fused[b], fused[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := make([]Result, 0, min(limit, len(order)))
	seen := map[int32]int{} // group → index in out
	for _, i := range order {
		g := ix.group[i]
		if j, ok := seen[g]; ok {
			out[j].Also = append(out[j].Also, ix.keys[i])
			continue
		}
		if len(out) == limit {
			continue
		}
		t := ix.tools[i]
		r := Result{Name: ix.keys[i], Server: t.Server, Tool: t.Name, Description: ix.summary[i], Score: round3(float64(fused[i]))}
		if opts.Loaded != nil {
			r.Loaded = opts.Loaded(ix.keys[i])
		}
		seen[g] = len(out)
		out = append(out, r)
	}
	// Group members below the candidate cut are noted too.
	for j := range out {
		g := ix.group[ix.byKey[out[j].Name]]
		if len(ix.members[g]) > 1+len(out[j].Also) {
			out[j].Also = out[j].Also[:0]
			for _, m := range ix.members[g] {
				if ix.keys[m] != out[j].Name && (opts.Exclude == nil || !opts.Exclude(ix.keys[m])) {
					out[j].Also = append(out[j].Also, ix.keys[m])
				}
			}
		}
		if len(out[j].Also) == 0 {
			out[j].Also = nil
		}
	}
	return out
}

// addServerEvidence adds w × (mean of the three best scores of a tool's
// server) to each tool's score. Scores must be ≥ 0.
func (ix *Index) addServerEvidence(sc []float32, w float64, s *scratch) {
	if cap(s.top3) < 3*ix.nServers {
		s.top3 = make([]float32, 3*ix.nServers)
	}
	top := s.top3[:3*ix.nServers]
	clear(top)
	for i, x := range sc {
		t := top[3*ix.server[i]:][:3]
		switch {
		case x > t[0]:
			t[0], t[1], t[2] = x, t[0], t[1]
		case x > t[1]:
			t[1], t[2] = x, t[1]
		case x > t[2]:
			t[2] = x
		}
	}
	for i := range sc {
		if sc[i] <= 0 {
			continue
		}
		t := top[3*ix.server[i]:][:3]
		sc[i] += float32(w) * (t[0] + t[1] + t[2]) / 3
	}
}

// clauseCandidates bounds the tools a part of a request is scored on by
// vector (plus as many of the part's best keyword matches).
const clauseCandidates = 256

// topN returns the indexes of the n largest values of x (all of them when
// x is not longer than n).
func topN(x []float32, n int) []int32 {
	if len(x) <= n {
		idx := make([]int32, len(x))
		for i := range idx {
			idx[i] = int32(i)
		}
		return idx
	}
	var h []int32
	for i := range x {
		h = pushTop(h, n, int32(i), x)
	}
	return h
}

// scorePart writes into s.part the max-normalized score of one part of a
// request, for the tools in base and the part's best keyword matches
// (0 elsewhere).
func (ix *Index) scorePart(text string, qv []float32, base []int32, opts SearchOptions, s *scratch) {
	n := len(ix.tools)
	clear(s.bm)
	clear(s.part)
	useBM, useVec := ix.signals(qv, opts)
	if useBM {
		ix.scoreKeywords(text, opts, s.bm)
	}
	if !useVec {
		copy(s.part, s.bm)
		normMax(s.part)
		return
	}
	idx := base
	if n > len(base) {
		idx = append(slices.Clone(base), topN(s.bm, clauseCandidates)...)
		slices.Sort(idx)
		idx = slices.Compact(idx)
	}
	ix.vec.cosinesAt(qv, idx, s.vec)
	bm := make([]float32, len(idx))
	vec := make([]float32, len(idx))
	for j, i := range idx {
		bm[j], vec[j] = s.bm[i], s.vec[i]
	}
	out := make([]float32, len(idx))
	fp := defaultFusion
	if opts.fusion != nil {
		fp = *opts.fusion
	}
	if useBM {
		fuse(fp, bm, vec, out)
	} else {
		copy(out, vec)
	}
	normMax(out)
	for j, i := range idx {
		s.part[i] = out[j]
	}
}

// clauseWeight is the weight of the best part's (max-normalized) score
// added to the whole request's (max-normalized) score; see defaultFusion.
const clauseWeight = 1.0

// normMax scales x so its maximum is 1 (when positive).
func normMax(x []float32) {
	m := slices.Max(x)
	if m <= 0 {
		return
	}
	inv := 1 / m
	for i := range x {
		x[i] *= inv
	}
}

// pushTop keeps h a min-heap (by score, ties: later index is smaller) of at
// most k tool indexes.
func pushTop(h []int32, k int, i int32, sc []float32) []int32 {
	less := func(a, b int32) bool { // a ranks below b
		if sc[a] != sc[b] {
			return sc[a] < sc[b]
		}
		return a > b
	}
	if len(h) < k {
		h = append(h, i)
		for c := len(h) - 1; c > 0; {
			p := (c - 1) / 2
			if !less(h[c], h[p]) {
				break
			}
			h[c], h[p] = h[p], h[c]
			c = p
		}
		return h
	}
	if !less(h[0], i) {
		return h
	}
	h[0] = i
	for p := 0; ; {
		l, r, m := 2*p+1, 2*p+2, p
		if l < len(h) && less(h[l], h[m]) {
			m = l
		}
		if r < len(h) && less(h[r], h[m]) {
			m = r
		}
		if m == p {
			break
		}
		h[p], h[m] = h[m], h[p]
		p = m
	}
	return h
}

// fuse combines the BM25F scores and cosines of all tools into out.
func fuse(p fusionParams, bm, vec, out []float32) {
	switch p.method {
	case fuseRRF:
		rb, rv := ranks(bm), ranks(vec)
		for i := range out {
			var s float64
			if bm[i] > 0 {
				s += 1 / (p.rrfK + float64(rb[i]))
			}
			s += 1 / (p.rrfK + float64(rv[i]))
			out[i] = float32(s)
		}
	case fuseLinearZ:
		mb, sb := meanStd(bm)
		mv, sv := meanStd(vec)
		w := float32(p.vecWeight)
		for i := range out {
			out[i] = (1-w)*(bm[i]-mb)/sb + w*(vec[i]-mv)/sv
		}
		// Shift so every score is positive (boosts multiply).
		lo := slices.Min(out)
		for i := range out {
			out[i] -= lo - 1e-3
		}
	default: // min-max
		bmax := slices.Max(bm)
		vmin, vmax := slices.Min(vec), slices.Max(vec)
		bs := float32(0)
		if bmax > 0 {
			bs = 1 / bmax
		}
		vs := float32(0)
		if vmax > vmin {
			vs = 1 / (vmax - vmin)
		}
		w := float32(p.vecWeight)
		if p.confHi > p.confLo {
			c := (float64(vmax) - p.confLo) / (p.confHi - p.confLo)
			w *= float32(min(1, max(0, c)))
		}
		if bmax == 0 {
			w = 1 // nothing matched by words: rank by meaning alone
		}
		for i := range out {
			out[i] = (1-w)*bm[i]*bs + w*(vec[i]-vmin)*vs
		}
	}
}

func meanStd(x []float32) (float32, float32) {
	var s, ss float64
	for _, v := range x {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	n := float64(len(x))
	m := s / n
	sd := math.Sqrt(max(ss/n-m*m, 0))
	if sd == 0 {
		sd = 1
	}
	return float32(m), float32(sd)
}

// ranks returns the 1-based rank of every element by descending value.
func ranks(x []float32) []int32 {
	idx := make([]int32, len(x))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if c := cmp.Compare(x[b], x[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	r := make([]int32, len(x))
	for pos, i := range idx {
		r[i] = int32(pos + 1)
	}
	return r
}
