package conductor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
)

// A server that disappears leaves the search index, and comes back into it
// when it returns.
func TestIndexFollowsServers(t *testing.T) {
	deno := denoBin(t)
	memory := testenv.Tool(t, "mcp-server-memory")
	dir := t.TempDir()
	flag := filepath.Join(dir, "available")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The server starts only while the flag file exists.
	wrapper := filepath.Join(dir, "memory.sh")
	script := "#!/bin/sh\n[ -e " + flag + " ] || exit 3\nexec " + memory + "\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default(dir)
	cfg.Deno = deno
	cfg.Workspace = filepath.Join(dir, "ws")
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		cfg.CacheDir = c
	}
	cfg.Servers = []config.Server{{Name: "memory", Command: wrapper, Transport: "stdio",
		Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, "mem.jsonl")}}}
	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hasMemory := func() bool {
		res, err := c.FindTools(ctx, "", "remember that Alice works at Acme", 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if strings.HasPrefix(r.Name, "memory.") {
				return true
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !hasMemory() {
		t.Fatal("memory tools are not in the index after start")
	}

	// Take the server away: it cannot restart while the flag is gone.
	os.Remove(flag)
	pid := 0
	for _, st := range c.Status() {
		pid = st.Pid
	}
	if pid == 0 {
		t.Fatal("no pid for the memory server")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor("the memory tools leave the index", func() bool { return !hasMemory() })

	// Bring it back: the restart with backoff finds the flag again.
	os.WriteFile(flag, nil, 0o644)
	waitFor("the memory tools are back in the index", hasMemory)
}
