package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-conductor/conductor/internal/config"
)

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func resultText(r *mcp.CallToolResult) string {
	var parts []string
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// A run the conductor cannot attempt comes back as a tool error the model
// can read, not as a protocol error.
func TestWorkspaceFullIsAToolError(t *testing.T) {
	c := newConductor(t, func(cfg *config.Config) {
		cfg.Store.MaxWorkspaceBytes = 1024
		cfg.Sandbox.Permissions = config.Permissions{Read: []string{cfg.Workspace}, Write: []string{cfg.Workspace}}
	})
	cs := connectSession(t, New(c, nil))
	first := callTool(t, cs, "execute_code", map[string]any{"code": `await Deno.writeTextFile("./workspace/big.txt", "x".repeat(4096)); "written"`})
	if !first.IsError {
		t.Errorf("a run that filled the workspace past its cap succeeded: %s", resultText(first))
	}
	second := callTool(t, cs, "execute_code", map[string]any{"code": "1"})
	if !second.IsError || !strings.Contains(strings.ToLower(resultText(second)), "workspace") {
		t.Errorf("run in a full workspace = %q (isError %v), want an error naming the workspace", resultText(second), second.IsError)
	}
}

func TestExecuteCodeDescriptionCarriesContext(t *testing.T) {
	everything := toolPath(t, "mcp-server-everything")
	c := newConductor(t, func(cfg *config.Config) {
		cfg.Servers = []config.Server{{Name: "everything", Command: everything, Transport: "stdio"}}
	})
	cs := connectSession(t, New(c, nil))
	desc := func() string {
		tools, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range tools.Tools {
			if tl.Name == "execute_code" {
				return tl.Description
			}
		}
		t.Fatal("no execute_code tool")
		return ""
	}
	if strings.Contains(desc(), "Already loaded") {
		t.Fatalf("fresh session's description already lists loaded tools: %q", desc())
	}
	if r := callTool(t, cs, "load_tools", map[string]any{"names": []string{"everything.echo"}}); r.IsError {
		t.Fatalf("load_tools: %s", resultText(r))
	}
	d := desc()
	for _, want := range []string{`import * as everything from "./mcp/everything.ts";`, "Already loaded: everything.echo"} {
		if !strings.Contains(d, want) {
			t.Errorf("execute_code description lacks %q:\n%s", want, d)
		}
	}
	res, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "conductor://context"})
	if err != nil || len(res.Contents) == 0 || !strings.Contains(res.Contents[0].Text, "everything.echo") {
		t.Errorf("conductor://context = %+v, %v", res, err)
	}
}
