// Package server exposes a Conductor as an MCP server (official Go SDK):
// the tools execute_code, search_tools and load_tools, the resource
// conductor://context and a prompt with the same fragment. One MCP session is
// one conversation unless a call names another with conversation_id.
//
// It is used by cmd/conductor; it imports the root conductor package.
package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
)

// Version is reported to clients in initialize.
var Version = "0.1.0"

// Server builds MCP servers bound to one Conductor.
type Server struct {
	c   *conductor.Conductor
	log *slog.Logger

	mu       sync.Mutex
	sessions []*session
}

// New returns a Server for c. log may be nil.
func New(c *conductor.Conductor, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{c: c, log: log}
	c.OnToolsChanged(s.refreshAll)
	return s
}

// session is one MCP session's server and its default conversation.
type session struct {
	s         *Server
	mcp       *mcp.Server
	principal string

	mu   sync.Mutex
	conv string
	desc string // current execute_code description
}

// NewSession makes the MCP server for one session of principal ("" for the
// local stdio user). Its default conversation is created on first use.
func (s *Server) NewSession(principal string) *mcp.Server {
	ss := &session{s: s, principal: principal}
	ss.mcp = mcp.NewServer(&mcp.Implementation{Name: "mcp-conductor", Title: "MCP Conductor", Version: Version},
		&mcp.ServerOptions{Instructions: instructions, Logger: s.log})
	ss.addTools()
	ss.mcp.AddResource(&mcp.Resource{URI: "conductor://context", Name: "context", MIMEType: "text/plain",
		Description: "Modules and tools already loaded in this conversation (for the system prompt)."}, ss.readContext)
	ss.mcp.AddPrompt(&mcp.Prompt{Name: "conductor_context",
		Description: "The conversation's context: importable modules and loaded tools."}, ss.getPrompt)
	s.mu.Lock()
	s.sessions = append(s.sessions, ss)
	s.mu.Unlock()
	return ss.mcp
}

// ServeStdio serves one session on stdin/stdout until the client leaves or
// ctx ends.
func (s *Server) ServeStdio(ctx context.Context) error {
	srv := s.NewSession("")
	return srv.Run(ctx, &mcp.StdioTransport{})
}

const instructions = "Use search_tools to find tools by what you need, load_tools to get their TypeScript API, " +
	"then execute_code to run one TypeScript program that imports ./mcp/<server> and calls them. " +
	"Do the data processing inside the program and return only what you need."

// ExecInput is execute_code's input. Unknown fields are rejected: there is no
// way to pass permissions.
type ExecInput struct {
	Code           string `json:"code" jsonschema:"TypeScript/JavaScript ES module; top-level await works; the last expression statement is the result"`
	TimeoutMs      int64  `json:"timeout_ms,omitempty" jsonschema:"optional timeout in milliseconds"`
	ConversationID string `json:"conversation_id,omitempty" jsonschema:"optional; defaults to this session's conversation"`
}

// SearchInput is search_tools' input.
type SearchInput struct {
	Query          string `json:"query" jsonschema:"what you want to do, in your own words"`
	Limit          int    `json:"limit,omitempty" jsonschema:"maximum results (default 8)"`
	ConversationID string `json:"conversation_id,omitempty" jsonschema:"optional; defaults to this session's conversation"`
}

// LoadInput is load_tools' input.
type LoadInput struct {
	Names          []string `json:"names" jsonschema:"tool names as server.tool, from search_tools"`
	ConversationID string   `json:"conversation_id,omitempty" jsonschema:"optional; defaults to this session's conversation"`
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
	if frag := ss.s.c.Context(ss.conv); frag != "" {
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

func (s *Server) refreshAll() {
	s.mu.Lock()
	sessions := append([]*session(nil), s.sessions...)
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.refresh()
	}
}

// conversation resolves the conversation a call runs in.
func (ss *session) conversation(id string) (string, error) {
	if id != "" {
		return scopedID(ss.principal, id), nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conv == "" {
		id, err := ss.s.c.CreateConversation()
		if err != nil {
			return "", err
		}
		ss.conv = id
	}
	return ss.conv, nil
}

// scopedID keeps one principal's conversation ids apart from another's.
func scopedID(principal, id string) string {
	if principal == "" {
		return id
	}
	return "p" + shortHash(principal) + "-" + id
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
	res, err := ss.s.c.Execute(ctx, conv, in.Code, conductor.ExecOptions{
		Timeout:   time.Duration(in.TimeoutMs) * time.Millisecond,
		Principal: ss.principal,
	})
	if err != nil {
		return nil, nil, err
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: execText(res)}},
		StructuredContent: res,
		IsError:           !res.OK(),
	}, nil, nil
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
	res, err := ss.s.c.FindTools(ctx, conv, in.Query, limit)
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
	specs, err := ss.s.c.LoadToolSpec(ctx, conv, in.Names...)
	if err != nil {
		return errorResult(err.Error()), nil, nil
	}
	var b strings.Builder
	for _, sp := range specs {
		b.WriteString(sp.Import + "\n" + sp.Declarations + "\n")
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
	return ss.s.c.Context(conv)
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
