package tsgen

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

// denoBin finds Deno: $MCP_CONDUCTOR_DENO, the pinned npm copy, then PATH.
func denoBin(t *testing.T) string { return testenv.Deno(t) }

// denoCheck type-checks files (relative to dir) with no config, lock file or
// network, and returns Deno's output.
func denoCheck(t *testing.T, dir string, files ...string) (string, error) {
	t.Helper()
	args := append([]string{"check", "--no-config", "--no-lock", "--no-remote", "--quiet"}, files...)
	cmd := exec.Command(denoBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DENO_DIR="+filepath.Join(dir, ".deno"), "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCase writes a case's module to <dir>/<case>/mcp/<file> and its
// declarations to <dir>/<case>/decls.d.ts, plus check.ts, which proves that
// the module implements the declarations. It returns check.ts's path
// relative to dir.
func writeCase(t *testing.T, dir string, c goldenCase) string {
	t.Helper()
	module, decls := c.render(t)
	sub := strings.ReplaceAll(c.name, "/", "_")
	file := FileName(c.in.Server)
	writeFile(t, filepath.Join(dir, sub, "mcp", file), module)
	writeFile(t, filepath.Join(dir, sub, "decls.d.ts"), decls)
	writeFile(t, filepath.Join(dir, sub, "check.ts"), fmt.Sprintf(`import * as m from "./mcp/%s";
import type * as d from "./decls.d.ts";
// The module has every declared function, with the declared type, and back.
export const implemented: typeof d = m;
export const declared: Pick<typeof m, keyof typeof d> = {} as typeof d;
`, file))
	return filepath.Join(sub, "check.ts")
}

// TestDenoCheck type-checks the modules and declarations of every golden case
// and of the real servers' snapshots in one deno check run.
func TestDenoCheck(t *testing.T) {
	deno := denoBin(t)
	_ = deno
	dir := t.TempDir()
	var files []string
	for _, c := range loadCases(t) {
		files = append(files, writeCase(t, dir, c))
	}
	if out, err := denoCheck(t, dir, files...); err != nil {
		t.Fatalf("deno check of the generated modules: %v\n%s", err, out)
	}
}

// TestDenoCheckRejects proves the types bite: each program below misuses a
// generated module or declaration and must fail deno check with the given
// TypeScript error, while a correct program using the same tools passes.
func TestDenoCheckRejects(t *testing.T) {
	denoBin(t)
	dir := t.TempDir()
	cases := map[string]goldenCase{}
	for _, c := range loadCases(t) {
		writeCase(t, dir, c)
		cases[c.name] = c
	}
	for _, name := range []string{"servers/filesystem", "servers/everything", "servers/memory", "golden/draft2020"} {
		if _, ok := cases[name]; !ok {
			t.Fatalf("no case %s", name)
		}
	}
	const imports = `import * as fs from "./servers_filesystem/mcp/filesystem.ts";
import * as everything from "./servers_everything/mcp/everything.ts";
import * as memory from "./servers_memory/mcp/memory.ts";
import * as modern from "./golden_draft2020/mcp/modern.ts";
import type * as fsDecls from "./servers_filesystem/decls.d.ts";
declare const fsd: typeof fsDecls;
`
	good := imports + `
const [a, b] = await Promise.all([fs.read_text_file({ path: "a.txt", head: 3 }), fsd.write_file({ path: "b.txt", content: "x" })]);
const text: string = a.content + b.content;
await everything.get_annotated_message({ messageType: "error", includeImage: true });
const graph = await memory.create_entities({ entities: [{ name: "n", entityType: "t", observations: [] }] });
const names: string[] = graph.entities.map((e) => e.name);
await memory.read_graph();
const rows = await modern.query({ filter: { and: [{ eq: "x" }, { in: ["y"] }] }, range: [1, 2], labels: { a: "b" }, headers: { "x-id": "1" } });
const id: string = rows[0].id;
export { id, names, text };
`
	bad := []struct {
		name, code, want string // want: the TypeScript error code
	}{
		{"wrong_type", `await fs.read_text_file({ path: 42 });`, "TS2322"},
		{"missing_required", `await fs.write_file({ path: "a.txt" });`, "TS2345"},
		{"excess_property", `await fs.read_text_file({ path: "a", bogus: 1 });`, "TS2353"},
		{"bad_enum", `await everything.get_annotated_message({ messageType: "warning" });`, "TS2322"},
		{"wrong_result", `const r = await fs.read_text_file({ path: "a" }); export const n: number = r.content;`, "TS2322"},
		{"no_such_tool", `await fs.remove_everything({});`, "TS2339"},
		{"nested_missing", `await memory.create_entities({ entities: [{ name: "n", entityType: "t" }] });`, "TS2741"},
		{"args_required", `await fs.read_text_file();`, "TS2554"},
		{"closed_object", `await modern.query({ filter: { eq: "x" }, closed: { a: "x", b: 1 } });`, "TS2353"},
		{"tuple_length", `await modern.query({ filter: { eq: "x" }, range: [1, 2, 3] });`, "TS2322"},
		{"union_member", `await modern.query({ filter: { eq: 1 } });`, "TS2322"},
		{"index_type", `await modern.query({ filter: { eq: "x" }, labels: { a: 1 } });`, "TS2322"},
		{"decls_missing_required", `await fsd.write_file({ content: "x" });`, "TS2345"},
		{"decls_wrong_type", `await fsd.read_text_file({ path: "a", head: "3" });`, "TS2322"},
	}
	writeFile(t, filepath.Join(dir, "good.ts"), good)
	if out, err := denoCheck(t, dir, "good.ts"); err != nil {
		t.Fatalf("deno check of a correct program: %v\n%s", err, out)
	}
	var files []string
	for _, b := range bad {
		f := "bad_" + b.name + ".ts"
		writeFile(t, filepath.Join(dir, f), imports+"\n"+b.code+"\n")
		files = append(files, f)
	}
	out, err := denoCheck(t, dir, files...)
	if err == nil {
		t.Fatalf("deno check passed programs that misuse the generated types:\n%s", out)
	}
	// Deno reports "TS2322 [ERROR]: message ... at file:///dir/bad_x.ts:7:3".
	got := map[string][]string{}
	re := regexp.MustCompile(`(TS\d+) \[ERROR\]:(?s:.*?)at file://\S*/(bad_\w+)\.ts:\d+:\d+`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		got[m[2]] = append(got[m[2]], m[1])
	}
	t.Logf("TypeScript errors by program: %v", got)
	for _, b := range bad {
		codes := got["bad_"+b.name]
		if !slices.Contains(codes, b.want) {
			t.Errorf("deno check of %q: errors %v, want %s", b.code, codes, b.want)
		}
		if len(codes) != 1 {
			t.Errorf("deno check of %q: errors %v, want exactly one", b.code, codes)
		}
	}
	if t.Failed() {
		t.Logf("deno output:\n%s", out)
	}
}
