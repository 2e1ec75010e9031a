// Package sandbox runs one untrusted TypeScript/JavaScript program in a fresh
// Deno subprocess with zero permissions except those granted, and returns its
// result, output and a classified error.
//
// The harness (harness.js, embedded) is Deno's entry module; user code is
// checked and transpiled with esbuild in Go and loaded by the harness from a
// blob: URL. The harness talks to the conductor over the child's stdin and
// stdout with frames that carry a per-run secret user code cannot read.
//
// It may be imported by the conductor's wiring packages; it imports only
// internal/config.
package sandbox

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
)

//go:embed harness.js
var harnessSource []byte

// Kind classifies why a run failed.
type Kind string

// The error kinds of DESIGN.md.
const (
	KindTimeout     Kind = "timeout"
	KindMemory      Kind = "memory"
	KindPermission  Kind = "permission"
	KindSyntax      Kind = "syntax"
	KindException   Kind = "exception"
	KindOutputLimit Kind = "output_limit"
	KindInternal    Kind = "internal"
)

// Error is the failure of a run, as the user sees it.
type Error struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// Line and Column locate syntax errors in the user's code (1-based).
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Stack  string `json:"stack,omitempty"`
}

func (e *Error) Error() string { return string(e.Kind) + ": " + e.Message }

// Result is what one run produced. Value is nil when the program has no last
// expression or it evaluated to undefined.
type Result struct {
	Value    json.RawMessage
	Stdout   string
	Stderr   string
	Error    *Error
	Duration time.Duration
}

// CallHandler serves a tool call made by user code. It returns the value the
// promise resolves to, or an error whose text becomes the rejection message.
// It is called concurrently, once per call, and must honour ctx.
type CallHandler func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error)

// Spec describes one run.
type Spec struct {
	Code string
	// Dir is the conversation root: the process's working directory, holding
	// workspace/ and mcp/. It must exist (see PrepareDir).
	Dir string
	// Permissions are the grants in force, before narrowing to Dir.
	Permissions config.Permissions
	Timeout     time.Duration
	MemoryMB    int
	// MaxOutputBytes caps stdout, stderr and the result together.
	MaxOutputBytes int
	Importer       Importer
	Calls          CallHandler
	// OnOutput, if set, receives output as it arrives ("stdout" or "stderr",
	// a chunk ending at a line break when possible). Called from one goroutine.
	OnOutput func(stream, text string)
}

// Options configure a Runner.
type Options struct {
	// Deno is the Deno binary.
	Deno string
	// Workspace is the root of all conversation directories. The harness file
	// is written under it, so stack traces name no path outside the workspace.
	Workspace string
	// DenoDir is the dependency cache used read-only by runs (DENO_DIR).
	DenoDir string
	// Home is an empty directory used as HOME.
	Home string
	// ExtraFlags and ExtraEnv come from the dependency cache (import map, ...).
	ExtraFlags []string
	ExtraEnv   []string
	// UID and GID run the sandbox as another user (defence in depth for a
	// conductor running as root: file modes then bind the program too). 0
	// means "as the conductor". The Deno binary, the workspace and the caches
	// must then be reachable by that user.
	UID, GID int
	// Preload lists module specifiers (the allowed packages) that the
	// harness imports before it says ready, when the run may use packages:
	// administrator-approved code from the read-only cache, importable by
	// user code anyway, and then already loaded when it does.
	Preload []string
	// Modules, if set, lists the module files a pooled process for a
	// conversation directory loads while it waits, so a run importing one
	// finds it loaded. Each file must be immutable (its path names its
	// content): a spare may serve any later run of the directory.
	Modules func(dir string) []string
	// HidePaths maps more host paths (e.g. the dependency cache root) to
	// the labels that replace them in everything a run returns.
	HidePaths map[string]string
	// Pool configures the warm pool; its zero value turns it off.
	Pool   PoolOptions
	Logger *slog.Logger
}

// Runner starts sandbox processes. It is safe for concurrent use.
type Runner struct {
	opts    Options
	harness string
	uid     int
	gid     int
	scrub   *strings.Replacer
	log     *slog.Logger
	pool    *pool // nil when off
	reap    sync.WaitGroup
	prep    prepCache
	// onStart, a test hook, learns the pid of every Deno process started.
	onStart func(pid int)
}

// New checks the options and writes the harness file.
func New(opts Options) (*Runner, error) {
	if opts.Deno == "" {
		return nil, errors.New("sandbox: no Deno binary")
	}
	if opts.Workspace == "" || !filepath.IsAbs(opts.Workspace) {
		return nil, fmt.Errorf("sandbox: workspace %q is not an absolute path", opts.Workspace)
	}
	r := &Runner{opts: opts, log: opts.Logger, uid: opts.UID, gid: opts.GID}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Workspace, 0o711); err != nil {
		return nil, fmt.Errorf("sandbox: workspace: %w", err)
	}
	if r.dropsPrivileges() {
		// The sandbox user must traverse the root, never list it.
		if err := os.Chmod(opts.Workspace, 0o711); err != nil {
			return nil, fmt.Errorf("sandbox: workspace: %w", err)
		}
	}
	sum := sha256.Sum256(harnessSource)
	dir := filepath.Join(opts.Workspace, ".conductor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: harness dir: %w", err)
	}
	r.harness = filepath.Join(dir, "harness-"+hex.EncodeToString(sum[:6])+".js")
	if err := writeFileAtomic(r.harness, harnessSource, 0o444); err != nil {
		return nil, fmt.Errorf("sandbox: harness: %w", err)
	}
	for _, d := range []*string{&r.opts.Home, &r.opts.DenoDir} {
		if *d == "" {
			continue
		}
		if err := os.MkdirAll(*d, 0o755); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	pairs := []string{}
	add := func(path, label string) {
		if path == "" {
			return
		}
		u := (&url.URL{Scheme: "file", Path: path}).String()
		pairs = append(pairs, u, label, "file://"+path, label, path, label)
		// The same path inside a JSON string (a result, tool arguments).
		if q, _ := json.Marshal(path); string(q[1:len(q)-1]) != path {
			pairs = append(pairs, string(q[1:len(q)-1]), label)
		}
	}
	add(r.harness, "<harness>")
	add(opts.Deno, "<deno>")
	if real, err := filepath.EvalSymlinks(opts.Deno); err == nil && real != opts.Deno {
		add(real, "<deno>")
	}
	add(filepath.Dir(opts.Deno), "<deno-dir>")
	add(opts.DenoDir, "<deno-cache>")
	add(opts.Home, "<home>")
	hidden := make([]string, 0, len(opts.HidePaths))
	for p := range opts.HidePaths {
		hidden = append(hidden, p)
	}
	sort.Slice(hidden, func(i, j int) bool { return len(hidden[i]) > len(hidden[j]) }) // longest first
	for _, p := range hidden {
		add(p, opts.HidePaths[p])
	}
	r.scrub = strings.NewReplacer(pairs...)
	if opts.Pool.Max > 0 {
		r.pool = newPool(r, opts.Pool)
	}
	return r, nil
}

// Close kills the warm pool's processes and waits for its goroutines. Runs
// in progress are not stopped (their contexts do that); runs after Close
// start their own process. Close is idempotent.
func (r *Runner) Close() error {
	if r.pool != nil {
		r.pool.close()
	}
	r.reap.Wait()
	return nil
}

// scrubJSON removes host paths from JSON text. The labels need no escaping,
// so valid JSON stays valid; if it did not, the text is kept as a string.
func (r *Runner) scrubJSON(v json.RawMessage) json.RawMessage {
	out := r.scrub.Replace(string(v))
	if out == string(v) {
		return v
	}
	if !json.Valid([]byte(out)) {
		b, _ := json.Marshal(out)
		return b
	}
	return json.RawMessage(out)
}

func (r *Runner) dropsPrivileges() bool { return r.uid != 0 && r.uid != os.Geteuid() }

// Harness is the path of the harness file.
func (r *Runner) Harness() string { return r.harness }

// PrepareDir creates a conversation root with workspace/ (writable by the
// sandbox user) and mcp/ (read-only to it). With a pool whose Warm profile
// is set, a process for the conversation's first run starts in the
// background.
func (r *Runner) PrepareDir(dir string) error {
	if err := r.prepareDir(dir); err != nil {
		return err
	}
	if r.pool != nil && r.pool.opts.Warm != nil && filepath.IsAbs(dir) {
		w := r.pool.opts.Warm
		mem := w.MemoryMB
		if mem <= 0 {
			mem = 256
		}
		dir = filepath.Clean(dir)
		r.pool.warm(dir, r.args(mem, w.Packages, flags(narrow(w.Permissions, r.opts.Workspace, dir))), mem)
	}
	return nil
}

func (r *Runner) prepareDir(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "mcp"), 0o755); err != nil {
		return err
	}
	ws := filepath.Join(dir, "workspace")
	if err := os.MkdirAll(ws, 0o700); err != nil {
		return err
	}
	if r.dropsPrivileges() {
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(ws, r.uid, r.gid); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if b, err := os.ReadFile(path); err == nil && string(b) == string(data) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
