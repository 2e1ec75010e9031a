package catalog

import (
	"slices"
	"testing"
	"unicode/utf8"
)

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"get_file-info", []string{"get", "fil", "info"}},
		{"createEntities", []string{"createentity", "creat", "entity"}},
		{"HTTPServer base64", []string{"httpserv", "http", "serv", "base64", "bas", "64"}},
		{"Saving the files, quickly", []string{"sav", "fil", "quick"}},
		{"Lire le fichier", []string{"lir", "le", "fichi"}},
		{"ファイルを読む", []string{"ファ", "ァイ", "イル", "ルを", "を読", "読む"}},
		{"Überprüfe Dateien", []string{"überprüfe", "dateien"}},
	} {
		if got := tokenize(c.in, nil); !slices.Equal(got, c.want) {
			t.Errorf("tokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStemConflates(t *testing.T) {
	for _, group := range [][]string{
		{"file", "files"},
		{"save", "saved", "saving", "saves"},
		{"create", "created", "creating", "creation"},
		{"directory", "directories"},
		{"query", "queries"},
		{"list", "listing", "lists"},
		{"run", "running"},
	} {
		want := stemWord(group[0])
		for _, w := range group[1:] {
			if got := stemWord(w); got != want {
				t.Errorf("stemWord(%q) = %q, want %q (as %q)", w, got, want, group[0])
			}
		}
	}
}

func TestFirstSentence(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead.", "Read the complete contents of a file as text."},
		{"  Echoes   back\nthe input string", "Echoes back the input string"},
		{"Use e.g. glob patterns. More.", "Use e.g. glob patterns."},
		{"ファイルを読みます。詳細", "ファイルを読みます。"},
		{"", ""},
	} {
		if got := firstSentence(c.in, 160); got != c.want {
			t.Errorf("firstSentence(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	long := "word " + string(make([]byte, 0))
	for range 60 {
		long += "word "
	}
	if got := firstSentence(long, 40); len(got) > 40+len("…") {
		t.Errorf("firstSentence(long) = %q (%d bytes), want ≤ 40 + ellipsis", got, len(got))
	}
}

func TestExtractParams(t *testing.T) {
	raw := []byte(`{"type":"object","properties":{
		"path":{"type":"string","description":"Where to write"},
		"entities":{"type":"array","items":{"type":"object","properties":{
			"name":{"type":"string","description":"The name of the entity"},
			"entityType":{"type":"string"}}}},
		"mode":{"anyOf":[{"type":"object","properties":{"append":{"type":"boolean","title":"Append instead"}}}]}}}`)
	got := extractParams(raw)
	want := []Param{
		{"entities", ""}, {"entities.entityType", ""}, {"entities.name", "The name of the entity"},
		{"mode", ""}, {"mode.append", "Append instead"}, {"path", "Where to write"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("extractParams = %v, want %v", got, want)
	}
	if got := extractParams([]byte(`not json`)); got != nil {
		t.Errorf("extractParams(bad) = %v, want nil", got)
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"get_file-info", "HTTPServer base64", "ファイルを読む", "Überprüfe Dateien", "caf茅 37.7749鎺 N", "", "a.b.c", "x\u0301y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range tokenize(s, nil) {
			if tok == "" || !utf8.ValidString(tok) && utf8.ValidString(s) {
				t.Fatalf("tokenize(%q) produced %q", s, tok)
			}
		}
		queryTerms(s, expansionWeight)
		splitClauses(s)
		firstSentence(s, 40)
		nameWords(s)
	})
}
