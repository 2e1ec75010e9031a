package catalog

import (
	"context"
	"slices"
	"testing"
)

// rankingCases are requests a user could make to an agent holding the
// everything, filesystem and memory servers; want must be among the first
// top results.
var rankingCases = []struct {
	query string
	want  string
	top   int
}{
	{"remember that Alice works at Acme", "memory.create_entities|memory.add_observations|memory.create_relations", 1},
	{"show me what is in this folder", "filesystem.list_directory", 3},
	{"save the results to a file", "filesystem.write_file", 3},
	{"what do you know about Bob?", "memory.search_nodes|memory.open_nodes|memory.read_graph", 3},
	{"add two numbers", "everything.get-sum", 1},
	{"rename report.txt to final.txt", "filesystem.move_file", 1},
	{"find all markdown files under src", "filesystem.search_files", 3},
	{"change a line in config.yaml", "filesystem.edit_file", 3},
	{"make a new folder called build", "filesystem.create_directory", 1},
	{"how big is this file and when was it modified", "filesystem.get_file_info", 3},
	{"compress a file with gzip", "everything.gzip-file-as-resource", 1},
	{"print the environment variables", "everything.get-env", 3},
	{"forget everything about Carol", "memory.delete_entities|memory.delete_observations", 3},
	{"open the contents of notes.txt", "filesystem.read_text_file|filesystem.read_file", 3},
	{"Alice is Bob's manager", "memory.create_relations", 5},
}

func wantIn(results []string, want string, top int) bool {
	for _, w := range splitAlt(want) {
		if i := slices.Index(results, w); i >= 0 && i < top {
			return true
		}
	}
	return false
}

func splitAlt(s string) []string {
	var out []string
	start := 0
	for i := range len(s) + 1 {
		if i == len(s) || s[i] == '|' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func TestRankingRealServers(t *testing.T) {
	ctx := context.Background()
	tools := realTools(t)
	for _, mode := range []Mode{BM25, Hybrid} {
		opts := Options{}
		if mode == Hybrid {
			opts.Embedder = testEmbedder(t)
		}
		ix, err := Build(ctx, tools, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(mode.String()+"/"+embedderName(opts.Embedder), func(t *testing.T) {
			for _, c := range rankingCases {
				res, err := ix.Search(ctx, c.query, SearchOptions{Limit: 5, Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				if got := names(res); !wantIn(got, c.want, c.top) {
					t.Errorf("Search(%q) = %v, want %s in the top %d", c.query, got, c.want, c.top)
				}
			}
		})
	}
}

func embedderName(e Embedder) string {
	if e == nil {
		return "none"
	}
	return e.Name()
}
