package deps

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotPackage is returned by Check for specifiers that do not name a
// package: relative ("./x", "../x"), absolute ("/x") and URL specifiers
// with the file:, http:, https:, data: or blob: scheme. They are the
// sandbox's business (it rewrites ./mcp/<server> and refuses the rest), not
// the allowlist's.
var ErrNotPackage = errors.New("not a package specifier")

// NotAllowedError says that an import names a package, or a version of it,
// that the allowlist does not allow. Its message names the specifier and
// lists the allowlist, for the user's program to be fixed.
type NotAllowedError struct {
	Specifier string
	Reason    string   // "not in the allowlist", "version ^2 is outside the allowed ^3 (installed 3.25.76)", ...
	Allowed   []string // normalized allowlist entries
}

func (e *NotAllowedError) Error() string {
	allowed := "none"
	if len(e.Allowed) > 0 {
		allowed = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("import %q is not allowed: %s; allowed packages: %s", e.Specifier, e.Reason, allowed)
}

// pkgRef is a parsed package import specifier.
type pkgRef struct {
	registry string // NPM, JSR, or "" for a bare specifier
	name     string
	rng      string // as written; "" when absent
	hasRange bool
	subpath  string // "v4" for "zod/v4"
}

// parseRef parses "npm:[/]NAME[@RANGE][/SUB]", "jsr:[/]@S/N[@RANGE][/SUB]"
// and bare "NAME[/SUB]".
func parseRef(spec string) (pkgRef, error) {
	var r pkgRef
	rest := spec
	if reg, after, ok := strings.Cut(spec, ":"); ok && (reg == NPM || reg == JSR) {
		r.registry, rest = reg, strings.TrimPrefix(after, "/")
	}
	scoped := strings.HasPrefix(rest, "@")
	// The name ends at the first "/" (second one for scoped names).
	end := len(rest)
	slash := strings.IndexByte(rest, '/')
	if scoped && slash >= 0 {
		if j := strings.IndexByte(rest[slash+1:], '/'); j >= 0 {
			end = slash + 1 + j
		}
	} else if !scoped && slash >= 0 {
		end = slash
	}
	head := rest[:end]
	if end < len(rest) {
		r.subpath = rest[end+1:]
	}
	r.name, r.rng, r.hasRange = splitNameRange(head)
	if r.registry == "" && r.hasRange {
		return r, errors.New("a bare import cannot carry a version; use npm:NAME@RANGE or jsr:NAME@RANGE")
	}
	if r.registry != "" && r.hasRange && r.rng == "" {
		return r, errors.New("empty version after @")
	}
	reg := r.registry
	if reg == "" {
		reg = NPM
	}
	if err := validName(reg, r.name); err != nil {
		return r, err
	}
	return r, nil
}

// isLocal reports whether spec is relative, absolute, or a URL of a scheme
// that the sandbox handles.
func isLocal(spec string) bool {
	if strings.HasPrefix(spec, "./") || strings.HasPrefix(spec, "../") || strings.HasPrefix(spec, "/") || spec == "." || spec == ".." {
		return true
	}
	scheme, _, ok := strings.Cut(spec, ":")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case "file", "http", "https", "data", "blob":
		return true
	}
	return false
}

// Check decides one import specifier found in user code, before it runs:
//   - relative, absolute, file:, http(s):, data:, blob: → ErrNotPackage
//     (wrapped), for the sandbox to handle;
//   - "node:NAME" → nil (Deno's permissions gate what builtins can do);
//   - "npm:NAME[@RANGE][/SUB]", "jsr:..." → nil when NAME is allowlisted in
//     that registry and RANGE overlaps the allowed range (some version
//     satisfies both); a missing RANGE is fine;
//   - bare "NAME[/SUB]" → nil when NAME is allowlisted (the import map of the
//     cache maps it);
//   - anything else → *NotAllowedError.
//
// Without an installed cache the version test is range overlap; Cache.Check
// is stricter and tests the resolved version. Either way a version that
// passes here but is not in the cache still fails at run time, since runs
// are --cached-only.
func (a *Allowlist) Check(specifier string) error {
	return a.check(specifier, nil)
}

func (a *Allowlist) check(specifier string, resolved map[string]string) error {
	if isLocal(specifier) {
		return fmt.Errorf("import %q: %w", specifier, ErrNotPackage)
	}
	deny := func(reason string) error {
		return &NotAllowedError{Specifier: specifier, Reason: reason, Allowed: a.Entries()}
	}
	if name, ok := strings.CutPrefix(specifier, "node:"); ok {
		if name == "" {
			return deny("empty node: builtin name")
		}
		return nil
	}
	ref, err := parseRef(specifier)
	if err != nil {
		return deny(err.Error())
	}
	i, ok := a.lookup(ref.name)
	if !ok {
		return deny("package not in the allowlist")
	}
	s := a.specs[i]
	if ref.registry != "" && ref.registry != s.Registry {
		return deny(fmt.Sprintf("%s is allowed from %s:, not %s:", ref.name, s.Registry, ref.registry))
	}
	if !ref.hasRange {
		return nil
	}
	req, err := parseRange(ref.rng)
	if err != nil {
		return deny(err.Error())
	}
	allowed := s.Range
	if allowed == "" {
		allowed = "any version"
	}
	if v, ok := resolved[s.String()]; ok {
		rv, err := parseVersion(v)
		if err == nil && !req.matches(rv) {
			return deny(fmt.Sprintf("version %s does not match the installed %s (allowed: %s)", ref.rng, v, allowed))
		}
		if err == nil {
			return nil
		}
	}
	if !req.intersects(a.ranges[i]) {
		return deny(fmt.Sprintf("version %s is outside the allowed range %s", ref.rng, allowed))
	}
	return nil
}
