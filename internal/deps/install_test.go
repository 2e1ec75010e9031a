package deps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

// These tests use a real Deno and the real npm registry. Without them a
// plain `go test` skips; under CI=true a missing component is a failure.

const helperEnv = "DEPS_TEST_HELPER_ROOT"

func TestMain(m *testing.M) {
	if root := os.Getenv(helperEnv); root != "" {
		os.Exit(helperInstall(root))
	}
	code := m.Run()
	if shared.base != "" {
		_ = removeAll(shared.base)
	}
	os.Exit(code)
}

// helperInstall is the child process of TestInstallConcurrentProcesses.
func helperInstall(root string) int {
	list, err := Parse(strings.Split(os.Getenv("DEPS_TEST_HELPER_LIST"), ","))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	var n atomic.Int32
	c, err := Install(context.Background(), list, InstallOptions{
		Deno: os.Getenv("DEPS_TEST_HELPER_DENO"), CacheRoot: root, Env: os.Getenv,
		Logger: slog.New(countHandler{&n}), Timeout: 2 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("INSTALLS=%d DIR=%s\n", n.Load(), c.Dir)
	return 0
}

// countHandler counts the "installing" records: one per real install.
type countHandler struct{ n *atomic.Int32 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "installing allowed packages" {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

func denoBin(t testing.TB) string { return testenv.Deno(t) }

var registryOnce = sync.OnceValue(func() error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Head("https://registry.npmjs.org/zod")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
})

func needRegistry(t testing.TB) {
	t.Helper()
	if err := registryOnce(); err != nil {
		missing(t, "npm registry unreachable: %v", err)
	}
}

// cacheRoot is a temp dir whose read-only caches are made removable again
// before the testing package deletes it.
func cacheRoot(t *testing.T) string {
	root := t.TempDir()
	t.Cleanup(func() { _ = removeAll(root) })
	return root
}

func mustParse(t testing.TB, entries ...string) *Allowlist {
	t.Helper()
	a, err := Parse(entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func installOpts(t testing.TB, root string) InstallOptions {
	return InstallOptions{Deno: denoBin(t), CacheRoot: root, Env: os.Getenv, Timeout: 2 * time.Minute}
}

// shared is one install of npm:zod@^3 that the run tests use.
var shared struct {
	once  sync.Once
	base  string // temp dir: base/deps is the cache root
	cache *Cache
	took  time.Duration
	err   error
}

func zodCache(t testing.TB) *Cache {
	t.Helper()
	deno := denoBin(t)
	needRegistry(t)
	shared.once.Do(func() {
		shared.base, shared.err = os.MkdirTemp("", "deps-test-")
		if shared.err != nil {
			return
		}
		start := time.Now()
		shared.cache, shared.err = Install(context.Background(), mustParse(t, "npm:zod@^3"),
			InstallOptions{Deno: deno, CacheRoot: filepath.Join(shared.base, "deps"), Env: os.Getenv, Timeout: 2 * time.Minute})
		shared.took = time.Since(start)
	})
	if shared.err != nil {
		t.Fatalf("Install(npm:zod@^3) = %v", shared.err)
	}
	return shared.cache
}

// runCode runs code the way internal/sandbox does: harness entry, user code
// from a blob: URL, environment built from nothing, zero permissions plus
// perms, and the cache's RunFlags and RunEnv.
func runCode(t testing.TB, c *Cache, cwd string, perms []string, code string) (result, stderr string, err error) {
	t.Helper()
	harness, _ := filepath.Abs("testdata/harness.js")
	args := []string{"run", "--no-prompt", "--no-config", "--no-lock", "--no-remote", "--cached-only",
		"--node-modules-dir=none", "--v8-flags=--max-old-space-size=128"}
	args = append(args, perms...)
	args = append(args, c.RunFlags()...)
	args = append(args, harness)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, denoBin(t), args...)
	cmd.Dir = cwd
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"}, c.RunEnv()...)
	cmd.Stdin = strings.NewReader(code)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	for _, l := range strings.Split(out.String(), "\n") {
		if r, ok := strings.CutPrefix(l, "RESULT "); ok {
			result = r
		}
	}
	return result, errb.String(), err
}

func TestInstallAndRun(t *testing.T) {
	c := zodCache(t)
	t.Logf("first install of npm:zod@^3: %v", shared.took)
	if got := c.Resolved["npm:zod@^3"]; !strings.HasPrefix(got, "3.") {
		t.Fatalf("Resolved = %v, want npm:zod@^3 → 3.x", c.Resolved)
	}
	code := `
import { z } from "npm:zod@^3";
import { z as bare } from "zod";
const User = z.object({ name: z.string(), age: z.number().int().min(0) });
const ok = User.safeParse({ name: "Ada", age: 36 });
const bad = bare.object({ age: bare.number() }).safeParse({ age: "old" });
export default { ok: ok.success, name: ok.data.name, bad: bad.success, issue: bad.error.issues[0].path[0], same: z === bare };
`
	for _, spec := range []string{"npm:zod@^3", "zod"} {
		if err := c.Check(spec); err != nil {
			t.Errorf("Check(%q) = %v", spec, err)
		}
	}
	res, stderr, err := runCode(t, c, t.TempDir(), nil, code)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	if want := `{"ok":true,"name":"Ada","bad":false,"issue":"age","same":true}`; res != want {
		t.Errorf("result = %s, want %s\nstderr: %s", res, want, stderr)
	}

	// Stack traces of package code name cache files; Redact hides them.
	_, stderr, _ = runCode(t, c, t.TempDir(), nil, `import { z } from "zod"; z.string().parse(1);`)
	if !strings.Contains(stderr, c.DenoDir) {
		t.Errorf("expected a stack trace through the cache:\n%s", stderr)
	}
	red := c.Redact(stderr)
	if strings.Contains(red, c.Root) || !strings.Contains(red, "npm:/zod@"+c.Resolved["npm:zod@^3"]+"/") {
		t.Errorf("Redact(stack) = %s", red)
	}

	// Subpaths and the unversioned specifier, through the import map or Rewrite.
	sub, _ := c.Rewrite("npm:zod/v4")
	code = fmt.Sprintf(`
import { z as v4 } from "zod/v4";
import { z as any } from "npm:zod";
import { z as rew } from %q;
export default [v4.string().parse("a"), any.string().parse("b"), rew.string().parse("c")];
`, sub)
	res, stderr, err = runCode(t, c, t.TempDir(), nil, code)
	if err != nil || res != `["a","b","c"]` {
		t.Errorf("subpath run = %s, %v\n%s", res, err, stderr)
	}
}

func TestNotAllowed(t *testing.T) {
	c := zodCache(t)
	for spec, want := range map[string]string{
		"npm:lodash": "package not in the allowlist; allowed packages: npm:zod@^3",
		"lodash":     "package not in the allowlist; allowed packages: npm:zod@^3",
		"npm:zod@^2": "does not match the installed",
	} {
		err := c.Check(spec)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), spec) {
			t.Errorf("Check(%q) = %v, want %q", spec, err, want)
		}
	}
	// Computed specifiers escape the static check; --cached-only stops them.
	for _, expr := range []string{`"npm:" + "lodash"`, `"npm:zod@" + "3.22.4"`, `"npm:zod@" + "^2"`, `["lo", "dash"].join("")`} {
		res, stderr, err := runCode(t, c, t.TempDir(), nil, fmt.Sprintf("const m = await import(%s);\nexport default Object.keys(m).length;", expr))
		if err == nil || res != "" {
			t.Errorf("import(%s) ran: result %q", expr, res)
		}
		if !strings.Contains(stderr, "cached-only") && !strings.Contains(stderr, "not a dependency") && !strings.Contains(stderr, "Could not find npm package") {
			t.Errorf("import(%s) failed for another reason:\n%s", expr, stderr)
		}
	}
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestRunCannotTouchCache(t *testing.T) {
	c := zodCache(t)
	pkgFile, err := filepath.Glob(filepath.Join(c.DenoDir, "npm", "*", "zod", c.Resolved["npm:zod@^3"], "package.json"))
	if err != nil || len(pkgFile) != 1 {
		t.Fatalf("zod's package.json in the cache: %v %v", pkgFile, err)
	}
	before := fileSum(t, pkgFile[0])
	info, err := os.Stat(pkgFile[0])
	if err != nil || info.Mode().Perm()&0o222 != 0 {
		t.Errorf("cache file mode = %v, want read-only", info.Mode())
	}

	parent := filepath.Dir(c.Root) // holds the cache root and the workspaces
	for name, grant := range map[string]func(ws string) []string{
		"workspace only":     func(ws string) []string { return []string{"--allow-read=" + ws, "--allow-write=" + ws} },
		"parent of the root": func(string) []string { return []string{"--allow-read=" + parent, "--allow-write=" + parent} },
	} {
		t.Run(name, func(t *testing.T) {
			ws, err := os.MkdirTemp(parent, "ws-")
			if err != nil {
				t.Fatal(err)
			}
			code := fmt.Sprintf(`
const [DENO_DIR, PKG, CACHE, ROOT, MAP, WS] = %s;
const out = {};
async function attempt(name, f) {
  try { await f(); out[name] = "done"; } catch (e) { out[name] = e.name; }
}
await attempt("write DENO_DIR", () => Deno.writeTextFile(DENO_DIR + "/poison.js", "export default 1"));
await attempt("overwrite package", () => Deno.writeTextFile(PKG, "{}"));
await attempt("remove package", () => Deno.remove(PKG));
await attempt("rename cache", () => Deno.rename(CACHE, WS + "/stolen"));
await attempt("plant cache", () => Deno.mkdir(ROOT + "/" + "0".repeat(32)));
await attempt("write import map", () => Deno.writeTextFile(MAP, "{}"));
await attempt("symlink into cache", () => Deno.symlink(WS, DENO_DIR + "/npm/link"));
// Packages planted in the workspace, as Node would find them.
for (const p of ["lodash", "zod"]) {
  await Deno.mkdir(WS + "/node_modules/" + p, { recursive: true });
  await Deno.writeTextFile(WS + "/node_modules/" + p + "/package.json", JSON.stringify({ name: p, version: "3.99.0", main: "index.js", type: "module" }));
  await Deno.writeTextFile(WS + "/node_modules/" + p + "/index.js", "export const z = 'poisoned'; export default 'poisoned';");
}
await attempt("import planted lodash", () => import(["lo", "dash"].join("")));
await attempt("import planted npm:lodash", () => import("npm:" + "lodash"));
await attempt("import planted zod@3.99.0", () => import("npm:zod@" + "3.99.0"));
const zod = await import("zod");
out.zod = typeof zod.z.string;
export default out;
`, jsonString(t, []string{c.DenoDir, pkgFile[0], c.Dir, c.Root, c.ImportMap, ws}))
			res, stderr, err := runCode(t, c, ws, grant(ws), code)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if strings.Contains(res, `"done"`) || !strings.Contains(res, `"zod":"function"`) {
				t.Errorf("attempts = %s, want every one refused and the real zod", res)
			}
			t.Logf("attempts: %s", res)
		})
	}
	if fileSum(t, pkgFile[0]) != before {
		t.Error("the cached package changed")
	}
	if _, err := os.Stat(filepath.Join(c.Root, strings.Repeat("0", 32))); err == nil {
		t.Error("a cache was planted")
	}
}

func TestAllowlistChangeAndPrune(t *testing.T) {
	c1 := zodCache(t)
	root := cacheRoot(t)
	a := mustParse(t, "npm:zod@^3")
	b := mustParse(t, "npm:zod@^3", "npm:ms@>=2.1.0 <3") // also exercises the probe for ranges Deno cannot parse
	ca, err := Install(t.Context(), a, installOpts(t, root))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Install(t.Context(), b, installOpts(t, root))
	if err != nil {
		t.Fatal(err)
	}
	if ca.Dir == cb.Dir {
		t.Fatalf("both allowlists use %s", ca.Dir)
	}
	if v := cb.Resolved["npm:ms@>=2.1.0 <3"]; !strings.HasPrefix(v, "2.") {
		t.Errorf("Resolved = %v, want ms 2.x", cb.Resolved)
	}
	if ca.Resolved["npm:zod@^3"] != c1.Resolved["npm:zod@^3"] {
		t.Errorf("zod resolved to %v and %v", ca.Resolved, c1.Resolved)
	}
	res, stderr, err := runCode(t, cb, t.TempDir(), nil, `import ms from "ms"; import m2 from "npm:ms@>=2.1.0 <3"; export default [ms("2h"), m2 === ms];`)
	if err != nil || res != `[7200000,true]` {
		t.Errorf("ms run = %s, %v\n%s", res, err, stderr)
	}
	if _, err := Open(a, root); err != nil {
		t.Errorf("old cache after the change: %v", err)
	}
	removed, err := Prune(root, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 { // the cache and its lock file
		t.Errorf("Prune removed %v, want the old cache and its lock", removed)
	}
	if _, err := Open(a, root); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Open(old) after prune = %v, want ErrNotInstalled", err)
	}
	if _, err := Open(b, root); err != nil {
		t.Errorf("Open(kept) after prune = %v", err)
	}
	// Reinstalling the pruned list works.
	if _, err := Install(t.Context(), a, installOpts(t, root)); err != nil {
		t.Errorf("reinstall after prune: %v", err)
	}
}

func TestInstallIdempotent(t *testing.T) {
	zodCache(t)
	var n atomic.Int32
	opts := installOpts(t, shared.cache.Root)
	opts.Logger = slog.New(countHandler{&n})
	opts.Deno = "/nonexistent/deno" // a second install must not need Deno at all
	c, err := Install(t.Context(), mustParse(t, "npm:zod@^3"), opts)
	if err != nil || c.Dir != shared.cache.Dir || n.Load() != 0 {
		t.Errorf("second Install = %v, %v, %d installs; want the same cache and no install", c, err, n.Load())
	}
}

func TestEmptyAllowlist(t *testing.T) {
	root := cacheRoot(t)
	c, err := Install(t.Context(), nil, InstallOptions{CacheRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(c.DenoDir); err != nil || !fi.IsDir() {
		t.Fatalf("empty DENO_DIR: %v", err)
	}
	denoBin(t)
	res, stderr, err := runCode(t, c, t.TempDir(), nil, `export default 6 * 7;`)
	if err != nil || res != "42" {
		t.Errorf("run = %s, %v\n%s", res, err, stderr)
	}
	_, stderr, err = runCode(t, c, t.TempDir(), nil, `const m = await import("npm:" + "zod"); export default 1;`)
	if err == nil {
		t.Errorf("import of npm:zod with an empty allowlist ran\n%s", stderr)
	}
}

// assertClean fails if root holds anything but lock files.
func assertClean(t *testing.T, root string) {
	t.Helper()
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".lock-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestInstallFailures(t *testing.T) {
	deno := denoBin(t)
	needRegistry(t)
	tests := []struct {
		name     string
		list     []string
		registry string
		want     []string
	}{
		{"bad package", []string{"npm:zod@^3", "npm:conductor-no-such-package-7f3a9c"}, "", []string{"conductor-no-such-package-7f3a9c", "deno cache"}},
		{"no matching version", []string{"npm:zod@^99"}, "", []string{"zod", "99"}},
		{"unreachable registry", []string{"npm:zod@^3"}, "http://127.0.0.1:1/", []string{"zod", "127.0.0.1:1"}},
		{"unreachable registry, probe", []string{"npm:ms@>=2 <3"}, "http://127.0.0.1:1/", []string{"ms", "127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := cacheRoot(t)
			opts := InstallOptions{Deno: deno, CacheRoot: root, Env: os.Getenv, Registry: tt.registry, Timeout: 90 * time.Second}
			list := mustParse(t, tt.list...)
			for range 2 { // the second try must not be blocked by the first one's lock
				start := time.Now()
				_, err := Install(t.Context(), list, opts)
				if err == nil {
					t.Fatal("Install succeeded")
				}
				msg := err.Error()
				t.Logf("error after %v: %s", time.Since(start).Round(time.Millisecond), msg)
				for _, w := range tt.want {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q does not contain %q", msg, w)
					}
				}
				if strings.Contains(msg, root) {
					t.Errorf("error %q shows the cache path", msg)
				}
				assertClean(t, root)
			}
			if _, err := Open(list, root); !errors.Is(err, ErrNotInstalled) {
				t.Errorf("Open after a failed install = %v", err)
			}
		})
	}
}

func TestInstallConcurrentGoroutines(t *testing.T) {
	deno := denoBin(t)
	needRegistry(t)
	root := cacheRoot(t)
	var n atomic.Int32
	var wg sync.WaitGroup
	dirs := make([]string, 3)
	errs := make([]error, 3)
	for i := range dirs {
		wg.Go(func() {
			c, err := Install(t.Context(), mustParse(t, "npm:zod@^3"), InstallOptions{
				Deno: deno, CacheRoot: root, Env: os.Getenv, Logger: slog.New(countHandler{&n}), Timeout: 2 * time.Minute})
			errs[i] = err
			if err == nil {
				dirs[i] = c.Dir
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Install #%d = %v", i, err)
		}
	}
	if n.Load() != 1 || dirs[0] != dirs[1] || dirs[1] != dirs[2] {
		t.Errorf("%d installs into %v, want one", n.Load(), dirs)
	}
}

func TestInstallConcurrentProcesses(t *testing.T) {
	deno := denoBin(t)
	needRegistry(t)
	root := cacheRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]bytes.Buffer, 2)
	cmds := make([]*exec.Cmd, 2)
	for i := range cmds {
		cmd := exec.CommandContext(t.Context(), self, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+root, "DEPS_TEST_HELPER_LIST=npm:zod@^3", "DEPS_TEST_HELPER_DENO="+deno)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	installs, dirs := 0, map[string]bool{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i].String())
			continue
		}
		var k int
		var dir string
		if _, err := fmt.Sscanf(strings.TrimSpace(outs[i].String()), "INSTALLS=%d DIR=%s", &k, &dir); err != nil {
			t.Errorf("process %d said %q", i, outs[i].String())
		}
		installs += k
		dirs[dir] = true
	}
	if installs != 1 || len(dirs) != 1 {
		t.Errorf("%d installs into %v, want one", installs, dirs)
	}
	assertCleanExcept(t, root, 1)
}

// assertCleanExcept fails unless root holds exactly n cache dirs plus locks.
func assertCleanExcept(t *testing.T, root string, n int) {
	t.Helper()
	ents, _ := os.ReadDir(root)
	dirs := 0
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), ".lock-"):
		case strings.HasPrefix(e.Name(), ".tmp-"):
			t.Errorf("temp dir left behind: %s", e.Name())
		default:
			dirs++
		}
	}
	if dirs != n {
		t.Errorf("%d cache dirs, want %d", dirs, n)
	}
}

func TestInstallCancelled(t *testing.T) {
	deno := denoBin(t)
	root := cacheRoot(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Install(ctx, mustParse(t, "npm:zod@^3"), InstallOptions{Deno: deno, CacheRoot: root})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Install(cancelled) = %v, want context.Canceled", err)
	}
	assertClean(t, root)
}

func TestInstallEnv(t *testing.T) {
	env := map[string]string{
		"SSL_CERT_FILE": "/ca.pem", "HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost",
		"MCP_CONDUCTOR_HTTP_TOKEN": "secret", "GITHUB_TOKEN": "secret", "PATH": "/usr/bin",
	}
	got := installEnv(InstallOptions{Env: func(k string) string { return env[k] }, Registry: "http://127.0.0.1:1/"}, "/h")
	joined := strings.Join(got, "\n")
	for _, want := range []string{"HOME=/h", "SSL_CERT_FILE=/ca.pem", "DENO_CERT=/ca.pem", "HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost", "NPM_CONFIG_REGISTRY=http://127.0.0.1:1/"} {
		if !strings.Contains(joined, want) {
			t.Errorf("installEnv lacks %s:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "secret") || strings.Contains(joined, "PATH=") {
		t.Errorf("installEnv leaks the conductor's environment:\n%s", joined)
	}
	c := &Cache{DenoDir: "/d", Root: "/r", ImportMap: "/r/x/import_map.json"}
	if got := strings.Join(c.RunEnv(), " "); got != "DENO_DIR=/d" {
		t.Errorf("RunEnv() = %s, want only DENO_DIR", got)
	}
}

func BenchmarkInstall(b *testing.B) {
	deno := denoBin(b)
	needRegistry(b)
	list := mustParse(b, "npm:zod@^3")
	for b.Loop() {
		root := b.TempDir()
		if _, err := Install(context.Background(), list, InstallOptions{Deno: deno, CacheRoot: root, Env: os.Getenv}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = removeAll(root)
		b.StartTimer()
	}
}

// jsr.io is not reachable from every network (this project's CI has only
// the npm registry): the install then fails cleanly, naming the package.
// Where jsr.io answers, the package installs and imports by its bare name.
func TestInstallJSR(t *testing.T) {
	deno := denoBin(t)
	root := cacheRoot(t)
	list := mustParse(t, "jsr:@std/path@^1")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	c, err := Install(ctx, list, InstallOptions{Deno: deno, CacheRoot: root, Env: os.Getenv})
	if err != nil {
		t.Logf("jsr install failed (no jsr.io here?): %v", err)
		if !strings.Contains(err.Error(), "@std/path") || strings.Contains(err.Error(), root) {
			t.Errorf("error %q should name @std/path and hide the cache path", err)
		}
		assertClean(t, root)
		return
	}
	res, stderr, err := runCode(t, c, t.TempDir(), nil, `import { join } from "@std/path"; import * as p from "jsr:@std/path@^1"; export default [join("a", "b"), p.join === join];`)
	if err != nil || res != `["a/b",true]` {
		t.Errorf("jsr run = %s, %v\n%s", res, err, stderr)
	}
}

// TestReadOnlyCacheAsOtherUser checks the defense in depth that root cannot
// show: as an unprivileged user, Deno runs fine from the read-only cache
// (its SQLite caches there fall back silently), and the files themselves
// refuse writes even when a run has --allow-write on the cache and no
// --deny-write.
func TestReadOnlyCacheAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run Deno as another user")
	}
	c := zodCache(t)
	deno := denoBin(t)
	// The user "nobody" must reach the cache, the harness and Deno.
	if err := os.Chmod(shared.base, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(deno); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o005 != 0o005 {
			t.Skipf("%s is not reachable by other users", d)
		}
	}
	dir, err := os.MkdirTemp(shared.base, "nobody-")
	if err != nil {
		t.Fatal(err)
	}
	h, err := os.ReadFile("testdata/harness.js")
	if err != nil {
		t.Fatal(err)
	}
	harness := filepath.Join(dir, "harness.js")
	if err := os.WriteFile(harness, h, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	code := fmt.Sprintf(`
import { z } from "zod";
let write;
try { Deno.writeTextFileSync(%s + "/poison.js", "1"); write = "done"; } catch (e) { write = e.name; }
export default [z.string().parse("ok"), write];
`, jsonString(t, c.DenoDir))
	cmd := exec.CommandContext(t.Context(), deno, "run", "--no-prompt", "--no-config", "--no-lock", "--no-remote", "--cached-only",
		"--node-modules-dir=none", "--import-map="+c.ImportMap, "--allow-write="+c.Root, harness)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + dir, "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"}, c.RunEnv()...)
	cmd.Stdin = strings.NewReader(code)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run as nobody: %v\n%s", err, out)
	}
	if want := `RESULT ["ok","PermissionDenied"]`; strings.TrimSpace(string(out)) != want {
		t.Errorf("run as nobody printed %q, want only %q", out, want)
	}
}
