package conductor_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
)

// npmTool finds a binary that `make` installs under tools/node_modules/.bin;
// a missing one skips the test outside CI and fails it under CI.
func npmTool(tb testing.TB, name string) string {
	tb.Helper()
	p, _ := filepath.Abs(filepath.Join("tools", "node_modules", ".bin", name))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s missing: `make test` installs it", name)
		}
		tb.Skipf("%s missing: run `make test`", name)
	}
	return p
}

// rig is the disk of one conductor installation: store, workspace, and a
// data directory the filesystem server serves. Several conductors may run on
// one rig, one after the other (restart) or at once (replicas on Redis).
type rig struct {
	dir, ws, data, store string
	servers              bool
}

const notes = "Alice works at Acme."

func newRig(tb testing.TB, storeURL string) *rig {
	dir := tb.TempDir()
	r := &rig{dir: dir, ws: filepath.Join(dir, "ws"), data: filepath.Join(dir, "data"), store: storeURL, servers: true}
	if r.store == "" {
		r.store = "sqlite://" + filepath.Join(dir, "state.db")
	}
	os.MkdirAll(r.data, 0o755)
	os.WriteFile(filepath.Join(r.data, "notes.txt"), []byte(notes), 0o644)
	return r
}

func (r *rig) config(tb testing.TB) *config.Config {
	cfg := config.Default(r.dir)
	cfg.Deno = npmTool(tb, "deno")
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		cfg.CacheDir = c
	}
	cfg.Workspace = r.ws
	cfg.Store.URL = r.store
	cfg.Sandbox.Permissions = config.Permissions{Read: []string{r.ws}, Write: []string{r.ws}}
	if r.servers {
		cfg.Servers = []config.Server{{Name: "filesystem", Command: npmTool(tb, "mcp-server-filesystem"), Args: []string{r.data}}}
	}
	return cfg
}

// start runs a conductor on the rig; edit, when non-nil, changes its
// config and the conductor before Start. Cleanup closes it.
func (r *rig) start(tb testing.TB, edit func(*config.Config, *conductor.Conductor)) *conductor.Conductor {
	tb.Helper()
	cfg := r.config(tb)
	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		edit(cfg, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		c.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// forEachStore runs f against SQLite and against a real redis-server.
func forEachStore(t *testing.T, f func(t *testing.T, storeURL string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "") })
	t.Run("redis", func(t *testing.T) { f(t, testenv.StartRedis(t, "").URL()) })
}

func mustExec(tb testing.TB, c *conductor.Conductor, conv, code string, opts conductor.ExecOptions) *conductor.ExecResult {
	tb.Helper()
	res, err := c.Execute(context.Background(), conv, code, opts)
	if err != nil {
		tb.Fatalf("Execute: %v", err)
	}
	if res.Error != nil {
		tb.Fatalf("Execute: %v\n%s", res.Error, res.Stderr)
	}
	return res
}

func readNotes(r *rig) string {
	return `import * as filesystem from "./mcp/filesystem.ts";
const f = await filesystem.read_text_file({ path: "` + r.data + `/notes.txt" });
f.content;`
}

func TestConversationSurvivesRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, storeURL string) {
		r := newRig(t, storeURL)
		ctx := context.Background()
		c1 := r.start(t, nil)
		conv, err := c1.CreateConversation()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c1.LoadToolSpec(ctx, conv, "filesystem.read_text_file"); err != nil {
			t.Fatal(err)
		}
		mustExec(t, c1, conv, readNotes(r)+`await Deno.writeTextFile("./workspace/a.txt", "kept"); 1`, conductor.ExecOptions{})
		want := c1.Context(conv)
		if !strings.Contains(want, "Already loaded: filesystem.read_text_file") {
			t.Fatalf("Context = %q", want)
		}
		c1.Close()

		c2 := r.start(t, nil)
		if got := c2.Context(conv); got != want {
			t.Errorf("Context after restart = %q, want %q", got, want)
		}
		res := mustExec(t, c2, conv, `await Deno.readTextFile("./workspace/a.txt")`, conductor.ExecOptions{})
		if string(res.Result) != `"kept"` {
			t.Errorf("workspace file after restart = %s, want \"kept\"", res.Result)
		}
		// The module of message 1 is still importable without load_tools.
		res = mustExec(t, c2, conv, readNotes(r), conductor.ExecOptions{})
		if string(res.Result) != `"`+notes+`"` {
			t.Errorf("tool result after restart = %s", res.Result)
		}
		matches, err := c2.FindTools(ctx, conv, "read the contents of a text file", 3)
		if err != nil {
			t.Fatal(err)
		}
		var loaded []string
		for i, m := range matches {
			if m.Loaded {
				loaded = append(loaded, m.Name)
				if m.Description != "" || i < 3 {
					t.Errorf("loaded match %d %+v: want it after the 3 new tools, without description", i, m)
				}
			}
		}
		if !slices.Equal(loaded, []string{"filesystem.read_text_file"}) {
			t.Errorf("loaded matches = %v, want [filesystem.read_text_file]", loaded)
		}
		h, err := c2.History(ctx, "", conv)
		if err != nil || len(h) != 3 || !slices.Equal(h[0].Tools, []string{"filesystem.read_text_file"}) || h[0].Outcome != "ok" {
			t.Errorf("History = %+v, %v; want 3 runs, the first calling filesystem.read_text_file", h, err)
		}
	})
}

func TestPrincipalScoping(t *testing.T) {
	r := newRig(t, "")
	c := r.start(t, nil)
	ctx := context.Background()
	alice := conductor.ExecOptions{Principal: "alice"}
	bob := conductor.ExecOptions{Principal: "bob"}
	if _, err := c.LoadToolSpecFor(ctx, "alice", "shared", "filesystem.read_text_file"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "shared", `await Deno.writeTextFile("./workspace/secret.txt", "alice's"); 1`, alice)
	if got := c.ContextFor("bob", "shared"); got != "" {
		t.Errorf("bob's context of id shared = %q, want empty", got)
	}
	res, err := c.Execute(ctx, "shared", `await Deno.readTextFile("./workspace/secret.txt")`, bob)
	if err != nil {
		t.Fatal(err)
	}
	if res.Error == nil {
		t.Errorf("bob read alice's file: %s", res.Result)
	}
	if m, _ := c.FindToolsFor(ctx, "bob", "shared", "read a text file", 5); slices.ContainsFunc(m, func(m conductor.ToolMatch) bool { return m.Loaded }) {
		t.Errorf("bob's search shows alice's loaded tools: %+v", m)
	}
	if got := c.ContextFor("alice", "shared"); !strings.Contains(got, "filesystem.read_text_file") {
		t.Errorf("alice's context = %q", got)
	}
	res = mustExec(t, c, "shared", `await Deno.readTextFile("./workspace/secret.txt")`, alice)
	if string(res.Result) != `"alice's"` {
		t.Errorf("alice reads %s", res.Result)
	}
}

func TestConcurrentExecute(t *testing.T) {
	forEachStore(t, func(t *testing.T, storeURL string) {
		r := newRig(t, storeURL)
		c := r.start(t, nil)
		conv, err := c.CreateConversation()
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		tools := []string{"filesystem.read_text_file", "filesystem.list_directory", "filesystem.get_file_info", "filesystem.search_files"}
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() {
				if _, err := c.LoadToolSpec(ctx, conv, tools[i%len(tools)]); err != nil {
					errs <- err
				}
			})
			wg.Go(func() {
				code := readNotes(r) + fmt.Sprintf(`await Deno.writeTextFile("./workspace/%d.txt", f.content); %d`, i, i)
				res, err := c.Execute(ctx, conv, code, conductor.ExecOptions{})
				if err == nil && res.Error != nil {
					err = res.Error
				}
				if err == nil && string(res.Result) != fmt.Sprint(i) {
					err = fmt.Errorf("run %d returned %s", i, res.Result)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		h, err := c.History(ctx, "", conv)
		if err != nil || len(h) != n {
			t.Errorf("History has %d runs (%v), want %d", len(h), err, n)
		}
		slices.Sort(tools)
		if got, want := c.Context(conv), "Already loaded: "+strings.Join(tools, ", "); !strings.HasSuffix(got, want) {
			t.Errorf("Context = %q, want it to end with %q", got, want)
		}
		files, _ := filepath.Glob(filepath.Join(r.ws, conv, "workspace", "*.txt"))
		if len(files) != n {
			t.Errorf("workspace holds %d files, want %d", len(files), n)
		}
	})
}

// TestSharedRedis runs two conductors on one Redis, as two replicas: each
// sees the other's conversations and co-usage.
func TestSharedRedis(t *testing.T) {
	r := newRig(t, testenv.StartRedis(t, "").URL())
	c1 := r.start(t, nil)
	c2 := r.start(t, nil)
	ctx := context.Background()
	conv, err := c1.CreateConversation()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.LoadToolSpec(ctx, conv, "filesystem.read_text_file", "filesystem.list_directory"); err != nil {
		t.Fatal(err)
	}
	both := `import * as filesystem from "./mcp/filesystem.ts";
await filesystem.list_directory({ path: "` + r.data + `" });
(await filesystem.read_text_file({ path: "` + r.data + `/notes.txt" })).content;`
	for range 2 { // suggestions need two programs that used both tools
		mustExec(t, c1, conv, both, conductor.ExecOptions{})
	}
	if got, want := c2.Context(conv), c1.Context(conv); got != want || want == "" {
		t.Errorf("replica's Context = %q, want %q", got, want)
	}
	res := mustExec(t, c2, conv, both, conductor.ExecOptions{})
	if string(res.Result) != `"`+notes+`"` {
		t.Errorf("replica's run = %s", res.Result)
	}
	conv2, _ := c2.CreateConversation()
	specs, err := c2.LoadToolSpec(ctx, conv2, "filesystem.read_text_file")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(specs[0].Suggestions, "filesystem.list_directory") {
		t.Errorf("replica's suggestions with read_text_file = %v, want filesystem.list_directory", specs[0].Suggestions)
	}
}

// TestRedisDown kills Redis under a running conductor: calls that need the
// conversation fail with an error naming the store, and work again once
// Redis is back (with what Redis kept: nothing, here, as it has no
// persistence).
func TestRedisDown(t *testing.T) {
	red := testenv.StartRedis(t, "")
	r := newRig(t, red.URL())
	c := r.start(t, nil)
	ctx := context.Background()
	conv, _ := c.CreateConversation()
	mustExec(t, c, conv, `1`, conductor.ExecOptions{})
	red.Stop()
	_, err := c.Execute(ctx, conv, `1`, conductor.ExecOptions{})
	if err == nil || !strings.Contains(err.Error(), "conversation state") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("Execute with Redis down: %v; want an error naming the store", err)
	} else {
		t.Logf("Execute with Redis down: %v", err)
	}
	if _, err := c.FindTools(ctx, conv, "read a file", 5); err == nil {
		t.Error("FindTools in a conversation with Redis down succeeded")
	}
	if m, err := c.FindTools(ctx, "", "read a file", 5); err != nil || len(m) == 0 {
		t.Errorf("FindTools without a conversation needs no store: %v, %v", m, err)
	}
	red.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = c.Execute(ctx, conv, `1`, conductor.ExecOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("Execute after Redis returned: %v", err)
	}
}

func TestExpiryAndLimits(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r := newRig(t, "")
	r.servers = false
	c := r.start(t, func(cfg *config.Config, c *conductor.Conductor) {
		cfg.Store.ConversationTTL = time.Second
		cfg.Store.MaxConversations = 2
		cfg.Store.MaxWorkspaceBytes = 1000
		conductor.SetSweepInterval(c, 100*time.Millisecond)
	})
	defer c.Close()
	ctx := context.Background()

	// The workspace cap: a run that writes past it fails, the next is refused.
	full, _ := c.CreateConversation()
	res, err := c.Execute(ctx, full, `await Deno.writeTextFile("./workspace/big", "x".repeat(2000)); 1`, conductor.ExecOptions{})
	if err != nil || res.Error == nil || res.Error.Kind != "output_limit" || string(res.Result) != "1" {
		t.Errorf("run over the cap: %+v, %v; want result 1 and an output_limit error", res, err)
	}
	if _, err := c.Execute(ctx, full, `1`, conductor.ExecOptions{}); !errors.Is(err, conductor.ErrWorkspaceFull) {
		t.Errorf("run in a full workspace: %v, want ErrWorkspaceFull", err)
	} else {
		t.Logf("refused: %v", err)
	}

	// The count cap keeps the 2 most recently used.
	var convs []string
	for range 4 {
		id, _ := c.CreateConversation()
		mustExec(t, c, id, `await Deno.writeTextFile("./workspace/f", "x"); 1`, conductor.ExecOptions{})
		convs = append(convs, id)
		time.Sleep(10 * time.Millisecond)
	}
	gone := func(id string) bool {
		_, err := os.Stat(filepath.Join(r.ws, id))
		return os.IsNotExist(err)
	}
	waitFor(t, "the 2 oldest conversations to expire", func() bool { return gone(convs[0]) && gone(convs[1]) })

	// The TTL removes idle ones with their files.
	waitFor(t, "idle conversations to expire", func() bool { return gone(convs[2]) && gone(convs[3]) })
	if _, err := c.History(ctx, "", convs[3]); err == nil {
		if h, _ := c.History(ctx, "", convs[3]); len(h) > 0 {
			t.Errorf("expired conversation keeps its history: %+v", h)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// countingEmbedder makes deterministic vectors from text hashes and counts
// the texts it embedded.
type countingEmbedder struct{ n atomic.Int64 }

func (e *countingEmbedder) Name() string { return "test-hash-v1" }
func (e *countingEmbedder) Dim() int     { return 8 }
func (e *countingEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	e.n.Add(int64(len(texts)))
	out := make([][]float32, len(texts))
	for i, t := range texts {
		sum := sha256.Sum256([]byte(t))
		v := make([]float32, 8)
		var norm float64
		for j := range v {
			v[j] = float32(sum[j]) - 127.5
			norm += float64(v[j] * v[j])
		}
		for j := range v {
			v[j] /= float32(math.Sqrt(norm))
		}
		out[i] = v
	}
	return out, nil
}

// TestCachedSpecs restarts with the server lazy: the catalog answers from
// the specs and vectors the first run stored, embedding nothing, and the
// server starts on the first call.
func TestCachedSpecs(t *testing.T) {
	forEachStore(t, func(t *testing.T, storeURL string) {
		r := newRig(t, storeURL)
		e1 := &countingEmbedder{}
		c1 := r.start(t, func(cfg *config.Config, c *conductor.Conductor) {
			cfg.Catalog.CacheSpecs = true
			conductor.SetEmbedder(c, e1)
		})
		tools1, vectors := c1.SearchReady()
		if tools1 == 0 || !vectors || e1.n.Load() == 0 {
			t.Fatalf("first run: %d tools, vectors %v, %d texts embedded", tools1, vectors, e1.n.Load())
		}
		c1.Close()

		e2 := &countingEmbedder{}
		c2 := r.start(t, func(cfg *config.Config, c *conductor.Conductor) {
			cfg.Catalog.CacheSpecs = true
			cfg.Servers[0].Lazy = true
			conductor.SetEmbedder(c, e2)
		})
		if n := e2.n.Load(); n != 0 {
			t.Errorf("restart embedded %d texts, want 0", n)
		}
		if st := c2.Status(); len(st) != 1 || st[0].State != "lazy" {
			t.Fatalf("Status = %+v, want the server lazy", st)
		}
		if tools2, vectors := c2.SearchReady(); tools2 != tools1 || !vectors {
			t.Errorf("restart index: %d tools (vectors %v), want %d with vectors", tools2, vectors, tools1)
		}
		ctx := context.Background()
		conv, _ := c2.CreateConversation()
		m, err := c2.FindTools(ctx, conv, "read the contents of a text file", 5)
		if err != nil || !slices.ContainsFunc(m, func(m conductor.ToolMatch) bool { return m.Name == "filesystem.read_text_file" }) {
			t.Errorf("search before the server started: %+v, %v", m, err)
		}
		if _, err := c2.LoadToolSpec(ctx, conv, "filesystem.read_text_file"); err != nil {
			t.Fatalf("LoadToolSpec from cached specs: %v", err)
		}
		res := mustExec(t, c2, conv, readNotes(r), conductor.ExecOptions{})
		if string(res.Result) != `"`+notes+`"` {
			t.Errorf("first call of a lazy server = %s", res.Result)
		}
		if st := c2.Status(); st[0].State != "up" {
			t.Errorf("after a call the server is %s, want up", st[0].State)
		}
	})
}
