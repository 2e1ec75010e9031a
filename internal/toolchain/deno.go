// Package toolchain finds and installs the programs the conductor runs: the
// Deno binary (pinned, from the deno npm package) today. It is used by the
// wiring layer and by `conductor setup` and `conductor doctor`; it imports no
// other internal package.
package toolchain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// PinnedDeno is the Deno version `conductor setup` installs.
const PinnedDeno = "2.9.6"

// MinDeno is the oldest Deno the sandbox supports.
var MinDeno = Version{2, 8, 1}

// Version is a Deno version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// Deno is a usable Deno binary.
type Deno struct {
	Path    string
	Version Version
	// Source says where it was found: "MCP_CONDUCTOR_DENO", "PATH" or "cache".
	Source string
}

// ErrNoDeno means no usable Deno was found; the message says how to get one.
var ErrNoDeno = errors.New("no usable Deno found")

var versionRE = regexp.MustCompile(`deno (\d+)\.(\d+)\.(\d+)`)

// Probe runs `deno --version` on path.
func Probe(ctx context.Context, path string) (Version, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = []string{"NO_COLOR=1", "DENO_NO_UPDATE_CHECK=1"}
	out, err := cmd.Output()
	if err != nil {
		return Version{}, fmt.Errorf("run %s --version: %w", path, err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return Version{}, fmt.Errorf("%s --version printed no version", path)
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	return v, nil
}

// CachedDenoPath is where `conductor setup` puts Deno inside cacheDir.
func CachedDenoPath(cacheDir string) string {
	return filepath.Join(cacheDir, "deno-"+PinnedDeno, "node_modules", "deno", "deno")
}

// FindDeno picks the Deno binary: the explicit one (MCP_CONDUCTOR_DENO) if
// given — it must work and be new enough —, else the first new-enough one on
// PATH, else the one `conductor setup` installed in cacheDir.
func FindDeno(ctx context.Context, explicit, cacheDir string) (*Deno, error) {
	if explicit != "" {
		v, err := Probe(ctx, explicit)
		if err != nil {
			return nil, fmt.Errorf("MCP_CONDUCTOR_DENO=%s: %w", explicit, err)
		}
		if v.Less(MinDeno) {
			return nil, fmt.Errorf("MCP_CONDUCTOR_DENO=%s is Deno %v; the conductor needs Deno %v or newer (run `conductor setup` to install %s)", explicit, v, MinDeno, PinnedDeno)
		}
		return &Deno{Path: explicit, Version: v, Source: "MCP_CONDUCTOR_DENO"}, nil
	}
	var notes []string
	if p, err := exec.LookPath("deno"); err == nil {
		v, err := Probe(ctx, p)
		switch {
		case err != nil:
			notes = append(notes, err.Error())
		case v.Less(MinDeno):
			notes = append(notes, fmt.Sprintf("%s is Deno %v, older than %v", p, v, MinDeno))
		default:
			return &Deno{Path: p, Version: v, Source: "PATH"}, nil
		}
	}
	if cacheDir != "" {
		p := CachedDenoPath(cacheDir)
		if _, err := os.Stat(p); err == nil {
			v, err := Probe(ctx, p)
			if err == nil && !v.Less(MinDeno) {
				return &Deno{Path: p, Version: v, Source: "cache"}, nil
			}
			if err != nil {
				notes = append(notes, err.Error())
			}
		}
	}
	msg := fmt.Sprintf("%v: run `conductor setup` to install Deno %s into the cache, or set MCP_CONDUCTOR_DENO to a Deno %v or newer", ErrNoDeno, PinnedDeno, MinDeno)
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return nil, errors.New(msg)
}

// InstallDeno installs the pinned Deno into cacheDir with npm (the deno npm
// package ships the binary). It is idempotent.
func InstallDeno(ctx context.Context, cacheDir string) (*Deno, error) {
	target := CachedDenoPath(cacheDir)
	if v, err := Probe(ctx, target); err == nil && !v.Less(MinDeno) {
		return &Deno{Path: target, Version: v, Source: "cache"}, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return nil, errors.New("install Deno: npm not found on PATH (install Node.js and npm, or set MCP_CONDUCTOR_DENO)")
	}
	prefix := filepath.Dir(filepath.Dir(filepath.Dir(target)))
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return nil, fmt.Errorf("install Deno: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(prefix), ".deno-install-*")
	if err != nil {
		return nil, fmt.Errorf("install Deno: %w", err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund",
		"--no-save", "--loglevel=error", "deno@"+PinnedDeno)
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("install Deno %s with npm: %w: %s", PinnedDeno, err, strings.TrimSpace(lastLines(string(out), 5)))
	}
	bin := filepath.Join(tmp, "node_modules", "deno", "deno")
	if _, err := Probe(ctx, bin); err != nil {
		// Older packages keep the binary in the platform package only.
		alt := filepath.Join(tmp, "node_modules", "@deno", "linux-x64-glibc", "deno")
		if _, err2 := os.Stat(alt); err2 != nil {
			return nil, fmt.Errorf("install Deno: installed package has no working binary: %w", err)
		}
		if err := os.Link(alt, bin); err != nil {
			return nil, fmt.Errorf("install Deno: %w", err)
		}
	}
	_ = os.RemoveAll(prefix)
	if err := os.Rename(tmp, prefix); err != nil {
		return nil, fmt.Errorf("install Deno: %w", err)
	}
	v, err := Probe(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("install Deno: %w", err)
	}
	return &Deno{Path: target, Version: v, Source: "cache"}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
