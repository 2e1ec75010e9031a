// Package tokenbench measures what the conductor costs an agent in tokens
// (o200k_base, internal/tokens) against the traditional way of putting every
// tool schema of every MCP server in the model's context. Its test
// TestTokenTable prints the table of the README from real tool definitions
// (testdata/servers.json, captured from npm MCP servers by capture.go, in
// the order of testdata/capture.json: the 100 tools of the official
// @modelcontextprotocol servers first, then other vendors' servers).
//
// The package holds only the benchmark and its data; nothing imports it.
package tokenbench

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Tool is one tools/list entry as a server sent it; the schemas are kept byte
// for byte.
type Tool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
}

// Snapshot is the tool list of one MCP server.
type Snapshot struct {
	Server  string `json:"server"`
	Package string `json:"package"` // npm name@version
	// CopyOf names the server whose tools a copy repeats under another name
	// (to reach a catalog size when the real servers have fewer tools).
	CopyOf string `json:"copyOf,omitempty"`
	Tools  []Tool `json:"tools"`
}

// Load reads snapshots written by capture.go.
func Load(path string) ([]Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s []Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Catalog takes n tools from snaps: whole servers in order, the last one cut
// short. When the servers hold fewer than n tools, it goes round again with
// copies named <server>-2, <server>-3, ... (CopyOf set): a deployment that
// connects the same server twice, e.g. for two accounts.
func Catalog(snaps []Snapshot, n int) []Snapshot {
	var out []Snapshot
	total := 0
	for round := 1; total < n; round++ {
		progress := false
		for _, s := range snaps {
			if total >= n {
				break
			}
			if len(s.Tools) == 0 {
				continue
			}
			progress = true
			if round > 1 {
				s.CopyOf, s.Server = s.Server, fmt.Sprintf("%s-%d", s.Server, round)
			}
			k := min(len(s.Tools), n-total)
			s.Tools = s.Tools[:k]
			total += k
			out = append(out, s)
		}
		if !progress {
			break
		}
	}
	return out
}

// ToolListJSON is what an MCP client puts in the model's context for these
// tools: the JSON array of {name, description, inputSchema} (the tool
// definitions of the model's API, under any field names).
func ToolListJSON(snaps []Snapshot) string {
	type entry struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		InputSchema json.RawMessage `json:"inputSchema"`
	}
	var list []entry
	for _, s := range snaps {
		for _, t := range s.Tools {
			list = append(list, entry{t.Name, t.Description, t.InputSchema})
		}
	}
	return marshal(list)
}

// marshal is JSON as a client sends it: compact, with <, > and & as they are
// (encoding/json would escape them as \u003c, which costs tokens no client
// spends).
func marshal(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only values that always marshal are passed
	}
	return strings.TrimSuffix(b.String(), "\n")
}
