package tokens

import "testing"

func TestCount(t *testing.T) {
	// Reference counts of OpenAI's tokenizer page for GPT-4o (o200k_base).
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"hello world", 2},
		{"Hello, world!", 4},
	}
	for _, tt := range tests {
		if got := Count(tt.in); got != tt.want {
			t.Errorf("Count(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func BenchmarkCount(b *testing.B) {
	text := "Available modules: import * as filesystem from './mcp/filesystem';\nAlready loaded: filesystem.read_text_file"
	Count(text)
	for b.Loop() {
		Count(text)
	}
}
