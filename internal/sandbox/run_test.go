package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestResultShapes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, code, want string // want "" means no value
	}{
		{"number", `1 + 2`, `3`},
		{"string", `["a", "b"].join("")`, `"ab"`},
		{"string literal", `"lit"`, `"lit"`},
		{"object", `({a: 1, b: [true, null]})`, `{"a":1,"b":[true,null]}`},
		{"array", `[1, "x", {y: 2}]`, `[1,"x",{"y":2}]`},
		{"null", `null`, `null`},
		{"undefined", `undefined`, ``},
		{"void call", `console.log("x")`, ``},
		{"no expression", `const x = 1;`, ``},
		{"bigint", `10n ** 20n`, `"100000000000000000000n"`},
		{"map", `new Map([["a", 1]])`, `"Map(1) { \"a\" => 1 }"`},
		{"set", `new Set([1, 2])`, `"Set(2) { 1, 2 }"`},
		{"date", `new Date(0)`, `"1970-01-01T00:00:00.000Z"`},
		{"cycle", `const o = {a: 1}; o.self = o; o`, `{"a":1,"self":"[Circular]"}`},
		{"function", `function f() {}; f`, `"[Function: f]"`},
		{"symbol", `Symbol("s")`, `"Symbol(s)"`},
		{"nan and infinity", `[NaN, Infinity, -Infinity]`, `["NaN","Infinity","-Infinity"]`},
		{"nested undefined", `({a: undefined, b: [undefined], c: 1})`, `{"b":["undefined"],"c":1}`},
		{"class instance", `class P { constructor() { this.x = 1 } get y() { return 2 } }; new P()`, `{"x":1}`},
		{"toJSON", `({toJSON() { return "j" }})`, `"j"`},
		{"value then declarations", "const a = 5;\na * 2;\nfunction g() {}\nconst z = 3;\nclass K {}", `10`},
		{"multiline template", "const n = 2;\n`line1\n${n}\nline3`", `"line1\n2\nline3"`},
		{"regex with brackets", `const r = /[}{)(\]]+/g; "a}{b".replace(r, "-")`, `"a-b"`},
		{"regex literal result", `/[a-z]+/`, `"/[a-z]+/"`},
		{"ends with comment", "1 + 1\n// the end", `2`},
		{"ends with block comment", "41 + 1 /* done */", `42`},
		{"top-level await", `await new Promise(r => setTimeout(() => r(7), 10))`, `7`},
		{"await in object", `({v: await Promise.resolve(3)})`, `{"v":3}`},
		{"if block then value", "let x = 0;\nif (true) { x = 4 }\nx", `4`},
		{"for then value", "let s = 0;\nfor (const i of [1, 2, 3]) s += i;\ns", `6`},
		{"label", "outer: for (;;) { break outer }\n9", `9`},
		{"ts interface generics", "interface P { x: number }\nfunction id<T>(v: T): T { return v }\nid<P>({x: 1})", `{"x":1}`},
		{"ts enum", "enum Color { Red, Green = 5 }\n[Color.Red, Color.Green, Color[5]]", `[0,5,"Green"]`},
		{"ts satisfies and as", "const c = {a: 1} satisfies Record<string, number>;\n(c as any).a", `1`},
		{"ts type import", "import type { Foo } from \"./mcp/none\";\nconst f: Foo | null = null;\nf", `null`},
		{"ts decorators", "function d(v: any, _c: any) { return v }\nclass C { @d m() { return 3 } }\nnew C().m()", `3`},
		{"ts abstract class", "abstract class A { abstract f(): number }\nclass B extends A { f() { return 8 } }\nnew B().f()", `8`},
		{"typed arrays", `new Uint8Array([1, 2])`, `"Uint8Array(2) [ 1, 2 ]"`},
		{"error value", `new RangeError("r").message`, `"r"`},
		{"unicode", `"héllo ☃ \u{1F600}"`, `"héllo ☃ 😀"`},
		{"sparse array", `[1, , 3]`, `[1,"undefined",3]`},
		{"sequence", `1, 2, 3`, `3`},
		{"parenthesised object after function", "function f() { return 1 }\n({k: f()})", `{"k":1}`},
		{"arrow", `(() => 5)()`, `5`},
		{"async iife", `(async () => 6)()`, `"Promise { 6 }"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSbx(t)
			res := s.run(c.code)
			if res.Error != nil {
				t.Fatalf("%s: %s", c.code, describe(res))
			}
			if string(res.Value) != c.want {
				t.Errorf("%s = %s, want %s", c.code, res.Value, c.want)
			}
		})
	}
}

func TestConsoleOutput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, code, stdout, stderr, value string
	}{
		{"log", `console.log("a"); console.info("b"); console.debug("c")`, "a\nb\nc\n", "", ""},
		{"error and warn", `console.error("e"); console.warn("w")`, "", "e\nw\n", ""},
		{"no trailing newline then result", `Deno.stdout.writeSync(new TextEncoder().encode("partial")); 5`, "partial", "", "5"},
		{"newlines kept", `Deno.stdout.writeSync(new TextEncoder().encode("a\n\n")); 1`, "a\n\n", "", "1"},
		{"blank line then no newline", `Deno.stdout.writeSync(new TextEncoder().encode("\n")); Deno.stdout.writeSync(new TextEncoder().encode("x")); 1`, "\nx", "", "1"},
		{"record separator", `console.log("a\x1eb"); 1`, "a\x1eb\n", "", "1"},
		{"stderr without newline", `Deno.stderr.writeSync(new TextEncoder().encode("err")); 2`, "", "err", "2"},
		{"objects", `console.log({a: 1}, [2])`, "{ a: 1 } [ 2 ]\n", "", ""},
		{"long line", `console.log("z".repeat(200000))`, strings.Repeat("z", 200000) + "\n", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSbx(t)
			res := s.run(c.code)
			if res.Error != nil {
				t.Fatal(describe(res))
			}
			if res.Stdout != c.stdout || res.Stderr != c.stderr || string(res.Value) != c.value {
				t.Errorf("%s: stdout %q stderr %q value %s; want %q %q %s", c.code,
					res.Stdout, res.Stderr, res.Value, c.stdout, c.stderr, c.value)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, code string
		kind       Kind
		msg        string
		line, col  int
		stackLine  string // "main.ts:L" expected in the stack
	}{
		{name: "syntax", code: "const a = 1;\nconst b = ;\n", kind: KindSyntax, msg: "Unexpected", line: 2, col: 11},
		{name: "syntax ts", code: "let x: number = 1\nlet y = x +* 2", kind: KindSyntax, line: 2, col: 12},
		{name: "syntax column after tabs", code: "if (true) {\n\tfoo(\n}", kind: KindSyntax, line: 3, col: 1},
		{name: "runtime syntax", code: `new Function("return {")()`, kind: KindSyntax},
		{name: "exception", code: "const f = () => {\n  throw new TypeError(\"bad\")\n};\nf()", kind: KindException, msg: "TypeError: bad", stackLine: "at f (main.ts:2:9)\n    at main.ts:4:1"},
		{name: "exception in a module", code: "export const k = 1;\nconst f = () => {\n  throw new TypeError(\"bad\")\n};\nf()", kind: KindException, msg: "TypeError: bad", stackLine: "at f (main.ts:3:9)\n    at main.ts:5:1"},
		{name: "exception after a package import", code: "import { join } from \"node:path\";\nimport * as os from \"node:os\";\nconst f = () => {\n  throw new TypeError(join(\"a\", typeof os.EOL))\n};\nf()", kind: KindException, msg: "TypeError: a/string", stackLine: "at f (main.ts:4:9)\n    at main.ts:6:1"},
		{name: "exception on the result line", code: "const o = null;\n  o.x", kind: KindException, msg: "Cannot read properties of null", stackLine: "at main.ts:2:5"},
		{name: "exception in ts", code: "interface I { a: number }\nconst v: I = {a: 1}\nfunction g(x: I): never {\n  throw new Error(`no ${x.a}`)\n}\ng(v)", kind: KindException, msg: "no 1", stackLine: "main.ts:4"},
		{name: "throw string", code: `throw "plain"`, kind: KindException, msg: "plain"},
		{name: "rejection", code: `await Promise.reject(new Error("rej"))`, kind: KindException, msg: "rej"},
		{name: "reference", code: `undefinedThing.x`, kind: KindException, msg: "undefinedThing is not defined", stackLine: "main.ts:1"},
		{name: "permission", code: `Deno.readTextFileSync("/etc/hostname")`, kind: KindPermission, msg: "Requires read access"},
		{name: "timeout", code: `while (true) {}`, kind: KindTimeout, msg: "timeout"},
		{name: "output limit", code: `console.log("x".repeat(2 << 20))`, kind: KindOutputLimit},
		{name: "memory", code: `const a = []; for (;;) a.push(new Array(1e6).fill(0))`, kind: KindMemory},
		{name: "exit", code: `Deno.exit(3)`, kind: KindException, msg: "Deno.exit(3)"},
		{name: "import refused", code: "const a = 1;\nimport x from \"../x\"\nx", kind: KindSyntax, msg: "local files cannot be imported", line: 2, col: 15},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSbx(t)
			res := s.run(c.code, withTimeout(2*time.Second))
			s.noLeak(res)
			e := res.Error
			if e == nil {
				t.Fatalf("no error: %s", describe(res))
			}
			if e.Kind != c.kind || !strings.Contains(e.Message, c.msg) {
				t.Errorf("error %s: %q, want %s containing %q", e.Kind, e.Message, c.kind, c.msg)
			}
			if c.line != 0 && (e.Line != c.line || e.Column != c.col) {
				t.Errorf("location %d:%d, want %d:%d (%s)", e.Line, e.Column, c.line, c.col, e.Message)
			}
			if c.stackLine != "" && !strings.Contains(e.Stack, c.stackLine) {
				t.Errorf("stack does not name %s:\n%s", c.stackLine, e.Stack)
			}
			for _, bad := range []string{"harness", "blob:", "ext:", ".conductor", "conductor:", "eval (", ", <anonymous>"} {
				if strings.Contains(e.Stack, bad) || strings.Contains(e.Message, bad) {
					t.Errorf("error shows %q: %s\n%s", bad, e.Message, e.Stack)
				}
			}
		})
	}
}

func TestWorkspacePersists(t *testing.T) {
	t.Parallel()
	s := newSbx(t)
	res := s.run(`Deno.writeTextFileSync("workspace/note.txt", "kept"); Deno.mkdirSync("workspace/d", {recursive: true}); Deno.writeTextFileSync("workspace/d/x.json", '{"a":1}'); 1`)
	if res.Error != nil {
		t.Fatal(describe(res))
	}
	res = s.run(`[Deno.readTextFileSync("workspace/note.txt"), JSON.parse(Deno.readTextFileSync("workspace/d/x.json")).a]`)
	if res.Error != nil || string(res.Value) != `["kept",1]` {
		t.Fatal(describe(res))
	}
	// mcp/ stays read-only even with a write grant.
	res = s.run(`Deno.writeTextFileSync("mcp/x.ts", "1")`)
	if res.Error == nil || res.Error.Kind != KindPermission {
		t.Errorf("wrote into mcp/: %s", describe(res))
	}
}

func TestToolCalls(t *testing.T) {
	t.Parallel()
	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		var mu sync.Mutex
		var got []string
		all := make(chan struct{})
		handler := func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
			mu.Lock()
			got = append(got, server+"."+tool+" "+string(args))
			if len(got) == 5 {
				close(all)
			}
			mu.Unlock()
			select { // every call waits until all five have arrived
			case <-all:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			var a struct{ N int }
			json.Unmarshal(args, &a)
			return json.RawMessage(`{"n":` + string(rune('0'+a.N)) + `}`), nil
		}
		res := s.run(`const r = await Promise.all([0, 1, 2, 3, 4].map(n => __conductor_call("srv", "echo", {n, s: "é\"\n"})));
r.map(x => x.n)`, func(sp *Spec) { sp.Calls = handler })
		if res.Error != nil || string(res.Value) != `[0,1,2,3,4]` {
			t.Fatalf("%s", describe(res))
		}
		for _, g := range got {
			if !strings.HasPrefix(g, `srv.echo {"n":`) || !strings.HasSuffix(g, `,"s":"é\"\n"}`) {
				t.Errorf("call %s", g)
			}
		}
	})
	t.Run("handler error", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		res := s.run(`let r; try { await __conductor_call("srv", "t", {}) } catch (e) { r = [e.name, e.message] }; r`,
			func(sp *Spec) {
				sp.Calls = func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
					return nil, errors.New("upstream said no")
				}
			})
		if res.Error != nil || string(res.Value) != `["ToolError","upstream said no"]` {
			t.Fatal(describe(res))
		}
	})
	t.Run("no handler", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		res := s.run(`await __conductor_call("srv", "t", {})`)
		if res.Error == nil || !strings.Contains(res.Error.Message, "no MCP servers") {
			t.Fatal(describe(res))
		}
	})
	t.Run("bad args", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		res := s.run(`const o = {}; o.o = o; let m; try { await __conductor_call("srv", "t", o) } catch (e) { m = e.message }; m`,
			func(sp *Spec) {
				sp.Calls = func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
					t.Error("handler called")
					return nil, nil
				}
			})
		if res.Error != nil || !strings.Contains(string(res.Value), "arguments are not JSON") {
			t.Fatal(describe(res))
		}
	})
	t.Run("handler outlives run", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		cancelled := make(chan struct{})
		res := s.run(`__conductor_call("srv", "slow", {}); 1`, func(sp *Spec) {
			sp.Calls = func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
				<-ctx.Done()
				close(cancelled)
				return nil, ctx.Err()
			}
		})
		if res.Error != nil || string(res.Value) != "1" {
			t.Fatal(describe(res))
		}
		select {
		case <-cancelled:
		default:
			t.Error("Run returned before the handler saw its context end")
		}
	})
}

func TestOnOutputStreams(t *testing.T) {
	t.Parallel()
	s := newSbx(t)
	seen := make(chan string, 16)
	res := s.run(`console.log("first"); await __conductor_call("srv", "wait", {}); console.error("second"); 3`, func(sp *Spec) {
		sp.OnOutput = func(stream, text string) { seen <- stream + ":" + text }
		sp.Calls = func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
			// The run is still going: its first line must have arrived.
			// (The line's newline may be held back until the harness's next
			// frame shows it is the program's.)
			select {
			case got := <-seen:
				if !strings.HasPrefix(got, "stdout:first") {
					return nil, errors.New("got " + got)
				}
				return json.RawMessage(`null`), nil
			case <-ctx.Done():
				return nil, errors.New("no output before the call")
			}
		}
	})
	if res.Error != nil || string(res.Value) != "3" {
		t.Fatal(describe(res))
	}
	var rest []string
	for len(seen) > 0 {
		rest = append(rest, <-seen)
	}
	if !slices.Contains(rest, "stderr:second\n") {
		t.Errorf("later chunks %q", rest)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s := newSbx(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		<-started
		cancel()
	}()
	res, err := s.r.Run(ctx, Spec{Code: `await __conductor_call("s", "t", {}); for (;;) {}`, Dir: s.dir, Timeout: 20 * time.Second,
		Calls: func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
			close(started)
			return json.RawMessage(`1`), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Error == nil || !strings.Contains(res.Error.Message, "cancelled") {
		t.Fatal(describe(res))
	}
	for _, pid := range s.pids {
		waitGone(t, pid)
	}
}

func TestBadSpec(t *testing.T) {
	t.Parallel()
	s := newSbx(t)
	if _, err := s.r.Run(context.Background(), Spec{Code: "1", Dir: "relative"}); err == nil {
		t.Error("a relative Dir was accepted")
	}
	if _, err := New(Options{Deno: "deno", Workspace: "rel"}); err == nil {
		t.Error("a relative workspace was accepted")
	}
	if _, err := New(Options{Workspace: "/tmp"}); err == nil {
		t.Error("no Deno was accepted")
	}
}

// TestImportShims: imports reach their module through the harness's
// namespaces (see prepare.go) in function and module programs alike; an
// import of a name a generated module lacks fails at compile; a program
// can neither forge the lookup into loading something nor be broken by
// using the name itself.
func TestImportShims(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	mod := filepath.Join(e.dir, "mcp", ".v", "m-1.ts")
	if err := os.MkdirAll(filepath.Dir(mod), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "export const SERVER = \"m\";\nexport function twice(n: number): number { return 2 * n }\nexport interface Args { n: number }\n"
	if err := os.WriteFile(mod, []byte(src), 0o444); err != nil {
		t.Fatal(err)
	}
	imp := func(s *Spec) {
		s.Importer = Importer{Module: func(server string) (string, error) {
			if server != "m" {
				return "", errors.New("no such server")
			}
			return mod, nil
		}}
	}
	cases := []struct {
		name, code, value string
		kind              Kind
		msg               string
	}{
		{name: "named", code: `import { twice, SERVER } from "./mcp/m"; [twice(2), SERVER]`, value: `[4,"m"]`},
		{name: "namespace", code: `import * as m from "./mcp/m"; import type { Args } from "./mcp/m"; const a: Args = {n: 3}; [m.twice(a.n), Object.keys(m).sort()]`, value: `[6,["SERVER","twice"]]`},
		{name: "module program", code: "import { twice } from \"./mcp/m\";\nexport const k = twice(5);\nk", value: `10`},
		{name: "import.meta", code: "import { twice } from \"./mcp/m\";\n[twice(1), typeof import.meta.url]", value: `[2,"string"]`},
		{name: "dynamic", code: `const m = await import("./mcp/m"); m.twice(4)`, value: `8`},
		{name: "the shim's name in user code", code: "import { twice } from \"./mcp/m\";\nconst __conductor_ns = 1;\ntwice(__conductor_ns)", value: `2`},
		{name: "missing export", code: "const a = 1;\nimport { thrice } from \"./mcp/m\";\nthrice(a)", kind: KindSyntax, msg: "thrice"},
		{name: "forged lookup", code: `(globalThis as any).__conductor_ns("npm:left-pad")`, kind: KindException, msg: "not loaded"},
		{name: "forged lookup of a file", code: `(globalThis as any).__conductor_ns("file:///etc/passwd")`, kind: KindException, msg: "not loaded"},
		{name: "replaced lookup", code: `(globalThis as any).__conductor_ns = () => 1`, kind: KindException, msg: "read only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := e.run(t, c.code, imp)
			if c.kind == "" {
				if res.Error != nil || string(res.Value) != c.value {
					t.Fatalf("%s: %s", describe(res), res.Value)
				}
				return
			}
			if res.Error == nil || res.Error.Kind != c.kind || !strings.Contains(res.Error.Message, c.msg) {
				t.Fatalf("got %s; want a %s error containing %q", describe(res), c.kind, c.msg)
			}
		})
	}
}
