package catalog

import (
	"cmp"
	"slices"
	"strings"
)

// Suggest returns up to n tool names ("server.tool") close to name, an
// unknown name an agent asked for: by edit distance of the tool part and
// overlap of name words, best first. A name with a known server prefers
// that server's tools. Nothing is returned when nothing is close.
func (ix *Index) Suggest(name string, n int) []string {
	if n <= 0 || len(ix.tools) == 0 {
		return nil
	}
	server, tool := "", name
	if i := strings.IndexByte(name, '.'); i >= 0 {
		server, tool = name[:i], name[i+1:]
	}
	lt := strings.ToLower(tool)
	words := nameWords(tool)
	type cand struct {
		i     int
		score float64
	}
	var cs []cand
	for i, t := range ix.tools {
		ln := strings.ToLower(t.Name)
		d := levenshtein(lt, ln)
		ed := 1 - float64(d)/float64(max(len(lt), len(ln), 1))
		ov := overlap(words, ix.nameToks[i])
		s := max(ed, ov) + 0.25*min(ed, ov)
		if server != "" && strings.EqualFold(server, t.Server) {
			s += 0.15
		}
		if strings.Contains(ln, lt) || strings.Contains(lt, ln) {
			s += 0.2
		}
		if s >= 0.5 {
			cs = append(cs, cand{i, s})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	var out []string
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, ix.keys[c.i])
	}
	return out
}

// overlap is the Dice coefficient of two word lists (as sets).
func overlap(a, b []string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter := 0
	for _, x := range a {
		if slices.Contains(b, x) {
			inter++
		}
	}
	return 2 * float64(inter) / float64(len(a)+len(b))
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := 1
			if ra[i-1] == rb[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
