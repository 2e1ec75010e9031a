package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/telemetry"
)

// TestHTTPToolCallMetrics runs a program that calls an upstream tool and
// checks the tool-call, search and upstream metrics. Tool calls are counted
// through ExecOptions.OnToolCall.
func TestHTTPToolCallMetrics(t *testing.T) {
	everything := toolPath(t, "mcp-server-everything")
	deno := toolPath(t, "deno")
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.Deno = deno
	cfg.Workspace = dir + "/ws"
	cfg.Servers = []config.Server{{Name: "everything", Command: everything, Transport: "stdio"}}
	m := telemetry.New()
	c, err := conductor.New(cfg, conductor.Options{Audit: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := New(c, nil)
	s.SetMetrics(m)
	ln := listenLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := &httpFixture{s: s, m: m, url: "http://" + ln.Addr().String(), stop: cancel, stopped: make(chan error, 1)}
	go func() { f.stopped <- s.Serve(ctx, ln, HTTPOptions{}) }()
	t.Cleanup(func() { f.shutdown(t) })

	waitFor(t, "everything to be up", 30*time.Second, func() bool {
		return value(f.scrape(t, ""), "conductor_upstream_up", map[string]string{"server": "everything"}) == 1
	})
	cs := f.connect(t, "", nil)
	cctx := context.Background()
	if res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "search_tools", Arguments: map[string]any{"query": "echo a message"}}); err != nil || res.IsError {
		t.Fatalf("search_tools: %v %v", err, res)
	}
	res, err := execCode(cctx, cs, `import * as e from "./mcp/everything";
const a = await e.echo({message: "hi"});
let bad = ""; try { await e.echo({} as any) } catch (err) { bad = "refused" }
[a, bad]`)
	if err != nil || res.IsError {
		t.Fatalf("program: %v %s", err, text(res))
	}
	fams := f.scrape(t, "")
	if got := value(fams, "conductor_tool_calls_total", map[string]string{"server": "everything", "tool": "echo", "outcome": "ok"}); got != 1 {
		t.Errorf("tool_calls{everything,echo,ok} = %v, want 1", got)
	}
	if got := value(fams, "conductor_tool_call_duration_seconds", map[string]string{"server": "everything", "tool": "echo"}); got < 1 {
		t.Errorf("tool call duration count = %v, want >= 1", got)
	}
	if got := value(fams, "conductor_search_duration_seconds", nil); got != 1 {
		t.Errorf("search latency count = %v, want 1", got)
	}
}

// TestHTTPStateless serves without sessions: two clients of one principal
// share its default conversation, which has a fixed id, so any replica with
// the same store and workspace resolves it alike.
func TestHTTPStateless(t *testing.T) {
	f := startHTTP(t, HTTPOptions{Token: "tok", Stateless: true}, workspaceRW)
	ctx := context.Background()
	a, b := f.connect(t, "tok", nil), f.connect(t, "tok", nil)
	if res, err := execCode(ctx, a, `await Deno.writeTextFile("workspace/note.txt", "shared"); 1`); err != nil || res.IsError {
		t.Fatalf("write: %v %v", err, text(res))
	}
	if res, err := execCode(ctx, b, readNote); err != nil || !strings.Contains(text(res), "shared") {
		t.Fatalf("b reads %v %v", err, res)
	}
	code, _, h := initialize(t, f.url, "Bearer tok", "")
	if code != 200 || h.Get("Mcp-Session-Id") != "" {
		t.Errorf("stateless initialize: %d, Mcp-Session-Id %q (want none)", code, h.Get("Mcp-Session-Id"))
	}
	if n := f.s.activeSessions(); n != 0 {
		t.Errorf("stateless mode counts %d sessions", n)
	}
}

// TestHTTPHostHeaderOnLoopback: the SDK refuses a foreign Host on a
// loopback listener (DNS rebinding), before auth.
func TestHTTPHostHeaderOnLoopback(t *testing.T) {
	f := startHTTP(t, HTTPOptions{}, nil)
	req, _ := http.NewRequest("POST", f.url+"/mcp", strings.NewReader(`{}`))
	req.Host = "evil.example.com"
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host on loopback: %d, want 403", resp.StatusCode)
	}
}

// TestHTTPPrincipalLoadThenContext: load_tools of an authenticated
// principal marks tools loaded in the same conversation execute_code and
// conductor://context use.
func TestHTTPPrincipalLoadThenContext(t *testing.T) {
	everything := toolPath(t, "mcp-server-everything")
	f := startHTTP(t, HTTPOptions{Token: "tok"}, func(c *config.Config) {
		c.Servers = []config.Server{{Name: "everything", Command: everything, Transport: "stdio"}}
	})
	cs := f.connect(t, "tok", nil)
	ctx := context.Background()
	lr, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "load_tools", Arguments: map[string]any{"names": []string{"everything.echo"}}})
	if err != nil || lr.IsError {
		t.Fatalf("load_tools: %v %v", err, lr)
	}
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "conductor://context"})
	if err != nil || len(rr.Contents) == 0 || !strings.Contains(rr.Contents[0].Text, "everything.echo") {
		t.Fatalf("conductor://context after load_tools = %v, %v; want everything.echo loaded", rr, err)
	}
	res, err := execCode(ctx, cs, `import * as e from "./mcp/everything"; await e.echo({message: "x"})`)
	if err != nil || res.IsError || !strings.Contains(text(res), "Echo: x") {
		t.Fatalf("execute_code: %v %v", err, text(res))
	}
}
