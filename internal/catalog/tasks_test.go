package catalog

import (
	"context"
	"testing"
)

// taskCases are long, task-style requests on a mixed catalog: the real
// everything/filesystem/memory tools plus testdata/tasks.json, hand-written
// after the public tool lists of the puppeteer, fetch, brave-search, slack
// and github MCP servers (plus a tool with no description and a German
// one). Every tool in need must be in the top 8; the requests name none of
// them, and most need a generic helper (write a file, open a page).
var taskCases = []struct {
	query string
	need  []string // each entry: alternatives joined by |
}{
	{"find the best selling GPUs on Amazon and give me the links",
		[]string{"brave-search.brave_web_search|fetch.fetch|puppeteer.puppeteer_navigate"}},
	{"open example.com in the browser and take a screenshot",
		[]string{"puppeteer.puppeteer_navigate", "puppeteer.puppeteer_screenshot"}},
	{"summarize the latest messages in the team channel and save the summary to notes.md",
		[]string{"slack.slack_get_channel_history", "filesystem.write_file"}},
	{"download the README of the conductor repository and keep a local copy",
		[]string{"github.get_file_contents", "filesystem.write_file"}},
	{"add these rows to the budget spreadsheet",
		[]string{"sheets.append_rows"}},
	{"tell the team on slack that the release is out",
		[]string{"slack.slack_post_message"}},
	{"wie wird das Wetter morgen in Hamburg",
		[]string{"wetter.vorhersage"}},
	{"read the page at https://go.dev/doc and remember the key facts",
		[]string{"fetch.fetch|puppeteer.puppeteer_navigate", "memory.create_entities|memory.add_observations"}},
}

func TestTaskRequests(t *testing.T) {
	ctx := context.Background()
	tools := append(realTools(t), realTools(t, "tasks")...)
	for _, mode := range []Mode{BM25, Hybrid} {
		opts := Options{}
		if mode == Hybrid {
			opts.Embedder = testEmbedder(t)
		}
		ix, err := Build(ctx, tools, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(mode.String(), func(t *testing.T) {
			found, total := 0, 0
			for _, c := range taskCases {
				res, err := ix.Search(ctx, c.query, SearchOptions{Limit: 8, Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				got := names(res)
				for _, need := range c.need {
					total++
					if wantIn(got, need, 8) {
						found++
					} else {
						t.Logf("Search(%q) = %v, missing %s", c.query, got, need)
					}
				}
			}
			t.Logf("%s: %d of %d needed tools in the top 8", mode, found, total)
			if min := total * 3 / 4; found < min {
				t.Errorf("%s: %d of %d needed tools in the top 8, want ≥ %d", mode, found, total, min)
			}
		})
	}
}
