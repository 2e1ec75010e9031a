// Package deps owns the package allowlist of the sandbox: it parses the
// administrator's entries ("npm:zod@^3", "jsr:@std/path"), checks the import
// specifiers of user code against them, installs the allowed packages into a
// dependency cache dedicated to one allowlist, and says how a run uses that
// cache read-only.
//
// Installation follows the two-step model of mcp-run-python. Step 1
// (Install) is the only step with network access: Deno caches a generated
// entry module that imports exactly the allowlisted specifiers into a fresh
// DENO_DIR, with a lockfile, an empty HOME and no lifecycle scripts, and no
// user code runs. Step 2 (every run, in internal/sandbox) uses that DENO_DIR
// with --cached-only --no-remote, --deny-write on it and the files made
// read-only, so user code can import what was installed and nothing else.
//
// The sandbox, the CLI (setup, doctor) and the root package may import deps;
// deps imports no other internal package.
package deps

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Registry names of a Spec.
const (
	NPM = "npm"
	JSR = "jsr"
)

// Spec is one allowlist entry.
type Spec struct {
	Registry string // NPM or JSR
	Name     string // "zod", "@std/path"
	Range    string // npm semver range, whitespace-normalized; "" means any version
}

// String is the normalized entry: "npm:zod@^3", "jsr:@std/path".
func (s Spec) String() string {
	if s.Range == "" {
		return s.Registry + ":" + s.Name
	}
	return s.Registry + ":" + s.Name + "@" + s.Range
}

// Allowlist is a parsed, validated list of allowed packages. It is
// immutable and safe for concurrent use. A nil *Allowlist is the empty list.
type Allowlist struct {
	specs  []Spec        // sorted by String()
	ranges []semverRange // parallel to specs
}

// Parse validates allowlist entries: "npm:NAME[@RANGE]" or
// "jsr:@SCOPE/NAME[@RANGE]", where RANGE is an npm semver range ("^1",
// "~3.2", ">=1 <2", "1.2.3", "1.x", "^1 || ^2"). Surrounding whitespace is
// ignored; empty entries are refused, and so is naming a package twice (also
// across registries, since a bare import can name only one of them).
func Parse(entries []string) (*Allowlist, error) {
	a := &Allowlist{}
	seen := map[string]string{}
	for _, e := range entries {
		s, r, err := parseEntry(e)
		if err != nil {
			return nil, fmt.Errorf("allowed package %q: %w", e, err)
		}
		if prev, ok := seen[s.Name]; ok {
			return nil, fmt.Errorf("allowed package %q: %s is already allowed by %q", e, s.Name, prev)
		}
		seen[s.Name] = e
		a.specs = append(a.specs, s)
		a.ranges = append(a.ranges, r)
	}
	idx := make([]int, len(a.specs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int { return strings.Compare(a.specs[i].String(), a.specs[j].String()) })
	specs, ranges := make([]Spec, len(idx)), make([]semverRange, len(idx))
	for k, i := range idx {
		specs[k], ranges[k] = a.specs[i], a.ranges[i]
	}
	a.specs, a.ranges = specs, ranges
	return a, nil
}

func parseEntry(e string) (Spec, semverRange, error) {
	e = strings.TrimSpace(e)
	if e == "" {
		return Spec{}, nil, errors.New("empty entry")
	}
	reg, rest, ok := strings.Cut(e, ":")
	if !ok || (reg != NPM && reg != JSR) {
		return Spec{}, nil, errors.New(`want "npm:NAME[@RANGE]" or "jsr:@SCOPE/NAME[@RANGE]"`)
	}
	name, rng, hasRange := splitNameRange(rest)
	if err := validName(reg, name); err != nil {
		return Spec{}, nil, err
	}
	if hasRange {
		rng = strings.Join(strings.Fields(rng), " ")
		if rng == "" {
			return Spec{}, nil, errors.New("empty version range after @")
		}
		if strings.ContainsAny(rng, "/\\") {
			return Spec{}, nil, errors.New("subpaths are not allowed in the allowlist; allow the package and import its subpaths")
		}
	}
	r, err := parseRange(rng)
	if err != nil {
		return Spec{}, nil, err
	}
	return Spec{Registry: reg, Name: name, Range: rng}, r, nil
}

// splitNameRange splits "@scope/name@^1" into "@scope/name", "^1", true.
func splitNameRange(s string) (name, rng string, hasRange bool) {
	start := 0
	if strings.HasPrefix(s, "@") {
		start = 1
	}
	if i := strings.IndexByte(s[start:], '@'); i >= 0 {
		return s[:start+i], s[start+i+1:], true
	}
	return s, "", false
}

// validName applies npm's package name rules (scoped or not, URL-safe, at
// most 214 characters; old mixed-case names are accepted) and jsr's (always
// scoped, lower-case letters, digits and dashes).
func validName(reg, name string) error {
	if name == "" {
		return errors.New("missing package name")
	}
	if len(name) > 214 {
		return errors.New("package name longer than 214 characters")
	}
	scope, base, scoped := "", name, false
	if strings.HasPrefix(name, "@") {
		var ok bool
		scope, base, ok = strings.Cut(name[1:], "/")
		if !ok || scope == "" || base == "" {
			return fmt.Errorf("bad scoped name %q: want @SCOPE/NAME", name)
		}
		scoped = true
	}
	if reg == JSR && !scoped {
		return fmt.Errorf("jsr package %q must be scoped: @SCOPE/NAME", name)
	}
	for _, part := range []string{scope, base} {
		if part == "" && !scoped {
			continue
		}
		if part[0] == '.' || part[0] == '_' || part[0] == '-' && reg == JSR {
			return fmt.Errorf("bad package name %q: %q starts with %q", name, part, part[:1])
		}
		for _, c := range part {
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
			if reg == NPM {
				ok = ok || c >= 'A' && c <= 'Z' || c == '.' || c == '_' || c == '~'
			}
			if !ok {
				return fmt.Errorf("bad package name %q: character %q", name, c)
			}
		}
	}
	return nil
}

// Specs returns the entries, sorted by their normalized form.
func (a *Allowlist) Specs() []Spec {
	if a.Len() == 0 {
		return nil
	}
	return slices.Clone(a.specs)
}

// Len is the number of entries.
func (a *Allowlist) Len() int {
	if a == nil {
		return 0
	}
	return len(a.specs)
}

// Entries returns the normalized entries, sorted: "npm:zod@^3".
func (a *Allowlist) Entries() []string {
	out := make([]string, 0, a.Len())
	for _, s := range a.Specs() {
		out = append(out, s.String())
	}
	return out
}

// String is the normalized list joined with ", ", or "(none)".
func (a *Allowlist) String() string {
	if a.Len() == 0 {
		return "(none)"
	}
	return strings.Join(a.Entries(), ", ")
}

// Hash identifies the normalized list; it names the dependency cache
// directory, so two lists that differ in anything get different caches.
func (a *Allowlist) Hash() string {
	h := sha256.New()
	h.Write([]byte("conductor-deps-v1\n"))
	for _, e := range a.Entries() {
		h.Write([]byte(e + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func (a *Allowlist) lookup(name string) (int, bool) {
	if a == nil {
		return 0, false
	}
	for i, s := range a.specs {
		if s.Name == name {
			return i, true
		}
	}
	return 0, false
}
