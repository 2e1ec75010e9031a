package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"

	conductor "github.com/mcp-conductor/conductor"
)

// HTTPOptions configure streamable HTTP serving. The zero value serves
// without auth, with a 4 MiB body limit and no rate limits.
type HTTPOptions struct {
	// Token is the static bearer token; empty means none.
	Token string
	// JWT, when its Issuer is set, also accepts JWT access tokens.
	JWT *JWTOptions
	// Tokens are more static bearer tokens, each with its own principal and
	// role.
	Tokens []NamedToken
	// Roles narrow the administrator's policy per caller (see
	// conductor.Role), by name. A JWT caller takes the first role, by name,
	// whose Claims match; TokenRole is the role of Token; DefaultRole that
	// of an authenticated caller no token or claim maps to a role ("" means
	// the administrator's policy alone). Unauthenticated callers (no Token,
	// Tokens nor JWT) have no role.
	Roles       map[string]conductor.Role
	TokenRole   string
	DefaultRole string
	// AllowedOrigins lists the Origin header values accepted on /mcp and
	// /metrics; a request without Origin is accepted, any other is a 403.
	AllowedOrigins []string
	// MaxBodyBytes caps a request body (413 beyond); 0 means 4 MiB.
	MaxBodyBytes int64
	// RatePerSecond and RateBurst bound MCP requests per principal (token
	// bucket; 429 with Retry-After beyond). 0 means unlimited.
	RatePerSecond float64
	RateBurst     int
	// MaxConcurrentExecutions bounds execute_code runs in flight per
	// principal (429 beyond). 0 means unlimited.
	MaxConcurrentExecutions int
	// Stateless serves without Mcp-Session-Id, for replicas behind a load
	// balancer: any replica answers any request. A call without
	// conversation_id runs in the principal's fixed default conversation.
	// Conversations are shared between replicas only through a shared store
	// (Redis) and a shared workspace.
	Stateless bool
	// SessionTimeout closes stateful sessions idle that long; 0 means 1 hour.
	SessionTimeout time.Duration
	// Grace is how long shutdown lets running programs finish before it
	// kills them; 0 means 30 s.
	Grace time.Duration
}

const defaultMaxBody = 4 << 20

// Handler returns the HTTP handler: /mcp (streamable MCP), /metrics
// (Prometheus, when SetMetrics was called), /healthz and /readyz. /mcp and
// /metrics require the token or JWT when one is configured.
func (s *Server) Handler(opts HTTPOptions) (http.Handler, error) {
	h, _, err := s.handler(opts)
	return h, err
}

func (s *Server) handler(opts HTTPOptions) (http.Handler, *mcp.StreamableHTTPHandler, error) {
	v, err := newVerifier(opts)
	if err != nil {
		return nil, nil, err
	}
	v.onReject = s.metrics.Rejected
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = defaultMaxBody
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = time.Hour
	}
	sopts := &mcp.StreamableHTTPOptions{
		Stateless:           opts.Stateless,
		Logger:              s.log,
		SessionTimeout:      opts.SessionTimeout,
		MaxRequestBodyBytes: opts.MaxBodyBytes,
	}
	if !opts.Stateless {
		// Resumable streams: a client that lost its SSE stream reconnects
		// with Last-Event-ID and gets what it missed (bounded memory).
		sopts.EventStore = &eventStore{MemoryEventStore: mcp.NewMemoryEventStore(nil), closed: s.sessionClosed}
	}
	proto := s.newSession("", "", false).mcp // answers the SDK's protocol-version lookups
	sdk := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		if hold, ok := r.Context().Value(holderKey{}).(*sessionHolder); ok {
			return hold.get(s, r, opts.Stateless, proto)
		}
		return proto
	}, sopts)
	lim := newLimiter(opts, s.metrics)
	mcpH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			s.posts.Add(1)
			defer s.posts.Add(-1)
		}
		hold := &sessionHolder{}
		r = r.WithContext(context.WithValue(r.Context(), holderKey{}, hold))
		sdk.ServeHTTP(w, r)
		hold.release(s)
	})
	mux := http.NewServeMux()
	mux.Handle("/mcp", originCheck(opts.AllowedOrigins, s.metrics.Rejected, v.middleware(lim.guard(mcpH))))
	if s.metrics != nil {
		mux.Handle("/metrics", originCheck(opts.AllowedOrigins, s.metrics.Rejected, v.middleware(s.metrics.Handler())))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", s.readyz)
	return mux, sdk, nil
}

// readyz answers 200 when the Conductor is ready (conductor.Ready: Deno
// found, store answering, every upstream server done with its first start
// attempt) and not shutting down, 503 otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.c.Ready(ctx); err != nil {
		// /readyz answers without auth: the details (a store address) go
		// to the log only.
		s.log.Warn("not ready", slog.String("err", err.Error()))
		problems = append(problems, "not ready (see the log)")
	}
	s.mu.Lock()
	if s.draining {
		problems = append(problems, "shutting down")
	}
	s.mu.Unlock()
	if len(problems) > 0 {
		http.Error(w, strings.Join(problems, "\n"), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully: it
// stops accepting, lets running programs finish for opts.Grace, cancels those
// left (killing their sandboxes), closes the sessions and returns. The caller
// closes the Conductor afterwards, which stops the upstream servers.
func (s *Server) Serve(ctx context.Context, ln net.Listener, opts HTTPOptions) error {
	h, _, err := s.handler(opts)
	if err != nil {
		ln.Close()
		return err
	}
	grace := opts.Grace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	// No write timeout: SSE streams and long runs keep responses open.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		// The listener failed: runs in flight still get the grace period.
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		s.Drain(gctx)
		s.closeSessions()
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: no new connections; waiting for running programs", "grace", grace.String())
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- hs.Shutdown(gctx) }()
	if !s.Drain(gctx) {
		s.log.Warn("shutdown: grace period over, running programs were killed")
	}
	// A run's handler has returned, but its response may still be on the
	// way to the client: let POSTs finish (briefly) before closing sessions.
	for deadline := time.Now().Add(5 * time.Second); s.posts.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	s.closeSessions()
	// Connections still open now are SSE streams of closed sessions or
	// clients that do not read; give them a moment, then cut them.
	select {
	case <-shut:
	case <-time.After(2 * time.Second):
		hs.Close()
		<-shut
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// eventStore is the SDK's memory store that also tells the Server when a
// session ended, so that it stops counting it.
type eventStore struct {
	*mcp.MemoryEventStore
	closed func(id string)
}

func (e *eventStore) SessionClosed(ctx context.Context, id string) error {
	e.closed(id)
	return e.MemoryEventStore.SessionClosed(ctx, id)
}

type holderKey struct{}

// sessionHolder makes the session of one HTTP request at most once: the SDK
// asks for the server more than once per request, and asks for it on every
// request, not only on those that start a session.
type sessionHolder struct {
	mu sync.Mutex
	ss *session
}

func (h *sessionHolder) get(s *Server, r *http.Request, stateless bool, proto *mcp.Server) *mcp.Server {
	p := principal(r)
	if stateless {
		return s.statelessSession(p).mcp
	}
	if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" {
		return proto
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ss == nil {
		h.ss = s.newSession(p, "", true)
	}
	return h.ss.mcp
}

// release forgets a session made for a request that did not open one.
func (h *sessionHolder) release(s *Server) {
	h.mu.Lock()
	ss := h.ss
	h.mu.Unlock()
	if ss == nil {
		return
	}
	for range ss.mcp.Sessions() {
		return
	}
	s.dropSession(ss)
}

// statelessSession is the principal's server in stateless mode; its default
// conversation has a fixed id ("default", scoped to the principal by the
// Conductor) so that every replica resolves it alike.
func (s *Server) statelessSession(p string) *session {
	s.mu.Lock()
	ss := s.stateless[p]
	s.mu.Unlock()
	if ss != nil {
		return ss
	}
	ss = s.newSession(p, "default", false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.stateless[p]; old != nil {
		return old
	}
	s.stateless[p] = ss
	return ss
}

// originCheck refuses a request whose Origin is not allowed (DNS rebinding,
// browsers on foreign pages). No Origin (non-browser clients) is fine.
func originCheck(allowed []string, reject func(string), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			// Same origin is no cross-site request; DNS rebinding shows as a
			// foreign Host, which the SDK refuses on loopback listeners.
			ok := sameOrigin(o, r.Host)
			for _, a := range allowed {
				if strings.EqualFold(strings.TrimRight(a, "/"), o) {
					ok = true
					break
				}
			}
			if !ok {
				reject("origin")
				http.Error(w, "forbidden origin", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, host)
}

// limiter enforces the body limit, the per-principal request rate and the
// per-principal number of execute_code runs in flight.
type limiter struct {
	maxBody  int64
	perSec   rate.Limit
	burst    int
	maxExec  int
	rejected func(string)

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	running map[string]int
}

func newLimiter(o HTTPOptions, m interface{ Rejected(string) }) *limiter {
	l := &limiter{maxBody: o.MaxBodyBytes, maxExec: o.MaxConcurrentExecutions, rejected: m.Rejected,
		buckets: map[string]*rate.Limiter{}, running: map[string]int{}}
	if o.RatePerSecond > 0 {
		l.perSec = rate.Limit(o.RatePerSecond)
		l.burst = max(o.RateBurst, 1)
	}
	return l
}

// rpcMsg is what the limiter needs of a JSON-RPC message.
type rpcMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name string `json:"name"`
	} `json:"params"`
}

func (l *limiter) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		var msgs []rpcMsg
		if r.Method == http.MethodPost && r.Body != nil {
			data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.maxBody))
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					l.rejected("body_too_large")
					rpcError(w, http.StatusRequestEntityTooLarge, nil, fmt.Sprintf("request body larger than %d bytes", l.maxBody), 0)
					return
				}
				http.Error(w, "bad request body", http.StatusBadRequest)
				return
			}
			msgs = parseRPC(data)
			r.Body = io.NopCloser(bytes.NewReader(data))
			r.ContentLength = int64(len(data))
		}
		var id json.RawMessage
		isRequest := r.Method != http.MethodPost // GET/DELETE count against the rate
		execs := 0
		for _, m := range msgs {
			if m.Method != "" && len(m.ID) > 0 {
				isRequest = true
				id = m.ID
				if m.Method == "tools/call" && m.Params.Name == "execute_code" {
					execs++
				}
			}
		}
		// Notifications (notifications/cancelled above all) and responses
		// are never limited.
		if isRequest && l.perSec > 0 {
			if wait := l.reserve(p); wait > 0 {
				l.rejected("rate_limited")
				rpcError(w, http.StatusTooManyRequests, id, fmt.Sprintf("rate limit of %g requests/s for this principal exceeded; retry after %s", float64(l.perSec), wait.Round(time.Millisecond)), wait)
				return
			}
		}
		if execs > 0 && l.maxExec > 0 {
			if !l.acquireWait(r.Context(), p, execs) {
				l.rejected("too_many_executions")
				rpcError(w, http.StatusTooManyRequests, id, fmt.Sprintf("%d programs of this principal are already running (the limit); retry when one finishes", l.maxExec), time.Second)
				return
			}
			defer l.releaseExec(p, execs)
		}
		next.ServeHTTP(w, r)
	})
}

// reserve takes a token from p's bucket; it returns how long to wait when
// the bucket is empty (and takes nothing then).
func (l *limiter) reserve(p string) time.Duration {
	l.mu.Lock()
	b := l.buckets[p]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked()
		}
		b = rate.NewLimiter(l.perSec, l.burst)
		l.buckets[p] = b
	}
	l.mu.Unlock()
	res := b.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d
	}
	return 0
}

// acquireWait is acquire that waits up to 250 ms for a slot: a client that
// just got its result may send the next run before the previous POST has
// finished on the server's side.
func (l *limiter) acquireWait(ctx context.Context, p string, n int) bool {
	deadline := time.Now().Add(250 * time.Millisecond)
	for !l.acquire(p, n) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// maxBuckets bounds the rate limiter's memory when many principals (JWT
// subjects) come and go.
const maxBuckets = 10000

// pruneLocked forgets the buckets that are full again: forgetting them
// changes nothing for their principals.
func (l *limiter) pruneLocked() {
	for p, b := range l.buckets {
		if b.Tokens() >= float64(l.burst) {
			delete(l.buckets, p)
		}
	}
}

func (l *limiter) acquire(p string, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[p]+n > l.maxExec {
		return false
	}
	l.running[p] += n
	return true
}

func (l *limiter) releaseExec(p string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[p] -= n
	if l.running[p] <= 0 {
		delete(l.running, p)
	}
}

func parseRPC(data []byte) []rpcMsg {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		var ms []rpcMsg
		json.Unmarshal(data, &ms)
		return ms
	}
	var m rpcMsg
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	return []rpcMsg{m}
}

// rpcError answers with a JSON-RPC error body (so that clients can tell the
// call failed and why) and, for 429, a Retry-After in whole seconds.
func rpcError(w http.ResponseWriter, status int, id json.RawMessage, msg string, retry time.Duration) {
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	}
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": -32000, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
