// Package conductor is the Go library API of MCP Conductor: it connects to
// upstream MCP servers, finds their tools by meaning, generates TypeScript
// modules for them, and runs programs that call them in a Deno sandbox with
// zero permissions except those the administrator granted.
//
// It is the Go shape of the original `new Conductor(config)` API:
//
//	c, _ := conductor.New(cfg, conductor.Options{})
//	_ = c.Start(ctx)
//	conv, _ := c.CreateConversation()
//	tools, _ := c.FindTools(ctx, conv, "read a file")
//	spec, _ := c.LoadToolSpec(ctx, conv, "filesystem.read_text_file")
//	res, _ := c.Execute(ctx, conv, code, conductor.ExecOptions{})
//	fmt.Println(c.Context(conv))
//	c.Close()
//
// A Go caller is trusted: ExecOptions.Permissions may grant per call what the
// administrator's configuration does not. The MCP server built on this API
// (internal/server) never lets a model set permissions.
//
// # Conversations and principals
//
// A conversation is named by a principal (who is asking: "" for the local
// user, a token or JWT subject over HTTP) and an id. The methods without a
// principal (CreateConversation, FindTools, LoadToolSpec, Context) act for
// the local user; their ...For variants take the principal, and Execute takes
// it in ExecOptions.Principal. An id that names another principal's
// conversation opens a new, empty conversation of the caller, never theirs.
//
// Conversation state (loaded tools, imported servers, history of executions,
// co-usage counts, cached tool specs and vectors) lives in the store of
// Config.Store.URL: SQLite by default, Redis when MCP_CONDUCTOR_STORE is
// redis://…, so it survives restarts and is shared by conductors on one
// Redis. Files live under Config.Workspace/<conversation>/. When the store
// fails (Redis down), calls that need a conversation return an error saying
// so; nothing falls back to memory, and calls succeed again as soon as the
// store answers.
//
// # Roles
//
// A Role narrows the administrator's policy (servers.<name>.allowTools and
// denyTools) for one caller: its code reaches only the servers the role
// names, and of those only the tools both policies allow. The same filter
// applies everywhere a caller meets tools: the bridge refuses other calls
// before they reach a server, search (FindToolsAs) and load_tools
// (LoadToolSpecAs) never return them, and the ./mcp/<server> modules
// generated for the caller do not export them. Pass the role in
// ExecOptions.Role and Caller.Role; nil means the administrator's policy
// alone.
package conductor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mcp-conductor/conductor/internal/bridge"
	"github.com/mcp-conductor/conductor/internal/catalog"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/conversation"
	"github.com/mcp-conductor/conductor/internal/deps"
	"github.com/mcp-conductor/conductor/internal/embed"
	"github.com/mcp-conductor/conductor/internal/sandbox"
	"github.com/mcp-conductor/conductor/internal/store"
	"github.com/mcp-conductor/conductor/internal/toolchain"
	"github.com/mcp-conductor/conductor/internal/tsgen"
	"github.com/mcp-conductor/conductor/internal/upstream"
)

// Config is the validated configuration (see LoadConfig).
type Config = config.Config

// Permissions are Deno permission grants.
type Permissions = config.Permissions

// Role narrows the administrator's policy for a caller (see the package
// doc): Servers lists the servers its code may reach, each with tool
// filters. A nil *Role narrows nothing.
type Role = config.Role

// ToolPolicy filters the tools of one server ('*' wildcards; deny wins).
type ToolPolicy = config.ToolPolicy

// Caller is who asks: Principal scopes conversations (see the package doc),
// Role, when not nil, narrows the tools it may find, load and call.
type Caller struct {
	Principal string
	Role      *Role
}

// LoadConfig reads the MCP_CONDUCTOR_* variables through env (os.Getenv in
// production) and the config file, if any, into a validated Config.
func LoadConfig(env func(string) string, file string) (*Config, error) {
	return config.Load(env, file)
}

// Options tune a Conductor beyond its Config.
type Options struct {
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Audit receives one record per execution and per tool call; nil uses
	// Logger.
	Audit *slog.Logger
	// Tracer, when set, records one span per execution with a child span per
	// tool call (see Execute); nil records nothing.
	Tracer trace.Tracer
}

// Conductor ties the parts together. Its methods are safe for concurrent use.
type Conductor struct {
	cfg    *config.Config
	log    *slog.Logger
	audit  *slog.Logger
	tracer trace.Tracer

	// running counts executions in flight per conversation (Stats).
	runMu   sync.Mutex
	running map[convKey]int

	deno   *toolchain.Deno
	runner *sandbox.Runner
	allow  *deps.Allowlist
	cache  *deps.Cache
	hub    *upstream.Hub
	bridge *bridge.Bridge
	model  *embed.Model
	index  atomic.Pointer[catalog.Index]

	// onChange subscribers (the MCP server refreshes tool descriptions).
	subMu sync.Mutex
	subs  []func()

	// The tool index is rebuilt by one goroutine at a time (buildMu); vectors
	// of unchanged tools come from memory.
	buildMu sync.Mutex
	vectors *memVectors
	idx     *indexer
	mods    moduleCache

	st    store.Store
	convs *conversation.Manager

	// cached are tool specs read from the store (Catalog.CacheSpecs), by
	// server; they stand in for servers that are not up (lazy, starting).
	specMu sync.Mutex
	cached map[string][]*mcp.Tool
	put    map[string]string // server -> sha256 of the specs last stored

	// embedder overrides the local model (tests count embeddings).
	embedder catalog.Embedder
	// sweepInterval overrides how often idle conversations are swept.
	sweepInterval time.Duration
	stopSweep     context.CancelFunc
	sweeping      sync.WaitGroup

	started atomic.Bool
	closed  atomic.Bool
}

// New validates cfg and prepares the parts that need no I/O beyond the local
// disk. Call Start before using it.
func New(cfg *Config, opts Options) (*Conductor, error) {
	if cfg == nil {
		return nil, errors.New("conductor: nil config")
	}
	c := &Conductor{cfg: cfg, log: opts.Logger, audit: opts.Audit, tracer: opts.Tracer,
		cached: map[string][]*mcp.Tool{}, put: map[string]string{}, running: map[convKey]int{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.tracer == nil {
		c.tracer = noop.NewTracerProvider().Tracer("")
	}
	if c.audit == nil {
		c.audit = c.log
	}
	if len(cfg.Sandbox.AllowedPackages) > 0 {
		list, err := deps.Parse(cfg.Sandbox.AllowedPackages)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvAllowedPackages, err)
		}
		c.allow = list
	}
	return c, nil
}

// Start opens the store, finds Deno, installs allowed packages if needed,
// connects to the upstream servers and builds the tool index. With
// Catalog.CacheSpecs the index is first built from the specs cached by an
// earlier run, so search answers before any upstream server is up. One
// failing upstream server does not fail Start; it shows in Status. A Start
// that fails leaves nothing running; call Close all the same.
func (c *Conductor) Start(ctx context.Context) error {
	if c.started.Swap(true) {
		return errors.New("conductor: already started")
	}
	st, err := store.Open(ctx, c.cfg.Store.URL, store.Options{ConversationTTL: c.cfg.Store.ConversationTTL, Logger: c.log})
	if err != nil {
		return fmt.Errorf("open store %s: %w", store.Redact(c.cfg.Store.URL), err)
	}
	c.st = st
	d, err := toolchain.FindDeno(ctx, c.cfg.Deno, c.cfg.CacheDir)
	if err != nil {
		return err
	}
	c.deno = d
	ropts := sandbox.Options{
		Deno:      d.Path,
		Workspace: c.cfg.Workspace,
		DenoDir:   filepath.Join(c.cfg.CacheDir, "sandbox", "deno-dir"),
		Home:      filepath.Join(c.cfg.CacheDir, "sandbox", "home"),
		Logger:    c.log,
	}
	if p := c.cfg.Sandbox.Pool; p.Max > 0 {
		ropts.Pool = sandbox.PoolOptions{Max: p.Max, Min: p.Min, PerConversation: p.PerConversation, IdleTimeout: p.IdleTimeout,
			Warm: &sandbox.Profile{Permissions: c.cfg.Sandbox.Permissions, MemoryMB: c.cfg.Sandbox.MemoryMB}}
	}
	if c.allow != nil && c.allow.Len() > 0 {
		cache, err := deps.Install(ctx, c.allow, deps.InstallOptions{
			Deno:      d.Path,
			CacheRoot: filepath.Join(c.cfg.CacheDir, "deps"),
			Env:       os.Getenv,
			Logger:    c.log,
		})
		if err != nil {
			return fmt.Errorf("install allowed packages (%s): %w", config.EnvAllowedPackages, err)
		}
		c.cache = cache
		if ropts.Pool.Warm != nil {
			ropts.Pool.Warm.Packages = true
		}
		ropts.HidePaths = map[string]string{cache.Root: "<deps>"}
		ropts.Preload = c.allow.Entries()
		ropts.DenoDir = cache.DenoDir
		ropts.ExtraFlags = cache.RunFlags()
		ropts.ExtraEnv = cache.RunEnv()
	}
	ropts.Modules = c.mods.preload
	r, err := sandbox.New(ropts)
	if err != nil {
		return err
	}
	c.runner = r
	c.convs = conversation.New(st, c.cfg.Workspace, conversation.Options{
		TTL:               c.cfg.Store.ConversationTTL,
		MaxConversations:  c.cfg.Store.MaxConversations,
		MaxWorkspaceBytes: c.cfg.Store.MaxWorkspaceBytes,
		Prepare:           r.PrepareDir,
		Logger:            c.log,
	})
	c.startSweeper()
	if err := c.loadEmbedder(); err != nil {
		return err
	}
	var storeVectors catalog.VectorCache
	if c.cfg.Catalog.CacheSpecs && c.st != nil {
		storeVectors = vectorCache{c.st}
	}
	c.vectors = newMemVectors(storeVectors)
	c.startIndexer()
	if len(c.cfg.Servers) > 0 {
		c.hub = upstream.New(c.cfg.Servers, upstream.Options{
			Logger:      c.log,
			CallTimeout: c.cfg.Sandbox.MaxTimeout,
			OnChange:    c.toolsChanged,
		})
		c.bridge = bridge.New(hubAdapter{c}, c.cfg.Policy, bridge.Limits{})
		if c.cfg.Catalog.CacheSpecs {
			c.loadCachedSpecs(ctx)
			c.rebuildIndex(ctx)
		}
		c.hub.Start(ctx)
	}
	c.rebuildIndex(ctx)
	return nil
}

// Close stops the sweeper and the upstream servers, then closes the store.
// Running executions are killed by their contexts; Close does not wait for
// them.
func (c *Conductor) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.stopSweep != nil {
		c.stopSweep()
		c.sweeping.Wait()
	}
	c.stopIndexer()
	var errs []error
	if c.hub != nil {
		errs = append(errs, c.hub.Close())
	}
	if c.runner != nil {
		errs = append(errs, c.runner.Close())
	}
	if c.st != nil {
		errs = append(errs, c.st.Close())
	}
	return errors.Join(errs...)
}

// OnToolsChanged registers f to run after the upstream tool set changed.
func (c *Conductor) OnToolsChanged(f func()) {
	c.subMu.Lock()
	c.subs = append(c.subs, f)
	c.subMu.Unlock()
}

// exposedTools lists the tools programs may call, in a stable order; a
// role's policy (rolePolicy), when given, must allow them too.
func (c *Conductor) exposedTools(role map[string]config.ToolPolicy) []upstream.Tool {
	if c.hub == nil {
		return nil
	}
	var out []upstream.Tool
	for _, t := range c.tools() {
		if c.bridge.Exposed(t.Server, t.Tool.Name, role) {
			out = append(out, t)
		}
	}
	return out
}

func (c *Conductor) rebuildIndex(ctx context.Context) {
	c.buildMu.Lock()
	defer c.buildMu.Unlock()
	c.cacheSpecs(ctx)
	var tools []catalog.Tool
	for _, t := range c.exposedTools(nil) {
		schema := schemaJSON(t.Tool.InputSchema)
		tools = append(tools, catalog.Tool{Server: t.Server, Name: t.Tool.Name, Description: t.Tool.Description, InputSchema: schema})
	}
	opts := catalog.Options{Logger: c.log}
	if c.embedder != nil {
		opts.Embedder = c.embedder
		opts.VectorCache = c.vectors
	}
	ix, err := catalog.Build(ctx, tools, opts)
	if ctx.Err() != nil {
		return // cancelled by Close: keep the index we have
	}
	c.vectors.retain()
	if err != nil && ix == nil {
		c.log.Error("build tool index", slog.String("err", err.Error()))
		return
	}
	if err != nil {
		c.log.Warn("tool index has no vectors", slog.String("err", err.Error()))
	}
	c.index.Store(ix)
}

// Deno reports the Deno binary in use (after Start).
func (c *Conductor) Deno() *toolchain.Deno { return c.deno }

// Config returns the configuration the conductor runs with.
func (c *Conductor) Config() *Config { return c.cfg }

// CreateConversation makes a new conversation of the local user with its
// own directory and returns its id.
func (c *Conductor) CreateConversation() (string, error) {
	return c.CreateConversationFor("")
}

// CreateConversationFor makes a new conversation of principal and returns
// its id.
func (c *Conductor) CreateConversationFor(principal string) (string, error) {
	if c.convs == nil {
		return "", errors.New("conductor: not started")
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	conv, err := c.convs.Open(context.Background(), principal, "c"+hex.EncodeToString(b))
	if err != nil {
		return "", err
	}
	return conv.ID, nil
}

// conversation opens (creating when new) a conversation of principal.
func (c *Conductor) conversation(ctx context.Context, principal, id string) (*conversation.Conversation, error) {
	if c.convs == nil {
		return nil, errors.New("conductor: not started")
	}
	return c.convs.Open(ctx, principal, id)
}

// ExecOptions tune one execution.
type ExecOptions struct {
	// Permissions are added to the administrator's grants (trusted callers
	// only; the MCP server never sets them).
	Permissions *Permissions
	// Timeout of the run; 0 means the configured default. Larger than the
	// configured maximum is clamped, and the result says so.
	Timeout time.Duration
	// OnLog receives program output as it arrives ("stdout" or "stderr").
	OnLog func(stream, text string)
	// Principal names who asked: it scopes the conversation (see the package
	// doc) and is written to the audit log.
	Principal string
	// Role, when not nil, narrows the tools the program may call and the
	// ./mcp/<server> modules it may import (see the package doc).
	Role *Role
	// OnToolCall, when set, observes every tool call of the program as it
	// ends, also those the bridge refused (err wraps bridge.ErrRefused then):
	// for metrics. It runs on the bridge's goroutine; keep it quick.
	OnToolCall func(server, tool string, d time.Duration, err error)
}

// ExecError is why a run failed.
type ExecError struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Stack   string `json:"stack,omitempty"`
}

func (e *ExecError) Error() string { return e.Kind + ": " + e.Message }

// ExecResult is the outcome of one program; it marshals to the `exec --json`
// object of DESIGN.md.
type ExecResult struct {
	Result     json.RawMessage `json:"result,omitempty"`
	Stdout     string          `json:"stdout"`
	Stderr     string          `json:"stderr"`
	Error      *ExecError      `json:"error"`
	DurationMs int64           `json:"durationMs"`
	// TimeoutMs is the timeout in force; TimeoutClamped says a larger one was
	// asked for and cut to the configured maximum.
	TimeoutMs      int64    `json:"timeoutMs,omitempty"`
	TimeoutClamped bool     `json:"timeoutClamped,omitempty"`
	ToolCalls      []string `json:"toolCalls,omitempty"`
}

// OK reports whether the run succeeded.
func (r *ExecResult) OK() bool { return r.Error == nil }

// ErrWorkspaceFull is wrapped by the error of an Execute refused because the
// conversation's workspace is over Config.Store.MaxWorkspaceBytes.
var ErrWorkspaceFull = conversation.ErrWorkspaceFull

// Execute runs code in conversation convID of opts.Principal (created when
// new). A failed program is a result with Error set, not a Go error; the
// error return is for a run that could not be attempted: conductor not
// started, bad id, store unavailable, or workspace over its cap
// (ErrWorkspaceFull). A run that leaves the workspace over its cap keeps its
// result but fails with kind "output_limit". The run, the tools it called
// and their co-usage are recorded in the conversation; concurrent runs in
// one conversation are safe.
//
// With Options.Tracer, the run is a span "conductor.execute" (attributes
// conductor.conversation, .principal, .code_sha256, .outcome,
// .duration_ms) with a child span "conductor.tool_call" per tool call
// (conductor.server, .tool, .outcome).
func (c *Conductor) Execute(ctx context.Context, convID, code string, opts ExecOptions) (*ExecResult, error) {
	conv, err := c.conversation(ctx, opts.Principal, convID)
	if err != nil {
		return nil, err
	}
	if err := c.convs.CheckWorkspace(conv); err != nil {
		return nil, err
	}
	defer c.track(opts.Principal, conv.ID)()
	started := time.Now()
	sum := sha256.Sum256([]byte(code))
	codeHash := hex.EncodeToString(sum[:])
	ctx, span := c.tracer.Start(ctx, "conductor.execute", trace.WithAttributes(
		attribute.String("conductor.conversation", conv.ID),
		attribute.String("conductor.principal", opts.Principal),
		attribute.String("conductor.code_sha256", codeHash)))
	defer span.End()
	timeout, clamped := c.cfg.ClampTimeout(opts.Timeout)
	perms := c.cfg.Sandbox.Permissions
	if opts.Permissions != nil {
		perms = perms.Merge(*opts.Permissions)
	}
	role := c.rolePolicy(opts.Role)
	var callsMu sync.Mutex
	var calls []string
	spec := sandbox.Spec{
		Code:           code,
		Dir:            conv.Dir,
		Permissions:    perms,
		Timeout:        timeout,
		MemoryMB:       c.cfg.Sandbox.MemoryMB,
		MaxOutputBytes: c.cfg.Sandbox.MaxOutputBytes,
		Importer:       sandbox.Importer{Module: func(server string) (string, error) { return c.writeModule(conv, server, role) }},
		OnOutput:       opts.OnLog,
	}
	if c.cache != nil {
		spec.Importer.Package = c.cache.Check
	}
	if c.bridge != nil {
		spec.Calls = c.bridge.RunWith(role, func(call bridge.Call) {
			callsMu.Lock()
			calls = append(calls, call.Server+"."+call.Tool)
			callsMu.Unlock()
			c.observeCall(ctx, conv.ID, opts, call)
		})
	}
	res, err := c.runner.Run(ctx, spec)
	if err != nil {
		span.SetStatus(codes.Error, "not run")
		return nil, err
	}
	out := &ExecResult{
		Result:         res.Value,
		Stdout:         res.Stdout,
		Stderr:         res.Stderr,
		DurationMs:     res.Duration.Milliseconds(),
		TimeoutMs:      timeout.Milliseconds(),
		TimeoutClamped: clamped,
		ToolCalls:      uniqueSorted(calls),
	}
	if res.Error != nil {
		out.Error = &ExecError{Kind: string(res.Error.Kind), Message: res.Error.Message,
			Line: res.Error.Line, Column: res.Error.Column, Stack: res.Error.Stack}
	}
	if err := c.convs.CheckWorkspace(conv); err != nil && out.Error == nil {
		out.Error = &ExecError{Kind: "output_limit", Message: err.Error()}
	}
	outcome := "ok"
	if out.Error != nil {
		outcome = out.Error.Kind
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attribute.String("conductor.outcome", outcome), attribute.Int64("conductor.duration_ms", out.DurationMs))
	// Record even when the caller's ctx ended with the run.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.convs.Record(rctx, opts.Principal, conv.ID, conversation.Execution{
		Code: code, Tools: out.ToolCalls, Outcome: outcome, Started: started, Elapsed: res.Duration,
	}); err != nil {
		c.log.Error("record execution", slog.String("conversation", conv.ID), slog.String("err", err.Error()))
	}
	c.audit.Info("execution",
		slog.String("conversation", conv.ID),
		slog.String("principal", opts.Principal),
		slog.String("role", roleName(opts.Role)),
		slog.String("codeSha256", codeHash),
		slog.String("permissions", perms.String()),
		slog.Int64("durationMs", out.DurationMs),
		slog.String("outcome", outcome),
		slog.Any("tools", out.ToolCalls),
	)
	return out, nil
}

// observeCall reports one tool call of a run: audit record, the caller's
// OnToolCall hook and a child span of the run's span in ctx.
func (c *Conductor) observeCall(ctx context.Context, conv string, opts ExecOptions, call bridge.Call) {
	outcome := "ok"
	attrs := []any{slog.String("conversation", conv), slog.String("principal", opts.Principal),
		slog.String("tool", call.Server+"."+call.Tool), slog.Int64("durationMs", call.Duration.Milliseconds())}
	if call.Err != nil {
		outcome = "error"
		if errors.Is(call.Err, bridge.ErrRefused) {
			outcome = "refused"
		}
		attrs = append(attrs, slog.String("outcome", outcome), slog.String("err", call.Err.Error()))
	} else {
		attrs = append(attrs, slog.String("outcome", outcome))
	}
	c.audit.Info("tool_call", attrs...)
	if opts.OnToolCall != nil {
		opts.OnToolCall(call.Server, call.Tool, call.Duration, call.Err)
	}
	_, span := c.tracer.Start(ctx, "conductor.tool_call", trace.WithTimestamp(call.Start), trace.WithAttributes(
		attribute.String("conductor.server", call.Server),
		attribute.String("conductor.tool", call.Tool),
		attribute.String("conductor.outcome", outcome)))
	if call.Err != nil {
		span.SetStatus(codes.Error, outcome)
	}
	span.End(trace.WithTimestamp(call.Start.Add(call.Duration)))
}

func roleName(r *Role) string {
	if r == nil {
		return ""
	}
	return r.Name
}

// rolePolicy turns a role into the extra policy the bridge checks: servers
// the role does not name are closed (DenyTools "*"). nil for a nil role.
func (c *Conductor) rolePolicy(r *Role) map[string]config.ToolPolicy {
	if r == nil {
		return nil
	}
	p := make(map[string]config.ToolPolicy, len(c.cfg.Servers))
	for _, s := range c.cfg.Servers {
		if tp, ok := r.Servers[s.Name]; ok {
			p[s.Name] = tp
		} else {
			p[s.Name] = config.ToolPolicy{DenyTools: []string{"*"}}
		}
	}
	return p
}

// convKey names a conversation of a principal.
type convKey struct{ principal, id string }

// track counts a run of a conversation as in flight until the returned
// function is called.
func (c *Conductor) track(principal, id string) (done func()) {
	k := convKey{principal, id}
	c.runMu.Lock()
	c.running[k]++
	c.runMu.Unlock()
	return func() {
		c.runMu.Lock()
		if c.running[k]--; c.running[k] <= 0 {
			delete(c.running, k)
		}
		c.runMu.Unlock()
	}
}

// Stats are gauges of what a Conductor is doing now.
type Stats struct {
	// Runs is the number of executions in flight.
	Runs int
	// Conversations is the number of conversations with a run in flight.
	// Nothing else of a conversation stays in memory: its state is in the
	// store.
	Conversations int
}

// Stats reports what runs now; it is cheap enough for every scrape.
func (c *Conductor) Stats() Stats {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	st := Stats{Conversations: len(c.running)}
	for _, n := range c.running {
		st.Runs += n
	}
	return st
}

// Ready reports why the conductor cannot serve yet, or nil: it must be
// started, Deno found, the store answering (Ping), and every upstream
// server done with its first start attempt (up, down with a reason, or
// lazy). Call it once Start has returned (it does not wait for Start).
func (c *Conductor) Ready(ctx context.Context) error {
	if !c.started.Load() || c.st == nil || c.runner == nil {
		return errors.New("not started")
	}
	if c.closed.Load() {
		return errors.New("closed")
	}
	var errs []error
	if c.deno == nil {
		errs = append(errs, errors.New("deno: not found"))
	}
	if err := c.st.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	for _, st := range c.Status() {
		if st.State == upstream.StateStarting {
			errs = append(errs, fmt.Errorf("server %s: starting", st.Server))
		}
	}
	return errors.Join(errs...)
}

func uniqueSorted(xs []string) []string {
	if len(xs) == 0 {
		return nil
	}
	sort.Strings(xs)
	out := xs[:1]
	for _, x := range xs[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}

// serverTools returns the exposed tools of one server as tsgen sees them;
// with a role, only those it allows, and a server it closes is unknown.
func (c *Conductor) serverTools(server string, role map[string]config.ToolPolicy) ([]tsgen.Tool, error) {
	if c.hub == nil {
		return nil, errors.New("no MCP servers are configured")
	}
	var tools []tsgen.Tool
	known := false
	for _, st := range c.hub.Status() {
		if st.Server == server && reachable(role, server) {
			known = true
			if st.State == upstream.StateDown && !c.hasCached(server) {
				return nil, fmt.Errorf("server %q is %s: %s", server, st.State, st.Err)
			}
		}
	}
	if !known {
		return nil, fmt.Errorf("no MCP server is named %q (servers: %s)", server, strings.Join(c.serverNames(role), ", "))
	}
	for _, t := range c.exposedTools(role) {
		if t.Server != server {
			continue
		}
		in := schemaJSON(t.Tool.InputSchema)
		var outSchema json.RawMessage
		if t.Tool.OutputSchema != nil {
			outSchema = schemaJSON(t.Tool.OutputSchema)
		}
		tools = append(tools, tsgen.Tool{Name: t.Tool.Name, Title: t.Tool.Title, Description: t.Tool.Description,
			InputSchema: in, OutputSchema: outSchema})
	}
	return tools, nil
}

// serverNames lists the servers a role can reach (all without a role).
func (c *Conductor) serverNames(role map[string]config.ToolPolicy) []string {
	var names []string
	for _, s := range c.cfg.Servers {
		if reachable(role, s.Name) {
			names = append(names, s.Name)
		}
	}
	return names
}

// reachable reports whether a role (rolePolicy) leaves server open at all.
func reachable(role map[string]config.ToolPolicy, server string) bool {
	p, ok := role[server]
	return !ok || !slices.Contains(p.DenyTools, "*")
}

// writeModule makes sure conv's mcp/<server>.ts holds the current module
// and returns the path programs import: an immutable copy named by its
// content, mcp/.v/<server>-<sha256 prefix>.ts. Because a path never
// changes content, a pooled sandbox may load the conversation's modules
// while it waits (see Modules in sandbox.Options) and a run importing that
// path gets exactly what it asked for; a changed tool list is a new path.
// Files are written only when their content changes; concurrent runs of
// one conversation take turns. A role's modules live in
// mcp/.role-<hash of its policy>/, so that runs of one conversation under
// different roles never import each other's modules.
func (c *Conductor) writeModule(conv *conversation.Conversation, server string, role map[string]config.ToolPolicy) (string, error) {
	src, err := c.moduleSource(server, role)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(conv.Dir, "mcp")
	if role != nil {
		b, _ := json.Marshal(role) // map keys sorted: one policy, one name
		sum := sha256.Sum256(b)
		dir = filepath.Join(dir, ".role-"+hex.EncodeToString(sum[:8]))
	}
	name := tsgen.FileName(server)
	path := filepath.Join(dir, name)
	sum := sha256.Sum256([]byte(src))
	vpath := filepath.Join(dir, ".v", strings.TrimSuffix(name, ".ts")+"-"+hex.EncodeToString(sum[:6])+".ts")
	defer c.convs.Lock(conv.Dir)()
	if !c.mods.written(path, src) || !c.mods.written(vpath, src) {
		if err := os.MkdirAll(filepath.Dir(vpath), 0o755); err != nil {
			return "", err
		}
		for _, p := range []string{path, vpath} {
			if err := writeIfChanged(p, src); err != nil {
				return "", err
			}
			c.mods.wrote(p, src)
		}
		pruneVersions(vpath, c.mods.current(conv.Dir, path))
	}
	c.mods.use(conv.Dir, path, vpath)
	return vpath, nil
}

// writeIfChanged replaces path with a read-only file holding src, unless
// it holds src already.
func writeIfChanged(path, src string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == src {
		return nil
	}
	tmp := path + ".tmp"
	os.Remove(tmp) // left by a crash; read-only, so WriteFile cannot truncate it
	if err := os.WriteFile(tmp, []byte(src), 0o444); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pruneVersions removes the versions of vpath's module other than vpath
// and prev (the one runs used until now, which one may still be loading).
func pruneVersions(vpath, prev string) {
	base := filepath.Base(vpath)
	prefix := base[:strings.LastIndexByte(base, '-')+1]
	entries, err := os.ReadDir(filepath.Dir(vpath))
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(filepath.Dir(vpath), e.Name())
		n := strings.TrimPrefix(e.Name(), prefix)
		if n == e.Name() || strings.ContainsAny(n, "-") || p == vpath || p == prev {
			continue // another server's module ("a" and "a-b" share a prefix)
		}
		os.Remove(p)
	}
}

// ToolMatch is one search result.
type ToolMatch = catalog.Result

// FindTools searches the tool catalog by meaning for the local user's
// conversation convID ("" searches without a conversation).
func (c *Conductor) FindTools(ctx context.Context, convID, query string, limit int) ([]ToolMatch, error) {
	return c.FindToolsFor(ctx, "", convID, query, limit)
}

// FindToolsFor is FindToolsAs for principal without a role.
func (c *Conductor) FindToolsFor(ctx context.Context, principal, convID, query string, limit int) ([]ToolMatch, error) {
	return c.FindToolsAs(ctx, Caller{Principal: principal}, convID, query, limit)
}

// FindToolsAs searches the tool catalog by meaning for the caller's
// conversation convID ("" searches without a conversation); tools the
// caller's role does not allow are never returned. In a conversation, tools
// of servers it already imports and tools often used with the ones it loaded
// or called rank higher; the first limit results are tools it has not
// loaded, followed by the matching loaded tools, marked Loaded and without
// description (the agent has their declarations).
func (c *Conductor) FindToolsAs(ctx context.Context, who Caller, convID, query string, limit int) ([]ToolMatch, error) {
	ix := c.index.Load()
	if ix == nil {
		return nil, errors.New("conductor: not started")
	}
	if limit <= 0 {
		limit = 10
	}
	exclude := c.excluder(who.Role)
	if convID == "" {
		return ix.Search(ctx, query, catalog.SearchOptions{Limit: limit, Exclude: exclude})
	}
	conv, err := c.conversation(ctx, who.Principal, convID)
	if err != nil {
		return nil, err
	}
	a, err := conversation.LoadAffinity(ctx, c.st, append(slices.Clone(conv.Loaded), conv.Called...), conv.Servers)
	if err != nil {
		return nil, err
	}
	loaded := make(map[string]bool, len(conv.Loaded))
	for _, k := range conv.Loaded {
		loaded[k] = true
	}
	return conversation.Search(ctx, ix, query, limit, loaded, a, exclude)
}

// excluder drops the tools ("server.tool") a role does not allow; nil
// without a role.
func (c *Conductor) excluder(r *Role) func(key string) bool {
	role := c.rolePolicy(r)
	if role == nil || c.bridge == nil {
		return nil
	}
	return func(key string) bool {
		s, t, _ := strings.Cut(key, ".")
		return !c.bridge.Exposed(s, t, role)
	}
}

// ToolSpec is what load_tools returns for some tools of one server.
type ToolSpec struct {
	Server       string `json:"server"`
	Import       string `json:"import"`
	Declarations string `json:"declarations"`
	// Suggestions are tools ("server.tool") often used together with these
	// ones in earlier programs and conversations, not loaded yet; the agent
	// may want to load them too.
	Suggestions []string `json:"suggestions,omitempty"`
}

// LoadToolSpec is LoadToolSpecFor for the local user.
func (c *Conductor) LoadToolSpec(ctx context.Context, convID string, names ...string) ([]ToolSpec, error) {
	return c.LoadToolSpecFor(ctx, "", convID, names...)
}

// LoadToolSpecFor is LoadToolSpecAs for principal without a role.
func (c *Conductor) LoadToolSpecFor(ctx context.Context, principal, convID string, names ...string) ([]ToolSpec, error) {
	return c.LoadToolSpecAs(ctx, Caller{Principal: principal}, convID, names...)
}

// LoadToolSpecAs returns the TypeScript declarations and import lines of
// the named tools ("server.tool"), writes their modules into the caller's
// conversation's mcp/ directory and marks them loaded. Unknown names, and
// names the caller's role does not allow, fail the whole call with "did you
// mean" hints (among the tools the role allows).
func (c *Conductor) LoadToolSpecAs(ctx context.Context, who Caller, convID string, names ...string) ([]ToolSpec, error) {
	principal := who.Principal
	role := c.rolePolicy(who.Role)
	conv, err := c.conversation(ctx, principal, convID)
	if err != nil {
		return nil, err
	}
	byServer := map[string][]string{}
	var order []string
	var unknown []string
	ix := c.index.Load()
	for _, name := range names {
		server, tool, ok := strings.Cut(name, ".")
		if !ok || c.hub == nil {
			unknown = append(unknown, name)
			continue
		}
		t, found := c.tool(server, tool)
		if !found || !c.bridge.Exposed(t.Server, t.Tool.Name, role) {
			unknown = append(unknown, name)
			continue
		}
		if _, seen := byServer[server]; !seen {
			order = append(order, server)
		}
		byServer[server] = append(byServer[server], tool)
	}
	if len(unknown) > 0 {
		var parts []string
		for _, u := range unknown {
			msg := fmt.Sprintf("unknown tool %q", u)
			if ix != nil {
				s := ix.Suggest(u, 6)
				if ex := c.excluder(who.Role); ex != nil {
					s = slices.DeleteFunc(s, ex)
				}
				if len(s) > 3 {
					s = s[:3]
				}
				if len(s) > 0 {
					msg += " (did you mean " + strings.Join(s, ", ") + "?)"
				}
			}
			parts = append(parts, msg)
		}
		return nil, errors.New(strings.Join(parts, "; "))
	}
	var specs []ToolSpec
	var keys []string
	for _, server := range order {
		tools, err := c.serverTools(server, role)
		if err != nil {
			return nil, err
		}
		decl, err := tsgen.Declarations(server, tools, byServer[server])
		if err != nil {
			return nil, err
		}
		if _, err := c.writeModule(conv, server, role); err != nil {
			return nil, err
		}
		specs = append(specs, ToolSpec{Server: server, Import: tsgen.ImportLine(server), Declarations: decl})
		for _, t := range byServer[server] {
			keys = append(keys, server+"."+t)
		}
	}
	conv, err = c.convs.MarkLoaded(ctx, principal, convID, keys)
	if err != nil {
		return nil, err
	}
	loaded := make(map[string]bool, len(conv.Loaded))
	for _, k := range conv.Loaded {
		loaded[k] = true
	}
	skip := func(k string) bool {
		if loaded[k] {
			return true
		}
		s, t, _ := strings.Cut(k, ".")
		_, ok := c.tool(s, t)
		return !ok || !c.bridge.Exposed(s, t, role)
	}
	for i := range specs {
		var mine []string
		for _, t := range byServer[specs[i].Server] {
			mine = append(mine, specs[i].Server+"."+t)
		}
		a, err := conversation.LoadAffinity(ctx, c.st, mine, nil)
		if err != nil {
			return nil, err
		}
		specs[i].Suggestions = a.Suggest(3, skip)
	}
	return specs, nil
}

// Context is ContextFor for the local user.
func (c *Conductor) Context(convID string) string { return c.ContextFor("", convID) }

// ContextFor is the fragment of principal's conversation for the system
// prompt: the modules it can import and the tools already loaded, e.g.
//
//	Available modules: import * as filesystem from "./mcp/filesystem.ts";
//	Already loaded: filesystem.read_text_file
//
// It is empty for an unknown conversation, one with nothing loaded, or when
// the store cannot be read (logged).
func (c *Conductor) ContextFor(principal, convID string) string {
	if c.convs == nil || !conversation.ValidID(convID) {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conv, err := c.convs.Get(ctx, principal, convID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.log.Error("read conversation context", slog.String("conversation", convID), slog.String("err", err.Error()))
		}
		return ""
	}
	return conversation.Fragment(conv)
}

// Status describes the upstream servers.
func (c *Conductor) Status() []upstream.Status {
	if c.hub == nil {
		return nil
	}
	return c.hub.Status()
}

// SearchReady reports whether search uses embeddings (else keywords only).
func (c *Conductor) SearchReady() (tools int, vectors bool) {
	ix := c.index.Load()
	if ix == nil {
		return 0, false
	}
	return ix.Len(), ix.HasVectors()
}

// hubAdapter gives the bridge what it needs of the hub, with cached specs
// standing in for servers that are not up yet (a lazy server starts on its
// first call).
type hubAdapter struct{ c *Conductor }

func (a hubAdapter) InputSchema(server, tool string) (json.RawMessage, bool) {
	t, ok := a.c.tool(server, tool)
	if !ok {
		return nil, false
	}
	b := schemaJSON(t.Tool.InputSchema)
	if b == nil && t.Tool.InputSchema != nil {
		// Fail closed: the schema "false" rejects every argument.
		return json.RawMessage("false"), true
	}
	return b, true
}

func (a hubAdapter) Call(ctx context.Context, server, tool string, args json.RawMessage) (*mcp.CallToolResult, error) {
	return a.c.hub.Call(ctx, server, tool, args)
}

// loadEmbedder picks the embedding model: a remote OpenAI-compatible one
// when configured, else the local model (int8 weights: a third of the
// memory, 0.999 cosine agreement with float32), else none (keyword search,
// logged and reported by doctor).
func (c *Conductor) loadEmbedder() error {
	if c.embedder != nil { // set by tests
		return nil
	}
	cat := c.cfg.Catalog
	if cat.EmbeddingURL != "" || cat.EmbeddingModel != "" {
		url := cat.EmbeddingURL
		if url == "" {
			url = "https://api.openai.com/v1"
		}
		r, err := embed.NewRemote(embed.RemoteOptions{URL: url, Model: cat.EmbeddingModel, APIKey: cat.EmbeddingKey})
		if err != nil {
			return fmt.Errorf("catalog.embeddingURL: %w", err)
		}
		c.embedder = remoteEmbedder{r}
		return nil
	}
	m, err := embed.LoadWith(embed.DefaultDir(c.cfg.CacheDir), embed.LoadOptions{Quantize: true})
	if err != nil {
		c.log.Info("tool search runs on keywords only: the embedding model is not installed (run `conductor setup`)",
			slog.String("err", err.Error()))
		return nil
	}
	// Loading peaks well above what the model keeps; give the rest back now.
	debug.FreeOSMemory()
	c.model = m
	c.embedder = modelEmbedder{m}
	return nil
}

// remoteEmbedder adapts a remote embedding API to the catalog.
type remoteEmbedder struct{ r *embed.Remote }

func (e remoteEmbedder) Name() string { return e.r.Name() }
func (e remoteEmbedder) Dim() int     { return e.r.Dim() }
func (e remoteEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return e.r.Embed(ctx, texts)
}

// modelEmbedder adapts the local model to the catalog.
type modelEmbedder struct{ m *embed.Model }

func (e modelEmbedder) Name() string { return e.m.Name() }
func (e modelEmbedder) Dim() int     { return e.m.Dim() }
func (e modelEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return e.m.Embed(texts)
}

// schemaJSON returns a tool schema as JSON text without copying it when the
// hub already keeps it as text; nil when it cannot be marshalled.
func schemaJSON(v any) json.RawMessage {
	switch s := v.(type) {
	case nil:
		return nil
	case json.RawMessage:
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
