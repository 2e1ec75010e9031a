package tsgen

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompactDoc(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{"@default 3"}, []string{"@default 3"}},
		{[]string{"Number of messages", "to retrieve (default 10)", "@default 10"}, []string{"Number of messages to retrieve (default 10)"}},
		{[]string{"Sort order. Defaults to \"name\".", "@default \"name\""}, []string{"Sort order. Defaults to \"name\"."}},
		{[]string{"Page size (default 30)", "@minimum 1", "@default 50"}, []string{"Page size (default 30) @minimum 1 @default 50"}},
		{[]string{"A default value", "@default false"}, []string{"A default value @default false"}},
		{[]string{strings.Repeat("word ", 40) + "end. " + strings.Repeat("more ", 40)}, []string{strings.Repeat("word ", 40) + "end."}},
	}
	for _, tt := range tests {
		if got := compactDoc(tt.in); !cmp.Equal(got, tt.want) {
			t.Errorf("compactDoc(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"Short.", 10, "Short."},
		{"One two. Three four.", 12, "One two."},
		{"One two three four", 12, "One two…"},
		{"éééééé", 5, "éé…"},
	}
	for _, tt := range tests {
		if got := clip(tt.in, tt.max); got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestToolSummary(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Reads a file.", "Reads a file."},
		{"Search the index.\n\nReturns at most `limit` hits.", "Search the index. Returns at most `limit` hits."},
		{"Scrape a page.\n**Best for:** single pages.\n- one\n- two", "Scrape a page."},
		{"Scrape a page. Usage examples:\n```json\n{}\n```", "Scrape a page."},
		{"Think step by step.\n\nWhen to use:\n1. Break down problems", "Think step by step."},
		{"# Heading\ntext", ""},
	}
	for _, tt := range tests {
		if got := toolSummary(tt.in); got != tt.want {
			t.Errorf("toolSummary(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
