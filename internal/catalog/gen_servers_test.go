package catalog

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var updateServers = flag.Bool("update-servers", false, "regenerate testdata/<server>.json from the npm MCP servers in tools/node_modules")

// TestUpdateServerTools refreshes the real tool lists used by the ranking
// tests. It runs only with -update-servers, so ordinary test runs never need
// Node; the saved files are the inputs of the ranking tests.
func TestUpdateServerTools(t *testing.T) {
	if !*updateServers {
		t.Skip("run with -update-servers to regenerate testdata")
	}
	bin := filepath.Join("..", "..", "tools", "node_modules", ".bin")
	dir := t.TempDir()
	for _, s := range []struct {
		name string
		args []string
	}{
		{"everything", []string{"stdio"}},
		{"filesystem", []string{dir}},
		{"memory", nil},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.Command(filepath.Join(bin, "mcp-server-"+s.name), s.args...)
		cmd.Env = append(os.Environ(), "MEMORY_FILE_PATH="+filepath.Join(dir, "memory.json"))
		client := mcp.NewClient(&mcp.Implementation{Name: "catalog-testdata", Version: "0"}, nil)
		session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			cancel()
			t.Fatalf("connect %s: %v", s.name, err)
		}
		res, err := session.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("list tools %s: %v", s.name, err)
		}
		var tools []Tool
		for _, tl := range res.Tools {
			schema, err := json.Marshal(tl.InputSchema)
			if err != nil {
				t.Fatal(err)
			}
			tools = append(tools, Tool{Server: s.name, Name: tl.Name, Description: tl.Description, InputSchema: schema})
		}
		session.Close()
		cancel()
		b, err := json.MarshalIndent(tools, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", s.name+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d tools", s.name, len(tools))
	}
}
