package tsgen

import (
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/ (and, with the MCP server binaries present, the server snapshots)")

// A golden case is a txtar file in testdata/golden/ or testdata/servers/:
//
//	-- input.json --   {"server": "...", "tools": [MCP tools], "declare": [tool names for Declarations, default all]}
//	-- module.ts --    Module(server, tools)
//	-- decls.d.ts --   Declarations(server, tools, declare)
//
// The comment before the first file says what the case covers.
type caseInput struct {
	Server  string   `json:"server"`
	Tools   []Tool   `json:"tools"`
	Declare []string `json:"declare,omitempty"`
}

type goldenCase struct {
	name string // "golden/refs" or "servers/filesystem"
	path string
	a    *archive
	in   caseInput
}

var caseSections = []string{"input.json", "module.ts", "decls.d.ts"}

func loadCases(t testing.TB) []goldenCase {
	t.Helper()
	var cases []goldenCase
	for _, dir := range []string{"golden", "servers"} {
		paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			a, err := parseArchive(data)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			for _, f := range a.files {
				if !slices.Contains(caseSections, f.name) {
					t.Errorf("%s: unknown section %q (want %v)", p, f.name, caseSections)
				}
			}
			raw, ok := a.get("input.json")
			if !ok {
				t.Fatalf("%s: no input.json section", p)
			}
			var in caseInput
			if err := json.Unmarshal([]byte(raw), &in); err != nil {
				t.Fatalf("%s: input.json: %v", p, err)
			}
			name := dir + "/" + strings.TrimSuffix(filepath.Base(p), ".txtar")
			cases = append(cases, goldenCase{name: name, path: p, a: a, in: in})
		}
	}
	if len(cases) == 0 {
		t.Fatal("no golden cases in testdata/")
	}
	return cases
}

// render returns the module and the declarations of a case.
func (c goldenCase) render(t testing.TB) (module, decls string) {
	t.Helper()
	module, err := Module(c.in.Server, c.in.Tools)
	if err != nil {
		t.Fatalf("%s: Module: %v", c.name, err)
	}
	decls, err = Declarations(c.in.Server, c.in.Tools, c.in.Declare)
	if err != nil {
		t.Fatalf("%s: Declarations: %v", c.name, err)
	}
	return module, decls
}

func TestGolden(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.name, func(t *testing.T) {
			module, decls := c.render(t)
			// Rendering twice gives the same text.
			if m2, d2 := c.render(t); m2 != module || d2 != decls {
				t.Fatal("output is not deterministic")
			}
			if *update {
				c.a.set("module.ts", module)
				c.a.set("decls.d.ts", decls)
				if err := os.WriteFile(c.path, c.a.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, s := range []struct{ name, got string }{{"module.ts", module}, {"decls.d.ts", decls}} {
				want, ok := c.a.get(s.name)
				if !ok {
					t.Errorf("%s: no %s section; run go test ./internal/tsgen -update", c.path, s.name)
					continue
				}
				if diff := cmp.Diff(want, s.got); diff != "" {
					t.Errorf("%s: %s differs (-want +got); run go test ./internal/tsgen -update to accept:\n%s", c.path, s.name, diff)
				}
			}
		})
	}
}

// TestNoOrphans reports files in testdata/ that no test reads.
func TestNoOrphans(t *testing.T) {
	known := map[string]bool{}
	for _, s := range realServers {
		known[filepath.Join("testdata", "servers", s.name+".txtar")] = true
	}
	err := filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Dir(p) {
		case filepath.Join("testdata", "golden"):
			if strings.HasSuffix(p, ".txtar") {
				return nil
			}
		case filepath.Join("testdata", "servers"):
			if known[p] {
				return nil
			}
		}
		t.Errorf("orphaned file %s: no test reads it; delete it", p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
