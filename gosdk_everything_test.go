package conductor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-conductor/conductor/internal/config"
)

// goEverything builds the Go SDK's conformance everything-server from the
// module cache (it is a package of a module we depend on).
func goEverything(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "everything-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the Go SDK's everything-server: %v\n%s", err, out)
	}
	return bin
}

// The Go SDK's conformance server exercises content kinds and schemas the
// npm servers do not: images, audio, embedded resources, tool errors,
// draft 2020-12 schemas. Its generated module must type-check and its tools
// must be callable from a program.
func TestGoSDKEverythingServer(t *testing.T) {
	t.Parallel()
	bin := goEverything(t)
	c := newConductor(t, []config.Server{{Name: "go-everything", Command: bin}}, nil)
	conv := newConv(t, c)

	var names []string
	for _, tl := range c.Status() {
		if tl.Tools < 20 {
			t.Fatalf("go-everything lists %d tools, want the conformance set", tl.Tools)
		}
	}
	for _, n := range []string{"test_simple_text", "test_image_content", "test_error_handling", "json_schema_2020_12_tool", "test_multiple_content_types"} {
		names = append(names, "go-everything."+n)
	}
	specs, err := c.LoadToolSpec(t.Context(), conv, names...)
	if err != nil {
		t.Fatal(err)
	}
	decl := specs[0].Declarations
	for _, n := range []string{"test_simple_text", "json_schema_2020_12_tool"} {
		if !strings.Contains(decl, n) {
			t.Errorf("declarations lack %s:\n%s", n, decl)
		}
	}

	got := run(t, c, conv, `
import * as ev from "./mcp/go-everything";
const text = await ev.test_simple_text({});
const image = await ev.test_image_content({});
const mixed = await ev.test_multiple_content_types({});
let error = "";
try { await ev.test_error_handling({}); } catch (e) { error = (e as Error).message; }
({ text, imageKinds: (image as any[]).map((c) => c.type), mixedKinds: (mixed as any[]).map((c) => c.type), error });
`)
	m, _ := got.(map[string]any)
	if s, _ := m["text"].(string); s == "" {
		t.Errorf("test_simple_text gave %v", m["text"])
	}
	if k, _ := m["imageKinds"].([]any); len(k) == 0 || k[0] != "image" {
		t.Errorf("test_image_content kinds = %v, want image content handed over", m["imageKinds"])
	}
	if k, _ := m["mixedKinds"].([]any); len(k) < 2 {
		t.Errorf("test_multiple_content_types kinds = %v", m["mixedKinds"])
	}
	if e, _ := m["error"].(string); e == "" {
		t.Errorf("test_error_handling did not reject")
	}

	// Every generated module of the server type-checks.
	dir := filepath.Join(c.Config().Workspace)
	var mod string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, filepath.Join("mcp", "go-everything.ts")) {
			mod = p
		}
		return nil
	})
	if mod == "" {
		t.Fatal("no generated module for go-everything")
	}
	if out, err := denoCheck(t, filepath.Dir(mod), filepath.Base(mod)); err != nil {
		t.Errorf("deno check of the generated module: %v\n%s", err, out)
	}
}
