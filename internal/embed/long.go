package embed

import (
	"math"
	"strings"
	"unicode"
)

// EmbedLong embeds a text of any length. A text of at most MaxTokens
// tokens embeds as with Embed. A longer one, which Embed would cut after
// MaxTokens tokens, is split at word boundaries into parts of at most
// MaxTokens tokens, each ending at a sentence end (., !, ?, ;, : or a line
// break) when one falls in its second half; consecutive parts overlap by
// about a sixth of MaxTokens, starting at a sentence when possible. The
// result is the mean of the parts' vectors weighted by their token counts,
// renormalised to unit length.
func (m *Model) EmbedLong(text string) ([]float32, error) {
	ids := m.tok.encode(text)
	if len(ids) <= m.maxTokens {
		return m.embedIDs(ids), nil
	}
	parts := m.split(text)
	sum := make([]float64, m.dim)
	for _, p := range parts {
		ids := m.tok.encode(p)
		w := float64(min(len(ids), m.maxTokens))
		for k, v := range m.embedIDs(ids) {
			sum[k] += w * float64(v)
		}
	}
	var ss float64
	for _, v := range sum {
		ss += v * v
	}
	out := make([]float32, m.dim)
	if ss == 0 {
		return out, nil
	}
	r := 1 / math.Sqrt(ss)
	for k, v := range sum {
		out[k] = float32(v * r)
	}
	return out, nil
}

// split cuts text into overlapping parts of at most MaxTokens tokens (a
// single word longer than that is a part of its own, which the model
// cuts).
func (m *Model) split(text string) []string {
	type word struct {
		text   string
		tokens int
		endsAt bool // ends a sentence
	}
	var words []word
	for w := range strings.FieldsFuncSeq(text, unicode.IsSpace) {
		words = append(words, word{text: w, tokens: len(m.tok.encode(w)), endsAt: strings.ContainsAny(w[len(w)-1:], ".!?;:")})
	}
	// A line break also ends a sentence: mark the word before each one.
	seen := 0
	rest := text
	for seen < len(words) {
		i := strings.Index(rest, words[seen].text)
		rest = rest[i+len(words[seen].text):]
		gap := rest[:len(rest)-len(strings.TrimLeftFunc(rest, unicode.IsSpace))]
		if strings.ContainsRune(gap, '\n') {
			words[seen].endsAt = true
		}
		seen++
	}
	maxTok := m.maxTokens
	overlap := maxTok / 6
	var parts []string
	for start := 0; start < len(words); {
		end, n := start, 0
		for end < len(words) && n+words[end].tokens <= maxTok {
			n += words[end].tokens
			end++
		}
		if end == start {
			end++
		}
		if end < len(words) {
			for k := end; k > start+(end-start)/2; k-- {
				if words[k-1].endsAt {
					end = k
					break
				}
			}
		}
		texts := make([]string, 0, end-start)
		for _, w := range words[start:end] {
			texts = append(texts, w.text)
		}
		parts = append(parts, strings.Join(texts, " "))
		if end == len(words) {
			break
		}
		next, ov := end, 0
		for next > start+1 && ov+words[next-1].tokens <= overlap {
			ov += words[next-1].tokens
			next--
		}
		for k := next; k < end; k++ {
			if k > start && words[k-1].endsAt {
				next = k
				break
			}
		}
		start = max(next, start+1)
	}
	return parts
}
