package tsgen

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

// realServers are the npm MCP servers whose tool lists are snapshotted in
// testdata/servers/<name>.json. The snapshots let the type-check tests run
// offline; TestLiveServers compares them with what the binaries list today.
var realServers = []struct {
	name string // server name as the conductor would configure it
	bin  string // executable under tools/node_modules/.bin
	args func(t *testing.T) []string
}{
	{"everything", "mcp-server-everything", func(*testing.T) []string { return []string{"stdio"} }},
	{"filesystem", "mcp-server-filesystem", func(t *testing.T) []string { return []string{t.TempDir()} }},
	{"memory", "mcp-server-memory", func(*testing.T) []string { return nil }},
}

// listLive starts the server binary over stdio with the official Go SDK
// client and returns its tools in the order the server lists them.
func listLive(t *testing.T, bin string, args []string) []Tool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MEMORY_FILE_PATH="+filepath.Join(t.TempDir(), "memory.jsonl"))
	client := mcp.NewClient(&mcp.Implementation{Name: "tsgen-test", Version: "0"}, nil)
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", filepath.Base(bin), err)
	}
	defer session.Close()
	var tools []Tool
	for tool, err := range session.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("list tools of %s: %v", filepath.Base(bin), err)
		}
		tools = append(tools, fromSDK(t, tool))
	}
	return tools
}

func fromSDK(t *testing.T, tool *mcp.Tool) Tool {
	t.Helper()
	raw := func(v any) json.RawMessage {
		if v == nil {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("tool %q: marshal schema: %v", tool.Name, err)
		}
		return b
	}
	return Tool{Name: tool.Name, Title: tool.Title, Description: tool.Description,
		InputSchema: raw(tool.InputSchema), OutputSchema: raw(tool.OutputSchema)}
}

// TestLiveServers lists the tools of the real servers and compares them with
// the snapshots in testdata/servers/; with -update it rewrites the snapshots
// (input, module and declarations).
func TestLiveServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Node.js MCP servers")
	}
	for _, s := range realServers {
		t.Run(s.name, func(t *testing.T) {
			bin := testenv.Tool(t, s.bin)
			tools := listLive(t, bin, s.args(t))
			if len(tools) == 0 {
				t.Fatalf("%s lists no tools", s.bin)
			}
			in := caseInput{Server: s.name, Tools: tools}
			path := filepath.Join("testdata", "servers", s.name+".txtar")
			if *update {
				raw, err := json.MarshalIndent(in, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				c := goldenCase{name: "servers/" + s.name, path: path, in: in,
					a: &archive{comment: "Tools of " + s.bin + " as listed by the Go SDK client; rewritten by -update.\n"}}
				c.a.set("input.json", string(raw)+"\n")
				module, decls := c.render(t)
				c.a.set("module.ts", module)
				c.a.set("decls.d.ts", decls)
				if err := os.WriteFile(path, c.a.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no snapshot: %v; run go test ./internal/tsgen -update", err)
			}
			a, err := parseArchive(data)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := a.get("input.json")
			var snap caseInput
			if err := json.Unmarshal([]byte(raw), &snap); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(normalizeTools(t, snap.Tools), normalizeTools(t, tools)); diff != "" {
				t.Errorf("%s lists other tools than %s (-snapshot +live); run go test ./internal/tsgen -update:\n%s", s.bin, path, diff)
			}
		})
	}
}

// normalizeTools decodes the schemas so that formatting does not count.
func normalizeTools(t *testing.T, tools []Tool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, tool := range tools {
		b, err := json.Marshal(tool)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
