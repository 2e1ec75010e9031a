package conductor_test

// Integration tests of issue 5: programs in the Deno sandbox call the tools of
// real upstream MCP servers through the generated modules, the bridge and the
// hub. The test binary doubles as a small MCP server (ORCH_TEST_MODE=server)
// that records every call it receives, so the tests can prove what reached an
// upstream server and what did not, and as a conductor process
// (ORCH_TEST_MODE=conductor) that the orphan test kills with SIGKILL.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
)

const modeEnv = "ORCH_TEST_MODE"

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "":
		os.Exit(m.Run())
	case "server":
		runTestServer()
	case "conductor":
		runConductorChild()
	default:
		log.Fatalf("unknown %s", modeEnv)
	}
}

// ---- the re-exec'd MCP test server ----

type echoIn struct {
	Text string `json:"text"`
}

type addIn struct {
	A int `json:"a"`
	B int `json:"b"`
}

type addOut struct {
	Sum int `json:"sum"`
}

type sleepIn struct {
	MS  int    `json:"ms"`
	Tag string `json:"tag"`
}

// recorder appends one line per event to RECORD_FILE: "call <tool>
// <args>" for every tools/call the server receives (before any validation of
// its own), "cancelled <tag>" when a sleep sees its context end.
type recorder struct {
	mu sync.Mutex
	f  *os.File
}

func (r *recorder) line(format string, args ...any) {
	if r.f == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.f, format+"\n", args...)
	r.f.Sync()
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func runTestServer() {
	rec := &recorder{}
	if p := os.Getenv("RECORD_FILE"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			log.Fatal(err)
		}
		rec.f = f
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "orchestration-test", Version: "1"}, nil)
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok && method == "tools/call" {
				rec.line("call %s %s", p.Name, bytes.ReplaceAll(p.Arguments, []byte("\n"), nil))
			}
			return next(ctx, method, req)
		}
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echoes text"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return textResult(in.Text), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "add", Description: "adds two integers"}, func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
		return nil, addOut{Sum: in.A + in.B}, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "sleep", Description: "sleeps ms milliseconds"}, func(ctx context.Context, _ *mcp.CallToolRequest, in sleepIn) (*mcp.CallToolResult, any, error) {
		rec.line("sleeping %s", in.Tag)
		select {
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
			return textResult("slept " + in.Tag), nil, nil
		case <-ctx.Done():
			rec.line("cancelled %s", in.Tag)
			return nil, nil, ctx.Err()
		}
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail", Description: "reports a tool error"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "disk quota exceeded (on purpose)"}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "crash", Description: "exits the server in the middle of the call"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		os.Exit(3)
		return nil, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "grow", Description: "adds the tool grown (the server then says its tool list changed)"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		mcp.AddTool(srv, &mcp.Tool{Name: "grown", Description: "exists once grow was called"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return textResult("grown " + in.Text), nil, nil
		})
		return textResult("grew"), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "denied_tool", Description: "the policy denies it"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return textResult("denied_tool ran"), nil, nil
	})
	if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}

// ---- helpers ----

// toolPath finds a program `make` installs in tools/; a missing one skips the
// test outside CI and fails it under CI.
func toolPath(tb testing.TB, name string) string { return testenv.Tool(tb, name) }

// goServer is the config of the re-exec'd test server, recording to rec.
func goServer(tb testing.TB, name, rec string, args ...string) config.Server {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return config.Server{Name: name, Command: exe, Args: args, Env: map[string]string{modeEnv: "server", "RECORD_FILE": rec}}
}

// newConductor starts a conductor over servers with a private workspace.
func newConductor(tb testing.TB, servers []config.Server, mutate func(*config.Config)) *conductor.Conductor {
	tb.Helper()
	return startConductor(tb, servers, mutate, conductor.Options{})
}

// startConductor is newConductor with Options; every server must be up and
// the conductor Ready.
func startConductor(tb testing.TB, servers []config.Server, mutate func(*config.Config), opts conductor.Options) *conductor.Conductor {
	tb.Helper()
	dir := tb.TempDir()
	cfg := config.Default(dir)
	cfg.Deno = toolPath(tb, "deno")
	cfg.Workspace = filepath.Join(dir, "ws")
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		cfg.CacheDir = c
	}
	cfg.Servers = servers
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	c, err := conductor.New(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	for _, st := range c.Status() {
		if st.State != "up" {
			tb.Fatalf("server %s is %s: %v", st.Server, st.State, st.Err)
		}
	}
	if err := c.Ready(ctx); err != nil {
		tb.Fatalf("Ready after Start: %v", err)
	}
	return c
}

func newConv(tb testing.TB, c *conductor.Conductor) string {
	tb.Helper()
	conv, err := c.CreateConversation()
	if err != nil {
		tb.Fatal(err)
	}
	return conv
}

// run executes code and fails the test unless the program succeeded; it
// returns the result decoded into a generic value.
func run(tb testing.TB, c *conductor.Conductor, conv, code string) any {
	tb.Helper()
	res := execute(tb, c, conv, code)
	if res.Error != nil {
		tb.Fatalf("program failed: %s: %s\nstderr: %s\nstack: %s", res.Error.Kind, res.Error.Message, res.Stderr, res.Error.Stack)
	}
	var v any
	if len(res.Result) > 0 {
		if err := json.Unmarshal(res.Result, &v); err != nil {
			tb.Fatalf("result %s: %v", res.Result, err)
		}
	}
	return v
}

func execute(tb testing.TB, c *conductor.Conductor, conv, code string) *conductor.ExecResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Execute(ctx, conv, code, conductor.ExecOptions{Timeout: 50 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// records reads the lines the test server wrote to path.
func records(tb testing.TB, path string) []string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// waitRecord polls the record file until a line has prefix.
func waitRecord(tb testing.TB, path, prefix string, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for countPrefix(records(tb, path), prefix) == 0 {
		if time.Now().After(deadline) {
			tb.Fatalf("no %q in the server's record after %v: %q", prefix, within, records(tb, path))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func denoCheck(tb testing.TB, dir string, files ...string) ([]byte, error) {
	tb.Helper()
	args := append([]string{"check", "--no-config", "--no-lock", "--no-remote", "--quiet"}, files...)
	cmd := exec.Command(toolPath(tb, "deno"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DENO_DIR="+filepath.Join(dir, ".deno"), "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1")
	return cmd.CombinedOutput()
}

// ---- tests ----

// TestTwoServers: one program imports server-everything and server-memory,
// calls tools of both, combines the results and returns a value; the types
// LoadToolSpec returns pass deno check (and misuse fails it).
func TestTwoServers(t *testing.T) {
	t.Parallel()
	everything := toolPath(t, "mcp-server-everything")
	memory := toolPath(t, "mcp-server-memory")
	mem := filepath.Join(t.TempDir(), "memory.jsonl")
	c := newConductor(t, []config.Server{
		{Name: "everything", Command: everything, Args: []string{"stdio"}},
		{Name: "memory", Command: memory, Env: map[string]string{"MEMORY_FILE_PATH": mem}},
	}, nil)
	conv := newConv(t, c)
	ctx := context.Background()
	specs, err := c.LoadToolSpec(ctx, conv, "everything.get-sum", "everything.echo", "memory.create_entities", "memory.read_graph")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].Server != "everything" || specs[1].Server != "memory" {
		t.Fatalf("LoadToolSpec gave %d specs: %+v", len(specs), specs)
	}

	got := run(t, c, conv, `
import * as everything from "./mcp/everything";
import * as memory from "./mcp/memory.ts";
const [sum, echo] = await Promise.all([
  everything.get_sum({ a: 19, b: 23 }),
  everything.echo({ message: "hello from the sandbox" }),
]);
await memory.create_entities({ entities: [{ name: "conductor", entityType: "project", observations: ["sum: " + JSON.stringify(sum)] }] });
const graph: any = await memory.read_graph({});
const entities = graph.entities ?? graph;
({ sum, echo, names: entities.map((e: any) => e.name), observations: entities.flatMap((e: any) => e.observations) });
`)
	m, _ := got.(map[string]any)
	blob, _ := json.Marshal(got)
	if !strings.Contains(fmt.Sprint(m["sum"]), "42") {
		t.Errorf("sum = %v, want 42 in it (result %s)", m["sum"], blob)
	}
	if !strings.Contains(fmt.Sprint(m["echo"]), "hello from the sandbox") {
		t.Errorf("echo = %v (result %s)", m["echo"], blob)
	}
	if fmt.Sprint(m["names"]) != "[conductor]" || !strings.Contains(fmt.Sprint(m["observations"]), "42") {
		t.Errorf("memory graph = names %v observations %v, want [conductor] with the sum (result %s)", m["names"], m["observations"], blob)
	}
	// The memory server really persisted what the program sent.
	if b, _ := os.ReadFile(mem); !bytes.Contains(b, []byte(`"conductor"`)) {
		t.Errorf("memory file %s = %q, want the entity", mem, b)
	}

	// Type-check: the module files the program imported, a program using
	// them, and the same program against the load_tools declarations.
	dir := t.TempDir()
	convDir := filepath.Join(c.Config().Workspace, conv, "mcp")
	for _, s := range []string{"everything", "memory"} {
		src, err := os.ReadFile(filepath.Join(convDir, s+".ts"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "mcp", s+".ts"), string(src))
	}
	for _, sp := range specs {
		writeFile(t, filepath.Join(dir, "decl", sp.Server+".d.ts"), sp.Declarations)
		if !strings.Contains(sp.Import, "./mcp/"+sp.Server) {
			t.Errorf("import line %q does not name ./mcp/%s", sp.Import, sp.Server)
		}
	}
	program := func(from, body string) string {
		return fmt.Sprintf(`import * as everything from "./%[1]s/everything%[2]s";
import * as memory from "./%[1]s/memory%[2]s";
export async function main(): Promise<unknown> {
%[3]s
}
`, from, map[string]string{"mcp": ".ts", "decl": ".d.ts"}[from], body)
	}
	good := `  const sum: unknown = await everything.get_sum({ a: 1, b: 2 });
  const e: unknown = await everything.echo({ message: "x" });
  await memory.create_entities({ entities: [{ name: "n", entityType: "t", observations: ["o"] }] });
  return [sum, e, await memory.read_graph()];`
	writeFile(t, filepath.Join(dir, "good_module.ts"), program("mcp", good))
	writeFile(t, filepath.Join(dir, "good_decl.ts"), program("decl", good))
	if out, err := denoCheck(t, dir, "good_module.ts", "good_decl.ts"); err != nil {
		t.Fatalf("deno check of a correct program: %v\n%s", err, out)
	}
	for i, bad := range []string{
		`  return await everything.get_sum({ a: "1", b: 2 });`,
		`  return await everything.echo({});`,
		`  return await memory.create_entities({ entities: [{ name: 1 }] });`,
		`  return await everything.no_such_tool({});`,
	} {
		for _, from := range []string{"mcp", "decl"} {
			f := fmt.Sprintf("bad%d_%s.ts", i, from)
			writeFile(t, filepath.Join(dir, f), program(from, bad))
			if out, err := denoCheck(t, dir, f); err == nil {
				t.Errorf("deno check passed a program that misuses the types (%s):\n%s\n%s", from, bad, out)
			}
		}
	}
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// TestCallFailures: invalid arguments, a tool error and a server that dies
// in the middle of a call each reject inside the program with a clear
// message; the program goes on, and so does the conductor.
func TestCallFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec, crashRec := filepath.Join(dir, "go.log"), filepath.Join(dir, "crashy.log")
	c := newConductor(t, []config.Server{goServer(t, "go", rec), goServer(t, "crashy", crashRec)}, nil)
	conv := newConv(t, c)
	got := run(t, c, conv, `
import * as go from "./mcp/go";
import * as crashy from "./mcp/crashy";
const out: Record<string, string> = {};
const msg = async (p: Promise<unknown>) => { try { return "resolved: " + JSON.stringify(await p); } catch (e) { return (e as Error).name + ": " + (e as Error).message; } };
out.validation = await msg(go.add({ a: "two", b: 2 } as any));
out.missing = await msg(go.add({ a: 1 } as any));
out.toolError = await msg(go.fail({}));
out.crash = await msg(crashy.crash({}));
out.after = await msg(go.add({ a: 40, b: 2 }));
out;
`)
	m, _ := got.(map[string]any)
	str := func(k string) string { s, _ := m[k].(string); return s }
	checks := []struct {
		key  string
		want []string
	}{
		{"validation", []string{"ToolError: ", "go.add: invalid arguments", "at /a", "want integer"}},
		{"missing", []string{"go.add: invalid arguments", "missing property 'b'"}},
		{"toolError", []string{"ToolError: go.fail: disk quota exceeded (on purpose)"}},
		{"crash", []string{"ToolError: crashy.crash: "}},
		{"after", []string{`resolved: {"sum":42}`}},
	}
	for _, ck := range checks {
		for _, w := range ck.want {
			if !strings.Contains(str(ck.key), w) {
				t.Errorf("%s = %q, want it to contain %q", ck.key, str(ck.key), w)
			}
		}
		if len(str(ck.key)) > 400 {
			t.Errorf("%s is %d bytes long, want a short message: %q", ck.key, len(str(ck.key)), str(ck.key))
		}
	}
	t.Logf("messages: %v", m)
	// The crash message says what happened, without host paths.
	if cr := str("crash"); !strings.Contains(cr, "exit") && !strings.Contains(cr, "down") && !strings.Contains(cr, "closed") {
		t.Errorf("crash = %q, want it to say the server went down", cr)
	}
	if exe, _ := os.Executable(); strings.Contains(str("crash"), exe) {
		t.Errorf("crash message leaks the server's path: %q", str("crash"))
	}
	// Invalid arguments never reached the server.
	for _, l := range records(t, rec) {
		if strings.HasPrefix(l, "call add") && (strings.Contains(l, "two") || !strings.Contains(l, `"b"`)) {
			t.Errorf("an invalid call reached the server: %s", l)
		}
	}
	if n := countPrefix(records(t, crashRec), "call crash"); n != 1 {
		t.Errorf("crashy received %d crash calls, want 1", n)
	}

	// The conductor keeps serving: a new program works at once, and the
	// crashed server is back after its restart.
	if v := run(t, c, conv, `import * as go from "./mcp/go"; await go.echo({text: "next"})`); v != "next" {
		t.Errorf("next program = %v, want next", v)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := execute(t, c, conv, `import * as crashy from "./mcp/crashy"; await crashy.echo({text: "back"})`)
		if res.Error == nil && string(res.Result) == `"back"` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("crashy did not come back: %s %+v", res.Result, res.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBridgeForgery: user code forges frames on stdout, hunts for the
// secret, calls a denied tool directly and through the module, and floods
// calls. All of it is refused, and the recording test server proves that
// nothing it should not see reached it.
func TestBridgeForgery(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "go.log")
	c := newConductor(t, []config.Server{goServer(t, "go", rec)}, func(cfg *config.Config) {
		cfg.Policy = map[string]config.ToolPolicy{"go": {DenyTools: []string{"denied_*"}}}
	})
	conv := newConv(t, c)

	res := execute(t, c, conv, `
import * as go from "./mcp/go";
const enc = new TextEncoder();
const out: Record<string, unknown> = {};
const call = (tool: string, text: string) => JSON.stringify({ t: "call", id: 1, server: "go", tool, args: JSON.stringify({ text }) });
// 1. Frames without, with guessed and with found secrets, on stdout.
const guesses = ["", "0".repeat(48), "a".repeat(48), "secret", "undefined", "null"];
// 2. Hunt for the secret: every global, own or hidden.
const found: string[] = [];
const seen = new Set<unknown>();
const walk = (o: any, depth: number) => {
  if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o) || depth > 3) return;
  seen.add(o);
  for (const k of Reflect.ownKeys(o)) {
    // Data properties only: getters of the runtime (Deno.stdin.readable...)
    // have side effects a secret hunter does not need.
    const d = Reflect.getOwnPropertyDescriptor(o, k);
    if (!d || !("value" in d)) continue;
    const v: unknown = d.value;
    if (typeof v === "string" && /^[0-9a-f]{32,}$/.test(v)) found.push(v);
    walk(v, depth + 1);
  }
};
walk(globalThis, 0);
out.found = found.length;
for (const s of [...guesses, ...found]) {
  Deno.stdout.writeSync(enc.encode("\n\x1e" + s + ":" + call("echo", "forged") + "\n"));
  Deno.stdout.writeSync(enc.encode("\n\x1e" + s + ":" + call("denied_tool", "forged") + "\n"));
  console.log("\x1e" + s + ":" + call("echo", "forged"));
}
Deno.stdout.writeSync(enc.encode("\x1e:" + JSON.stringify({ t: "done", ok: true, has: true, result: "forged done" }) + "\n"));
// 3. Read the secret: stdin (the harness owns it), /proc, /dev/stdin.
const tryIt = async (f: () => unknown) => { try { const v = await f(); return "ok: " + String(v).slice(0, 200); } catch (e) { return (e as Error).name; } };
out.procCmdline = await tryIt(() => Deno.readTextFileSync("/proc/self/cmdline"));
out.procEnviron = await tryIt(() => Deno.readTextFileSync("/proc/self/environ"));
out.procFd0 = await tryIt(() => Deno.readTextFileSync("/proc/self/fd/0"));
out.devStdin = await tryIt(() => Deno.readTextFileSync("/dev/stdin"));
out.procMem = await tryIt(() => Deno.openSync("/proc/self/mem"));
// 4. Denied tool: directly, and through the module (which does not export it).
const cc = (globalThis as any).__conductor_call;
out.denied = await cc("go", "denied_tool", {}).then(() => "resolved", (e: Error) => e.message);
out.deniedInModule = "denied_tool" in go || "deniedTool" in go;
out.unknownServer = await cc("../go", "echo", { text: "x" }).catch((e: Error) => e.message);
out.unknownTool = await cc("go", "../echo", { text: "x" }).catch((e: Error) => e.message);
// 5. Replacing the global changes nothing for the module.
try { (globalThis as any).__conductor_call = () => Promise.resolve("hijacked"); } catch {}
out.afterOverwrite = await go.echo({ text: "genuine" });
out;
`)
	if res.Error != nil {
		t.Fatalf("program failed: %+v\nstderr: %s", res.Error, res.Stderr)
	}
	var out map[string]any
	if err := json.Unmarshal(res.Result, &out); err != nil {
		t.Fatalf("result %s: %v", res.Result, err)
	}
	t.Logf("attack outcome: %s", res.Result)
	if out["found"] != float64(0) {
		t.Errorf("user code found %v secret-like strings among the globals", out["found"])
	}
	// The forged frames are program output, byte for byte.
	if n := strings.Count(res.Stdout, `"tool":"denied_tool"`); n != 6+int(out["found"].(float64)) {
		t.Errorf("stdout holds %d forged denied_tool frames, want them all as plain output:\n%q", n, res.Stdout)
	}
	if !strings.Contains(res.Stdout, "\x1e:{\"t\":\"done\"") {
		t.Errorf("the forged done frame is missing from stdout: %q", res.Stdout)
	}
	for _, k := range []string{"procCmdline", "procEnviron", "procFd0", "devStdin", "procMem"} {
		if v, _ := out[k].(string); strings.HasPrefix(v, "ok") {
			t.Errorf("%s = %q, want a permission error", k, v)
		}
	}
	if v, _ := out["denied"].(string); !strings.Contains(v, "go.denied_tool: refused") {
		t.Errorf("denied call = %q, want a refusal", v)
	}
	if out["deniedInModule"] != false {
		t.Errorf("the module exports the denied tool")
	}
	for _, k := range []string{"unknownServer", "unknownTool"} {
		if v, _ := out[k].(string); !strings.Contains(v, "refused") && !strings.Contains(v, "no such") {
			t.Errorf("%s = %q, want a refusal", k, v)
		}
	}
	if out["afterOverwrite"] != "genuine" {
		t.Errorf("after overwriting __conductor_call the module got %v, want genuine", out["afterOverwrite"])
	}

	// 6. Flood: 5,000 calls at once; the cap (1,000 per run) holds.
	flood := run(t, c, conv, `
import * as go from "./mcp/go";
const rs = await Promise.allSettled(Array.from({ length: 5000 }, (_, i) => go.echo({ text: "flood" })));
const rejected = rs.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
({ ok: rs.length - rejected.length, rejected: rejected.length, capped: rejected.filter((r) => /more than 1000 tool calls/.test(r.reason.message)).length });
`)
	if fmt.Sprint(flood) != "map[capped:4000 ok:1000 rejected:4000]" {
		t.Errorf("flood = %v, want 1000 ok and 4000 capped", flood)
	}

	// What reached the server: the genuine echo and the 1,000 flood calls.
	lines := records(t, rec)
	for _, l := range lines {
		if strings.Contains(l, "forged") || strings.Contains(l, "denied_tool") || strings.Contains(l, "hijacked") {
			t.Errorf("the server received a call it should not: %s", l)
		}
	}
	if n := countPrefix(lines, `call echo {"text":"flood"}`); n != 1000 {
		t.Errorf("the server received %d flood calls, want exactly 1000", n)
	}
	if n := countPrefix(lines, `call echo {"text":"genuine"}`); n != 1 {
		t.Errorf("the server received %d genuine calls, want 1", n)
	}
	if n := len(lines); n != 1001 {
		t.Errorf("the server received %d calls, want 1001: %q", n, lines[:min(n, 20)])
	}
}

// TestCancelInFlight: cancelling Execute's ctx during a slow tool call
// cancels the upstream call; the server sees its context end.
func TestCancelInFlight(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "go.log")
	c := newConductor(t, []config.Server{goServer(t, "go", rec)}, nil)
	conv := newConv(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *conductor.ExecResult, 1)
	go func() {
		res, err := c.Execute(ctx, conv, `import * as go from "./mcp/go"; await go.sleep({ms: 60000, tag: "cancel-me"})`, conductor.ExecOptions{})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	waitRecord(t, rec, "sleeping cancel-me", 30*time.Second)
	start := time.Now()
	cancel()
	select {
	case res := <-done:
		if res != nil && res.Error == nil {
			t.Errorf("cancelled run succeeded: %s", res.Result)
		}
		t.Logf("Execute returned %v after the cancel: %+v", time.Since(start), res.Error)
	case <-time.After(15 * time.Second):
		t.Fatal("Execute did not return after its ctx was cancelled")
	}
	waitRecord(t, rec, "cancelled cancel-me", 15*time.Second)
	// And the server is fine afterwards.
	if v := run(t, c, conv, `import * as go from "./mcp/go"; await go.echo({text: "after"})`); v != "after" {
		t.Errorf("after the cancel: %v", v)
	}
}

// ---- the conductor child of the orphan test ----

// runConductorChild runs a conductor with two stdio servers and one program
// awaiting a slow tool, prints "ready" once the call is in flight, and
// blocks until it is killed.
func runConductorChild() {
	marker := os.Getenv("ORPHAN_MARKER")
	rec := os.Getenv("RECORD_FILE")
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	dir := os.Getenv("ORPHAN_DIR") // holds the marker: the harness path names it
	cfg := config.Default(dir)
	cfg.Deno = os.Getenv("ORPHAN_DENO")
	cfg.Workspace = filepath.Join(dir, "ws")
	cfg.Servers = []config.Server{{Name: "go", Command: exe, Args: []string{marker}, Env: map[string]string{modeEnv: "server", "RECORD_FILE": rec}}}
	if bin := os.Getenv("ORPHAN_EVERYTHING"); bin != "" {
		cfg.Servers = append(cfg.Servers, config.Server{Name: "everything", Command: bin, Args: []string{"stdio", marker}})
	} else {
		cfg.Servers = append(cfg.Servers, config.Server{Name: "go2", Command: exe, Args: []string{marker}, Env: map[string]string{modeEnv: "server"}})
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	conv, err := c.CreateConversation()
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		res, err := c.Execute(context.Background(), conv, `import * as go from "./mcp/go"; await go.sleep({ms: 600000, tag: "orphan"})`, conductor.ExecOptions{Timeout: 10 * time.Minute})
		log.Fatalf("the execution ended: %v %+v", err, res)
	}()
	for {
		b, _ := os.ReadFile(rec)
		if bytes.Contains(b, []byte("sleeping orphan")) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprint(w, "ready")
	for _, st := range c.Status() {
		fmt.Fprintf(w, " %d", st.Pid)
	}
	fmt.Fprintln(w)
	w.Flush()
	select {}
}

// ---- orphans ----

type proc struct {
	pid   int
	start string // field 22 of /proc/<pid>/stat: tells a reused pid apart
	cmd   string
}

// procStat returns the state, parent pid and start time of pid.
func procStat(pid int) (state string, ppid int, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, "", false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 {
		return "", 0, "", false
	}
	fmt.Sscan(f[1], &ppid)
	return f[0], ppid, f[19], true
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

// allProcs lists the live (not zombie) processes.
func allProcs() []proc {
	var out []proc
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscan(filepath.Base(d), &pid); err != nil {
			continue
		}
		state, _, start, ok := procStat(pid)
		if !ok || state == "Z" || state == "X" {
			continue
		}
		out = append(out, proc{pid, start, cmdline(pid)})
	}
	return out
}

// descendants lists the live descendants of root.
func descendants(root int) []proc {
	children := map[int][]int{}
	byPid := map[int]proc{}
	for _, p := range allProcs() {
		_, ppid, _, ok := procStat(p.pid)
		if ok {
			children[ppid] = append(children[ppid], p.pid)
			byPid[p.pid] = p
		}
	}
	var out []proc
	var walk func(int)
	walk = func(pid int) {
		for _, c := range children[pid] {
			out = append(out, byPid[c])
			walk(c)
		}
	}
	walk(root)
	return out
}

// TestNoOrphansAfterSIGKILL runs a conductor in a child process with two
// stdio servers and a program awaiting a slow tool, kills the child with
// SIGKILL, and polls /proc until none of its processes (servers, Deno)
// remains: each had a parent-death signal or dies with its pipes.
func TestNoOrphansAfterSIGKILL(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Parallel()
	deno := toolPath(t, "deno")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("orch-orphan-%d-%d", os.Getpid(), time.Now().UnixNano())
	dir := filepath.Join(t.TempDir(), marker)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(dir, "go.log")
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), modeEnv+"=conductor", "ORPHAN_MARKER="+marker, "ORPHAN_DIR="+dir,
		"ORPHAN_DENO="+deno, "RECORD_FILE="+rec)
	if os.Getenv("CI") != "" || fileExists(filepath.Join("tools", "node_modules", ".bin", "mcp-server-everything")) {
		cmd.Env = append(cmd.Env, "ORPHAN_EVERYTHING="+toolPath(t, "mcp-server-everything"))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		lines <- l
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(90 * time.Second):
		t.Fatalf("the conductor child did not get ready\nstderr: %s", stderr.String())
	}
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("conductor child said %q\nstderr: %s", line, stderr.String())
	}
	before := descendants(cmd.Process.Pid)
	var names []string
	nDeno, nServers := 0, 0
	for _, p := range before {
		names = append(names, fmt.Sprintf("%d %.120s", p.pid, p.cmd))
		switch {
		case strings.Contains(p.cmd, "harness-"):
			nDeno++
		case strings.Contains(p.cmd, marker):
			nServers++
		}
	}
	t.Logf("before SIGKILL, the conductor (pid %d) has %d descendants:\n%s", cmd.Process.Pid, len(before), strings.Join(names, "\n"))
	if nDeno < 1 || nServers < 2 {
		t.Fatalf("want a Deno run and 2 servers in flight, found %d and %d", nDeno, nServers)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var left []string
		for _, p := range before {
			if _, _, start, ok := procStat(p.pid); ok && start == p.start {
				if state, _, _, _ := procStat(p.pid); state != "Z" {
					left = append(left, fmt.Sprintf("%d %.120s", p.pid, p.cmd))
				}
			}
		}
		for _, p := range allProcs() {
			if strings.Contains(p.cmd, marker) {
				left = append(left, fmt.Sprintf("%d %.120s", p.pid, p.cmd))
			}
		}
		if len(left) == 0 {
			t.Logf("after SIGKILL: 0 of %d processes left (%d Deno, %d servers with the marker)", len(before), nDeno, nServers)
			return
		}
		if time.Now().After(deadline) {
			for _, p := range before {
				syscall.Kill(p.pid, syscall.SIGKILL)
			}
			t.Fatalf("%d processes outlived the conductor killed with SIGKILL:\n%s", len(left), strings.Join(left, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestStdinTheft: user code reads the harness's stdin, where the
// conductor's replies to tool calls arrive. It must not see the run frame
// (the secret) and should not be able to steal a reply either.
func TestStdinTheft(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "go.log")
	c := newConductor(t, []config.Server{goServer(t, "go", rec)}, nil)
	conv := newConv(t, c)
	got := run(t, c, conv, `
import * as go from "./mcp/go";
const b = new Uint8Array(1 << 16);
let stolen = "";
(async () => {
  try {
    for (;;) {
      const n = await Deno.stdin.read(b);
      if (n === null) break;
      stolen += new TextDecoder().decode(b.subarray(0, n));
    }
  } catch (e) { stolen += "error: " + (e as Error).name; }
})();
let reply: unknown = "reply";
for (let i = 0; i < 5 && reply === "reply"; i++) {
  reply = await Promise.race([go.echo({ text: "reply" }), new Promise((r) => setTimeout(() => r("no reply within 2s"), 2000))]);
}
({ stolen, reply });
`)
	m, _ := got.(map[string]any)
	t.Logf("stdin read by user code: %v", m)
	stolen, _ := m["stolen"].(string)
	if strings.Contains(stolen, "secret") || strings.Contains(stolen, `"t":"run"`) {
		t.Fatalf("user code read the run frame from stdin: %q", stolen)
	}
	if strings.Contains(stolen, `"t":"res"`) || m["reply"] != "reply" {
		t.Fatalf("user code read the bridge's stdin and stole tool replies (got %q, reply %v)", stolen, m["reply"])
	}
}

// TestStdinTheftNode: through node:process (or node:fs on fd 0) user code
// can still read the harness's stdin. That only harms the program itself: a
// reply it steals is one it asked for, and the run frame with the secret was
// read before user code existed. The test pins that the secret stays out of
// reach.
func TestStdinTheftNode(t *testing.T) {
	t.Parallel()
	rec := filepath.Join(t.TempDir(), "go.log")
	c := newConductor(t, []config.Server{goServer(t, "go", rec)}, nil)
	conv := newConv(t, c)
	res, err := c.Execute(context.Background(), conv, `
import * as go from "./mcp/go";
import process from "node:process";
let stolen = "";
process.stdin.on("data", (d: Uint8Array) => { stolen += new TextDecoder().decode(d); });
await Promise.race([go.echo({ text: "reply" }), new Promise((r) => setTimeout(r, 1000))]);
stolen;
`, conductor.ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := string(res.Result) + res.Stdout + res.Stderr
	if res.Error != nil {
		all += res.Error.Message + res.Error.Stack
	}
	if strings.Contains(all, `"t":"run"`) || strings.Contains(all, "secret") {
		t.Fatalf("user code read the run frame from stdin: %s", all)
	}
}

// TestModuleFollowsToolList: when a server's tool list changes, the next
// program imports the new module, even from a warm sandbox that loaded the
// old one while it waited (modules are imported by content-named paths);
// the conversation keeps at most the current and the previous version.
func TestModuleFollowsToolList(t *testing.T) {
	t.Parallel()
	c := newConductor(t, []config.Server{goServer(t, "go", "")}, nil)
	conv := newConv(t, c)
	if got := run(t, c, conv, `import * as go from "./mcp/go"; typeof (go as any).grown`); got != "undefined" {
		t.Fatalf("before grow: typeof go.grown = %v", got)
	}
	if got := run(t, c, conv, `import * as go from "./mcp/go"; await go.grow({})`); got != "grew" {
		t.Fatalf("grow = %v", got)
	}
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.LoadToolSpec(ctx, conv, "go.grown"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the conductor never saw the tool grown")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := run(t, c, conv, `import * as go from "./mcp/go"; await go.grown({text: "ok"})`); got != "grown ok" {
		t.Fatalf("after grow: go.grown = %v", got)
	}
	dir := filepath.Join(c.Config().Workspace, conv, "mcp")
	human, err := os.ReadFile(filepath.Join(dir, "go.ts"))
	if err != nil || !strings.Contains(string(human), "grown") {
		t.Fatalf("mcp/go.ts does not show the new tool (%v)", err)
	}
	versions, _ := filepath.Glob(filepath.Join(dir, ".v", "go-*.ts"))
	if len(versions) == 0 || len(versions) > 2 {
		t.Fatalf("versions kept: %v, want the current and at most the previous one", versions)
	}
}
