// Package server exposes a Conductor as an MCP server (official Go SDK):
// the tools execute_code, search_tools and load_tools, the resource
// conductor://context and a prompt with the same fragment. One MCP session is
// one conversation unless a call names another with conversation_id.
//
// It serves stdio (ServeStdio) and streamable HTTP (Handler, Serve): /mcp
// with bearer-token or JWT auth, Origin check, body, rate and concurrency
// limits, resumable streams, a stateless mode for replicas, /metrics,
// /healthz, /readyz and a graceful drain on shutdown. While a program runs,
// its console output goes out as notifications/message and, when the client
// asked, notifications/progress; notifications/cancelled kills the run.
//
// It is used by cmd/conductor; it imports the root conductor package and
// internal/telemetry.
package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/bridge"
	"github.com/mcp-conductor/conductor/internal/telemetry"
)

// Version is reported to clients in initialize.
var Version = "0.1.0"

// Server builds MCP servers bound to one Conductor.
type Server struct {
	c       *conductor.Conductor
	log     *slog.Logger
	metrics *telemetry.Metrics

	// runCtx ends when shutdown gives up waiting: every run's context is
	// cancelled with it, which kills its sandbox.
	runCtx     context.Context
	cancelRuns context.CancelFunc
	runs       sync.WaitGroup
	running    atomic.Int64
	posts      atomic.Int64 // HTTP POSTs in flight

	mu        sync.Mutex
	draining  bool                // no new runs (shutdown started)
	sessions  map[*session]bool   // live sessions (stdio, stateful HTTP)
	byID      map[string]*session // stateful HTTP sessions by Mcp-Session-Id
	stateless map[string]*session // stateless HTTP: one server per principal
}

// New returns a Server for c. log may be nil.
func New(c *conductor.Conductor, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{c: c, log: log, sessions: map[*session]bool{}, byID: map[string]*session{}, stateless: map[string]*session{}}
	s.runCtx, s.cancelRuns = context.WithCancel(context.Background())
	c.OnToolsChanged(s.refreshAll)
	return s
}

// SetMetrics makes s report to m (sessions, upstream servers, executions,
// searches). Call it once, before serving.
func (s *Server) SetMetrics(m *telemetry.Metrics) {
	s.metrics = m
	m.GaugeFunc("conductor_sessions_active", "MCP sessions open (stdio and stateful HTTP); each has its default conversation.",
		func() float64 { return float64(s.activeSessions()) })
	m.GaugeFunc("conductor_conversations_active", "Conversations with a program running now (the rest of a conversation lives in the store).",
		func() float64 { return float64(s.c.Stats().Conversations) })
	m.Upstream(func() map[string]bool {
		out := map[string]bool{}
		for _, st := range s.c.Status() {
			out[st.Server] = st.State == "up"
		}
		return out
	})
}

func (s *Server) activeSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// session is one MCP session's server and its default conversation.
type session struct {
	s         *Server
	mcp       *mcp.Server
	principal string

	mu   sync.Mutex
	id   string // Mcp-Session-Id of a stateful HTTP session
	conv string
	desc string // current execute_code description
}

// NewSession makes the MCP server for one session of principal ("" for the
// local stdio user). Its default conversation is created on first use.
func (s *Server) NewSession(principal string) *mcp.Server {
	return s.newSession(principal, "", true).mcp
}

// newSession builds a session; conv presets its default conversation (the
// stateless mode's fixed one). tracked sessions count as active until
// dropSession.
func (s *Server) newSession(principal, conv string, tracked bool) *session {
	ss := &session{s: s, principal: principal, conv: conv}
	ss.mcp = mcp.NewServer(&mcp.Implementation{Name: "mcp-conductor", Title: "MCP Conductor", Version: Version},
		&mcp.ServerOptions{Instructions: instructions, Logger: s.log, GetSessionID: func() string {
			id := rand.Text()
			s.mu.Lock()
			ss.mu.Lock()
			ss.id = id
			ss.mu.Unlock()
			if s.sessions[ss] {
				s.byID[id] = ss
			}
			s.mu.Unlock()
			return id
		}})
	ss.addTools()
	ss.mcp.AddResource(&mcp.Resource{URI: "conductor://context", Name: "context", MIMEType: "text/plain",
		Description: "Modules and tools already loaded in this conversation (for the system prompt)."}, ss.readContext)
	ss.mcp.AddPrompt(&mcp.Prompt{Name: "conductor_context",
		Description: "The conversation's context: importable modules and loaded tools."}, ss.getPrompt)
	if tracked {
		s.mu.Lock()
		s.sessions[ss] = true
		s.mu.Unlock()
	}
	return ss
}

// dropSession forgets a session that ended (or never connected).
func (s *Server) dropSession(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, ss)
	ss.mu.Lock()
	id := ss.id
	ss.mu.Unlock()
	if id != "" && s.byID[id] == ss {
		delete(s.byID, id)
	}
}

// sessionClosed is called when the HTTP session id ended.
func (s *Server) sessionClosed(id string) {
	s.mu.Lock()
	ss := s.byID[id]
	s.mu.Unlock()
	if ss != nil {
		s.dropSession(ss)
	}
}

// errDraining refuses new runs once shutdown started.
var errDraining = errors.New("the conductor is shutting down; retry on another replica or later")

// beginRun registers a run so that shutdown waits for it. The returned
// context ends with ctx or when shutdown cancels all runs.
func (s *Server) beginRun(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return nil, nil, errDraining
	}
	s.runs.Add(1)
	s.running.Add(1)
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.runCtx, cancel)
	return ctx, func() { stop(); cancel(); s.running.Add(-1); s.runs.Done() }, nil
}

// Drain stops new runs and waits until the running ones finish or ctx ends;
// then it cancels those left, which kills their sandboxes, and waits for
// their handlers to return. It reports whether all runs finished by
// themselves.
func (s *Server) Drain(ctx context.Context) bool {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.runs.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	s.cancelRuns()
	<-done
	return false
}

// closeSessions ends every live session (their SSE streams close).
func (s *Server) closeSessions() {
	for _, ss := range s.liveSessions() {
		for cs := range ss.mcp.Sessions() {
			cs.Close()
		}
	}
}

// ServeStdio serves one session on stdin/stdout until the client leaves or
// ctx ends.
func (s *Server) ServeStdio(ctx context.Context) error {
	srv := s.NewSession("")
	return srv.Run(ctx, &mcp.StdioTransport{})
}

const instructions = "Use search_tools to find tools by what you need, load_tools to get their TypeScript API, " +
	"then execute_code to run one TypeScript program that imports ./mcp/<server> and calls them. " +
	"Do the data processing inside the program and return only what you need. " +
	"Calls without conversation_id share this session's conversation (loaded tools, ./workspace files)."

// ExecInput is execute_code's input. Unknown fields are rejected: there is no
// way to pass permissions.
type ExecInput struct {
	Code           string `json:"code" jsonschema:"TypeScript ES module; top-level await works; the last expression statement is the result"`
	TimeoutMs      int64  `json:"timeout_ms,omitempty" jsonschema:"milliseconds"`
	ConversationID string `json:"conversation_id,omitempty"`
}

// SearchInput is search_tools' input.
type SearchInput struct {
	Query          string `json:"query" jsonschema:"what you want to do, in your own words"`
	Limit          int    `json:"limit,omitempty" jsonschema:"default 8"`
	ConversationID string `json:"conversation_id,omitempty"`
}

// LoadInput is load_tools' input.
type LoadInput struct {
	Names          []string `json:"names" jsonschema:"tool names as server.tool, from search_tools"`
	ConversationID string   `json:"conversation_id,omitempty"`
}

const execDescription = "Run a TypeScript program in a sandbox (Deno, no permissions beyond what the administrator granted). " +
	"Import tools with `import * as x from './mcp/<server>'`; calls return promises (use Promise.all for parallel calls). " +
	"./workspace/ keeps files between runs. The value of the last expression statement is returned as JSON, with console output."

func (ss *session) addTools() {
	ss.mu.Lock()
	ss.desc = ss.execDescriptionLocked()
	desc := ss.desc
	ss.mu.Unlock()
	mcp.AddTool(ss.mcp, &mcp.Tool{Name: "execute_code", Description: desc}, ss.execute)
	if ss.s.hasServers() {
		mcp.AddTool(ss.mcp, &mcp.Tool{Name: "search_tools",
			Description: "Find tools of the connected MCP servers by meaning. Returns [{name, description, score, loaded}]."},
			ss.search)
		mcp.AddTool(ss.mcp, &mcp.Tool{Name: "load_tools",
			Description: "Get the TypeScript API and import line of tools (names as server.tool) and make them importable in execute_code."},
			ss.load)
	}
}

func (s *Server) hasServers() bool { return len(s.c.Config().Servers) > 0 }

func (ss *session) execDescriptionLocked() string {
	if ss.conv == "" {
		return execDescription
	}
	if frag := ss.s.c.ContextFor(ss.principal, ss.conv); frag != "" {
		return execDescription + "\n" + frag
	}
	return execDescription
}

// refresh re-announces execute_code when the conversation's context changed.
func (ss *session) refresh() {
	ss.mu.Lock()
	desc := ss.execDescriptionLocked()
	changed := desc != ss.desc
	ss.desc = desc
	ss.mu.Unlock()
	if changed {
		// Replacing the tool makes the SDK send notifications/tools/list_changed.
		mcp.AddTool(ss.mcp, &mcp.Tool{Name: "execute_code", Description: desc}, ss.execute)
	}
}

// liveSessions lists the stateful and stateless sessions now open.
func (s *Server) liveSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*session, 0, len(s.sessions)+len(s.stateless))
	for ss := range s.sessions {
		list = append(list, ss)
	}
	for _, ss := range s.stateless {
		list = append(list, ss)
	}
	return list
}

func (s *Server) refreshAll() {
	for _, ss := range s.liveSessions() {
		ss.refresh()
	}
}

// conversation resolves the conversation a call runs in.
func (ss *session) conversation(id string) (string, error) {
	if id != "" {
		return id, nil // Conductor scopes it to ss.principal
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conv == "" {
		id, err := ss.s.c.CreateConversationFor(ss.principal)
		if err != nil {
			return "", err
		}
		ss.conv = id
	}
	return ss.conv, nil
}

func (ss *session) execute(ctx context.Context, req *mcp.CallToolRequest, in ExecInput) (*mcp.CallToolResult, any, error) {
	conv, err := ss.conversation(in.ConversationID)
	if err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(in.Code) == "" {
		return errorResult("code is empty"), nil, nil
	}
	if in.TimeoutMs < 0 {
		return errorResult("timeout_ms must be positive"), nil, nil
	}
	ctx, end, err := ss.s.beginRun(ctx)
	if err != nil {
		return errorResult(err.Error()), nil, nil
	}
	defer end()
	timeout := time.Duration(in.TimeoutMs) * time.Millisecond
	n := newNotifier(ctx, req, ss.s.c.Config(), timeout)
	defer n.stop()
	inFlight := ss.s.metrics.ExecStarted()
	start := time.Now()
	res, err := ss.s.c.Execute(ctx, conv, in.Code, conductor.ExecOptions{
		Timeout:    timeout,
		Principal:  ss.principal,
		Role:       requestRole(req.Extra),
		OnLog:      n.log,
		OnToolCall: ss.s.observeToolCall,
	})
	inFlight()
	if err != nil {
		// The run could not be attempted (workspace over its cap, store
		// down, bad conversation id): the model reads why.
		ss.s.metrics.ObserveExecution("internal", time.Since(start), 0)
		return errorResult(err.Error()), nil, nil
	}
	ss.refresh() // a run can bring new servers into the context
	outcome := "ok"
	if res.Error != nil {
		outcome = res.Error.Kind
	}
	ss.s.metrics.ObserveExecution(outcome, time.Since(start), len(res.Stdout)+len(res.Stderr)+len(res.Result))
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: execText(res)}},
		StructuredContent: res,
		IsError:           !res.OK(),
	}, nil, nil
}

// caller is who sent a request of this session: its principal, and the
// role the request's token maps to.
func (ss *session) caller(extra *mcp.RequestExtra) conductor.Caller {
	return conductor.Caller{Principal: ss.principal, Role: requestRole(extra)}
}

// observeToolCall counts one tool call of a program (ExecOptions.OnToolCall).
func (s *Server) observeToolCall(server, tool string, d time.Duration, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, bridge.ErrRefused):
		outcome = "refused"
	case err != nil:
		outcome = "error"
	}
	s.metrics.ObserveToolCall(server, tool, outcome, d)
}

// execText is the compact text form of a result: value, output, error.
func execText(r *conductor.ExecResult) string {
	var b strings.Builder
	if r.Error != nil {
		fmt.Fprintf(&b, "error (%s): %s\n", r.Error.Kind, r.Error.Message)
		if r.Error.Stack != "" && !strings.Contains(r.Error.Message, r.Error.Stack) {
			b.WriteString(r.Error.Stack + "\n")
		}
	}
	if len(r.Result) > 0 {
		b.Write(r.Result)
		b.WriteByte('\n')
	}
	if r.Stdout != "" {
		b.WriteString("stdout:\n" + r.Stdout)
		if !strings.HasSuffix(r.Stdout, "\n") {
			b.WriteByte('\n')
		}
	}
	if r.Stderr != "" {
		b.WriteString("stderr:\n" + r.Stderr)
		if !strings.HasSuffix(r.Stderr, "\n") {
			b.WriteByte('\n')
		}
	}
	if r.TimeoutClamped {
		fmt.Fprintf(&b, "note: timeout clamped to %d ms\n", r.TimeoutMs)
	}
	if b.Len() == 0 {
		return "ok (no result, no output)"
	}
	return strings.TrimRight(b.String(), "\n")
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: msg}}, IsError: true}
}

func (ss *session) search(ctx context.Context, req *mcp.CallToolRequest, in SearchInput) (*mcp.CallToolResult, any, error) {
	conv, err := ss.conversation(in.ConversationID)
	if err != nil {
		return nil, nil, err
	}
	limit := in.Limit
	if limit <= 0 {
		limit = 8
	}
	if limit > 50 {
		limit = 50
	}
	start := time.Now()
	res, err := ss.s.c.FindToolsAs(ctx, ss.caller(req.Extra), conv, in.Query, limit)
	ss.s.metrics.ObserveSearch(time.Since(start))
	if err != nil {
		return errorResult(err.Error()), nil, nil
	}
	b, _ := json.Marshal(res)
	text := string(b)
	if down := ss.s.downServers(); down != "" {
		text += "\nunavailable servers: " + down
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
}

func (ss *session) load(ctx context.Context, req *mcp.CallToolRequest, in LoadInput) (*mcp.CallToolResult, any, error) {
	conv, err := ss.conversation(in.ConversationID)
	if err != nil {
		return nil, nil, err
	}
	if len(in.Names) == 0 {
		return errorResult("names is empty: pass tool names as server.tool, from search_tools"), nil, nil
	}
	specs, err := ss.s.c.LoadToolSpecAs(ctx, ss.caller(req.Extra), conv, in.Names...)
	if err != nil {
		return errorResult(err.Error()), nil, nil
	}
	var b strings.Builder
	var often []string
	for _, sp := range specs {
		b.WriteString(sp.Import + "\n" + sp.Declarations + "\n")
		often = append(often, sp.Suggestions...)
	}
	if len(often) > 0 {
		b.WriteString("// often used with these: " + strings.Join(often, ", ") + "\n")
	}
	ss.refresh()
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.TrimRight(b.String(), "\n")}}}, nil, nil
}

func (s *Server) downServers() string {
	var parts []string
	for _, st := range s.c.Status() {
		if st.State == "down" {
			parts = append(parts, fmt.Sprintf("%s (%s)", st.Server, st.Err))
		}
	}
	return strings.Join(parts, ", ")
}

func (ss *session) contextText() string {
	ss.mu.Lock()
	conv := ss.conv
	ss.mu.Unlock()
	if conv == "" {
		return ""
	}
	return ss.s.c.ContextFor(ss.principal, conv)
}

func (ss *session) readContext(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "conductor://context", MIMEType: "text/plain", Text: ss.contextText()}}}, nil
}

func (ss *session) getPrompt(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	text := ss.contextText()
	if text == "" {
		text = "No tools are loaded yet: use search_tools and load_tools."
	}
	return &mcp.GetPromptResult{Description: "Conversation context",
		Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: text}}}}, nil
}
