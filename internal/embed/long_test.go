package embed

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func dotf(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestEmbedLongShortTextIsEmbed(t *testing.T) {
	m := loadTestModel(t)
	for _, text := range []string{"", "hello world", "read_file: Read the complete contents of a file"} {
		got, err := m.EmbedLong(text)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := m.Embed([]string{text})
		if diff := cmp.Diff(want[0], got); diff != "" {
			t.Errorf("EmbedLong(%q) differs from Embed (-want +got):\n%s", text, diff)
		}
	}
}

// TestEmbedLongSeesTheTail: a long tool description whose last sentence
// names what the tool is for must match a request for that purpose
// better than the cut-off embedding does.
func TestEmbedLongSeesTheTail(t *testing.T) {
	m := loadTestModel(t)
	head := strings.Repeat("The server keeps files in allowed directories and checks every path before use. ", 12)
	text := head + "This tool returns the weather forecast for a city, with temperature and rain for the next days."
	if n := m.TokenCount(text); n <= m.MaxTokens()+40 {
		t.Fatalf("TokenCount = %d, want the last sentence well past MaxTokens", n)
	}
	long, err := m.EmbedLong(text)
	if err != nil {
		t.Fatal(err)
	}
	if n := dotf(long, long); n < 0.9999 || n > 1.0001 {
		t.Errorf("|EmbedLong|² = %v, want 1", n)
	}
	vs, _ := m.Embed([]string{text, "what will the weather be like in Paris tomorrow"})
	cut, query := vs[0], vs[1]
	l, c := dotf(long, query), dotf(cut, query)
	t.Logf("similarity to a weather request: EmbedLong %.3f, Embed %.3f", l, c)
	if l <= c {
		t.Errorf("similarity to a weather request: EmbedLong %.3f, Embed (cut) %.3f; want EmbedLong higher", l, c)
	}
}

func TestSplit(t *testing.T) {
	m := loadTestModel(t)
	text := strings.Repeat("One short sentence about files. ", 40) + "\nA line about the weather"
	parts := m.split(text)
	if len(parts) < 2 {
		t.Fatalf("split: %d parts, want several", len(parts))
	}
	for i, p := range parts {
		if n := m.TokenCount(p); n > m.MaxTokens() {
			t.Errorf("part %d: %d tokens, want <= %d", i, n, m.MaxTokens())
		}
		if i < len(parts)-1 && !strings.HasSuffix(p, ".") {
			t.Errorf("part %d ends %q, want a sentence end", i, p[max(0, len(p)-20):])
		}
	}
	if !strings.HasSuffix(parts[len(parts)-1], "weather") {
		t.Errorf("last part %q does not end the text", parts[len(parts)-1])
	}
}

// TestEmbedConcurrent runs Embed from several goroutines (and Embed's own
// workers); under -race it checks the model is safe for concurrent use.
func TestEmbedConcurrent(t *testing.T) {
	m := loadTestModel(t)
	texts := []string{"hello world", "list the files in a folder", "remember that Alice works at Acme"}
	want, _ := m.Embed(texts[:1])
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := m.Embed(texts)
			if err != nil {
				t.Error(err)
				return
			}
			if diff := cmp.Diff(want[0], got[0]); diff != "" {
				t.Errorf("concurrent Embed differs (-want +got):\n%s", diff)
			}
		})
	}
	wg.Wait()
}
