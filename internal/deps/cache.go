package deps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ErrNotInstalled is returned by Open when the allowlist has no finished
// dependency cache under the cache root.
var ErrNotInstalled = errors.New("allowed packages are not installed")

// Cache is a finished, read-only dependency cache of one allowlist, laid out
// as <CacheRoot>/<Allowlist.Hash()>/{manifest.json, import_map.json,
// deno.lock, entry.js, deno/}. Its fields are not to be modified; methods are
// safe for concurrent use.
type Cache struct {
	Root      string // the cache root holding every allowlist's cache
	Dir       string // this allowlist's cache directory
	DenoDir   string // DENO_DIR of runs
	ImportMap string // import map file: bare names → pinned npm:/jsr: specifiers
	// Resolved maps each normalized entry to the version installed:
	// "npm:zod@^3" → "3.25.76".
	Resolved  map[string]string
	Allowlist *Allowlist
}

// manifest is written last by Install; its presence marks a finished cache.
type manifest struct {
	Format    int               `json:"format"`
	Allowlist []string          `json:"allowlist"`
	Resolved  map[string]string `json:"resolved"`
}

const manifestFormat = 1

func cacheDirs(root, hash string) (dir, lock string) {
	return filepath.Join(root, hash), filepath.Join(root, ".lock-"+hash)
}

// Open returns the finished cache of list under cacheRoot, or an error
// wrapping ErrNotInstalled. It takes no lock and changes nothing (for
// `conductor doctor`).
func Open(list *Allowlist, cacheRoot string) (*Cache, error) {
	root, err := filepath.Abs(cacheRoot)
	if err != nil {
		return nil, fmt.Errorf("deps: cache root: %w", err)
	}
	dir, _ := cacheDirs(root, list.Hash())
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("deps: %s: %w (run `conductor setup`)", list, ErrNotInstalled)
	}
	if err != nil {
		return nil, fmt.Errorf("deps: read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Format != manifestFormat || !slices.Equal(m.Allowlist, list.Entries()) {
		return nil, fmt.Errorf("deps: %s: manifest of %s does not match: %w", list, dir, ErrNotInstalled)
	}
	if m.Resolved == nil {
		m.Resolved = map[string]string{}
	}
	return &Cache{
		Root:      root,
		Dir:       dir,
		DenoDir:   filepath.Join(dir, "deno"),
		ImportMap: filepath.Join(dir, "import_map.json"),
		Resolved:  m.Resolved,
		Allowlist: list,
	}, nil
}

// RunFlags are the Deno flags a run adds for this cache: the import map for
// bare names, and --deny-write on the whole cache root, so that user code
// granted write access to a parent directory can neither change this cache
// nor plant a cache for another allowlist. --deny-write wins over any
// --allow-write (checked with Deno 2.9.6).
//
// No --allow-read is needed: checked with Deno 2.9.6, a run with zero
// permissions, --cached-only --no-remote --node-modules-dir=none imports
// npm:zod@^3 (and bare "zod" through the import map) from DENO_DIR, also
// from a blob: module, and the import map applies to blob: modules.
func (c *Cache) RunFlags() []string {
	return []string{"--import-map=" + c.ImportMap, "--deny-write=" + c.Root}
}

// RunEnv is the environment a run adds for this cache.
func (c *Cache) RunEnv() []string {
	return []string{"DENO_DIR=" + c.DenoDir}
}

// Check is Allowlist.Check with the installed versions: a requested range
// must match the version that was installed.
func (c *Cache) Check(specifier string) error {
	return c.Allowlist.check(specifier, c.Resolved)
}

// Rewrite maps an allowed package specifier to the pinned one the cache
// holds: "zod" → "npm:/zod@3.25.76", "npm:zod/v4" → "npm:/zod@3.25.76/v4",
// "npm:zod@^3" → "npm:/zod@3.25.76". It returns false for anything else
// (local specifiers, node:, packages or versions not allowed), which is left
// as written. The import map already maps bare names, "npm:zod" and the
// allowlisted "npm:zod@^3"; Rewrite is for what an import map cannot
// express: Deno does not apply a "npm:zod/" prefix key, so without it
// "npm:zod/v4" resolves to the registry's latest zod and fails under
// --cached-only. Call it only on specifiers that Check accepted.
func (c *Cache) Rewrite(specifier string) (string, bool) {
	if isLocal(specifier) || strings.HasPrefix(specifier, "node:") {
		return "", false
	}
	ref, err := parseRef(specifier)
	if err != nil {
		return "", false
	}
	i, ok := c.Allowlist.lookup(ref.name)
	if !ok {
		return "", false
	}
	s := c.Allowlist.specs[i]
	v, ok := c.Resolved[s.String()]
	if !ok || (ref.registry != "" && ref.registry != s.Registry) {
		return "", false
	}
	if ref.hasRange {
		r, err := parseRange(ref.rng)
		rv, verr := parseVersion(v)
		if err != nil || verr != nil || !r.matches(rv) {
			return "", false
		}
	}
	out := s.Registry + ":/" + s.Name + "@" + v
	if ref.subpath != "" {
		out += "/" + ref.subpath
	}
	return out, true
}

// Redact hides the cache's host paths in text a run produced (stack traces
// of package code name their files: file:///…/deno/npm/registry.npmjs.org/
// zod/3.25.76/v3/types.js). Package files become "npm:/zod@3.25.76/v3/
// types.js"; any other path under the cache root becomes "<deps>".
func (c *Cache) Redact(s string) string {
	if c.Root == "" || !strings.Contains(s, c.Root) {
		return s
	}
	npmDir := filepath.Join(c.DenoDir, "npm")
	re := regexp.MustCompile(`(?:file://)?` + regexp.QuoteMeta(npmDir) + `/[^/\s]+/((?:@[^/\s]+/)?[^/@\s]+)/([^/\s]+)/`)
	s = re.ReplaceAllString(s, "npm:/${1}@${2}/")
	s = strings.ReplaceAll(s, "file://"+c.Root, "<deps>")
	return strings.ReplaceAll(s, c.Root, "<deps>")
}

// denoRange matches the ranges Deno accepts inside an npm:/jsr: specifier
// (checked with Deno 2.9.6: "^1", "~3.2", "1.x", "1.2.3", "*"; not ">=",
// "<", " - " or "||").
var denoRange = regexp.MustCompile(`^([\^~]?(0|[1-9][0-9]*|[xX*])(\.(0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z.-]+)?|\*)?$`)

// importMap builds the run's import map from the resolved versions.
func importMap(list *Allowlist, resolved map[string]string) ([]byte, error) {
	imports := map[string]string{}
	for _, s := range list.Specs() {
		v := resolved[s.String()]
		pinned := s.Registry + ":/" + s.Name + "@" + v
		imports[s.Name] = pinned
		imports[s.Name+"/"] = pinned + "/"
		imports[s.Registry+":"+s.Name] = pinned
		if s.Range != "" {
			// Also for ranges Deno cannot parse (">=1 <2"): the key and the
			// specifier are URL-normalized alike, so the map still applies.
			imports[s.String()] = pinned
		}
	}
	return json.MarshalIndent(map[string]any{"imports": imports}, "", "  ")
}

// resolvedFromLock reads Deno's lockfile (format 5) and picks, for every
// entry, the highest locked version of that package matching its range.
func resolvedFromLock(list *Allowlist, lock []byte) (map[string]string, error) {
	var lf struct {
		NPM map[string]json.RawMessage `json:"npm"`
		JSR map[string]json.RawMessage `json:"jsr"`
	}
	if err := json.Unmarshal(lock, &lf); err != nil {
		return nil, fmt.Errorf("parse lockfile: %w", err)
	}
	out := map[string]string{}
	for i, s := range list.specs {
		pkgs := lf.NPM
		if s.Registry == JSR {
			pkgs = lf.JSR
		}
		var best *version
		for key := range pkgs {
			ver, ok := strings.CutPrefix(key, s.Name+"@")
			if !ok {
				continue
			}
			ver, _, _ = strings.Cut(ver, "_") // peer dependency suffix
			v, err := parseVersion(ver)
			if err != nil || !list.ranges[i].matches(v) {
				continue
			}
			if best == nil || v.compare(*best) > 0 {
				best = &v
			}
		}
		if best == nil {
			return nil, fmt.Errorf("lockfile has no version of %s", s)
		}
		out[s.String()] = best.String()
	}
	return out, nil
}

// setReadOnly removes write permission from everything under dir
// (defense in depth: --deny-write is what stops a run running as the owner
// or as root).
func setReadOnly(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, info.Mode().Perm()&^0o222)
	})
	if err != nil {
		return err
	}
	// Directories last, deepest first, so the walk above could still list them.
	for _, d := range slices.Backward(dirs) {
		if err := os.Chmod(d, 0o555); err != nil {
			return err
		}
	}
	return nil
}

// removeAll deletes a tree that setReadOnly may have locked.
func removeAll(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
