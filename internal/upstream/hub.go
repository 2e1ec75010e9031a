// Package upstream is the conductor's MCP client hub: it connects to the
// upstream MCP servers of the configuration (stdio commands, streamable HTTP
// and legacy SSE URLs) with the official Go SDK, keeps each one running
// (restart with backoff after a crash, tools re-listed on
// notifications/tools/list_changed), and calls their tools.
//
// It owns every upstream child process: a stdio server gets only its own
// configured env plus PATH and HOME (Options.BaseEnv), runs in its own
// process group, and on Linux dies with the conductor even when the
// conductor is killed with SIGKILL (parent-death signal). Only a server's
// direct child gets that signal; processes it starts itself are killed with
// its process group when the hub stops it, but survive a SIGKILL of the
// conductor unless they exit when their stdin closes.
//
// Any package of the module may import upstream; it imports only
// internal/config.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Server states reported by Status.
const (
	StateStarting = "starting" // a connection attempt is in progress
	StateUp       = "up"       // connected; its tools are in the catalog
	StateDown     = "down"     // failed or crashed; see Status.Err (a restart may be pending)
	StateLazy     = "lazy"     // not started yet; the first Call starts it
)

// Errors callers may branch on. Errors returned by the Hub wrap them and
// name the server.
var (
	ErrUnknownServer = errors.New("unknown server")
	ErrServerDown    = errors.New("server down")
	ErrClosed        = errors.New("hub closed")
)

// Defaults for zero Options fields.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultStopTimeout  = 2 * time.Second
)

// Options configures a Hub. The zero value is usable.
type Options struct {
	// Logger receives the hub's records and every line a stdio server writes
	// to stderr, tagged with slog.String("upstream", name). Nil discards.
	// Env and header values are never logged.
	Logger *slog.Logger
	// CallTimeout bounds one tool call; zero means only the caller's ctx does.
	CallTimeout time.Duration
	// StartTimeout bounds one connection attempt, from spawning or dialing
	// to the first tools/list. Zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// StopTimeout is each wait of the stop ladder of a stdio server (close
	// stdin, wait, SIGTERM, wait, SIGKILL). Zero means DefaultStopTimeout.
	StopTimeout time.Duration
	// OnChange is called after a server's tool list changed or a server went
	// up or down. Calls are serialized, come from the hub's goroutines, and
	// may call Tools and Status but must not call Close.
	OnChange func()
	// BaseEnv ("KEY=value" entries) is the environment every stdio server
	// starts from, before its own env is added. Nil means PATH and HOME of
	// this process; nothing else of the conductor's environment is passed.
	BaseEnv []string
}

// Tool is one tool of one upstream server. Tool is shared with the hub and
// must not be modified.
type Tool struct {
	Server string
	Tool   *mcp.Tool
}

// Status describes one configured server.
type Status struct {
	Server string
	State  string // StateStarting, StateUp, StateDown or StateLazy
	// Err is why the server is down (or why its last attempt failed); it
	// holds no env or header values.
	Err      string
	Tools    int
	Restarts int       // connection attempts after the first
	Since    time.Time // when State last changed
	Pid      int       // of a running stdio server; 0 otherwise
}

// Hub connects to upstream MCP servers and calls their tools. Its methods
// are safe for concurrent use. Close stops every server.
type Hub struct {
	opts    Options
	log     *slog.Logger
	baseEnv []string
	servers []*server
	byName  map[string]*server

	// Restart backoff: doubles from minBackoff to maxBackoff, back to
	// minBackoff after a server stayed up for stableAfter.
	minBackoff, maxBackoff, stableAfter time.Duration

	ctx    context.Context // cancelled by Close; the servers' lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per running server supervisor

	mu     sync.Mutex // guards closed and server.started
	closed bool

	changeMu sync.Mutex // serializes OnChange
}

// New returns a Hub for servers; nothing starts until Start or the first
// Call of a server. A server whose configuration cannot work (no command or
// url, unknown transport) is reported down by Status and never started; a
// second server with the same name is ignored and logged.
func New(servers []config.Server, opts Options) *Hub {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	h := &Hub{
		opts:        opts,
		log:         log,
		baseEnv:     opts.BaseEnv,
		byName:      make(map[string]*server, len(servers)),
		minBackoff:  250 * time.Millisecond,
		maxBackoff:  30 * time.Second,
		stableAfter: time.Minute,
	}
	if h.baseEnv == nil {
		h.baseEnv = defaultBaseEnv()
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for _, cfg := range servers {
		if _, dup := h.byName[cfg.Name]; dup {
			log.Error("duplicate upstream server name; ignoring the later one", slog.String("upstream", cfg.Name))
			continue
		}
		s := newServer(h, cfg)
		h.servers = append(h.servers, s)
		h.byName[cfg.Name] = s
	}
	return h
}

// Start starts every non-lazy server concurrently and returns once each has
// connected or failed its first attempt (each attempt is bounded by
// StartTimeout), or when ctx is done. A failing server does not stop the
// others; it is retried in the background with backoff.
func (h *Hub) Start(ctx context.Context) {
	var wait []*server
	for _, s := range h.servers {
		if !s.cfg.Lazy && s.ensureStarted() {
			wait = append(wait, s)
		}
	}
	for _, s := range wait {
		select {
		case <-s.firstDone:
		case <-ctx.Done():
			return
		}
	}
}

// Tools returns the tools of every server that is up, ordered by server (in
// configuration order) and then by tool name.
func (h *Hub) Tools() []Tool {
	var out []Tool
	for _, s := range h.servers {
		s.mu.Lock()
		if s.state == StateUp {
			for _, t := range s.tools {
				out = append(out, Tool{Server: s.cfg.Name, Tool: t})
			}
		}
		s.mu.Unlock()
	}
	return out
}

// Tool returns one tool of a server that is up.
func (h *Hub) Tool(server, name string) (Tool, bool) {
	s := h.byName[server]
	if s == nil {
		return Tool{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateUp {
		return Tool{}, false
	}
	i, ok := slices.BinarySearchFunc(s.tools, name, func(t *mcp.Tool, n string) int {
		return strings.Compare(t.Name, n)
	})
	if !ok {
		return Tool{}, false
	}
	return Tool{Server: server, Tool: s.tools[i]}, true
}

// Status reports every configured server, in configuration order.
func (h *Hub) Status() []Status {
	out := make([]Status, 0, len(h.servers))
	for _, s := range h.servers {
		s.mu.Lock()
		st := Status{
			Server:   s.cfg.Name,
			State:    s.state,
			Tools:    len(s.tools),
			Restarts: s.restarts,
			Since:    s.since,
		}
		if s.cause != nil {
			st.Err = s.cause.Error()
		}
		if s.cur != nil && s.cur.proc != nil {
			st.Pid = s.cur.proc.pid
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Call calls tool on server with args (a JSON object; empty means {}). A lazy
// server is started first; a server that is down fails at once with an error
// wrapping ErrServerDown and the cause. Cancelling ctx cancels the request
// (the server is sent notifications/cancelled) and Call returns an error
// wrapping ctx.Err(). If the server dies during the call, Call fails promptly
// with ErrServerDown. A tool's own failure is a result with IsError set, not
// an error.
func (h *Hub) Call(ctx context.Context, server, tool string, args json.RawMessage) (*mcp.CallToolResult, error) {
	s := h.byName[server]
	if s == nil {
		return nil, fmt.Errorf("upstream %q: %w", server, ErrUnknownServer)
	}
	var arguments any = map[string]any{}
	if a := bytes.TrimSpace(args); len(a) > 0 && !bytes.Equal(a, []byte("null")) {
		if a[0] != '{' || !json.Valid(a) {
			return nil, fmt.Errorf("upstream %q: call %q: arguments must be a JSON object", server, tool)
		}
		arguments = json.RawMessage(a)
	}
	c, err := s.ready(ctx)
	if err != nil {
		return nil, err
	}
	// Close cancels calls in flight (the SDK then tells the server), so that
	// closing a session never waits for them.
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(h.ctx, cancel)()
	if h.opts.CallTimeout > 0 {
		callCtx, cancel = context.WithTimeout(callCtx, h.opts.CallTimeout)
		defer cancel()
	}
	res, err := c.cs.CallTool(callCtx, &mcp.CallToolParams{Name: tool, Arguments: arguments})
	if err == nil {
		return res, nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("upstream %q: call %q: %w", server, tool, ctx.Err())
	case h.ctx.Err() != nil:
		return nil, fmt.Errorf("upstream %q: call %q: %w", server, tool, ErrClosed)
	case callCtx.Err() != nil:
		return nil, fmt.Errorf("upstream %q: call %q: timed out after %v: %w", server, tool, h.opts.CallTimeout, callCtx.Err())
	}
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) {
		// Not an answer from the server: the connection may be gone. The
		// supervisor learns why within moments; report that cause.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-c.done:
			if h.ctx.Err() != nil {
				return nil, fmt.Errorf("upstream %q: call %q: %w", server, tool, ErrClosed)
			}
			return nil, fmt.Errorf("upstream %q: call %q: %w: %w", server, tool, ErrServerDown, c.cause)
		case <-t.C:
		}
	}
	return nil, fmt.Errorf("upstream %q: call %q: %w", server, tool, err)
}

// Close stops every server (stdio children through the stop ladder) and
// waits for all of the hub's goroutines. Calls in flight fail with ErrClosed.
// Close is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	return nil
}

// changed runs OnChange, one call at a time.
func (h *Hub) changed() {
	if h.opts.OnChange == nil {
		return
	}
	h.changeMu.Lock()
	defer h.changeMu.Unlock()
	h.opts.OnChange()
}

var _ io.Closer = (*Hub)(nil)
