package tsgen

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
)

func TestIdentifier(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"read_file", "read_file"},
		{"google-drive", "google_drive"},
		{"files.list", "files_list"},
		{"1tool", "_1tool"},
		{"delete", "delete_"},
		{"await", "await_"},
		{"eval", "eval_"},
		{"$root", "$root"},
		{"", "_"},
		{"a b", "a_b"},
		{"ünï", "_n_"},
		{"Delete", "Delete"},
	} {
		if got := Identifier(tt.in); got != tt.want {
			t.Errorf("Identifier(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFileNameAndImportLine(t *testing.T) {
	for _, tt := range []struct{ in, file, line string }{
		{"google-drive", "google-drive.ts", `import * as google_drive from "./mcp/google-drive.ts";`},
		{"salesforce", "salesforce.ts", `import * as salesforce from "./mcp/salesforce.ts";`},
		{"../etc", "_.._etc.ts", `import * as ___etc from "./mcp/_.._etc.ts";`},
		{"a/b c", "a_b_c.ts", `import * as a_b_c from "./mcp/a_b_c.ts";`},
		{"", "_.ts", `import * as _ from "./mcp/_.ts";`},
		{"new", "new.ts", `import * as new_ from "./mcp/new.ts";`},
	} {
		if got := FileName(tt.in); got != tt.file {
			t.Errorf("FileName(%q) = %q, want %q", tt.in, got, tt.file)
		}
		if strings.Contains(FileName(tt.in), "/") {
			t.Errorf("FileName(%q) = %q contains a slash", tt.in, FileName(tt.in))
		}
		if got := ImportLine(tt.in); got != tt.line {
			t.Errorf("ImportLine(%q) = %q, want %q", tt.in, got, tt.line)
		}
	}
}

func TestErrors(t *testing.T) {
	obj := json.RawMessage(`{"type":"object"}`)
	if _, err := Module("s", []Tool{{Name: "a", InputSchema: obj}, {Name: "a", InputSchema: obj}}); err == nil {
		t.Error("Module with a duplicate tool name: no error")
	}
	if _, err := Module("s", []Tool{{Name: "a", InputSchema: json.RawMessage(`{"type":`)}}); err == nil {
		t.Error("Module with an input schema that is not JSON: no error")
	}
	if _, err := Module("s", []Tool{{Name: "a", InputSchema: obj, OutputSchema: json.RawMessage(`{} {}`)}}); err == nil {
		t.Error("Module with two JSON values as output schema: no error")
	}
	_, err := Declarations("s", []Tool{{Name: "a", InputSchema: obj}}, []string{"b"})
	if err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("Declarations of an unknown tool: error %v, want one naming the tool", err)
	}
}

// TestDeclarationsSelect checks that selected declarations use the module's
// identifiers, which depend on the whole tool list, and only the types they need.
func TestDeclarationsSelect(t *testing.T) {
	tools := []Tool{
		{Name: "a-b", InputSchema: json.RawMessage(`{"type":"object","properties":{}}`)},
		{Name: "a_b", InputSchema: json.RawMessage(`{"type":"object","$defs":{"X":{"type":"string"}},"properties":{"x":{"$ref":"#/$defs/X"}}}`)},
	}
	got, err := Declarations("s", tools, []string{"a_b"})
	if err != nil {
		t.Fatal(err)
	}
	want := "type X = string;\n/** MCP tool \"a_b\" */\nexport function a_b_2(args?: { x?: X }): Promise<unknown>;\n"
	if got != want {
		t.Errorf("Declarations = %q, want %q", got, want)
	}
	got, err = Declarations("s", tools, []string{"a-b"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "X") {
		t.Errorf("Declarations of a-b = %q, mentions the type X it does not use", got)
	}
}

// parseTS reports syntax errors of TypeScript source (esbuild parses it
// without checking types).
func parseTS(src string) []api.Message {
	r := api.Transform(src, api.TransformOptions{Loader: api.LoaderTS, Format: api.FormatESModule, LogLevel: api.LogLevelSilent})
	return r.Errors
}

func FuzzModule(f *testing.F) {
	for _, s := range []string{
		`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`,
		`{"$ref":"#"}`, `true`, `false`, `{}`, `null`, `[]`, `"x"`,
		`{"$defs":{"A":{"anyOf":[{"$ref":"#/$defs/A"}]}},"$ref":"#/$defs/A"}`,
		`{"type":"array","prefixItems":[{"const":-1}],"items":false,"minItems":3}`,
		`{"enum":[{"a":[1,null]},"*/",1e999]}`,
		`{"type":"object","patternProperties":{"*/":{"description":"*/\n@x"}},"additionalProperties":{"type":"integer"}}`,
		`{"properties":{"\"quoted\\"":{"type":["null","object"],"nullable":true}},"required":["x y"]}`,
		`{"allOf":[{"type":"string"},{"type":"number"}],"oneOf":[],"anyOf":[true]}`,
	} {
		f.Add("server", "tool-name", s, `{"type":"object"}`)
	}
	// Seed with the schemas of the golden cases and server snapshots.
	for _, c := range loadCases(f) {
		for _, tool := range c.in.Tools {
			f.Add(c.in.Server, tool.Name, string(tool.InputSchema), string(tool.OutputSchema))
		}
	}
	f.Fuzz(func(t *testing.T, server, name, in, out string) {
		tools := []Tool{{Name: name, Description: in, InputSchema: json.RawMessage(in), OutputSchema: json.RawMessage(out)},
			{Name: name + "_", InputSchema: json.RawMessage(out)}}
		module, err := Module(server, tools)
		if err != nil {
			return // not JSON
		}
		if errs := parseTS(module); len(errs) > 0 {
			t.Fatalf("Module does not parse: %v\n%s", errs[0].Text, module)
		}
		decls, err := Declarations(server, tools, nil)
		if err != nil {
			t.Fatalf("Declarations failed where Module did not: %v", err)
		}
		if errs := parseTS(decls); len(errs) > 0 {
			t.Fatalf("Declarations do not parse: %v\n%s", errs[0].Text, decls)
		}
		if errs := parseTS(ImportLine(server)); len(errs) > 0 {
			t.Fatalf("ImportLine(%q) does not parse: %v", server, errs[0].Text)
		}
	})
}

// TestDeepNesting guards against output that grows exponentially with the
// nesting of a schema (a hostile server controls its schemas).
func TestDeepNesting(t *testing.T) {
	s := `{"type":"string"}`
	for range 100 {
		s = `{"type":"object","properties":{"a":{"anyOf":[` + s + `,{"type":"null"}]},"b":{"type":"array","items":` + s[:0] + `{"type":"number"}}},"additionalProperties":{"type":"integer"}}`
	}
	module, err := Module("s", []Tool{{Name: "deep", InputSchema: json.RawMessage(s)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(module) > 50*len(s) {
		t.Errorf("module of a %d-byte schema has %d bytes", len(s), len(module))
	}
	if errs := parseTS(module); len(errs) > 0 {
		t.Fatalf("module does not parse: %v", errs[0].Text)
	}
}
