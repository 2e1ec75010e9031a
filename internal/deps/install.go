package deps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// InstallOptions configure Install.
type InstallOptions struct {
	// Deno is the Deno binary (required unless the allowlist is empty).
	Deno string
	// CacheRoot holds the caches of all allowlists: <MCP_CONDUCTOR_CACHE>/deps.
	CacheRoot string
	// Env looks up the operator's network settings, passed only to the
	// install step, never to runs: SSL_CERT_FILE, DENO_CERT,
	// DENO_TLS_CA_STORE, HTTPS_PROXY, HTTP_PROXY, NO_PROXY (and lower-case),
	// NPM_CONFIG_REGISTRY. Nil means none.
	Env func(string) string
	// Registry overrides the npm registry URL (NPM_CONFIG_REGISTRY).
	Registry string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
	// Timeout bounds the Deno install step; zero means 5 minutes.
	Timeout time.Duration
}

var passEnv = []string{
	"SSL_CERT_FILE", "SSL_CERT_DIR", "DENO_CERT", "DENO_TLS_CA_STORE",
	"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy",
	"NPM_CONFIG_REGISTRY",
}

// Install makes sure the allowlist's dependency cache exists and returns it.
//
// It is idempotent (a finished cache is reused and nothing is downloaded),
// safe against concurrent calls from goroutines and processes (an flock on
// <CacheRoot>/.lock-<hash>: one installs, the others wait and reuse it), and
// atomic: the cache is built in <CacheRoot>/.tmp-<hash>-*, the manifest is
// written last, and the directory is renamed into place and made read-only;
// a failed install removes its temp dir and leaves nothing else behind
// (lock files stay: they are empty and never block once released).
//
// The install step runs `deno cache` on a generated entry module that
// imports exactly the allowlisted specifiers, with --no-config (no
// deno.json, package.json or project .npmrc), an empty HOME, a fresh
// DENO_DIR and a lockfile. Deno runs no npm lifecycle scripts without
// --allow-scripts, and `deno cache` executes no code. Ranges Deno's
// specifiers cannot express (">=1 <2", "||", hyphen ranges) are resolved
// first: a probe into a scratch DENO_DIR fetches the package's registry
// document, the highest matching version is picked here, and that exact
// version is installed.
//
// An empty allowlist installs nothing and yields a cache with an empty
// DENO_DIR, valid for runs.
func Install(ctx context.Context, list *Allowlist, opts InstallOptions) (*Cache, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.CacheRoot == "" {
		return nil, errors.New("deps: install: no cache root")
	}
	root, err := filepath.Abs(opts.CacheRoot)
	if err != nil {
		return nil, fmt.Errorf("deps: cache root: %w", err)
	}
	if c, err := Open(list, root); err == nil {
		return c, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("deps: create cache root: %w", err)
	}
	hash := list.Hash()
	_, lockPath := cacheDirs(root, hash)
	unlock, err := lockFile(ctx, lockPath)
	if err != nil {
		return nil, fmt.Errorf("deps: lock cache: %w", err)
	}
	defer unlock()
	if c, err := Open(list, root); err == nil {
		log.Debug("dependency cache installed by another process", slog.String("allowlist", list.String()))
		return c, nil
	}
	// Leftovers of a crashed install of this list: nobody else holds the lock.
	if old, _ := filepath.Glob(filepath.Join(root, ".tmp-"+hash+"-*")); len(old) > 0 {
		for _, d := range old {
			_ = removeAll(d)
		}
	}
	if list.Len() > 0 && opts.Deno == "" {
		return nil, errors.New("deps: install: no Deno binary")
	}
	tmp, err := os.MkdirTemp(root, ".tmp-"+hash+"-")
	if err != nil {
		return nil, fmt.Errorf("deps: install: %w", err)
	}
	start := time.Now()
	log.Info("installing allowed packages", slog.String("allowlist", list.String()))
	if err := build(ctx, list, tmp, opts); err != nil {
		_ = removeAll(tmp)
		return nil, fmt.Errorf("deps: install %s: %w", list, err)
	}
	dir, _ := cacheDirs(root, hash)
	if err := os.Rename(tmp, dir); err != nil {
		_ = removeAll(tmp)
		if c, oerr := Open(list, root); oerr == nil {
			return c, nil // someone else (a pruned lock file) finished first
		}
		return nil, fmt.Errorf("deps: install: %w", err)
	}
	if err := setReadOnly(dir); err != nil {
		log.Warn("dependency cache left writable", slog.String("error", err.Error()))
	}
	c, err := Open(list, root)
	if err != nil {
		return nil, err
	}
	log.Info("allowed packages installed", slog.Any("resolved", c.Resolved), slog.Duration("took", time.Since(start)))
	return c, nil
}

// build fills tmp with a complete cache, manifest last.
func build(ctx context.Context, list *Allowlist, tmp string, opts InstallOptions) error {
	denoDir := filepath.Join(tmp, "deno")
	home := filepath.Join(tmp, "home")
	for _, d := range []string{denoDir, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	resolved := map[string]string{}
	if list.Len() > 0 {
		timeout := opts.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Minute
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		d := &denoRun{deno: opts.Deno, dir: tmp, env: installEnv(opts, home)}
		var entry strings.Builder
		entry.WriteString("// Generated by conductor: the allowed packages, cached by `deno cache`.\n")
		for i, s := range list.specs {
			spec := s.String()
			if !denoRange.MatchString(s.Range) {
				v, err := d.probe(ctx, s, list.ranges[i])
				if err != nil {
					return err
				}
				spec = s.Registry + ":" + s.Name + "@" + v
			}
			fmt.Fprintf(&entry, "import %q;\n", spec)
		}
		if err := os.WriteFile(filepath.Join(tmp, "entry.js"), []byte(entry.String()), 0o644); err != nil {
			return err
		}
		if err := d.run(ctx, denoDir, "cache", "--no-config", "--node-modules-dir=none", "--lock="+filepath.Join(tmp, "deno.lock"), "entry.js"); err != nil {
			return err
		}
		lock, err := os.ReadFile(filepath.Join(tmp, "deno.lock"))
		if err != nil {
			return fmt.Errorf("read lockfile: %w", err)
		}
		if resolved, err = resolvedFromLock(list, lock); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(home); err != nil {
		return err
	}
	im, err := importMap(list, resolved)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "import_map.json"), im, 0o644); err != nil {
		return err
	}
	m, err := json.MarshalIndent(manifest{Format: manifestFormat, Allowlist: list.Entries(), Resolved: resolved}, "", "  ")
	if err != nil {
		return err
	}
	return writeSynced(filepath.Join(tmp, "manifest.json"), m)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// installEnv is the whole environment of the install step: built from
// nothing, plus the operator's TLS, proxy and registry settings.
func installEnv(opts InstallOptions, home string) []string {
	env := []string{"HOME=" + home, "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"}
	get := opts.Env
	if get == nil {
		get = func(string) string { return "" }
	}
	for _, k := range passEnv {
		if k == "NPM_CONFIG_REGISTRY" && opts.Registry != "" {
			continue
		}
		if v := get(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	// Deno reads its extra CA from DENO_CERT; SSL_CERT_FILE alone is not
	// enough for Deno 2.9.6 (UnknownIssuer behind a TLS-inspecting proxy).
	if get("DENO_CERT") == "" && get("SSL_CERT_FILE") != "" {
		env = append(env, "DENO_CERT="+get("SSL_CERT_FILE"))
	}
	if opts.Registry != "" {
		env = append(env, "NPM_CONFIG_REGISTRY="+opts.Registry)
	}
	return env
}

type denoRun struct {
	deno string
	dir  string // working directory and the path hidden from errors
	env  []string
}

// run runs Deno with DENO_DIR=denoDir; its error carries what Deno said,
// trimmed, with the cache's host path replaced.
func (d *denoRun) run(ctx context.Context, denoDir string, args ...string) error {
	cmd := exec.CommandContext(ctx, d.deno, args...)
	cmd.Dir = d.dir
	cmd.Env = append(append([]string(nil), d.env...), "DENO_DIR="+denoDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("deno %s: %w", args[0], ctx.Err())
	}
	return fmt.Errorf("deno %s: %s", args[0], d.trim(out.String(), err))
}

// trim keeps Deno's error lines, hides host paths and bounds the length.
func (d *denoRun) trim(out string, err error) string {
	out = strings.ReplaceAll(out, "file://"+d.dir+"/", "")
	out = strings.ReplaceAll(out, d.dir+"/", "")
	out = strings.ReplaceAll(out, d.dir, "<cache>")
	if i := strings.Index(out, "error:"); i >= 0 {
		out = out[i:]
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimRight(l, " \r"); l != "" && !strings.HasPrefix(l, "Download ") {
			lines = append(lines, l)
		}
	}
	msg := strings.Join(lines, "\n")
	if msg == "" {
		return err.Error()
	}
	if len(msg) > 1500 {
		msg = msg[:1500] + " …"
	}
	return msg
}

// probe resolves a range Deno's specifiers cannot express: it asks Deno for
// a version that cannot exist, which fetches the registry document into a
// scratch DENO_DIR, and picks the highest version matching r from it.
func (d *denoRun) probe(ctx context.Context, s Spec, r semverRange) (string, error) {
	if s.Registry != NPM {
		return "", fmt.Errorf("%s: jsr ranges must be ^, ~, x or exact versions", s)
	}
	scratch, err := os.MkdirTemp(d.dir, "probe-")
	if err != nil {
		return "", err
	}
	defer removeAll(scratch)
	entry := filepath.Join(scratch, "probe.js")
	if err := os.WriteFile(entry, fmt.Appendf(nil, "import %q;\n", "npm:"+s.Name+"@0.0.0-conductor-probe"), 0o644); err != nil {
		return "", err
	}
	perr := d.run(ctx, filepath.Join(scratch, "deno"), "cache", "--no-config", "--no-lock", "--node-modules-dir=none", entry)
	docs, _ := filepath.Glob(filepath.Join(scratch, "deno", "npm", "*", s.Name, "registry.json"))
	if len(docs) != 1 {
		if perr == nil {
			perr = errors.New("no registry document")
		}
		return "", fmt.Errorf("resolve %s: %w", s, perr)
	}
	b, err := os.ReadFile(docs[0])
	if err != nil {
		return "", err
	}
	var doc struct {
		Versions map[string]json.RawMessage `json:"versions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("resolve %s: registry document: %w", s, err)
	}
	var best *version
	for k := range doc.Versions {
		v, err := parseVersion(k)
		if err != nil || !r.matches(v) {
			continue
		}
		if best == nil || v.compare(*best) > 0 {
			best = &v
		}
	}
	if best == nil {
		return "", fmt.Errorf("no version of %s matches %s", s.Name, s.Range)
	}
	return best.String(), nil
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tryLock is lockFile without waiting; ok is false when another holds it.
func tryLock(path string) (unlock func(), ok bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// Prune removes the caches, temp dirs and lock files of every allowlist
// under cacheRoot except keep's (nil keeps only the empty list's), skipping
// any that is being installed. It touches no name it did not create. It
// returns the paths removed.
func Prune(cacheRoot string, keep *Allowlist) (removed []string, err error) {
	ents, err := os.ReadDir(cacheRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deps: prune: %w", err)
	}
	keepHash := keep.Hash()
	hashes := map[string]bool{}
	for _, e := range ents {
		if h, ok := hashOf(e.Name()); ok && h != keepHash {
			hashes[h] = true
		}
	}
	var errs []error
	for h := range hashes {
		lock := filepath.Join(cacheRoot, ".lock-"+h)
		unlock, ok := tryLock(lock)
		if !ok {
			continue // an install of h is running
		}
		paths, _ := filepath.Glob(filepath.Join(cacheRoot, ".tmp-"+h+"-*"))
		if _, err := os.Lstat(filepath.Join(cacheRoot, h)); err == nil {
			paths = append(paths, filepath.Join(cacheRoot, h))
		}
		for _, p := range paths {
			if err := removeAll(p); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, p)
		}
		if err := os.Remove(lock); err == nil {
			removed = append(removed, lock)
		}
		unlock()
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("deps: prune: %w", errors.Join(errs...))
	}
	return removed, nil
}

// hashOf recognizes the names Install creates: <hash>, .lock-<hash>,
// .tmp-<hash>-<random>.
func hashOf(name string) (string, bool) {
	h := name
	if s, ok := strings.CutPrefix(name, ".lock-"); ok {
		h = s
	} else if s, ok := strings.CutPrefix(name, ".tmp-"); ok {
		h, _, _ = strings.Cut(s, "-")
	}
	if len(h) != 32 {
		return "", false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return h, true
}
