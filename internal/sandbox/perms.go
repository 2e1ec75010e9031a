package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mcp-conductor/conductor/internal/config"
)

// narrow confines file grants to one conversation: a grant on the workspace
// root (or above it) becomes a grant on this conversation's own directory, a
// grant on another conversation's directory is dropped, and grants that do
// not touch the workspace pass through. Reads reach the conversation root
// (workspace/ and mcp/); writes reach workspace/ only. mcp/ is always readable
// (generated modules are imported from there) and never writable.
func narrow(p config.Permissions, wsRoot, dir string) config.Permissions {
	out := p
	out.Read = narrowPaths(p.Read, wsRoot, dir)
	out.Write = narrowPaths(p.Write, wsRoot, filepath.Join(dir, "workspace"))
	out.Read = appendUnique(out.Read, filepath.Join(dir, "mcp"))
	out.Deny = map[string][]string{}
	for k, v := range p.Deny {
		out.Deny[k] = append([]string(nil), v...)
	}
	// A deny-write of everything (a key with no values) must stay one: a
	// scoped value would weaken it.
	if v, all := out.Deny["write"]; len(out.Write) > 0 && !(all && len(v) == 0) {
		out.Deny["write"] = appendUnique(out.Deny["write"], filepath.Join(dir, "mcp"))
	}
	return out
}

func narrowPaths(paths []string, wsRoot, target string) []string {
	var out []string
	for _, p := range paths {
		switch {
		case within(wsRoot, p): // the grant covers the whole workspace root
			out = appendUnique(out, target)
		case within(p, wsRoot): // a grant inside the workspace root
			if within(p, target) || within(target, p) {
				if within(target, p) {
					out = appendUnique(out, p)
				} else {
					out = appendUnique(out, target)
				}
			}
		default:
			out = appendUnique(out, p)
		}
	}
	return out
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator)) || dir == "/"
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// checkLinks refuses a workspace holding a symbolic link that leads outside
// the workspace, or a file with more than one hard link (it may be another
// file of the system placed there by someone else).
func checkLinks(ws string) error {
	return filepath.WalkDir(ws, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(ws), path)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(path), target)
			}
			resolved, err := filepath.EvalSymlinks(path)
			if err != nil {
				resolved = filepath.Clean(target)
			}
			if !within(resolved, ws) || !within(filepath.Clean(target), ws) {
				return fmt.Errorf("%s is a symbolic link to a path outside the workspace; remove it", rel)
			}
			return nil
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				return fmt.Errorf("%s has %d hard links; files linked from outside the workspace are refused", rel, st.Nlink)
			}
		}
		return nil
	})
}

// flags renders permissions as Deno flags (config owns the one rendering).
func flags(p config.Permissions) []string { return p.Flags() }
