package tokenbench

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCatalog(t *testing.T) {
	snaps := []Snapshot{
		{Server: "a", Tools: []Tool{{Name: "x"}, {Name: "y"}}},
		{Server: "b", Tools: []Tool{{Name: "z"}}},
		{Server: "empty"},
	}
	type got struct {
		Server, CopyOf string
		Tools          int
	}
	summary := func(cat []Snapshot) []got {
		var out []got
		for _, s := range cat {
			out = append(out, got{s.Server, s.CopyOf, len(s.Tools)})
		}
		return out
	}
	tests := []struct {
		n    int
		want []got
	}{
		{1, []got{{"a", "", 1}}},
		{3, []got{{"a", "", 2}, {"b", "", 1}}},
		{5, []got{{"a", "", 2}, {"b", "", 1}, {"a-2", "a", 2}}},
		{6, []got{{"a", "", 2}, {"b", "", 1}, {"a-2", "a", 2}, {"b-2", "b", 1}}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, summary(Catalog(snaps, tt.n))); diff != "" {
			t.Errorf("Catalog(%d) (-want +got):\n%s", tt.n, diff)
		}
	}
	if len(snaps[0].Tools) != 2 || snaps[0].Server != "a" {
		t.Errorf("Catalog changed its input: %+v", snaps[0])
	}
}

func TestToolListJSON(t *testing.T) {
	snaps := []Snapshot{{Server: "a", Tools: []Tool{{Name: "x", Title: "X", Description: "Use <b> & co", InputSchema: json.RawMessage(`{"type": "object"}`), OutputSchema: json.RawMessage(`{}`)}}}}
	want := `[{"name":"x","description":"Use <b> & co","inputSchema":{"type":"object"}}]`
	if got := ToolListJSON(snaps); got != want {
		t.Errorf("ToolListJSON = %s, want %s", got, want)
	}
}

// TestData checks the snapshots: at least 200 distinct real tools, each with
// a name and an object input schema, and the tools of the scenario.
func TestData(t *testing.T) {
	snaps, err := Load(dataFile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	names := map[string]bool{}
	for _, s := range snaps {
		if s.Server == "" || s.Package == "" || s.CopyOf != "" {
			t.Errorf("snapshot %q (%s): want a server, a package and no copyOf", s.Server, s.Package)
		}
		for _, tl := range s.Tools {
			var schema struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(tl.InputSchema, &schema); err != nil || schema.Type != "object" {
				t.Errorf("%s.%s: input schema is not an object schema: %s", s.Server, tl.Name, tl.InputSchema)
			}
			names[s.Server+"."+tl.Name] = true
			n++
		}
	}
	if n < 200 || len(names) != n {
		t.Errorf("%d tools, %d distinct; want >= 200, all distinct", n, len(names))
	}
	for _, u := range used {
		if !names[u] {
			t.Errorf("the scenario's tool %s is not in %s", u, dataFile)
		}
	}
}
