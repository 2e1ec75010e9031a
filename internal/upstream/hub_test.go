package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// debugLogger logs everything as JSON into b.
func debugLogger(b *testenv.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// goServer is a stdio server running this test binary as newTestMCPServer.
func goServer(t testing.TB, name string, env map[string]string) config.Server {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := map[string]string{modeVar: "server"}
	for k, v := range env {
		e[k] = v
	}
	return config.Server{Name: name, Command: exe, Env: e}
}

// npmBin returns an npm MCP server installed by `make test`. Without CI it
// skips when the binary is missing; under CI a missing binary fails.
func npmBin(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "tools", "node_modules", ".bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (run make test): %v", name, err)
		}
		t.Fatalf("%s not installed: %v", name, err)
	}
	return p
}

func newHub(t *testing.T, servers []config.Server, opts Options) *Hub {
	t.Helper()
	h := New(servers, opts)
	t.Cleanup(func() { h.Close() })
	return h
}

func statusOf(h *Hub, name string) Status {
	for _, st := range h.Status() {
		if st.Server == name {
			return st
		}
	}
	return Status{}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resultText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func call(t *testing.T, h *Hub, server, tool, args string) string {
	t.Helper()
	res, err := h.Call(context.Background(), server, tool, json.RawMessage(args))
	if err != nil {
		t.Fatalf("Call(%s, %s, %s): %v", server, tool, args, err)
	}
	if res.IsError {
		t.Fatalf("Call(%s, %s, %s) is an error: %s", server, tool, args, resultText(t, res))
	}
	return resultText(t, res)
}

func toolNames(h *Hub, server string) []string {
	var names []string
	for _, tl := range h.Tools() {
		if tl.Server == server {
			names = append(names, tl.Tool.Name)
		}
	}
	return names
}

func TestStdioServer(t *testing.T) {
	var logs testenv.Buffer
	h := newHub(t, []config.Server{goServer(t, "go", nil)}, Options{Logger: debugLogger(&logs)})
	h.Start(context.Background())

	st := statusOf(h, "go")
	if st.State != StateUp || st.Pid == 0 || st.Err != "" {
		t.Fatalf("Status = %+v, want up with a pid", st)
	}
	// PageSize 2 on the server: six tools arrive over three pages.
	want := []string{"add_tool", "echo", "env", "fail", "pid", "sleep"}
	if got := toolNames(h, "go"); !slices.Equal(got, want) {
		t.Errorf("Tools() = %v, want %v", got, want)
	}
	if tl, ok := h.Tool("go", "echo"); !ok || tl.Tool.Description != "echoes text" {
		t.Errorf("Tool(go, echo) = %+v, %v", tl, ok)
	}
	if got := call(t, h, "go", "echo", `{"text":"hi"}`); got != "hi" {
		t.Errorf("echo = %q, want hi", got)
	}
	if got := call(t, h, "go", "pid", ``); got != strconv.Itoa(st.Pid) {
		t.Errorf("pid = %q, Status.Pid = %d", got, st.Pid)
	}

	res, err := h.Call(context.Background(), "go", "fail", nil)
	if err != nil || !res.IsError || !strings.Contains(resultText(t, res), "on purpose") {
		t.Errorf("Call(fail) = %+v, %v; want an IsError result", res, err)
	}
	if _, err := h.Call(context.Background(), "nope", "echo", nil); !errors.Is(err, ErrUnknownServer) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Call(unknown server) error = %v", err)
	}
	if _, err := h.Call(context.Background(), "go", "nope", nil); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Call(unknown tool) error = %v", err)
	}
	if _, err := h.Call(context.Background(), "go", "echo", json.RawMessage(`[1]`)); err == nil {
		t.Errorf("Call with array arguments: no error")
	}

	// stderr arrives line by line, tagged, long lines cut.
	eventually(t, "stderr in the log", func() bool { return strings.Contains(logs.String(), "test server starting") })
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(line, "test server starting") && !strings.Contains(line, `"upstream":"go"`) {
			t.Errorf("stderr record without upstream tag: %s", line)
		}
		if strings.Contains(line, "xxxx") {
			if strings.Contains(line, "END") || !strings.Contains(line, `"truncated":true`) {
				t.Errorf("long stderr line not truncated: %.200s", line)
			}
		}
	}
}

func TestEnvIsolation(t *testing.T) {
	t.Setenv("MCP_CONDUCTOR_HTTP_TOKEN", "conductor-secret")
	t.Setenv("UNRELATED_SECRET", "other-secret")
	var logs testenv.Buffer
	h := newHub(t, []config.Server{goServer(t, "go", map[string]string{"API_TOKEN": "server-secret-value"})}, Options{Logger: debugLogger(&logs)})
	h.Start(context.Background())
	env := strings.Split(call(t, h, "go", "env", ""), "\n")
	var keys []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"API_TOKEN", "HOME", "PATH", modeVar}
	if _, ok := os.LookupEnv("HOME"); !ok {
		want = slices.DeleteFunc(want, func(s string) bool { return s == "HOME" })
	}
	if !slices.Equal(keys, want) {
		t.Errorf("server env keys = %v, want %v", keys, want)
	}
	if !slices.Contains(env, "API_TOKEN=server-secret-value") {
		t.Errorf("server env lacks its own API_TOKEN")
	}
	h.Close()
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("log shows a secret:\n%s", logs.String())
	}
}

func TestNPMServers(t *testing.T) {
	everything := npmBin(t, "mcp-server-everything")
	filesystem := npmBin(t, "mcp-server-filesystem")
	memory := npmBin(t, "mcp-server-memory")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "sub"), 0o755)
	os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hi"), 0o644)
	var changes atomic.Int32
	h := newHub(t, []config.Server{
		{Name: "everything", Command: everything, Args: []string{"stdio"}},
		{Name: "filesystem", Command: filesystem, Args: []string{root}},
		{Name: "memory", Command: memory, Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, "memory.jsonl")}},
	}, Options{CallTimeout: 30 * time.Second, OnChange: func() { changes.Add(1) }})
	h.Start(context.Background())
	for _, st := range h.Status() {
		if st.State != StateUp || st.Tools == 0 {
			t.Fatalf("Status = %+v, want up with tools", st)
		}
	}
	if changes.Load() < 3 {
		t.Errorf("OnChange called %d times, want ≥ 3 (one per server up)", changes.Load())
	}
	for _, want := range []struct{ server, tool string }{
		{"everything", "echo"}, {"filesystem", "list_directory"}, {"memory", "create_entities"},
	} {
		if _, ok := h.Tool(want.server, want.tool); !ok {
			t.Errorf("Tool(%s, %s) missing; have %v", want.server, want.tool, toolNames(h, want.server))
		}
	}
	if got := call(t, h, "everything", "echo", `{"message":"hello"}`); !strings.Contains(got, "hello") {
		t.Errorf("everything echo = %q", got)
	}
	if got := call(t, h, "filesystem", "list_directory", fmt.Sprintf(`{"path":%q}`, root)); !strings.Contains(got, "hello.txt") || !strings.Contains(got, "sub") {
		t.Errorf("list_directory = %q", got)
	}
	call(t, h, "memory", "create_entities", `{"entities":[{"name":"Ada","entityType":"person","observations":["wrote programs"]}]}`)
	if b, err := os.ReadFile(filepath.Join(dir, "memory.jsonl")); err != nil || !strings.Contains(string(b), "Ada") {
		t.Errorf("memory file = %q, %v", b, err)
	}

	// Fan out like Promise.all: many calls in flight on every server.
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 20 {
		wg.Go(func() {
			msg := fmt.Sprintf("m%d", i)
			res, err := h.Call(context.Background(), "everything", "echo", json.RawMessage(fmt.Sprintf(`{"message":%q}`, msg)))
			if err == nil && !strings.Contains(resultText(t, res), msg) {
				err = fmt.Errorf("echo %s = %q", msg, resultText(t, res))
			}
			errs <- err
		})
		wg.Go(func() {
			_, err := h.Call(context.Background(), "filesystem", "list_directory", json.RawMessage(fmt.Sprintf(`{"path":%q}`, root)))
			errs <- err
		})
		wg.Go(func() {
			_, err := h.Call(context.Background(), "memory", "read_graph", nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestBadServersDoNotStopOthers(t *testing.T) {
	h := newHub(t, []config.Server{
		{Name: "missing", Command: "/nonexistent/mcp-server"},
		{Name: "exits", Command: "sh", Args: []string{"-c", "echo boom >&2; exit 3"}},
		{Name: "empty"},
		goServer(t, "good", nil),
	}, Options{StartTimeout: 10 * time.Second})
	h.Start(context.Background())
	for _, tc := range []struct{ name, state, err string }{
		{"missing", StateDown, "no such file"},
		{"exits", StateDown, "exit status 3"},
		{"empty", StateDown, "neither command nor url"},
		{"good", StateUp, ""},
	} {
		st := statusOf(h, tc.name)
		if st.State != tc.state || !strings.Contains(st.Err, tc.err) {
			t.Errorf("Status(%s) = %+v, want %s with %q", tc.name, st, tc.state, tc.err)
		}
		if tc.state == StateDown {
			_, err := h.Call(context.Background(), tc.name, "x", nil)
			if !errors.Is(err, ErrServerDown) || !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Call(%s) error = %v, want server down naming it and %q", tc.name, err, tc.err)
			}
		}
	}
	call(t, h, "good", "echo", `{"text":"still here"}`)
	// Failing servers are retried in the background.
	eventually(t, "a restart of the exiting server", func() bool { return statusOf(h, "exits").Restarts > 0 })
}

func TestCrashMidCall(t *testing.T) {
	var changes atomic.Int32
	h := newHub(t, []config.Server{goServer(t, "go", nil)}, Options{OnChange: func() { changes.Add(1) }})
	h.minBackoff = 50 * time.Millisecond
	h.Start(context.Background())
	pid := statusOf(h, "go").Pid

	errc := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "go", "sleep", json.RawMessage(`{"ms":60000}`))
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the call reach the server
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrServerDown) || !strings.Contains(err.Error(), `"go"`) || !strings.Contains(err.Error(), "killed") {
			t.Errorf("in-flight call error = %v, want server down, killed", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("in-flight call did not fail after its server was killed")
	}
	eventually(t, "restart", func() bool {
		st := statusOf(h, "go")
		return st.State == StateUp && st.Pid != pid && st.Restarts >= 1
	})
	call(t, h, "go", "echo", `{"text":"back"}`)
	if changes.Load() < 3 {
		t.Errorf("OnChange called %d times, want ≥ 3 (up, down, up)", changes.Load())
	}
}

func TestToolListChanged(t *testing.T) {
	changed := make(chan struct{}, 16)
	h := newHub(t, []config.Server{goServer(t, "go", nil)}, Options{OnChange: func() { changed <- struct{}{} }})
	h.Start(context.Background())
	<-changed // up
	call(t, h, "go", "add_tool", `{"name":"dynamic"}`)
	eventually(t, "the new tool in Tools()", func() bool { return slices.Contains(toolNames(h, "go"), "dynamic") })
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("OnChange not called after tools/list_changed")
	}
	if got := call(t, h, "go", "dynamic", ""); got != "dynamic dynamic" {
		t.Errorf("dynamic = %q", got)
	}
}

func TestCancelAndTimeout(t *testing.T) {
	cancelFile := filepath.Join(t.TempDir(), "cancelled")
	h := newHub(t, []config.Server{goServer(t, "go", map[string]string{"CANCEL_FILE": cancelFile})}, Options{})
	h.Start(context.Background())

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := h.Call(ctx, "go", "sleep", json.RawMessage(`{"ms":60000}`))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("cancelled call took %v", d)
	}
	// The server saw notifications/cancelled.
	eventually(t, "the server to see the cancellation", func() bool {
		_, err := os.Stat(cancelFile)
		return err == nil
	})

	h.opts.CallTimeout = 200 * time.Millisecond
	_, err = h.Call(context.Background(), "go", "sleep", json.RawMessage(`{"ms":60000}`))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("timed-out call error = %v, want deadline exceeded", err)
	}
	h.opts.CallTimeout = 0
	call(t, h, "go", "echo", `{"text":"still fine"}`)
}

func TestLazy(t *testing.T) {
	s := goServer(t, "lazy", nil)
	s.Lazy = true
	h := newHub(t, []config.Server{s}, Options{})
	h.Start(context.Background())
	if st := statusOf(h, "lazy"); st.State != StateLazy || st.Pid != 0 {
		t.Fatalf("Status before first call = %+v, want lazy", st)
	}
	if got := call(t, h, "lazy", "echo", `{"text":"woke"}`); got != "woke" {
		t.Errorf("echo = %q", got)
	}
	if st := statusOf(h, "lazy"); st.State != StateUp {
		t.Errorf("Status after first call = %+v, want up", st)
	}
}

func TestClose(t *testing.T) {
	h := New([]config.Server{goServer(t, "a", nil), goServer(t, "b", nil)}, Options{})
	h.Start(context.Background())
	pids := []int{statusOf(h, "a").Pid, statusOf(h, "b").Pid}
	errc := make(chan error, 1)
	go func() {
		_, err := h.Call(context.Background(), "a", "sleep", json.RawMessage(`{"ms":60000}`))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Error("call in flight during Close succeeded")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("server pid %d still running after Close", pid)
		}
	}
	if _, err := h.Call(context.Background(), "a", "echo", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call after Close error = %v, want ErrClosed", err)
	}
	h.Close() // idempotent
}

func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "HOME=/home/x", "junk"}, map[string]string{"HOME": "/srv", "A": "1"})
	want := []string{"A=1", "HOME=/srv", "PATH=/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv = %v, want %v", got, want)
	}
	if got := childEnv(nil, nil); got == nil || len(got) != 0 {
		t.Errorf("childEnv(nil, nil) = %#v, want empty non-nil (nil would inherit)", got)
	}
}

func TestTransportKind(t *testing.T) {
	for _, tc := range []struct {
		cfg      config.Server
		kind     string
		errMatch string
	}{
		{config.Server{Command: "x"}, "stdio", ""},
		{config.Server{URL: "http://h/mcp"}, "", ""},
		{config.Server{URL: "http://h/mcp", Transport: "sse"}, "sse", ""},
		{config.Server{URL: "http://h/mcp", Transport: "http"}, "http", ""},
		{config.Server{Transport: "stdio"}, "", "needs a command"},
		{config.Server{Command: "x", Transport: "sse"}, "", "needs a url"},
		{config.Server{Command: "x", Transport: "ws"}, "", "unknown transport"},
		{config.Server{}, "", "neither"},
	} {
		kind, err := transportKind(tc.cfg)
		if kind != tc.kind || (err == nil) != (tc.errMatch == "") || (err != nil && !strings.Contains(err.Error(), tc.errMatch)) {
			t.Errorf("transportKind(%+v) = %q, %v; want %q, %q", tc.cfg, kind, err, tc.kind, tc.errMatch)
		}
	}
}

func TestStopLadder(t *testing.T) {
	// Ignores stdin EOF and SIGTERM, and has a child of its own.
	h := New([]config.Server{goServer(t, "stubborn", map[string]string{"STUBBORN": "1", "GRANDCHILD": "1"})}, Options{StopTimeout: 100 * time.Millisecond})
	h.Start(context.Background())
	pid := statusOf(h, "stubborn").Pid
	grandchild, err := strconv.Atoi(call(t, h, "stubborn", "grandchild", ""))
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("server %d survived Close", pid)
	}
	// The grandchild is not ours to reap: it is gone or a zombie of init.
	eventually(t, "the grandchild to die with the process group", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", grandchild))
		return err != nil || strings.Contains(string(b), ") Z")
	})
}

func TestChildSurvivesThreadExits(t *testing.T) {
	// Pdeathsig fires when the forking thread exits. Goroutines that exit
	// while locked to a thread end that thread; the child must not care.
	h := newHub(t, []config.Server{goServer(t, "go", nil)}, Options{})
	h.Start(context.Background())
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			runtime.LockOSThread()
			time.Sleep(time.Millisecond)
		})
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	if st := statusOf(h, "go"); st.State != StateUp || st.Restarts != 0 {
		t.Fatalf("Status = %+v after threads exited, want up without restarts", st)
	}
	call(t, h, "go", "echo", `{"text":"alive"}`)
}

func TestStartTimeoutAndCloseDuringStart(t *testing.T) {
	// sleep never answers initialize.
	silent := config.Server{Name: "silent", Command: "sleep", Args: []string{"1000"}}
	h := newHub(t, []config.Server{silent, goServer(t, "good", nil)}, Options{StartTimeout: 300 * time.Millisecond, StopTimeout: 100 * time.Millisecond})
	h.Start(context.Background())
	if st := statusOf(h, "silent"); st.State != StateDown || !strings.Contains(st.Err, "deadline exceeded") {
		t.Errorf("Status(silent) = %+v, want down after the start timeout", st)
	}
	if st := statusOf(h, "good"); st.State != StateUp {
		t.Errorf("Status(good) = %+v, want up", st)
	}

	h2 := New([]config.Server{silent}, Options{StopTimeout: 100 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		h2.Start(context.Background())
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	h2.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after Close")
	}
}
