package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

// The test binary doubles as the conductor: with CONDUCTOR_TEST_MAIN=1 it
// runs main() with its arguments, so tests start `conductor stdio` for real.
func TestMain(m *testing.M) {
	if os.Getenv("CONDUCTOR_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// repoTools is where `make` installs Deno and the MCP servers.
func repoTools(t *testing.T, name string) string { return testenv.Tool(t, name) }

// conductorCmd returns the test binary set up to act as `conductor args...`
// with a private workspace and cache.
func conductorCmd(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	deno := repoTools(t, "deno")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(self, args...)
	cmd.Env = append([]string{
		"CONDUCTOR_TEST_MAIN=1",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"MCP_CONDUCTOR_DENO=" + deno,
		"MCP_CONDUCTOR_WORKSPACE=" + filepath.Join(dir, "ws"),
		"MCP_CONDUCTOR_CACHE=" + cacheDir(dir),
		"MCP_CONDUCTOR_STORE=sqlite://" + filepath.Join(dir, "state.db"),
	}, env...)
	return cmd
}

// cacheDir shares the test cache (embedding model) when make provides one.
func cacheDir(fallback string) string {
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		return c
	}
	return filepath.Join(fallback, "cache")
}

func connect(t *testing.T, cmd *exec.Cmd) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callExec(t *testing.T, cs *mcp.ClientSession, args map[string]any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code", Arguments: args})
	if err != nil {
		t.Fatalf("execute_code: %v", err)
	}
	var sc map[string]any
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &sc)
	}
	return res, sc
}

func TestStdioExecuteCode(t *testing.T) {
	cs := connect(t, conductorCmd(t, nil, "stdio"))
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "execute_code" {
		t.Errorf("tools without servers = %v, want [execute_code]", names)
	}

	res, sc := callExec(t, cs, map[string]any{"code": "const n: number = 20; console.log('hi'); n + 22"})
	if res.IsError {
		t.Fatalf("isError: %+v", res.Content)
	}
	if sc["result"] != float64(42) || sc["stdout"] != "hi\n" || sc["error"] != nil {
		t.Errorf("structured = %v, want result 42, stdout hi", sc)
	}

	// The workspace persists within the session's conversation... but only as
	// the administrator allows: with zero permissions, writing fails.
	res, sc = callExec(t, cs, map[string]any{"code": "await Deno.writeTextFile('./workspace/a.txt', 'x')"})
	if !res.IsError {
		t.Fatalf("write with zero permissions succeeded: %v", sc)
	}
	if e, _ := sc["error"].(map[string]any); e["kind"] != "permission" {
		t.Errorf("error = %v, want kind permission", sc["error"])
	}

	// Syntax errors carry the position.
	res, sc = callExec(t, cs, map[string]any{"code": "let x = ;"})
	e, _ := sc["error"].(map[string]any)
	if !res.IsError || e["kind"] != "syntax" || e["line"] != float64(1) {
		t.Errorf("syntax error = %v", sc)
	}

	// No way to pass permissions: unknown fields are rejected.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code",
		Arguments: map[string]any{"code": "1", "permissions": map[string]any{"read": []string{"/"}}}})
	if err == nil && !r.IsError {
		t.Errorf("execute_code accepted an unknown 'permissions' field")
	}
}

func TestStdioWorkspaceAndTimeoutClamp(t *testing.T) {
	cmd := conductorCmd(t, []string{
		"MCP_CONDUCTOR_RUN_ARGS=allow-read=${env:MCP_CONDUCTOR_WORKSPACE},allow-write=${env:MCP_CONDUCTOR_WORKSPACE}",
		"MCP_CONDUCTOR_MAX_TIMEOUT=2000",
		"MCP_CONDUCTOR_DEFAULT_TIMEOUT=1000",
	}, "stdio")
	cs := connect(t, cmd)
	res, sc := callExec(t, cs, map[string]any{"code": "await Deno.writeTextFile('./workspace/a.txt', 'kept'); 1"})
	if res.IsError {
		t.Fatalf("write: %v", sc)
	}
	_, sc = callExec(t, cs, map[string]any{"code": "await Deno.readTextFile('./workspace/a.txt')"})
	if sc["result"] != "kept" {
		t.Errorf("second run read %v, want kept", sc["result"])
	}
	res, sc = callExec(t, cs, map[string]any{"code": "await new Promise(r => setTimeout(r, 60000))", "timeout_ms": 600000})
	e, _ := sc["error"].(map[string]any)
	if !res.IsError || e["kind"] != "timeout" || sc["timeoutClamped"] != true || sc["timeoutMs"] != float64(2000) {
		t.Errorf("clamped timeout result = %v", sc)
	}
}

func TestStdioWithServers(t *testing.T) {
	everything := repoTools(t, "mcp-server-everything")
	memory := repoTools(t, "mcp-server-memory")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conductor.json")
	b, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{
		"everything": map[string]any{"command": everything},
		"memory":     map[string]any{"command": memory, "env": map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, "mem.jsonl")}},
	}})
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cs := connect(t, conductorCmd(t, nil, "stdio", "--config", cfg))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sr, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_tools", Arguments: map[string]any{"query": "remember that Alice works at Acme"}})
	if err != nil || sr.IsError {
		t.Fatalf("search_tools: %v %v", err, sr)
	}
	text := sr.Content[0].(*mcp.TextContent).Text
	var hits []map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(text, "\n", 2)[0]), &hits); err != nil || len(hits) == 0 {
		t.Fatalf("search answer %q: %v", text, err)
	}
	if name, _ := hits[0]["name"].(string); !strings.HasPrefix(name, "memory.") {
		t.Errorf("first hit = %v, want a memory tool", hits[0])
	}

	lr, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "load_tools", Arguments: map[string]any{"names": []string{"memory.create_entities", "everything.echo"}}})
	if err != nil || lr.IsError {
		t.Fatalf("load_tools: %v %+v", err, lr)
	}
	decl := lr.Content[0].(*mcp.TextContent).Text
	for _, want := range []string{`import * as memory from "./mcp/memory.ts";`, "create_entities", "echo"} {
		if !strings.Contains(decl, want) {
			t.Errorf("load_tools answer lacks %q:\n%s", want, decl)
		}
	}
	bad, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "load_tools", Arguments: map[string]any{"names": []string{"memory.create_entitie"}}})
	if err != nil || !bad.IsError || !strings.Contains(bad.Content[0].(*mcp.TextContent).Text, "memory.create_entities") {
		t.Errorf("unknown tool answer should suggest memory.create_entities: %v %+v", err, bad)
	}

	code := `
import * as memory from "./mcp/memory";
import * as everything from "./mcp/everything";
const [created, echoed] = await Promise.all([
  memory.create_entities({entities: [{name: "Alice", entityType: "person", observations: ["works at Acme"]}]}),
  everything.echo({message: "hi"}),
]);
let refused = "";
try { await memory.create_entities({entities: "nope"} as any); } catch (e) { refused = String(e.message); }
({created: created.entities?.length ?? created.length, echoed, refused});
`
	res, sc := callExec(t, cs, map[string]any{"code": code})
	if res.IsError {
		t.Fatalf("program failed: %v", sc)
	}
	out, _ := sc["result"].(map[string]any)
	if out["echoed"] != "Echo: hi" || out["created"] != float64(1) || !strings.Contains(out["refused"].(string), "invalid arguments") {
		t.Errorf("program result = %v", out)
	}
}

func TestExecCommand(t *testing.T) {
	cmd := conductorCmd(t, nil, "exec", "--json", "-")
	cmd.Stdin = strings.NewReader("[1, 2, 3].map(x => x * 2)")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("exec --json printed %q: %v", out, err)
	}
	if b, _ := json.Marshal(res["result"]); string(b) != "[2,4,6]" || res["error"] != nil {
		t.Errorf("exec result = %v", res)
	}

	cmd = conductorCmd(t, nil, "exec", "-")
	cmd.Stdin = strings.NewReader("throw new Error('boom')")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("failing program: exit %v, want status 1", err)
	}
	if !strings.Contains(stderr.String(), "boom") {
		t.Errorf("stderr %q lacks the error", stderr.String())
	}
}

func TestBadConfigRefusedAtStartup(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"MCP_CONDUCTOR_RUN_ARGS=allow-all", "allow-all"},
		{"MCP_CONDUCTOR_RUN_ARGS=allow-ffi", "allow-ffi"},
		{"MCP_CONDUCTOR_DEFAULT_TIMEOUT=soon", "MCP_CONDUCTOR_DEFAULT_TIMEOUT"},
		{"MCP_CONDUCTOR_MAX_MEMORY_MB=-1", "MCP_CONDUCTOR_MAX_MEMORY_MB"},
		{"MCP_CONDUCTOR_DENO=/nonexistent/deno", "MCP_CONDUCTOR_DENO"},
	} {
		cmd := conductorCmd(t, []string{tc.env}, "stdio")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdin = strings.NewReader("")
		err := cmd.Run()
		if err == nil {
			t.Errorf("%s: the server started", tc.env)
			continue
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: stderr %q does not name %q", tc.env, stderr.String(), tc.want)
		}
	}
}
