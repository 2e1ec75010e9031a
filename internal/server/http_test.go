package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/telemetry"
)

// httpFixture is a conductor served over HTTP by Serve on a loopback port.
type httpFixture struct {
	s       *Server
	m       *telemetry.Metrics
	url     string // base URL, without /mcp
	stop    context.CancelFunc
	stopped chan error
}

func startHTTP(t *testing.T, opts HTTPOptions, mutate func(*config.Config)) *httpFixture {
	t.Helper()
	c := newConductor(t, mutate)
	s := New(c, nil)
	m := telemetry.New()
	s.SetMetrics(m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &httpFixture{s: s, m: m, url: "http://" + ln.Addr().String(), stop: cancel, stopped: make(chan error, 1)}
	go func() { f.stopped <- s.Serve(ctx, ln, opts) }()
	t.Cleanup(func() { f.shutdown(t) })
	return f
}

// shutdown stops Serve (idempotent) and reports its error.
func (f *httpFixture) shutdown(t *testing.T) error {
	t.Helper()
	f.stop()
	select {
	case err, ok := <-f.stopped:
		if ok {
			close(f.stopped)
		}
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("Serve did not return after shutdown")
		return nil
	}
}

// bearer adds a token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func (f *httpFixture) connect(t testing.TB, token string, copts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return f.connectWith(t, token, copts, false)
}

func (f *httpFixture) connectWith(t testing.TB, token string, copts *mcp.ClientOptions, noStandalone bool) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: http.DefaultTransport}
	if token != "" {
		hc.Transport = bearer{token, http.DefaultTransport}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, copts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: f.url + "/mcp", HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: noStandalone}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func execCode(ctx context.Context, cs *mcp.ClientSession, code string) (*mcp.CallToolResult, error) {
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code", Arguments: map[string]any{"code": code}})
}

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// scrape parses /metrics with the Prometheus text parser.
func (f *httpFixture) scrape(t *testing.T, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", f.url+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	fam := fams[name]
	if fam == nil {
		return 0
	}
	total := 0.0
	for _, m := range fam.Metric {
		match := true
		for k, v := range want {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// childProcesses counts processes whose parent is this test process.
func childProcesses(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	self := strconv.Itoa(os.Getpid())
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) > 2 && fields[1] == self && fields[0] != "Z" {
			n++
		}
	}
	return n
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// workspaceRW lets programs read and write their conversation's directory.
func workspaceRW(c *config.Config) {
	c.Sandbox.Permissions.Read = []string{c.Workspace}
	c.Sandbox.Permissions.Write = []string{c.Workspace}
}

const readNote = `let r; try { r = await Deno.readTextFile("workspace/note.txt") } catch { r = "absent" }; r`

func TestHTTPSessionsAreConversations(t *testing.T) {
	f := startHTTP(t, HTTPOptions{Token: "s3cret"}, workspaceRW)
	ctx := context.Background()
	a := f.connect(t, "s3cret", nil)
	b := f.connect(t, "s3cret", nil)

	res, err := execCode(ctx, a, `await Deno.writeTextFile("workspace/note.txt", "from a"); "written"`)
	if err != nil || res.IsError {
		t.Fatalf("write: %v %s", err, text(res))
	}
	res, err = execCode(ctx, a, readNote)
	if err != nil || res.IsError || !strings.Contains(text(res), "from a") {
		t.Fatalf("same session reads its file: %v %s", err, text(res))
	}
	res, err = execCode(ctx, b, readNote)
	if err != nil || !strings.Contains(text(res), "absent") {
		t.Fatalf("other session sees a's file: %v %s", err, text(res))
	}
	if got := value(f.scrape(t, "s3cret"), "conductor_sessions_active", nil); got != 2 {
		t.Errorf("conductor_sessions_active = %v, want 2", got)
	}
	b.Close()
	waitFor(t, "session b to be dropped", 10*time.Second, func() bool { return f.s.activeSessions() == 1 })
}

func TestHTTPAuthAndOrigin(t *testing.T) {
	iss := newIssuer(t)
	f := startHTTP(t, HTTPOptions{Token: "s3cret", AllowedOrigins: []string{"https://app.example.com"},
		JWT: &JWTOptions{Issuer: iss.url, Audience: "https://conductor.test"}}, nil)
	now := time.Now()
	good := jwt.RegisteredClaims{Issuer: iss.url, Subject: "alice", Audience: jwt.ClaimStrings{"https://conductor.test"},
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}
	expired, wrongAud, wrongIss := good, good, good
	expired.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
	wrongAud.Audience = jwt.ClaimStrings{"https://other.test"}
	wrongIss.Issuer = "https://evil.test"
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	noExp := good
	noExp.ExpiresAt = nil

	tests := []struct {
		name, auth, origin string
		want               int
	}{
		{"no token", "", "", 401},
		{"wrong token", "Bearer nope", "", 401},
		{"basic scheme", "Basic czNjcmV0", "", 401},
		{"token", "Bearer s3cret", "", 200},
		{"jwt", "Bearer " + iss.sign(t, good, iss.key), "", 200},
		{"expired jwt", "Bearer " + iss.sign(t, expired, iss.key), "", 401},
		{"wrong audience jwt", "Bearer " + iss.sign(t, wrongAud, iss.key), "", 401},
		{"wrong issuer jwt", "Bearer " + iss.sign(t, wrongIss, iss.key), "", 401},
		{"jwt signed by another key", "Bearer " + iss.sign(t, good, other), "", 401},
		{"jwt without exp", "Bearer " + iss.sign(t, noExp, iss.key), "", 401},
		{"allowed origin", "Bearer s3cret", "https://app.example.com", 200},
		{"foreign origin", "Bearer s3cret", "https://evil.example.com", 403},
		{"same origin", "Bearer s3cret", f.url, 200},
		{"same host, other port", "Bearer s3cret", f.url[:strings.LastIndex(f.url, ":")] + ":1", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := initialize(t, f.url, tt.auth, tt.origin)
			if code != tt.want {
				t.Fatalf("status = %d, want %d (body %q)", code, tt.want, body)
			}
			if code == 401 {
				for _, leak := range []string{"expired", "audience", "issuer", "signature", "key", "s3cret", "alice"} {
					if strings.Contains(strings.ToLower(body), leak) {
						t.Errorf("401 body %q tells %q", body, leak)
					}
				}
			}
		})
	}
	// /metrics needs the token too; /healthz and /readyz do not.
	for path, want := range map[string]int{"/metrics": 401, "/healthz": 200, "/readyz": 200} {
		resp, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without token = %d, want %d", path, resp.StatusCode, want)
		}
	}
	if got := value(f.scrape(t, "s3cret"), "conductor_http_rejected_total", map[string]string{"reason": "unauthorized"}); got < 7 {
		t.Errorf("rejected{unauthorized} = %v, want >= 7", got)
	}
}

// initialize POSTs an MCP initialize request and returns status, body and headers.
func initialize(t testing.TB, base, authz, origin string) (int, string, http.Header) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	return post(t, base, authz, origin, "", body)
}

func post(t testing.TB, base, authz, origin, session, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// issuer is a local OAuth authorization server: discovery and JWKS.
type issuer struct {
	url string
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &issuer{key: key}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": iss.url, "jwks_uri": iss.url + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]any{{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": b64.EncodeToString(key.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	return iss
}

func (iss *issuer) sign(t *testing.T, c jwt.RegisteredClaims, key *rsa.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHTTPJWTPrincipalScopesConversations(t *testing.T) {
	iss := newIssuer(t)
	f := startHTTP(t, HTTPOptions{JWT: &JWTOptions{Issuer: iss.url, Audience: "aud"}}, workspaceRW)
	tok := func(sub string) string {
		return iss.sign(t, jwt.RegisteredClaims{Issuer: iss.url, Subject: sub, Audience: jwt.ClaimStrings{"aud"},
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, iss.key)
	}
	ctx := context.Background()
	alice, bob := f.connect(t, tok("alice"), nil), f.connect(t, tok("bob"), nil)
	call := func(cs *mcp.ClientSession, code string) string {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_code",
			Arguments: map[string]any{"code": code, "conversation_id": "shared"}})
		if err != nil {
			t.Fatal(err)
		}
		return text(res)
	}
	if got := call(alice, `await Deno.writeTextFile("workspace/note.txt", "alice's"); 1`); got != "1" {
		t.Fatalf("alice writes: %q", got)
	}
	if got := call(alice, readNote); !strings.Contains(got, "alice's") {
		t.Fatalf("alice reads back %q", got)
	}
	if got := call(bob, readNote); !strings.Contains(got, "absent") {
		t.Errorf("bob naming alice's conversation id read %q", got)
	}
	// Bob cannot use Alice's session either (the SDK binds sessions to the
	// token's principal).
	ping := `{"jsonrpc":"2.0","id":9,"method":"ping"}`
	if code, body, _ := post(t, f.url, "Bearer "+tok("bob"), "", alice.ID(), ping); code != http.StatusForbidden {
		t.Errorf("bob on alice's session: %d %q, want 403", code, body)
	}
	if code, body, _ := post(t, f.url, "Bearer "+tok("alice"), "", alice.ID(), ping); code != http.StatusOK {
		t.Errorf("alice on her session: %d %q, want 200", code, body)
	}
}

// TestHTTPResumableStream: with the event store, SSE events carry ids, so a
// client that lost a stream can resume it with Last-Event-ID.
func TestHTTPResumableStream(t *testing.T) {
	f := startHTTP(t, HTTPOptions{}, nil)
	code, body, h := initialize(t, f.url, "", "")
	if code != 200 || h.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: %d %q", code, body)
	}
	if !strings.Contains(h.Get("Content-Type"), "text/event-stream") || !strings.Contains(body, "\nid: ") && !strings.HasPrefix(body, "id: ") {
		t.Errorf("initialize answer has no SSE event id (not resumable):\n%s", body)
	}
}

func TestLimiterPrunesFullBuckets(t *testing.T) {
	l := newLimiter(HTTPOptions{RatePerSecond: 1000, RateBurst: 1}, (*telemetry.Metrics)(nil))
	for i := range maxBuckets + 10 {
		l.reserve(fmt.Sprint("p", i))
	}
	if n := len(l.buckets); n > maxBuckets {
		t.Errorf("%d buckets kept, want at most %d", n, maxBuckets)
	}
}

func TestHTTPLimits(t *testing.T) {
	f := startHTTP(t, HTTPOptions{MaxBodyBytes: 2048, MaxConcurrentExecutions: 1}, nil)
	// Body too large: 413 before anything else.
	code, _, _ := post(t, f.url, "", "", "", `{"jsonrpc":"2.0","id":1,"method":"ping","pad":"`+strings.Repeat("x", 4096)+`"}`)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: status %d, want 413", code)
	}

	ctx := context.Background()
	cs := f.connect(t, "", nil)
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		close(started)
		execCode(ctx, cs, `await new Promise(r => setTimeout(r, 1500)); "slow"`)
	}()
	<-started
	waitFor(t, "the slow run to start", 10*time.Second, func() bool {
		return value(f.scrape(t, ""), "conductor_sandbox_processes", nil) == 1
	})
	_, err := execCode(ctx, cs, `1`) // refused: one run already
	if err == nil || !strings.Contains(err.Error(), "Too Many Requests") {
		t.Errorf("second concurrent run: err = %v, want Too Many Requests", err)
	}
	// Other requests still pass while the run goes on.
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Errorf("tools/list during a run: %v", err)
	}
	wg.Wait()
	if res, err := execCode(ctx, cs, `1`); err != nil || res.IsError {
		t.Errorf("run after the slow one ended: %v %v", err, res)
	}
	fams := f.scrape(t, "")
	for _, reason := range []string{"body_too_large", "too_many_executions"} {
		if value(fams, "conductor_http_rejected_total", map[string]string{"reason": reason}) != 1 {
			t.Errorf("rejected{%s} != 1", reason)
		}
	}

	// Rate: 2 requests of burst, then 429 with Retry-After and a JSON-RPC error.
	f = startHTTP(t, HTTPOptions{RatePerSecond: 0.2, RateBurst: 2}, nil)
	for i := range 2 {
		if code, body, _ := initialize(t, f.url, "", ""); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
	}
	code, body, h := initialize(t, f.url, "", "")
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(body, "rate limit") || !strings.Contains(body, `"id":1`) {
		t.Errorf("rate limited: status %d Retry-After %q body %q", code, h.Get("Retry-After"), body)
	}
	if n, _ := strconv.Atoi(h.Get("Retry-After")); n < 1 || n > 5 {
		t.Errorf("Retry-After = %q, want 1..5 s", h.Get("Retry-After"))
	}
}

func TestHTTPMetricsMatchWhatRan(t *testing.T) {
	f := startHTTP(t, HTTPOptions{}, nil)
	ctx := context.Background()
	cs := f.connect(t, "", nil)
	const ok, failed = 3, 2
	for i := range ok {
		if res, err := execCode(ctx, cs, fmt.Sprintf(`console.log("line %d"); %d`, i, i)); err != nil || res.IsError {
			t.Fatalf("run: %v %v", err, res)
		}
	}
	for range failed {
		if res, err := execCode(ctx, cs, `throw new Error("boom")`); err != nil || !res.IsError {
			t.Fatalf("failing run: %v %v", err, res)
		}
	}
	fams := f.scrape(t, "")
	if got := value(fams, "conductor_executions_total", map[string]string{"outcome": "ok"}); got != ok {
		t.Errorf("executions{ok} = %v, want %d", got, ok)
	}
	if got := value(fams, "conductor_executions_total", nil); got != ok+failed {
		t.Errorf("executions total = %v, want %d", got, ok+failed)
	}
	if got := value(fams, "conductor_execution_duration_seconds", nil); got != ok+failed {
		t.Errorf("duration histogram count = %v, want %d", got, ok+failed)
	}
	if got := value(fams, "conductor_output_bytes_total", nil); got < float64(ok*len("line 0")) {
		t.Errorf("output bytes = %v, want >= %d", got, ok*len("line 0"))
	}
	if got := value(fams, "conductor_sandbox_processes", nil); got != 0 {
		t.Errorf("sandbox processes = %v after the runs, want 0", got)
	}
}

func TestHTTPNotificationsAndProgress(t *testing.T) {
	old := progressEvery
	progressEvery = 100 * time.Millisecond
	t.Cleanup(func() { progressEvery = old })
	f := startHTTP(t, HTTPOptions{}, nil)
	var mu sync.Mutex
	var logs []string
	var progress []float64
	cs := f.connect(t, "", &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			mu.Lock()
			logs = append(logs, fmt.Sprintf("%s:%v", r.Params.Logger, r.Params.Data))
			mu.Unlock()
		},
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, r.Params.Progress)
			mu.Unlock()
		},
	})
	ctx := context.Background()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	params := &mcp.CallToolParams{Name: "execute_code", Arguments: map[string]any{
		"code": `console.log("hello"); console.error("oops"); await new Promise(r => setTimeout(r, 600)); 7`}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError {
		t.Fatalf("run: %v %v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	joined := strings.Join(logs, "|")
	if !strings.Contains(joined, "stdout:hello") || !strings.Contains(joined, "stderr:oops") {
		t.Errorf("log notifications = %q, want stdout:hello and stderr:oops", joined)
	}
	if len(progress) < 3 {
		t.Errorf("progress notifications = %v, want >= 3 over 600 ms", progress)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] <= progress[i-1] {
			t.Errorf("progress not increasing: %v", progress)
		}
	}
}

// noPool turns the warm pool off for tests that count child processes:
// idle spares are children too.
func noPool(cfg *config.Config) { cfg.Sandbox.Pool.Max = 0 }

func TestHTTPCancelKillsRun(t *testing.T) {
	f := startHTTP(t, HTTPOptions{}, noPool)
	cs := f.connect(t, "", nil)
	before := childProcesses(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := execCode(ctx, cs, `await new Promise(r => setTimeout(r, 60000)); "never"`)
		errc <- err
	}()
	waitFor(t, "the run to start", 10*time.Second, func() bool {
		return value(f.scrape(t, ""), "conductor_sandbox_processes", nil) == 1
	})
	t0 := time.Now()
	cancel() // the client sends notifications/cancelled
	if err := <-errc; err == nil {
		t.Error("cancelled call returned no error")
	}
	waitFor(t, "the run to end after notifications/cancelled", 10*time.Second, func() bool {
		return value(f.scrape(t, ""), "conductor_sandbox_processes", nil) == 0
	})
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("run ended %v after cancel", d)
	}
	waitFor(t, "no sandbox process left", 5*time.Second, func() bool { return childProcesses(t) <= before })
	// The session still works.
	if res, err := execCode(context.Background(), cs, `2`); err != nil || res.IsError {
		t.Fatalf("after cancel: %v %v", err, res)
	}
}

func TestHTTPGracefulShutdown(t *testing.T) {
	t.Run("runs finish within grace", func(t *testing.T) {
		f := startHTTP(t, HTTPOptions{Grace: 20 * time.Second}, noPool)
		// No standalone SSE stream: shutdown refuses new connections, and
		// this client would open it late.
		cs := f.connectWith(t, "", nil, true)
		got := make(chan string, 1)
		go func() {
			res, err := execCode(context.Background(), cs, `await new Promise(r => setTimeout(r, 1000)); "finished"`)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- text(res)
		}()
		waitFor(t, "the run to start", 10*time.Second, func() bool { return f.s.runningForTest() == 1 })
		if err := f.shutdown(t); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if r := <-got; !strings.Contains(r, "finished") {
			t.Errorf("run during shutdown = %q, want it to finish", r)
		}
		if _, err := net.DialTimeout("tcp", strings.TrimPrefix(f.url, "http://"), time.Second); err == nil {
			t.Error("still accepting connections after shutdown")
		}
	})
	t.Run("runs past grace are killed", func(t *testing.T) {
		f := startHTTP(t, HTTPOptions{Grace: 300 * time.Millisecond}, noPool)
		cs := f.connect(t, "", nil)
		before := childProcesses(t)
		go execCode(context.Background(), cs, `await new Promise(r => setTimeout(r, 60000)); "never"`)
		waitFor(t, "the run to start", 10*time.Second, func() bool { return f.s.runningForTest() == 1 })
		t0 := time.Now()
		if err := f.shutdown(t); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("shutdown took %v with a 300ms grace", d)
		}
		waitFor(t, "no sandbox process left", 5*time.Second, func() bool { return childProcesses(t) < before || childProcesses(t) == 0 })
	})
}

func (s *Server) runningForTest() int { return int(s.running.Load()) }

func listenLoopback(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}
