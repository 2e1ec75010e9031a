// Command conductor is MCP Conductor's CLI: an MCP server (stdio or HTTP)
// and one-shot commands that share its code paths. See DESIGN.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/catalog"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/deps"
	"github.com/mcp-conductor/conductor/internal/embed"
	"github.com/mcp-conductor/conductor/internal/server"
	"github.com/mcp-conductor/conductor/internal/telemetry"
	"github.com/mcp-conductor/conductor/internal/toolchain"
)

const usage = `usage: conductor <command> [flags]

commands:
  stdio   [--config FILE] [--audit-log FILE] [--audit-max-mb N]
                                                  MCP server on stdin/stdout
  start   [--config FILE] [--http ADDR [--stateless] [--grace DUR]]
          [--audit-log FILE] [--audit-max-mb N]
                                                  MCP server (stdio unless --http);
                                                  HTTP serves /mcp, /metrics, /healthz, /readyz
  exec    [--config FILE] [--timeout MS] [--json] [FILE|-]
                                                  run one program like execute_code
  search  [--config FILE] [--limit N] [--json] QUERY
                                                  search the configured servers' tools
  eval    --tools tools.jsonl --queries queries.jsonl [--json] [--mode M]
                                                  retrieval quality on a data set
  doctor  [--config FILE]                         check Deno, caches, model, servers
  setup   [--config FILE] [--prune]               install Deno, allowed packages, model

Every command also takes --log-level (debug, info, warn, error) and
--audit-log FILE (audit records as JSON lines; stderr by default).

Configuration comes from MCP_CONDUCTOR_* environment variables and the config
file (http.* for tokens, JWT, roles and limits; telemetry.otlpEndpoint or
OTEL_EXPORTER_OTLP_ENDPOINT for traces); see README.md.`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries a process exit status.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "stdio":
		err = cmdServe(ctx, rest, stderr, false)
	case "start":
		err = cmdServe(ctx, rest, stderr, true)
	case "exec":
		err = cmdExec(ctx, rest, stdin, stdout, stderr)
	case "search":
		err = cmdSearch(ctx, rest, stdout, stderr)
	case "eval":
		err = cmdEval(ctx, rest, stdout, stderr)
	case "doctor":
		err = cmdDoctor(ctx, rest, stdout, stderr)
	case "setup":
		err = cmdSetup(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "conductor: unknown command %q\n\n%s\n", cmd, usage)
		return 2
	}
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintf(stderr, "conductor %s: %v\n", cmd, err)
		return 1
	}
}

// common flags and set-up shared by the commands.
type common struct {
	fs       *flag.FlagSet
	config   string
	auditLog string
	logLevel string
	// metrics is set when serving HTTP (/metrics).
	metrics *telemetry.Metrics
	// auditMaxMB > 0 rotates the --audit-log file at that size (servers).
	auditMaxMB int
}

func newCommon(name string, stderr io.Writer) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.config, "config", "", "config file (JSON, YAML or conductor.config.ts); default $MCP_CONDUCTOR_CONFIG")
	c.fs.StringVar(&c.auditLog, "audit-log", "", "append the audit log (JSON lines) to this file instead of stderr")
	c.fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return c
}

func (c *common) loadConfig() (*config.Config, error) {
	return config.Load(os.Getenv, c.config)
}

func (c *common) loggers(stderr io.Writer, quiet bool) (*slog.Logger, *slog.Logger, func(), error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	if quiet && c.logLevel == "info" {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	audit := log
	closeFn := func() {}
	if c.auditLog != "" && c.auditMaxMB > 0 {
		w, err := telemetry.RotatingFile(c.auditLog, c.auditMaxMB)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--audit-log: %w", err)
		}
		audit = slog.New(slog.NewJSONHandler(w, nil))
		closeFn = func() { w.Close() }
	} else if c.auditLog != "" {
		f, err := os.OpenFile(c.auditLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--audit-log: %w", err)
		}
		audit = slog.New(slog.NewJSONHandler(f, nil))
		closeFn = func() { f.Close() }
	} else if quiet {
		audit = slog.New(slog.DiscardHandler)
	}
	return log, audit, closeFn, nil
}

func (c *common) start(ctx context.Context, stderr io.Writer, quiet bool) (*conductor.Conductor, func(), error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	log, audit, closeLogs, err := c.loggers(stderr, quiet)
	if err != nil {
		return nil, nil, err
	}
	opts := conductor.Options{Logger: log, Audit: audit}
	stopTracing := func() {}
	if cfg.Telemetry.OTLPEndpoint != "" {
		tr, shutdown, err := telemetry.Tracing(cfg.Telemetry.OTLPEndpoint, server.Version)
		if err != nil {
			closeLogs()
			return nil, nil, fmt.Errorf("telemetry.otlpEndpoint: %w", err)
		}
		opts.Tracer = tr
		stopTracing = func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				log.Warn("flush traces", slog.String("err", err.Error()))
			}
		}
	}
	cd, err := conductor.New(cfg, opts)
	if err != nil {
		stopTracing()
		closeLogs()
		return nil, nil, err
	}
	if err := cd.Start(ctx); err != nil {
		cd.Close()
		stopTracing()
		closeLogs()
		return nil, nil, err
	}
	return cd, func() { cd.Close(); stopTracing(); closeLogs() }, nil
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer, allowHTTP bool) error {
	c := newCommon("stdio", stderr)
	var httpAddr string
	var stateless bool
	var grace time.Duration
	c.fs.IntVar(&c.auditMaxMB, "audit-max-mb", 100, "rotate the --audit-log file at this size, keeping 10 compressed old files (0: never)")
	if allowHTTP {
		c.fs.StringVar(&httpAddr, "http", "", "serve streamable HTTP at ADDR/mcp instead of stdio (host defaults to 127.0.0.1)")
		c.fs.BoolVar(&stateless, "stateless", false, "HTTP without sessions, for replicas behind a load balancer (share state with a redis:// store)")
		c.fs.DurationVar(&grace, "grace", 30*time.Second, "on SIGTERM, how long running programs may finish before they are killed")
	}
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(c.fs.Args(), " "))
	}
	if httpAddr == "" {
		if stateless {
			return errors.New("--stateless needs --http")
		}
		cd, done, err := c.start(ctx, stderr, false)
		if err != nil {
			return err
		}
		defer done()
		srv := server.New(cd, nil)
		if err := srv.ServeStdio(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
	return serveHTTP(ctx, c, stderr, httpAddr, stateless, grace)
}

// serveHTTP runs `conductor start --http ADDR` until SIGINT/SIGTERM, then
// shuts down gracefully (see server.Serve) and stops the upstream servers.
func serveHTTP(ctx context.Context, c *common, stderr io.Writer, addr string, stateless bool, grace time.Duration) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	addr, err = listenAddr(addr, cfg.HTTP.Token != "" || len(cfg.HTTP.Tokens) > 0 || cfg.HTTP.JWTIssuer != "")
	if err != nil {
		return err
	}
	if grace <= 0 {
		return errors.New("--grace must be positive")
	}
	c.metrics = telemetry.New()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--http: %w", err)
	}
	// Start before serving: /readyz answers once the conductor can run code.
	cd, done, err := c.start(ctx, stderr, false)
	if err != nil {
		ln.Close()
		return err
	}
	defer done()
	var level slog.Level
	level.UnmarshalText([]byte(c.logLevel)) // c.start checked it
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv := server.New(cd, log)
	srv.SetMetrics(c.metrics)
	opts := server.HTTPOptions{
		Token:                   cfg.HTTP.Token,
		AllowedOrigins:          cfg.HTTP.AllowedOrigins,
		MaxBodyBytes:            cfg.HTTP.MaxBodyBytes,
		RatePerSecond:           cfg.HTTP.RatePerSecond,
		RateBurst:               cfg.HTTP.RateBurst,
		MaxConcurrentExecutions: cfg.HTTP.MaxConcurrentExecutions,
		Stateless:               stateless,
		Grace:                   grace,
		TokenRole:               cfg.HTTP.TokenRole,
		DefaultRole:             cfg.HTTP.DefaultRole,
	}
	for _, t := range cfg.HTTP.Tokens {
		opts.Tokens = append(opts.Tokens, server.NamedToken{Name: t.Name, Token: t.Token, Role: t.Role})
	}
	if len(cfg.HTTP.Roles) > 0 {
		opts.Roles = map[string]conductor.Role{}
		for name, r := range cfg.HTTP.Roles {
			opts.Roles[name] = r
		}
	}
	if cfg.HTTP.JWTIssuer != "" {
		opts.JWT = &server.JWTOptions{Issuer: cfg.HTTP.JWTIssuer, Audience: cfg.HTTP.JWTAudience, JWKSURL: cfg.HTTP.JWKSURL}
	}
	log.Info("serving streamable HTTP", slog.String("url", "http://"+ln.Addr().String()+"/mcp"), slog.Bool("stateless", stateless))
	return srv.Serve(ctx, ln, opts)
}

// listenAddr defaults the host to 127.0.0.1 and refuses a non-loopback
// address unless callers must authenticate.
func listenAddr(addr string, auth bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--http %q: want HOST:PORT or :PORT: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && !auth {
		return "", fmt.Errorf("--http %s: refusing to listen on a non-loopback address without authentication; "+
			"set %s (or http.token, or http.jwt in the config file), or bind 127.0.0.1", addr, config.EnvHTTPToken)
	}
	return net.JoinHostPort(host, port), nil
}

func cmdExec(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newCommon("exec", stderr)
	timeout := c.fs.Int64("timeout", 0, "timeout in ms (default MCP_CONDUCTOR_DEFAULT_TIMEOUT)")
	asJSON := c.fs.Bool("json", false, "print the result object as JSON")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	var code []byte
	var err error
	switch c.fs.NArg() {
	case 0:
		code, err = io.ReadAll(stdin)
	case 1:
		if c.fs.Arg(0) == "-" {
			code, err = io.ReadAll(stdin)
		} else {
			code, err = os.ReadFile(c.fs.Arg(0))
		}
	default:
		return errors.New("give one program file, or - for standard input")
	}
	if err != nil {
		return err
	}
	if *timeout < 0 {
		return errors.New("--timeout must be positive")
	}
	cd, done, err := c.start(ctx, stderr, true)
	if err != nil {
		return err
	}
	defer done()
	conv, err := cd.CreateConversation()
	if err != nil {
		return err
	}
	res, err := cd.Execute(ctx, conv, string(code), conductor.ExecOptions{Timeout: time.Duration(*timeout) * time.Millisecond})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		io.WriteString(stdout, res.Stdout)
		io.WriteString(stderr, res.Stderr)
		if len(res.Result) > 0 {
			fmt.Fprintln(stdout, string(res.Result))
		}
		if res.Error != nil {
			fmt.Fprintf(stderr, "error (%s): %s\n", res.Error.Kind, res.Error.Message)
			if res.Error.Stack != "" {
				fmt.Fprintln(stderr, res.Error.Stack)
			}
		}
		if res.TimeoutClamped {
			fmt.Fprintf(stderr, "note: timeout clamped to %d ms\n", res.TimeoutMs)
		}
	}
	if res.Error != nil {
		return exitError{1}
	}
	return nil
}

func cmdSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommon("search", stderr)
	limit := c.fs.Int("limit", 10, "maximum results")
	asJSON := c.fs.Bool("json", false, "print results as JSON")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	query := strings.Join(c.fs.Args(), " ")
	if strings.TrimSpace(query) == "" {
		return errors.New("give a query, e.g. conductor search \"read a file\"")
	}
	cd, done, err := c.start(ctx, stderr, true)
	if err != nil {
		return err
	}
	defer done()
	res, err := cd.FindTools(ctx, "", query, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if len(res) == 0 {
		fmt.Fprintln(stdout, "no tools found")
	}
	for _, r := range res {
		fmt.Fprintf(stdout, "%.3f  %s  %s\n", r.Score, r.Name, r.Description)
	}
	return nil
}

func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tools := fs.String("tools", "", "tools.jsonl")
	queries := fs.String("queries", "", "queries.jsonl")
	asJSON := fs.Bool("json", false, "print JSON")
	mode := fs.String("mode", "", "ranking: hybrid, bm25, vector, or all (default: all as a table, hybrid with --json)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tools == "" || *queries == "" {
		return errors.New("--tools and --queries are required (the format of shared/eval: see its README)")
	}
	cfg, err := config.Load(os.Getenv, "")
	if err != nil {
		return err
	}
	opts := catalog.RunEvalOptions{}
	if m, err := embed.Load(embed.DefaultDir(cfg.CacheDir)); err == nil {
		opts.Build.Embedder = evalEmbedder{m}
	} else {
		fmt.Fprintf(stderr, "note: embedding model not installed (%v); keyword ranking only. Run `conductor setup`.\n", err)
	}
	if *mode == "" {
		*mode = "all"
		if *asJSON {
			*mode = "hybrid"
		}
	}
	switch *mode {
	case "all":
	case "hybrid":
		opts.Modes = []catalog.Mode{catalog.Hybrid}
	case "bm25":
		opts.Modes = []catalog.Mode{catalog.BM25}
	case "vector":
		opts.Modes = []catalog.Mode{catalog.Vector}
	default:
		return fmt.Errorf("--mode %q: use hybrid, bm25, vector or all", *mode)
	}
	reps, err := catalog.RunEval(ctx, *tools, *queries, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if len(reps) == 1 {
			return enc.Encode(reps[0])
		}
		return enc.Encode(reps)
	}
	return catalog.WriteTable(stdout, reps, nil)
}

type evalEmbedder struct{ m *embed.Model }

func (e evalEmbedder) Name() string { return e.m.Name() }
func (e evalEmbedder) Dim() int     { return e.m.Dim() }
func (e evalEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return e.m.Embed(texts)
}

func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommon("doctor", stderr)
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	problems := 0
	say := func(ok bool, format string, a ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			problems++
		}
		fmt.Fprintf(stdout, "%s %s\n", mark, fmt.Sprintf(format, a...))
	}
	cfg, err := c.loadConfig()
	if err != nil {
		say(false, "configuration: %v", err)
		return exitError{1}
	}
	say(true, "configuration: file %s", orNone(cfg.File))
	fmt.Fprintf(stdout, "     workspace %s\n     cache     %s\n     permissions: %s\n", cfg.Workspace, cfg.CacheDir, orNone(cfg.Sandbox.Permissions.String()))
	fmt.Fprintf(stdout, "     timeout %v (max %v), memory %d MB, output %d bytes\n", cfg.Sandbox.DefaultTimeout, cfg.Sandbox.MaxTimeout, cfg.Sandbox.MemoryMB, cfg.Sandbox.MaxOutputBytes)
	d, err := toolchain.FindDeno(ctx, cfg.Deno, cfg.CacheDir)
	if err != nil {
		say(false, "deno: %v", err)
	} else {
		say(true, "deno %v at %s (from %s)", d.Version, d.Path, d.Source)
	}
	if len(cfg.Sandbox.AllowedPackages) == 0 {
		say(true, "allowed packages: none")
	} else if list, err := deps.Parse(cfg.Sandbox.AllowedPackages); err != nil {
		say(false, "allowed packages: %v", err)
	} else if cache, err := deps.Open(list, filepath.Join(cfg.CacheDir, "deps")); err != nil {
		say(false, "allowed packages %s: %v (run `conductor setup`)", list, err)
	} else {
		var parts []string
		for k, v := range cache.Resolved {
			parts = append(parts, k+" → "+v)
		}
		say(true, "allowed packages installed in %s: %s", cache.Dir, strings.Join(parts, ", "))
	}
	if m, err := embed.Load(embed.DefaultDir(cfg.CacheDir)); err != nil {
		say(false, "embedding model: %v (run `conductor setup`; search falls back to keywords)", err)
	} else {
		say(true, "embedding model %s (%d dims)", m.Name(), m.Dim())
	}
	if d != nil && len(cfg.Servers) > 0 {
		cd, done, err := c.start(ctx, stderr, true)
		if err != nil {
			say(false, "start: %v", err)
		} else {
			for _, st := range cd.Status() {
				ok := st.State == "up" || st.State == "lazy"
				msg := fmt.Sprintf("server %s: %s, %d tools", st.Server, st.State, st.Tools)
				if st.Err != "" {
					msg += ": " + st.Err
				}
				say(ok, "%s", msg)
			}
			n, vec := cd.SearchReady()
			say(true, "tool index: %d tools, embeddings %v", n, vec)
			done()
		}
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problem(s)\n", problems)
		return exitError{1}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func cmdSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommon("setup", stderr)
	prune := c.fs.Bool("prune", false, "remove dependency caches of other allowlists")
	noModel := c.fs.Bool("no-model", false, "skip the embedding model")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	var d *toolchain.Deno
	if cfg.Deno != "" {
		d, err = toolchain.FindDeno(ctx, cfg.Deno, cfg.CacheDir)
	} else {
		d, err = toolchain.InstallDeno(ctx, cfg.CacheDir)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deno %v at %s\n", d.Version, d.Path)
	var list *deps.Allowlist
	if len(cfg.Sandbox.AllowedPackages) > 0 {
		list, err = deps.Parse(cfg.Sandbox.AllowedPackages)
		if err != nil {
			return fmt.Errorf("%s: %w", config.EnvAllowedPackages, err)
		}
		cache, err := deps.Install(ctx, list, deps.InstallOptions{Deno: d.Path, CacheRoot: filepath.Join(cfg.CacheDir, "deps"), Env: os.Getenv})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "allowed packages installed in %s\n", cache.Dir)
	}
	if *prune {
		removed, err := deps.Prune(filepath.Join(cfg.CacheDir, "deps"), list)
		if err != nil {
			return err
		}
		for _, r := range removed {
			fmt.Fprintf(stdout, "removed %s\n", r)
		}
	}
	if !*noModel {
		dir, err := embed.Install(ctx, cfg.CacheDir, embed.InstallOptions{})
		if err != nil {
			return fmt.Errorf("embedding model: %w", err)
		}
		fmt.Fprintf(stdout, "embedding model in %s\n", dir)
	}
	return nil
}
