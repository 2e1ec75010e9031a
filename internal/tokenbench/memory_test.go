package tokenbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
)

// The memory benchmark of issue 9: the conductor's own RSS with 5 upstream
// servers holding 1,000 real tool definitions between them. The conductor
// runs in a child process (this test binary re-executed with rssEnv), so
// the figure is its own and nothing of the benchmark's.
const (
	rssEnv    = "TOKENBENCH_RSS"
	mixEnv    = "TOKENBENCH_MIX" // serve slice i of the flattened catalog
	rssServer = 5
	rssTools  = 1000
)

// serveMix serves tools [i*n, (i+1)*n) of all snapshots' tools, round
// robin, so five servers hold 1,000 distinct-within-server real definitions.
func serveMix(i, n int) {
	snaps, err := Load(os.Getenv(dataEnv))
	if err != nil {
		log.Fatal(err)
	}
	var all []Tool
	for _, s := range snaps {
		all = append(all, s.Tools...)
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "mix" + strconv.Itoa(i), Version: "snapshot"}, nil)
	seen := map[string]bool{}
	for k := 0; len(seen) < n && k < 4*len(all); k++ {
		t := all[(i*n+k)%len(all)]
		name := t.Name
		for j := 2; seen[name]; j++ {
			name = t.Name + "_" + strconv.Itoa(j)
		}
		seen[name] = true
		mt := &mcp.Tool{Name: name, Description: t.Description, InputSchema: t.InputSchema}
		if len(t.OutputSchema) > 0 {
			mt.OutputSchema = t.OutputSchema
		}
		srv.AddTool(mt, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "{}"}}}, nil
		})
	}
	if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}

// rssChild starts a conductor with the five servers, searches and runs one
// program, then prints its memory as JSON on stdout.
func rssChild() {
	if os.Getenv("TOKENBENCH_RSS_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, so small retainers show
	}
	exe, _ := os.Executable()
	data, _ := filepath.Abs(dataFile)
	dir, _ := os.MkdirTemp("", "conductor-rss-")
	defer os.RemoveAll(dir)
	cfg := config.Default(dir)
	cfg.Deno = os.Getenv("MCP_CONDUCTOR_DENO")
	cfg.Workspace = filepath.Join(dir, "ws")
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		cfg.CacheDir = c
	}
	cfg.Catalog.CacheSpecs = true // the vector cache makes the measurement independent of embedding speed
	cfg.Store.URL = "sqlite://" + filepath.Join(os.Getenv("TOKENBENCH_RSS_STATE"), "state.db")
	for i := range rssServer {
		cfg.Servers = append(cfg.Servers, config.Server{Name: "mix" + strconv.Itoa(i), Command: exe,
			Env: map[string]string{mixEnv: strconv.Itoa(i), dataEnv: data}})
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, vec := c.SearchReady()
		if n >= rssTools && vec || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	conv, _ := c.CreateConversation()
	if _, err := c.FindTools(ctx, conv, query, 8); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Execute(ctx, conv, "1 + 1", conductor.ExecOptions{}); err != nil {
		log.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	if p := os.Getenv("TOKENBENCH_RSS_HEAPPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n, vec := c.SearchReady()
	out, _ := json.Marshal(map[string]any{"rssKB": statusKB("VmRSS:"), "anonKB": statusKB("RssAnon:"), "fileKB": statusKB("RssFile:"),
		"heapKB": ms.HeapAlloc / 1024, "tools": n, "vectors": vec})
	fmt.Println(string(out))
	c.Close()
}

// statusKB reads one kB field of /proc/self/status.
func statusKB(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}

// BenchmarkConductorRSS reports the conductor's resident memory with 5
// servers and 1,000 tools, after a first start (vectors embedded) and after a
// restart (vectors from the store's cache). Warm-pool Deno processes are
// separate processes and not counted (see internal/sandbox
// BenchmarkIdleProcessRSS).
func BenchmarkConductorRSS(b *testing.B) {
	toolPath(b, "deno")
	state := b.TempDir()
	measure := func() map[string]any {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), rssEnv+"=1", "TOKENBENCH_RSS_STATE="+state,
			"MCP_CONDUCTOR_DENO="+toolPath(b, "deno"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child: %v", err)
		}
		var m map[string]any
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
			b.Fatalf("child printed %q: %v", out, err)
		}
		return m
	}
	for b.Loop() {
		first := measure()
		again := measure()
		b.ReportMetric(first["rssKB"].(float64)/1024, "first-start-rss-MB")
		b.ReportMetric(again["rssKB"].(float64)/1024, "restart-rss-MB")
		// RssAnon is the conductor's own memory; RssFile is the binary's
		// pages, shared with the page cache.
		b.ReportMetric(again["anonKB"].(float64)/1024, "anon-MB")
		b.ReportMetric(again["fileKB"].(float64)/1024, "file-MB")
		b.ReportMetric(again["heapKB"].(float64)/1024, "heap-MB")
		b.ReportMetric(again["tools"].(float64), "tools")
	}
}
