package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
)

// toolPath finds a program `make` installs in tools/; a missing one skips the
// test outside CI and fails it under CI.
func toolPath(tb testing.TB, name string) string { return testenv.Tool(tb, name) }

// newConductor starts a Conductor with a private workspace and the test cache.
func newConductor(tb testing.TB, mutate func(*config.Config)) *conductor.Conductor {
	tb.Helper()
	dir := tb.TempDir()
	cfg := config.Default(dir)
	cfg.Deno = toolPath(tb, "deno")
	cfg.Workspace = filepath.Join(dir, "ws")
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		cfg.CacheDir = c
	}
	if mutate != nil {
		mutate(cfg)
	}
	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// connectSession connects an in-memory MCP client to a new session of s.
func connectSession(tb testing.TB, s *Server) *mcp.ClientSession {
	tb.Helper()
	ct, st := mcp.NewInMemoryTransports()
	srv := s.NewSession("")
	ctx := context.Background()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cs.Close(); ss.Close() })
	return cs
}
