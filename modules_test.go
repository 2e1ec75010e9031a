package conductor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPruneVersions keeps the new and the previous version of one
// server's module and leaves other servers' modules alone, including one
// whose name extends this server's ("go" and "go-x").
func TestPruneVersions(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"go-aaaa.ts", "go-bbbb.ts", "go-cccc.ts", "go-x-dddd.ts", "gox-eeee.ts", "other.ts"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	pruneVersions(filepath.Join(dir, "go-cccc.ts"), filepath.Join(dir, "go-bbbb.ts"))
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{"go-bbbb.ts", "go-cccc.ts", "go-x-dddd.ts", "gox-eeee.ts", "other.ts"}
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}

// TestModulePreloadList: a conversation's spares preload the version each
// of its module paths resolves to now, and no more than maxPreload.
func TestModulePreloadList(t *testing.T) {
	var m moduleCache
	m.use("/c1", "/c1/mcp/a.ts", "/c1/mcp/.v/a-1.ts")
	m.use("/c1", "/c1/mcp/a.ts", "/c1/mcp/.v/a-2.ts")
	m.use("/c2", "/c2/mcp/b.ts", "/c2/mcp/.v/b-1.ts")
	if got := m.preload("/c1"); !slices.Equal(got, []string{"/c1/mcp/.v/a-2.ts"}) {
		t.Fatalf("preload(/c1) = %v", got)
	}
	if got := m.current("/c1", "/c1/mcp/a.ts"); got != "/c1/mcp/.v/a-2.ts" {
		t.Fatalf("current = %q", got)
	}
	for i := range 2 * maxPreload {
		m.use("/c3", "/c3/mcp/"+string(rune('a'+i))+".ts", "/c3/mcp/.v/"+string(rune('a'+i))+"-1.ts")
	}
	if got := m.preload("/c3"); len(got) != maxPreload {
		t.Fatalf("preload lists %d modules, want %d", len(got), maxPreload)
	}
	if got := m.preload("/none"); len(got) != 0 {
		t.Fatalf("preload of an unknown conversation = %v", got)
	}
}
