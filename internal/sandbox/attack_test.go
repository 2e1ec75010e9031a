package sandbox

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
)

type attack struct {
	name string
	code string
	// kinds the run may fail with; empty means it must succeed.
	kinds []Kind
	// msg, when set, must appear in the error message.
	msg   string
	check func(t *testing.T, s *sbx, res *Result)
	mod   []func(*Spec)
}

func expand(s *sbx, code string) string {
	return strings.NewReplacer(
		"SECRET_FILE", s.secretF,
		"SECRET_JSON", filepath.Join(s.base, "secret.json"),
		"OTHER_FILE", s.otherF,
		"OTHER_DIR", s.other,
		"WS_ROOT", s.ws,
		"CONV_DIR", s.dir,
	).Replace(code)
}

func runAttacks(t *testing.T, attacks []attack) {
	t.Helper()
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			s := newSbx(t)
			res := s.run(expand(s, a.code), a.mod...)
			t.Logf("%s", describe(res))
			s.noLeak(res)
			switch {
			case len(a.kinds) == 0 && res.Error != nil:
				t.Errorf("unexpected error: %s", describe(res))
			case len(a.kinds) > 0 && res.Error == nil:
				t.Errorf("attack succeeded: %s", describe(res))
			case len(a.kinds) > 0 && !slices.Contains(a.kinds, res.Error.Kind):
				t.Errorf("error kind %q, want one of %v: %s", res.Error.Kind, a.kinds, describe(res))
			}
			if a.msg != "" && (res.Error == nil || !strings.Contains(res.Error.Message, a.msg)) {
				t.Errorf("error message does not say %q: %s", a.msg, describe(res))
			}
			if a.check != nil {
				a.check(t, s, res)
			}
		})
	}
}

var (
	refused    = []Kind{KindSyntax}
	denied     = []Kind{KindPermission}
	anyFailure = []Kind{KindPermission, KindException, KindSyntax}
)

func TestAttackImports(t *testing.T) {
	t.Parallel()
	runAttacks(t, []attack{
		{name: "text absolute", code: `import x from "SECRET_FILE" with {type: "text"}; x`, kinds: refused, msg: "local files cannot be imported"},
		{name: "etc passwd", code: `import x from "/etc/passwd" with {type: "text"}; x`, kinds: refused,
			check: func(t *testing.T, s *sbx, res *Result) { s.noLeak(res, "root:x:0") }},
		{name: "json file url", code: `import x from "file://SECRET_JSON" with {type: "json"}; x`, kinds: refused},
		{name: "bytes dotdot", code: `import x from "../../secret.txt" with {type: "bytes"}; x`, kinds: refused},
		{name: "workspace module", code: `import x from "./workspace/x.js"; x`, kinds: refused},
		{name: "dynamic literal", code: `(await import("SECRET_FILE", {with: {type: "text"}})).default`, kinds: refused},
		{name: "dynamic file url", code: `(await import("file://SECRET_FILE", {with: {type: "text"}})).default`, kinds: refused},
		{name: "computed file", code: `const p = ["file:/", "SECRET_FILE"].join("/"); (await import(p, {with: {type: "text"}})).default`, kinds: denied},
		{name: "computed json", code: `const p = "file://" + "SECRET_JSON"; (await import(p, {with: {type: "json"}})).default`, kinds: denied},
		{name: "computed other conversation", code: `const p = "file://" + "OTHER_FILE"; (await import(p, {with: {type: "text"}})).default`, kinds: denied},
		{name: "computed harness dir", code: `const p = "file://" + "WS_ROOT" + "/.conductor/"; (await import(p + [...Deno.readDirSync("WS_ROOT/.conductor")][0].name))`, kinds: denied},
		{name: "https", code: `import x from "https://deno.land/x/a/mod.ts"; x`, kinds: refused, msg: "URL imports are not allowed"},
		{name: "computed https", code: `await import("https://" + "example.com/x.js")`, kinds: anyFailure},
		{name: "jsr", code: `import * as p from "jsr:@std/path"; p`, kinds: refused},
		{name: "npm", code: `import z from "npm:zod@3"; z`, kinds: refused, msg: "allowlist"},
		{name: "bare", code: `import z from "zod"; z`, kinds: refused},
		{name: "computed npm", code: `await import("npm:" + "zod@3")`, kinds: anyFailure},
		{name: "data literal", code: `import x from "data:text/javascript,export default 1"; x`, kinds: refused},
		{name: "data nested file", code: `const src = 'import t from "file://SECRET_FILE" with {type: "text"}; export default t;';
(await import("data:text/javascript," + encodeURIComponent(src))).default`, kinds: denied},
		{name: "blob nested file", code: `const src = 'import t from "file://SECRET_FILE" with {type: "text"}; export default t;';
(await import(URL.createObjectURL(new Blob([src], {type: "text/javascript"})))).default`, kinds: denied},
		{name: "node fs", code: `import fs from "node:fs"; fs.readFileSync("SECRET_FILE", "utf8")`, kinds: denied},
		{name: "workspace module computed", code: `
Deno.writeTextFileSync("workspace/x.js", "export default Deno.readTextFileSync('SECRET_FILE')");
(await import("file://" + Deno.cwd() + "/workspace/x.js")).default`, kinds: denied},
	})
}

func TestAttackFiles(t *testing.T) {
	t.Parallel()
	runAttacks(t, []attack{
		{name: "read outside", code: `Deno.readTextFileSync("SECRET_FILE")`, kinds: denied},
		{name: "read other conversation", code: `Deno.readTextFileSync("OTHER_FILE")`, kinds: denied},
		{name: "read other conversation relative", code: `Deno.readTextFileSync("../c2/workspace/secret.txt")`, kinds: denied},
		{name: "list workspace root", code: `[...Deno.readDirSync("WS_ROOT")].map(e => e.name)`, kinds: denied},
		{name: "read harness", code: `[...Deno.readDirSync("WS_ROOT/.conductor")].map(e => e.name)`, kinds: denied},
		{name: "write other conversation", code: `Deno.writeTextFileSync("OTHER_DIR/workspace/y", "x")`, kinds: denied,
			check: func(t *testing.T, s *sbx, res *Result) {
				if _, err := os.Stat(filepath.Join(s.other, "workspace", "y")); err == nil {
					t.Error("wrote into another conversation")
				}
			}},
		{name: "write mcp", code: `Deno.writeTextFileSync("mcp/evil.ts", "x")`, kinds: denied},
		{name: "write conversation root", code: `Deno.writeTextFileSync("deno.json", "{}")`, kinds: denied},
		{name: "proc environ", code: `Deno.readTextFileSync("/proc/self/environ")`, kinds: denied},
		{name: "proc exe", code: `Deno.readLinkSync("/proc/self/exe")`, kinds: denied},
		{name: "symlink out", code: `Deno.symlinkSync("SECRET_FILE", "workspace/l"); Deno.readTextFileSync("workspace/l")`, kinds: denied},
		{name: "hard link out", code: `Deno.linkSync("SECRET_FILE", "workspace/l"); Deno.readTextFileSync("workspace/l")`, kinds: denied},
		{name: "node fs symlink", code: `import fs from "node:fs"; fs.symlinkSync("SECRET_FILE", "workspace/l"); fs.readFileSync("workspace/l", "utf8")`, kinds: denied},
		{name: "temp file", code: `Deno.makeTempFileSync()`, kinds: denied},
		{name: "no grant", code: `Deno.readTextFileSync("workspace/x")`, kinds: denied,
			mod: []func(*Spec){func(s *Spec) { s.Permissions = config.Permissions{} }}},
	})
}

func TestAttackProcessAndNative(t *testing.T) {
	t.Parallel()
	runAttacks(t, []attack{
		{name: "command", code: `new Deno.Command("/bin/sh", {args: ["-c", "cat SECRET_FILE"]}).outputSync()`, kinds: denied},
		{name: "node child_process", code: `import cp from "node:child_process"; cp.execSync("cat SECRET_FILE").toString()`, kinds: denied},
		{name: "dlopen", code: `Deno.dlopen("libc.so.6", {getpid: {parameters: [], result: "i32"}}).symbols.getpid()`, kinds: anyFailure},
		{name: "kill parent", code: `Deno.kill(1, "SIGKILL")`, kinds: anyFailure},
		{name: "hostname", code: `Deno.hostname()`, kinds: denied},
		{name: "exec path", code: `[Deno.execPath(), Deno.mainModule, import.meta.url, new Error().stack, Deno.cwd()].join("\n")`},
		{name: "worker", code: `new Worker("data:text/javascript,postMessage(1)", {type: "module"})`, kinds: []Kind{KindException}, msg: "Worker is not available"},
		{name: "worker via prototype", code: `const W = Object.getPrototypeOf(globalThis).Worker ?? globalThis.Worker; new W("data:text/javascript,1", {type: "module"})`, kinds: []Kind{KindException}},
	})
}

// TestAttackEnv cannot run in parallel: it sets an environment variable of
// the test process, standing for a token of the conductor.
func TestAttackEnv(t *testing.T) {
	secret := "ENVSECRET-" + randomHex(8)
	t.Setenv("CONDUCTOR_TEST_TOKEN", secret)
	s := newSbx(t)
	grantEnv := func(sp *Spec) { sp.Permissions.Env = []string{"CONDUCTOR_TEST_TOKEN", "HOME"} }
	cases := []struct {
		name  string
		code  string
		grant bool
		fail  bool
	}{
		{"Deno.env.get", `Deno.env.get("CONDUCTOR_TEST_TOKEN")`, false, true},
		{"Deno.env.toObject", `Deno.env.toObject()`, false, true},
		{"process.env", `import process from "node:process"; process.env.CONDUCTOR_TEST_TOKEN`, false, true},
		{"process.env keys", `import process from "node:process"; JSON.stringify(process.env)`, false, true},
		{"environ", `Deno.readTextFileSync("/proc/self/environ")`, false, true},
		{"parent environ", `Deno.readTextFileSync("/proc/" + Deno.ppid + "/environ")`, false, true},
		{"granted but absent", `[Deno.env.get("CONDUCTOR_TEST_TOKEN") ?? "absent", Deno.env.get("HOME")]`, true, false},
	}
	for _, c := range cases {
		var mod []func(*Spec)
		if c.grant {
			mod = append(mod, grantEnv)
		}
		res := s.run(c.code, mod...)
		t.Logf("%s: %s", c.name, describe(res))
		s.noLeak(res, secret)
		if c.fail && (res.Error == nil || res.Error.Kind != KindPermission) {
			t.Errorf("%s: want a permission error: %s", c.name, describe(res))
		}
		if !c.fail && string(res.Value) != `["absent","<home>"]` {
			t.Errorf("%s: value %s, want [\"absent\",\"<home>\"]", c.name, res.Value)
		}
	}
}

func TestAttackNetwork(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	s := newSbx(t)
	for _, code := range []string{
		`await fetch("http://` + addr + `/")`,
		`await fetch("http://localhost:` + port + `/")`,
		`await Deno.connect({hostname: "127.0.0.1", port: ` + port + `})`,
		`await Deno.connect({transport: "tcp", hostname: "::ffff:127.0.0.1", port: ` + port + `})`,
		`import net from "node:net"; await new Promise((ok, bad) => { const c = net.connect(` + port + `, "127.0.0.1", ok); c.on("error", bad); })`,
		`new WebSocket("ws://` + addr + `/"); await new Promise(r => setTimeout(r, 200))`,
		`Deno.listen({port: 0}).addr`,
		`await Deno.resolveDns("localhost", "A")`,
	} {
		res := s.run(code)
		t.Logf("%s: %s", code, describe(res))
		s.noLeak(res)
		if res.Error == nil {
			t.Errorf("%s: succeeded: %s", code, describe(res))
		}
	}
	ln.Close()
	if n := conns.Load(); n != 0 {
		t.Errorf("the listener accepted %d connections", n)
	}
}

func TestAttackLinksInWorkspace(t *testing.T) {
	t.Parallel()
	marker := `Deno.writeTextFileSync("workspace/ran", "1"); 1`
	t.Run("symlink out", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		if err := os.Symlink(s.secretF, filepath.Join(s.dir, "workspace", "l")); err != nil {
			t.Fatal(err)
		}
		res := s.run(`Deno.readTextFileSync("workspace/l")`)
		s.noLeak(res)
		if res.Error == nil || res.Error.Kind != KindPermission || !strings.Contains(res.Error.Message, "symbolic link") {
			t.Errorf("symlink to outside: %s", describe(res))
		}
		if len(s.lastPids) != 0 {
			t.Errorf("a refused run started Deno")
		}
	})
	t.Run("symlink dir out nested", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		os.MkdirAll(filepath.Join(s.dir, "workspace", "a", "b"), 0o755)
		if err := os.Symlink(s.other, filepath.Join(s.dir, "workspace", "a", "b", "up")); err != nil {
			t.Fatal(err)
		}
		res := s.run(marker)
		if res.Error == nil || res.Error.Kind != KindPermission {
			t.Errorf("symlink to another conversation: %s", describe(res))
		}
		if _, err := os.Stat(filepath.Join(s.dir, "workspace", "ran")); err == nil {
			t.Error("the program ran")
		}
	})
	t.Run("relative symlink out", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		if err := os.Symlink("../../../secret.txt", filepath.Join(s.dir, "workspace", "l")); err != nil {
			t.Fatal(err)
		}
		res := s.run(marker)
		if res.Error == nil || res.Error.Kind != KindPermission {
			t.Errorf("relative symlink: %s", describe(res))
		}
	})
	t.Run("workspace itself a symlink", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		ws := filepath.Join(s.dir, "workspace")
		os.RemoveAll(ws)
		if err := os.Symlink(filepath.Join(s.other, "workspace"), ws); err != nil {
			t.Fatal(err)
		}
		res := s.run(`Deno.readTextFileSync("workspace/secret.txt")`)
		s.noLeak(res)
		if res.Error == nil || res.Error.Kind != KindPermission {
			t.Errorf("workspace symlinked to another conversation: %s", describe(res))
		}
	})
	t.Run("symlink inside is fine", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		s.writeWS("a.txt", "hello")
		if err := os.Symlink("a.txt", filepath.Join(s.dir, "workspace", "l")); err != nil {
			t.Fatal(err)
		}
		res := s.run(`Deno.readTextFileSync("workspace/l")`)
		if res.Error != nil || string(res.Value) != `"hello"` {
			t.Errorf("symlink inside the workspace: %s", describe(res))
		}
	})
	t.Run("hard link", func(t *testing.T) {
		t.Parallel()
		s := newSbx(t)
		if err := os.Link(s.secretF, filepath.Join(s.dir, "workspace", "h")); err != nil {
			t.Skip("cannot hard-link:", err)
		}
		res := s.run(`Deno.readTextFileSync("workspace/h")`)
		s.noLeak(res)
		if res.Error == nil || res.Error.Kind != KindPermission || !strings.Contains(res.Error.Message, "hard link") {
			t.Errorf("hard link: %s", describe(res))
		}
		if len(s.lastPids) != 0 {
			t.Errorf("a refused run started Deno")
		}
	})
}

func TestAttackConfigFiles(t *testing.T) {
	t.Parallel()
	s := newSbx(t)
	importMap := `{"imports": {"evil": "file://` + s.secretF + `", "evil/": "file://` + s.base + `/"}}`
	files := map[string]string{
		"deno.json":       `{"imports": {"evil": "file://` + s.secretF + `"}, "nodeModulesDir": "auto", "permissions": {"default": {"read": true}}}`,
		"deno.jsonc":      `{"imports": {"evil": "file://` + s.secretF + `"}}`,
		"package.json":    `{"name": "x", "type": "commonjs", "dependencies": {"evil": "file:` + s.base + `"}, "imports": {"#evil": "` + s.secretF + `"}}`,
		".npmrc":          "registry=http://127.0.0.1:1/\n",
		"import_map.json": importMap,
	}
	// The program writes them into its workspace; "someone else" writes them
	// into the conversation root.
	var code strings.Builder
	for name, content := range files {
		b, _ := json.Marshal(content)
		code.WriteString("Deno.writeTextFileSync(\"workspace/" + name + "\", " + string(b) + ");\n")
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code.WriteString("1")
	if res := s.run(code.String()); res.Error != nil {
		t.Fatalf("writing config files: %s", describe(res))
	}
	for _, c := range []string{
		`(await import(["ev", "il"].join(""), {with: {type: "text"}})).default`,
		`(await import(["#ev", "il"].join(""), {with: {type: "text"}})).default`,
		`(await import(["evil/", "secret.txt"].join(""), {with: {type: "text"}})).default`,
		`Deno.readTextFileSync("SECRET_FILE")`,
		`Deno.chdir("workspace"); (await import(["ev", "il"].join(""), {with: {type: "text"}})).default`,
	} {
		res := s.run(expand(s, c))
		t.Logf("%s: %s", c, describe(res))
		s.noLeak(res)
		if res.Error == nil {
			t.Errorf("%s: succeeded: %s", c, describe(res))
		}
	}
}

func TestAttackStateBetweenRuns(t *testing.T) {
	t.Parallel()
	s := newSbx(t)
	res := s.run(`
globalThis.leak = "x";
Object.prototype.leak = "y";
try { localStorage.setItem("k", "v") } catch {}
try { sessionStorage.setItem("k", "v") } catch {}
try { const c = await caches.open("c"); await c.put("http://x/", new Response("v")) } catch {}
try { Deno.writeTextFileSync(Deno.makeTempFileSync(), "v") } catch {}
[typeof localStorage, typeof sessionStorage, typeof caches]`)
	if res.Error != nil || string(res.Value) != `["undefined","undefined","undefined"]` {
		t.Errorf("first run: %s", describe(res))
	}
	res = s.run(`[typeof globalThis.leak, ({}).leak ?? "none", typeof localStorage, typeof caches]`)
	if res.Error != nil || string(res.Value) != `["undefined","none","undefined","undefined"]` {
		t.Errorf("second run sees state: %s", describe(res))
	}
	ents, _ := os.ReadDir(s.r.opts.Home)
	if len(ents) != 0 {
		t.Errorf("HOME is not empty after runs: %v", ents)
	}
}

func TestAttackLimits(t *testing.T) {
	t.Parallel()
	short := withTimeout(1500 * time.Millisecond)
	runAttacks(t, []attack{
		{name: "infinite loop", code: `for (;;) {}`, kinds: []Kind{KindTimeout}, mod: []func(*Spec){short}},
		{name: "infinite await", code: `await new Promise(() => setInterval(() => {}, 1000))`, kinds: []Kind{KindTimeout}, mod: []func(*Spec){short}},
		{name: "ignore sigterm", code: `Deno.addSignalListener("SIGTERM", () => {}); Deno.addSignalListener("SIGINT", () => {}); for (;;) {}`,
			kinds: []Kind{KindTimeout}, mod: []func(*Spec){short}},
		{name: "heap bomb", code: `const a = []; for (;;) a.push(new Array(1e5).fill({x: 1}))`, kinds: []Kind{KindMemory}},
		{name: "string bomb", code: `let s = "x"; const keep = []; for (;;) { s = s + s; keep.push(s + "y") }`, kinds: []Kind{KindMemory, KindException}},
		{name: "arraybuffer bomb", code: `const a = []; for (;;) { const b = new ArrayBuffer(64 << 20); new Uint8Array(b).fill(1); a.push(b) }`, kinds: []Kind{KindMemory}},
		{name: "worker bomb", code: `for (let i = 0; i < 100; i++) new Worker("data:text/javascript,for(;;){}", {type: "module"})`,
			kinds: []Kind{KindException}, msg: "Worker is not available"},
		{name: "stdout flood", code: `for (;;) console.log("x".repeat(1000))`, kinds: []Kind{KindOutputLimit},
			check: func(t *testing.T, s *sbx, res *Result) {
				if len(res.Stdout)+len(res.Stderr) > 1<<20 {
					t.Errorf("kept %d bytes, more than the limit", len(res.Stdout)+len(res.Stderr))
				}
			}},
		{name: "stderr flood", code: `const b = new TextEncoder().encode("y".repeat(1 << 16)); for (;;) Deno.stderr.writeSync(b)`, kinds: []Kind{KindOutputLimit}},
		{name: "long line flood", code: `const b = new TextEncoder().encode("\x1e".repeat(1 << 16)); for (;;) Deno.stdout.writeSync(b)`, kinds: []Kind{KindOutputLimit}},
		{name: "big result", code: `"x".repeat(2 << 20)`, kinds: []Kind{KindOutputLimit}},
		{name: "fork sleep", code: `new Deno.Command("/usr/bin/sleep", {args: ["100"]}).spawn(); for (;;) {}`, kinds: []Kind{KindTimeout},
			mod: []func(*Spec){short, func(s *Spec) { s.Permissions.Run = []string{"/usr/bin/sleep"} }}},
		{name: "setsid child", code: `new Deno.Command("/usr/bin/setsid", {args: ["/usr/bin/sleep", "4321.5"]}).spawn(); await new Promise(r => setTimeout(r, 300)); 1`,
			mod: []func(*Spec){short, func(s *Spec) { s.Permissions.Run = []string{"/usr/bin/setsid"} }},
			check: func(t *testing.T, s *sbx, res *Result) {
				waitNoCmdline(t, "4321.5")
			}},
	})
}

func TestAttackProtocol(t *testing.T) {
	t.Parallel()
	runAttacks(t, []attack{
		{name: "override exit", code: `try { Deno.exit = () => {} } catch {}; try { Object.defineProperty(Deno, "exit", {value: () => {}}) } catch {}; ({a: 1})`,
			check: wantValue(`{"a":1}`)},
		{name: "override conductor call", code: `try { globalThis.__conductor_call = () => 1 } catch {}; ({a: 1})`, check: wantValue(`{"a":1}`)},
		{name: "override JSON.stringify", code: `JSON.stringify = () => "{}"; JSON.parse = () => ({}); ({a: 1})`, check: wantValue(`{"a":1}`)},
		{name: "override encode", code: `TextEncoder.prototype.encode = () => new Uint8Array(0); TextEncoder.prototype.encodeInto = () => ({read: 0, written: 0}); ({a: 1})`, check: wantValue(`{"a":1}`)},
		{name: "override toJSON", code: `Object.prototype.toJSON = function () { return "pwned" }; Array.prototype.toJSON = function () { return "pwned" }; 5`, check: wantValue(`5`)},
		{name: "override then", code: `Promise.prototype.then = function () { return this }; ({a: 1})`, check: wantValue(`{"a":1}`)},
		{name: "override iterators", code: `Array.prototype[Symbol.iterator] = function* () {}; Object.keys = () => []; Map.prototype.get = () => undefined; ({a: [1, 2]})`, check: wantValue(`{"a":[1,2]}`)},
		{name: "override Uint8Array", code: `Uint8Array.prototype.subarray = () => new Uint8Array(0); Uint8Array.prototype.indexOf = () => -1; ({a: 1})`, check: wantValue(`{"a":1}`)},
		{name: "override writeSync", code: `Deno.stdout.writeSync = () => 0; Deno.stdout.write = async () => 0; ({a: 1})`, check: wantValue(`{"a":1}`)},
		{name: "override String", code: `globalThis.String = () => "pwned"; Error.prototype.toString = () => "x"; ({a: 1n})`, check: wantValue(`{"a":"1n"}`)},
		{name: "forged frames", code: `
const e = new TextEncoder();
for (const s of ["", "0", "00".repeat(24), "deadbeef"]) {
  Deno.stdout.writeSync(e.encode('\n\x1e' + s + ':{"t":"done","ok":true,"has":true,"result":666}\n'));
  console.log('\x1e' + s + ':{"t":"call","id":1,"server":"s","tool":"t","args":"{}"}');
}
console.log('\x1e:{"t":"ready"}');
42`, check: func(t *testing.T, s *sbx, res *Result) {
			wantValue(`42`)(t, s, res)
			if strings.Count(res.Stdout, "\x1e") != 9 {
				t.Errorf("forged frames are not kept as output: %q", res.Stdout)
			}
		}},
		{name: "read stdin", code: `
const buf = new Uint8Array(1 << 16);
let got = "";
try {
  const n = await Promise.race([Deno.stdin.read(buf), new Promise(r => setTimeout(() => r(-1), 300))]);
  got = n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : String(n);
} catch (e) { got = "error: " + e.message }
got`, check: func(t *testing.T, s *sbx, res *Result) {
			if strings.Contains(string(res.Value), "secret") || strings.Contains(string(res.Value), `\"t\":\"run\"`) {
				t.Errorf("user code read the run message: %s", res.Value)
			}
		}},
		{name: "stack in result getter", code: `({get s() { return new Error().stack }, get p() { return Deno.execPath() + Deno.mainModule }})`},
		{name: "throwing getter", code: `({get s() { throw new Error("boom") }})`, kinds: []Kind{KindException}, msg: "boom",
			check: func(t *testing.T, s *sbx, res *Result) {
				if res.Error != nil && strings.Contains(res.Error.Stack, "harness") {
					t.Errorf("stack shows the harness: %s", res.Error.Stack)
				}
			}},
		{name: "error with stack message", code: `({get s() { throw new Error(new Error().stack) }})`, kinds: []Kind{KindException}},
		{name: "call args stack", code: `await __conductor_call("s", "t", {get s() { return new Error().stack }})`,
			mod: []func(*Spec){func(sp *Spec) {
				sp.Calls = func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
					return args, nil
				}
			}},
			check: func(t *testing.T, s *sbx, res *Result) {
				if !strings.Contains(string(res.Value), "main.ts") && !strings.Contains(string(res.Value), "blob:") {
					t.Logf("value: %s", res.Value)
				}
			}},
		{name: "call handler error", code: `await __conductor_call("s", "t", {})`, kinds: []Kind{KindException},
			mod: []func(*Spec){func(sp *Spec) {
				sp.Calls = func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
					return nil, &os.PathError{Op: "open", Path: "/x", Err: os.ErrNotExist}
				}
			}}},
		{name: "prepareStackTrace", code: `Error.prepareStackTrace = (e, cs) => cs.map(c => [c.getFileName(), String(c.getFunction()), String(c.getThis())].join(" ")).join("|");
({get s() { return new Error().stack }})`},
		{name: "deno exit 3", code: `Deno.exit(3)`, kinds: []Kind{KindException}, msg: "exit"},
		{name: "process exit 3", code: `import process from "node:process"; console.log("before"); process.exit(3)`, kinds: []Kind{KindException}, msg: "exit",
			check: func(t *testing.T, s *sbx, res *Result) {
				if res.Stdout != "before\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			}},
		{name: "process exit 0", code: `import process from "node:process"; console.log("before"); process.exit(0)`},
		{name: "deno exit 0", code: `console.log("x"); Deno.exit(0); 5`},
		{name: "throw non-error", code: `throw {toString() { return Deno.execPath() }, get message() { return new Error().stack }}`, kinds: []Kind{KindException}},
		{name: "unhandled rejection later", code: `setTimeout(() => Promise.reject(new Error("late")), 0); await new Promise(r => setTimeout(r, 100)); 1`, kinds: []Kind{KindException}, msg: "late"},
	})
}

func wantValue(want string) func(t *testing.T, s *sbx, res *Result) {
	return func(t *testing.T, s *sbx, res *Result) {
		t.Helper()
		if res.Error != nil || string(res.Value) != want {
			t.Errorf("value = %s, want %s (%s)", res.Value, want, describe(res))
		}
	}
}
