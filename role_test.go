package conductor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/bridge"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
)

// startWith starts a conductor over servers with opts.
func startWith(tb testing.TB, servers []config.Server, opts conductor.Options) *conductor.Conductor {
	tb.Helper()
	return startConductor(tb, servers, nil, opts)
}

// TestRoles: a role that does not name a server cannot call its tools from
// code (the bridge refuses; nothing reaches the server), find them or load
// them; a role with allowTools sees and imports only those tools.
func TestRoles(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "go.log")
	c := startWith(t, []config.Server{
		goServer(t, "go", rec),
		{Name: "everything", Command: toolPath(t, "mcp-server-everything"), Args: []string{"stdio"}},
	}, conductor.Options{})
	role := &conductor.Role{Name: "analyst", Servers: map[string]conductor.ToolPolicy{
		"everything": {AllowTools: []string{"get-sum"}},
	}}
	who := conductor.Caller{Principal: "jwt:ann", Role: role}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conv, err := c.CreateConversationFor(who.Principal)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var calls []error
	exec := func(code string) *conductor.ExecResult {
		t.Helper()
		res, err := c.Execute(ctx, conv, code, conductor.ExecOptions{Principal: who.Principal, Role: role, Timeout: time.Minute,
			OnToolCall: func(server, tool string, d time.Duration, err error) {
				mu.Lock()
				calls = append(calls, err)
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Straight to the bridge, past any module: refused, never reaches "go".
	res := exec(`await (globalThis as any).__conductor_call("go", "echo", {text: "leak"})`)
	if res.Error == nil || !strings.Contains(res.Error.Message, "go.echo: refused: this principal's role does not allow this tool") {
		t.Errorf("direct call of go.echo under the role: %+v, want the bridge's refusal", res.Error)
	}
	if len(calls) != 1 || !errors.Is(calls[0], bridge.ErrRefused) {
		t.Errorf("OnToolCall saw %v, want one refused call", calls)
	}
	res = exec(`await (globalThis as any).__conductor_call("everything", "echo", {message: "x"})`)
	if res.Error == nil || !strings.Contains(res.Error.Message, "refused") {
		t.Errorf("direct call of everything.echo (not in allowTools): %+v, want a refusal", res.Error)
	}
	// The module of a closed server does not exist for the role.
	res = exec(`import * as go from "./mcp/go"; await go.echo({text: "leak"})`)
	if res.Error == nil || !strings.Contains(res.Error.Message, `no MCP server is named "go" (servers: everything)`) {
		t.Errorf("import ./mcp/go under the role: %+v, want an unknown server", res.Error)
	}
	if got := records(t, rec); countPrefix(got, "call ") != 0 {
		t.Errorf("the go server received %q, want no call", got)
	}
	// The allowed tool works; the module exports nothing else.
	res = exec(`import * as everything from "./mcp/everything";
const names = Object.keys(everything).filter((k) => k !== k.toUpperCase()).sort();
({sum: await everything.get_sum({a: 2, b: 3}), names})`)
	if res.Error != nil || !strings.Contains(string(res.Result), `"names":["get_sum"]`) || !strings.Contains(string(res.Result), "5") {
		t.Errorf("role's module: result %s, error %+v; want get_sum only, and its sum", res.Result, res.Error)
	}
	mods, _ := filepath.Glob(filepath.Join(c.Config().Workspace, "*", "*", "mcp", ".role-*", "everything.ts"))
	mods2, _ := filepath.Glob(filepath.Join(c.Config().Workspace, "*", "mcp", ".role-*", "everything.ts"))
	mods = append(mods, mods2...)
	if len(mods) != 1 {
		t.Fatalf("role module files: %v, want one", mods)
	}
	if src, _ := os.ReadFile(mods[0]); strings.Contains(string(src), `"echo"`) || !strings.Contains(string(src), "get_sum") {
		t.Errorf("role module %s exports more than get_sum:\n%s", mods[0], src)
	}

	// Search: only the allowed tool, whatever the query.
	for _, q := range []string{"echo text back", "add two numbers", "sleep"} {
		got, err := c.FindToolsAs(ctx, who, conv, q, 20)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got {
			if m.Name != "everything.get-sum" || len(m.Also) > 0 {
				t.Errorf("FindToolsAs(%q) as the role returned %s (also %v)", q, m.Name, m.Also)
			}
		}
		got, _ = c.FindToolsAs(ctx, who, "", q, 20)
		for _, m := range got {
			if m.Name != "everything.get-sum" {
				t.Errorf("FindToolsAs(%q) without a conversation returned %s", q, m.Name)
			}
		}
	}
	// Without the role, the administrator's policy alone: go.echo is there.
	all, err := c.FindToolsAs(ctx, conductor.Caller{Principal: who.Principal}, "", "echo text back", 20)
	if err != nil || !slices.ContainsFunc(all, func(m conductor.ToolMatch) bool { return m.Name == "go.echo" }) {
		t.Errorf("FindToolsAs without a role = %v, %v; want go.echo among them", all, err)
	}

	// load_tools: refused tools are unknown, suggestions stay inside the role.
	for _, name := range []string{"go.echo", "everything.echo"} {
		_, err := c.LoadToolSpecAs(ctx, who, conv, name)
		if err == nil || !strings.Contains(err.Error(), "unknown tool") {
			t.Errorf("LoadToolSpecAs(%s) as the role = %v, want unknown tool", name, err)
		} else if hints := strings.TrimPrefix(err.Error(), `unknown tool "`+name+`"`); strings.Contains(hints, "go.") || strings.Contains(hints, "everything.echo") {
			t.Errorf("LoadToolSpecAs(%s) hints at tools outside the role: %v", name, err)
		}
	}
	specs, err := c.LoadToolSpecAs(ctx, who, conv, "everything.get-sum")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 1 || !strings.Contains(specs[0].Declarations, "get_sum") {
		t.Errorf("LoadToolSpecAs(get-sum) = %+v", specs)
	}
	for _, s := range specs[0].Suggestions {
		if s != "everything.get-sum" {
			t.Errorf("suggestion %s is outside the role", s)
		}
	}
}

// TestTraces: one execution with two tool calls gives one span and two
// children with the attributes operators filter on.
func TestTraces(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "go.log")
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	var audit testenv.Buffer
	c := startWith(t, []config.Server{goServer(t, "go", rec)}, conductor.Options{Tracer: tp.Tracer("conductor"),
		Audit: slog.New(slog.NewJSONHandler(&audit, nil))})
	conv, err := c.CreateConversationFor("token")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := `import * as go from "./mcp/go";
await go.echo({text: "a"});
await go.nope_tool_is_not_there?.({});
await (globalThis as any).__conductor_call("go", "missing", {});`
	res, err := c.Execute(ctx, conv, code, conductor.ExecOptions{Principal: "token"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Error == nil {
		t.Fatalf("second call of a missing tool succeeded: %s", res.Result)
	}
	spans := exp.GetSpans()
	var parent tracetest.SpanStub
	var children []tracetest.SpanStub
	for _, s := range spans {
		switch s.Name {
		case "conductor.execute":
			parent = s
		case "conductor.tool_call":
			children = append(children, s)
		}
	}
	if len(spans) != 3 || parent.Name == "" || len(children) != 2 {
		t.Fatalf("spans: %d (%d children), want 1 execution and 2 tool calls", len(spans), len(children))
	}
	attrs := func(s tracetest.SpanStub) map[string]string {
		m := map[string]string{}
		for _, a := range s.Attributes {
			m[string(a.Key)] = a.Value.Emit()
		}
		return m
	}
	pa := attrs(parent)
	if pa["conductor.conversation"] != conv || pa["conductor.principal"] != "token" || len(pa["conductor.code_sha256"]) != 64 ||
		pa["conductor.outcome"] != "exception" || pa["conductor.duration_ms"] == "" {
		t.Errorf("execution span attributes = %v", pa)
	}
	want := []string{"go echo ok", "go missing refused"}
	for i, ch := range children {
		a := attrs(ch)
		if got := a["conductor.server"] + " " + a["conductor.tool"] + " " + a["conductor.outcome"]; got != want[i] {
			t.Errorf("tool span %d = %q, want %q", i, got, want[i])
		}
		if ch.Parent.SpanID() != parent.SpanContext.SpanID() || ch.Parent.TraceID() != parent.SpanContext.TraceID() {
			t.Errorf("tool span %d is not a child of the execution span", i)
		}
		if ch.StartTime.Before(parent.StartTime) || ch.EndTime.After(parent.EndTime) {
			t.Errorf("tool span %d [%v, %v] outside its parent [%v, %v]", i, ch.StartTime, ch.EndTime, parent.StartTime, parent.EndTime)
		}
	}
	if st := c.Stats(); st.Runs != 0 || st.Conversations != 0 {
		t.Errorf("Stats after the run = %+v, want zero", st)
	}
	// The audit log's tool_call records name the principal.
	var toolCalls []string
	for _, line := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == "tool_call" {
			toolCalls = append(toolCalls, fmt.Sprint(r["principal"], " ", r["tool"], " ", r["outcome"]))
		}
	}
	if want := []string{"token go.echo ok", "token go.missing refused"}; !slices.Equal(toolCalls, want) {
		t.Errorf("audit tool_call records = %q, want %q", toolCalls, want)
	}
}

// TestReadyAndStats: Ready fails before Start and after Close; Stats counts
// a run in flight and its conversation.
func TestReadyAndStats(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.Deno = toolPath(t, "deno")
	cfg.Workspace = filepath.Join(dir, "ws")
	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Ready(ctx); err == nil {
		t.Error("Ready before Start: nil")
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready after Start: %v", err)
	}
	conv, err := c.CreateConversationFor("p")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Execute(ctx, conv, `await new Promise((r) => setTimeout(r, 1500)); 1`, conductor.ExecOptions{Principal: "p"})
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for st := c.Stats(); st.Runs != 1 || st.Conversations != 1; st = c.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("Stats during a run = %+v, want 1 run in 1 conversation", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st != (conductor.Stats{}) {
		t.Errorf("Stats after the run = %+v, want zero", st)
	}
	c.Close()
	if err := c.Ready(ctx); err == nil {
		t.Error("Ready after Close: nil")
	}
}
