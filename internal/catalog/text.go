package catalog

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokenize splits text into lower-case index terms: runs of letters and
// digits in any script, with camelCase and letter/digit boundaries split
// (the whole run is kept too when it was split, so "base64" matches both
// "base64" and "base"). Runs of Han, Hiragana, Katakana or Hangul, which are
// written without spaces, become overlapping character bigrams so that
// non-English descriptions index sanely. Stopwords are dropped and Latin
// words are stemmed.
func tokenize(s string, dst []string) []string {
	return appendTokens(dst, s, true)
}

// nameWords splits an identifier ("get_file-info", "createEntities",
// "server.tool") into lower-case words, without stemming or stopwords.
func nameWords(s string) []string {
	var out []string
	forEachRun(s, func(run string, cjk bool) {
		if cjk {
			out = append(out, strings.ToLower(run))
			return
		}
		out = append(out, splitCamel(run)...)
	})
	return out
}

func appendTokens(dst []string, s string, stem bool) []string {
	forEachRun(s, func(run string, cjk bool) {
		if cjk {
			dst = appendBigrams(dst, run)
			return
		}
		parts := splitCamel(run)
		if len(parts) > 1 {
			if w := strings.ToLower(run); !stopwords[w] {
				dst = append(dst, normWord(w, stem))
			}
		}
		for _, p := range parts {
			if stopwords[p] {
				continue
			}
			dst = append(dst, normWord(p, stem))
		}
	})
	return dst
}

func normWord(w string, stem bool) string {
	if stem {
		return stemWord(w)
	}
	return w
}

// forEachRun calls f for every maximal run of letters/digits (marks
// included), telling whether the run is in a script written without spaces.
func forEachRun(s string, f func(run string, cjk bool)) {
	start := -1
	startCJK := false
	for i, r := range s {
		isWord := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
		c := isCJK(r)
		if start >= 0 && (!isWord || c != startCJK) {
			f(s[start:i], startCJK)
			start = -1
		}
		if isWord && start < 0 {
			start, startCJK = i, c
		}
	}
	if start >= 0 {
		f(s[start:], startCJK)
	}
}

func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)
}

func appendBigrams(dst []string, run string) []string {
	n := utf8.RuneCountInString(run)
	if n == 1 {
		return append(dst, run)
	}
	var prev int = -1
	prevLen := 0
	for i, r := range run {
		if prev >= 0 {
			dst = append(dst, run[prev:i+utf8.RuneLen(r)])
		}
		prev, prevLen = i, utf8.RuneLen(r)
	}
	_ = prevLen
	return dst
}

// splitCamel splits a run of letters and digits at lower→upper, acronym→word
// ("HTTPServer" → http server) and letter↔digit boundaries; words are
// lower-cased.
func splitCamel(run string) []string {
	rs := []rune(run)
	var out []string
	start := 0
	for i := 1; i < len(rs); i++ {
		a, b := rs[i-1], rs[i]
		split := false
		switch {
		case unicode.IsLower(a) && unicode.IsUpper(b):
			split = true
		case unicode.IsUpper(a) && unicode.IsUpper(b) && i+1 < len(rs) && unicode.IsLower(rs[i+1]):
			split = true
		case unicode.IsDigit(a) != unicode.IsDigit(b):
			split = true
		}
		if split {
			out = append(out, strings.ToLower(string(rs[start:i])))
			start = i
		}
	}
	return append(out, strings.ToLower(string(rs[start:])))
}

// stemWord is a small English suffix stripper. It is applied the same way
// to documents and queries, so it only has to conflate inflections
// (files/file, saving/saved/save, creation/create), not produce words.
// A full Porter stemmer would be the alternative; this one has no
// dependency, never touches non-ASCII words, and its whole behaviour fits
// in the table below, which keeps ranking changes explainable.
func stemWord(w string) string {
	if len(w) <= 3 || !isASCIILetters(w) {
		return w
	}
	for _, rule := range stemRules {
		if strings.HasSuffix(w, rule.suf) && len(w)-len(rule.suf)+len(rule.rep) >= 3 {
			if rule.suf == "s" && (strings.HasSuffix(w, "ss") || strings.HasSuffix(w, "us") || strings.HasSuffix(w, "is")) {
				continue
			}
			w = w[:len(w)-len(rule.suf)] + rule.rep
			break
		}
	}
	if n := len(w); n > 3 && w[n-1] == 'e' {
		w = w[:n-1]
	}
	if n := len(w); n > 3 && w[n-1] == w[n-2] && strings.IndexByte("bdgmnprt", w[n-1]) >= 0 {
		w = w[:n-1]
	}
	return w
}

var stemRules = []struct{ suf, rep string }{
	{"izations", "ize"}, {"ization", "ize"}, {"ational", "ate"}, {"ations", "ate"}, {"ation", "ate"},
	{"ments", ""}, {"ment", ""}, {"nesses", ""}, {"ness", ""}, {"ings", ""}, {"ing", ""},
	{"ers", ""}, {"ies", "y"}, {"ied", "y"}, {"ed", ""}, {"er", ""},
	{"ly", ""}, {"sses", "ss"}, {"es", ""}, {"s", ""},
}

func isASCIILetters(w string) bool {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// stopwords are function words and request fillers ("please", "can you")
// that carry no tool meaning.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again all also am an and any are as at be because been
		before being below between both but by can could did do does doing down during each few for from further
		had has have having he her here hers herself him himself his how i if in into is it its itself just let
		me more most my myself no nor not now of off on once only or other our ours ourselves out over own please
		same she should so some such than that the their theirs them themselves then there these they this those
		through to too under until up very was we were what when where which while who whom why will with would
		you your yours yourself yourselves want wants need needs like could can't don't i'm i'd i've it's that's
		there's what's let's tell give s t d ll m re ve e g etc via`) {
		m[w] = true
	}
	return m
}()
