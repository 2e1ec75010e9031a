package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type bearerRT struct{ token string }

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// startHTTP starts `conductor start --http 127.0.0.1:0 args...` and returns
// the process, its /mcp URL and its stderr so far (a func).
func startHTTPConductor(t *testing.T, env []string, args ...string) (*exec.Cmd, <-chan struct{}, string, func() string) {
	t.Helper()
	cmd := conductorCmd(t, env, append([]string{"start", "--http", "127.0.0.1:0"}, args...)...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	logc := make(chan string, 1000)
	urlc := make(chan string, 1)
	re := regexp.MustCompile(`"url":"(http://[^"]+)"`)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			logc <- line
			if m := re.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
		close(logc)
	}()
	done := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	stderr := func() string {
		for {
			select {
			case l, ok := <-logc:
				if !ok {
					return log.String()
				}
				log.WriteString(l + "\n")
			default:
				return log.String()
			}
		}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	select {
	case u := <-urlc:
		return cmd, done, u, stderr
	case <-done:
		t.Fatalf("conductor exited before serving:\n%s", stderr())
	case <-time.After(60 * time.Second):
		t.Fatalf("conductor did not start serving:\n%s", stderr())
	}
	return nil, nil, "", nil
}

func TestStartHTTPStateless(t *testing.T) {
	_, _, url, _ := startHTTPConductor(t, nil, "--stateless")
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute_code","arguments":{"code":"40 + 2"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") != "" || !strings.Contains(string(b), "42") {
		t.Errorf("stateless tools/call without initialize: %d session %q body %s", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), b)
	}
	out, err := conductorCmd(t, nil, "start", "--stateless").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--stateless needs --http") {
		t.Errorf("--stateless without --http: %v %s", err, out)
	}
}

func TestStartHTTPRefusesPublicAddressWithoutToken(t *testing.T) {
	cmd := conductorCmd(t, nil, "start", "--http", "0.0.0.0:0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to listen on a non-loopback address without authentication") {
		t.Fatalf("start --http 0.0.0.0:0 without token: err %v, output:\n%s", err, out)
	}
	if strings.Contains(string(out), "panic") {
		t.Errorf("output: %s", out)
	}
}

// TestStartHTTPServesAndShutsDownGracefully runs a real `conductor start
// --http`, calls execute_code with the Go SDK client, then sends SIGTERM
// while a program runs: the program finishes, the process exits 0 and
// leaves no process behind.
func TestStartHTTPServesAndShutsDownGracefully(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	cmd, exited, url, stderr := startHTTPConductor(t, []string{"MCP_CONDUCTOR_HTTP_TOKEN=tok-123"}, "--grace", "20s", "--audit-log", auditPath)
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url,
		HTTPClient: &http.Client{Transport: bearerRT{"tok-123"}}, DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr())
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code", Arguments: map[string]any{"code": "6 * 7"}})
	if err != nil || res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "42") {
		t.Fatalf("execute_code: %v %+v\n%s", err, res, stderr())
	}

	// Without the token: 401.
	resp, err := http.Post(url, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without token: %d, want 401", resp.StatusCode)
	}

	got := make(chan string, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code",
			Arguments: map[string]any{"code": `await new Promise(r => setTimeout(r, 1500)); "done late"`}})
		if err != nil {
			got <- err.Error()
			return
		}
		got <- res.Content[0].(*mcp.TextContent).Text
	}()
	time.Sleep(500 * time.Millisecond)
	kids := descendants(cmd.Process.Pid)
	if len(kids) == 0 {
		t.Error("no sandbox process seen while a program runs")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := <-got; !strings.Contains(r, "done late") {
		t.Errorf("run in flight at SIGTERM = %q, want it to finish\n%s", r, stderr())
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("conductor still running 30 s after SIGTERM\n%s", stderr())
	}
	if st := cmd.ProcessState; !st.Success() {
		t.Errorf("exit status %v after SIGTERM\n%s", st, stderr())
	}
	for _, pid := range kids {
		if alive(pid) {
			t.Errorf("process %d (a child of the conductor) outlived it", pid)
		}
	}

	// The audit log has one JSON record per run, with the principal and the
	// code's hash, and never the token.
	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(audit), "tok-123") {
		t.Error("the audit log contains the bearer token")
	}
	runs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(audit)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if rec["msg"] == "execution" {
			runs++
			if rec["principal"] != "token" || len(fmt.Sprint(rec["codeSha256"])) != 64 || rec["outcome"] != "ok" || rec["conversation"] == "" {
				t.Errorf("audit record %v: want principal token, codeSha256, outcome ok, conversation", rec)
			}
		}
	}
	if runs != 2 {
		t.Errorf("audit log has %d execution records, want 2:\n%s", runs, audit)
	}
}

// descendants lists the live descendants of pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := ppid(p); ok {
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// ppid reads the parent of a live (non-zombie) process.
func ppid(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 || f[0] == "Z" {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

func alive(pid int) bool { _, ok := ppid(pid); return ok }

// TestStartHTTPKill9 kills the conductor with SIGKILL while a program runs:
// its sandbox must not outlive it, and after a restart on the same store and
// workspace the conversation is still there.
func TestStartHTTPKill9(t *testing.T) {
	dir := t.TempDir()
	env := []string{"MCP_CONDUCTOR_HTTP_TOKEN=tok",
		"MCP_CONDUCTOR_WORKSPACE=" + filepath.Join(dir, "ws"),
		"MCP_CONDUCTOR_STORE=sqlite://" + filepath.Join(dir, "state.db"),
		"MCP_CONDUCTOR_RUN_ARGS=allow-read=${env:MCP_CONDUCTOR_WORKSPACE},allow-write=${env:MCP_CONDUCTOR_WORKSPACE}"}
	connectTo := func(url string) *mcp.ClientSession {
		client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url,
			HTTPClient: &http.Client{Transport: bearerRT{"tok"}}, DisableStandaloneSSE: true, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	call := func(cs *mcp.ClientSession, code string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code",
			Arguments: map[string]any{"code": code, "conversation_id": "kept"}})
		if err != nil {
			return "", err
		}
		return res.Content[0].(*mcp.TextContent).Text, nil
	}

	cmd, exited, url, stderr := startHTTPConductor(t, env)
	cs := connectTo(url)
	if out, err := call(cs, `await Deno.writeTextFile("workspace/kept.txt", "still here"); "ok"`); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("write: %v %q\n%s", err, out, stderr())
	}
	go call(cs, `await new Promise(r => setTimeout(r, 60000))`)
	var kids []int
	deadline := time.Now().Add(10 * time.Second)
	for len(kids) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		kids = descendants(cmd.Process.Pid)
	}
	if len(kids) == 0 {
		t.Fatal("no sandbox process seen")
	}
	time.Sleep(300 * time.Millisecond)
	kids = descendants(cmd.Process.Pid)
	cmd.Process.Kill()
	<-exited
	deadline = time.Now().Add(10 * time.Second)
	for _, pid := range kids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			t.Errorf("process %d outlived the SIGKILLed conductor by 10 s: %s", pid, strings.ReplaceAll(string(b), "\x00", " "))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}

	_, _, url, stderr = startHTTPConductor(t, env)
	out, err := call(connectTo(url), `await Deno.readTextFile("workspace/kept.txt")`)
	if err != nil || !strings.Contains(out, "still here") {
		t.Errorf("after restart: %v %q\n%s", err, out, stderr())
	}
}

// TestStartHTTPRolesAndTraces: `start --http` with http.tokens and
// http.roles in the config file narrows a named token's code to its role,
// and OTEL_EXPORTER_OTLP_ENDPOINT makes the conductor export its spans.
func TestStartHTTPRolesAndTraces(t *testing.T) {
	everything := repoTools(t, "mcp-server-everything")
	spans := make(chan string, 100)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		spans <- r.URL.Path
	}))
	defer collector.Close()
	cfgPath := filepath.Join(t.TempDir(), "conductor.json")
	cfg := fmt.Sprintf(`{"mcpServers": {"everything": {"command": %q, "args": ["stdio"]}},
 "http": {"tokens": [{"name": "ci", "token": "${env:CI_TOKEN}", "role": "summer"}],
          "roles": {"summer": {"servers": {"everything": {"allowTools": ["get-sum"]}}}}}}`, everything)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, exited, url, stderr := startHTTPConductor(t, []string{"CI_TOKEN=ci-secret", "OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL}, "--config", cfgPath)
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerRT{"ci-secret"}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr())
	}
	defer cs.Close()
	run := func(code string) string {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code", Arguments: map[string]any{"code": code}})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(res.IsError, " ", res.Content[0].(*mcp.TextContent).Text)
	}
	if got := run(`await (globalThis as any).__conductor_call("everything", "echo", {message: "x"})`); !strings.Contains(got, "refused: this principal's role does not allow this tool") {
		t.Errorf("echo with the ci token: %s", got)
	}
	if got := run(`import * as e from "./mcp/everything"; await e.get_sum({a: 20, b: 22})`); !strings.Contains(got, "42") {
		t.Errorf("get-sum with the ci token: %s", got)
	}
	cs.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", stderr())
	}
	select {
	case p := <-spans:
		if p != "/v1/traces" {
			t.Errorf("collector got a POST to %s, want /v1/traces", p)
		}
	default:
		t.Errorf("no spans reached the collector:\n%s", stderr())
	}
}
