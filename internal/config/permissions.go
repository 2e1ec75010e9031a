package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// permKinds lists the Deno permissions in the order Flags emits them.
var permKinds = []string{"read", "write", "net", "env", "run", "sys", "ffi", "import"}

// sysNames are the values Deno accepts for --allow-sys / --deny-sys.
var sysNames = []string{
	"hostname", "osRelease", "osUptime", "loadavg", "networkInterfaces",
	"systemMemoryInfo", "uid", "gid", "cpus", "homedir", "getegid",
	"statfs", "getPriority", "setPriority", "userInfo",
}

var (
	hostLabelRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)
	envPermRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\*?$`)
	progNameRE  = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)
)

// refusedFlags are permission flags that are never accepted, with the reason.
var refusedFlags = map[string]string{
	"allow-all":    "grants every permission",
	"A":            "-A grants every permission",
	"-A":           "-A grants every permission",
	"allow-ffi":    "native code escapes every other permission",
	"allow-hrtime": "obsolete flag, removed from Deno",
	"deny-hrtime":  "obsolete flag, removed from Deno",
	"allow-import": "remote imports are refused; packages come from MCP_CONDUCTOR_ALLOWED_PACKAGES",
}

// acceptedFlags is shown in the error for an unknown flag.
const acceptedFlags = "allow-read=DIR, allow-write=DIR, allow-net[=HOST[:PORT]], allow-env=NAME, allow-run=PROG, allow-sys=NAME, deny-read, deny-write, deny-net, deny-env, deny-run, deny-sys, deny-ffi, deny-import (values joined with ';')"

// parseRunArgs parses MCP_CONDUCTOR_RUN_ARGS: a comma list of Deno
// permission flags without dashes ("allow-read=/a;/b,deny-net=x"). Paths
// expand and become absolute (relative to base, or the current directory).
// Errors quote the offending entry; none of these values is a secret.
func parseRunArgs(s string, x expander, base string) (Permissions, error) {
	var p Permissions
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	for i, raw := range strings.Split(s, ",") {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			return Permissions{}, fmt.Errorf("entry %d is empty (stray comma?)", i+1)
		}
		if err := p.addFlag(entry, x, base); err != nil {
			return Permissions{}, fmt.Errorf("%q: %w", entry, err)
		}
	}
	return p, nil
}

// addFlag adds one flag ("allow-read=/a;/b", "--deny-net") to p.
func (p *Permissions) addFlag(entry string, x expander, base string) error {
	name, val, hasVal := strings.Cut(entry, "=")
	flag := strings.TrimPrefix(strings.TrimSpace(name), "--")
	if why, ok := refusedFlags[flag]; ok {
		return fmt.Errorf("%s is refused: %s", flag, why)
	}
	verb, kind, ok := strings.Cut(flag, "-")
	if !ok || (verb != "allow" && verb != "deny") || !slices.Contains(permKinds, kind) {
		return fmt.Errorf("unknown or unsupported flag %s (accepted: %s)", flag, acceptedFlags)
	}
	var vals []string
	if hasVal {
		for _, v := range strings.Split(val, ";") {
			v = strings.TrimSpace(v)
			if v == "" {
				return fmt.Errorf("%s has an empty value", flag)
			}
			vals = append(vals, v)
		}
	}
	if verb == "deny" {
		return p.deny(kind, vals, x, base)
	}
	return p.allow(kind, vals, x, base)
}

// allow grants kind for vals; vals empty means unscoped.
func (p *Permissions) allow(kind string, vals []string, x expander, base string) error {
	if len(vals) == 0 {
		switch kind {
		case "net":
			p.NetAll = true
			return nil
		case "read", "write":
			return fmt.Errorf("unscoped allow-%s grants the whole filesystem and is refused; name directories: allow-%s=DIR", kind, kind)
		default:
			return fmt.Errorf("unscoped allow-%s is refused; name what to allow: allow-%s=VALUE", kind, kind)
		}
	}
	vals, err := checkPermValues(kind, vals, x, base, true)
	if err != nil {
		return err
	}
	switch kind {
	case "read":
		p.Read = appendUnique(p.Read, vals...)
	case "write":
		p.Write = appendUnique(p.Write, vals...)
	case "net":
		p.Net = appendUnique(p.Net, vals...)
	case "env":
		p.Env = appendUnique(p.Env, vals...)
	case "run":
		p.Run = appendUnique(p.Run, vals...)
	case "sys":
		p.Sys = appendUnique(p.Sys, vals...)
	default:
		return fmt.Errorf("allow-%s is refused", kind)
	}
	return nil
}

// deny adds --deny-kind; vals empty denies the permission entirely.
func (p *Permissions) deny(kind string, vals []string, x expander, base string) error {
	vals, err := checkPermValues(kind, vals, x, base, false)
	if err != nil {
		return err
	}
	if p.Deny == nil {
		p.Deny = map[string][]string{}
	}
	cur, ok := p.Deny[kind]
	if ok && len(cur) == 0 {
		return nil // already denied entirely
	}
	if len(vals) == 0 {
		p.Deny[kind] = []string{}
		return nil
	}
	p.Deny[kind] = appendUnique(cur, vals...)
	return nil
}

// checkPermValues validates (and for paths expands) the values of one flag.
func checkPermValues(kind string, vals []string, x expander, base string, allow bool) ([]string, error) {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if strings.Contains(v, ",") {
			return nil, fmt.Errorf("value %q contains a comma, which Deno cannot take in a flag", v)
		}
		switch kind {
		case "read", "write", "ffi":
			pth, err := x.path(v, base)
			if err != nil {
				return nil, fmt.Errorf("path %q: %w", v, err)
			}
			if strings.Contains(pth, ",") {
				return nil, fmt.Errorf("path %q contains a comma, which Deno cannot take in a flag", pth)
			}
			if allow && pth == "/" {
				return nil, fmt.Errorf("allow-%s=/ grants the whole filesystem and is refused; name directories", kind)
			}
			v = pth
		case "net", "import":
			if err := checkNetHost(v); err != nil {
				return nil, fmt.Errorf("host %q: %w", v, err)
			}
		case "env":
			if !envPermRE.MatchString(v) {
				return nil, fmt.Errorf("%q is not an environment variable name (NAME or PREFIX*)", v)
			}
		case "run":
			if strings.Contains(v, "/") {
				pth, err := x.path(v, base)
				if err != nil {
					return nil, fmt.Errorf("program %q: %w", v, err)
				}
				v = pth
			} else if !progNameRE.MatchString(v) || v == "." || v == ".." {
				return nil, fmt.Errorf("%q is not a program name or path", v)
			}
		case "sys":
			if !slices.Contains(sysNames, v) {
				return nil, fmt.Errorf("%q is not a Deno sys permission (one of %s)", v, strings.Join(sysNames, ", "))
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// checkNetHost accepts HOST or HOST:PORT, where HOST is a DNS name
// (optionally "*.name"), an IPv4 address or a bracketed IPv6 address.
func checkNetHost(v string) error {
	host, port := v, ""
	hasPort := false
	if strings.Contains(v, "://") || strings.ContainsAny(v, "/?#@ \t") {
		return errors.New("expected HOST[:PORT], not a URL")
	}
	switch {
	case strings.HasPrefix(v, "["):
		i := strings.IndexByte(v, ']')
		if i < 0 {
			return errors.New("missing ']'")
		}
		host = v[1:i]
		rest := v[i+1:]
		if rest != "" {
			if rest[0] != ':' {
				return errors.New("expected :PORT after ']'")
			}
			port, hasPort = rest[1:], true
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return errors.New("not an IPv6 address in brackets")
		}
	case strings.Count(v, ":") > 1:
		return errors.New("IPv6 addresses need brackets: [::1]:8080")
	default:
		if h, pt, ok := strings.Cut(v, ":"); ok {
			host, port, hasPort = h, pt, true
		}
		if net.ParseIP(host) == nil && !hostLabelRE.MatchString(host) {
			return errors.New("not a host name or IP address")
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	return nil
}

func appendUnique(dst []string, vals ...string) []string {
	for _, v := range vals {
		if !slices.Contains(dst, v) {
			dst = append(dst, v)
		}
	}
	return dst
}

// merge adds the grants of q to p (values deduplicated, p's order first).
func (p *Permissions) merge(q Permissions) {
	p.Read = appendUnique(p.Read, q.Read...)
	p.Write = appendUnique(p.Write, q.Write...)
	p.Net = appendUnique(p.Net, q.Net...)
	p.NetAll = p.NetAll || q.NetAll
	p.Env = appendUnique(p.Env, q.Env...)
	p.Run = appendUnique(p.Run, q.Run...)
	p.Sys = appendUnique(p.Sys, q.Sys...)
	for k, v := range q.Deny {
		if p.Deny == nil {
			p.Deny = map[string][]string{}
		}
		cur, ok := p.Deny[k]
		switch {
		case ok && len(cur) == 0:
		case len(v) == 0:
			p.Deny[k] = []string{}
		default:
			p.Deny[k] = appendUnique(cur, v...)
		}
	}
}

// Validate checks p as Load would: paths absolute, hosts, names and sys
// values well formed, no value with a comma, no unknown deny key. It is for
// Permissions built in Go; Load's results always pass.
func (p Permissions) Validate() error {
	x := expander{home: "/", env: func(string) string { return "" }}
	check := func(flag string, kind string, vals []string, allow bool) error {
		for _, v := range vals {
			if v == "" {
				return fmt.Errorf("%s: empty value", flag)
			}
			if (kind == "read" || kind == "write" || kind == "ffi") && !isAbsClean(v) {
				return fmt.Errorf("%s: path %q is not absolute and clean", flag, v)
			}
			if strings.Contains(v, "${") {
				return fmt.Errorf("%s: value %q is not expanded", flag, v)
			}
		}
		_, err := checkPermValues(kind, vals, x, "/", allow)
		if err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
		return nil
	}
	for _, c := range []struct {
		kind string
		vals []string
	}{{"read", p.Read}, {"write", p.Write}, {"net", p.Net}, {"env", p.Env}, {"run", p.Run}, {"sys", p.Sys}} {
		if err := check("allow-"+c.kind, c.kind, c.vals, true); err != nil {
			return err
		}
	}
	for k, v := range p.Deny {
		if !slices.Contains(permKinds, k) {
			return fmt.Errorf("deny-%s: unknown permission", k)
		}
		if err := check("deny-"+k, k, v, false); err != nil {
			return err
		}
	}
	return nil
}

// Flags returns the Deno flags for p in a fixed order: allow-read, -write,
// -net, -env, -run, -sys, then deny-* in the same order; values keep the
// order they were given in. No grants gives nil (zero permissions).
func (p Permissions) Flags() []string {
	var out []string
	add := func(flag string, vals []string) {
		if len(vals) > 0 {
			out = append(out, "--"+flag+"="+strings.Join(vals, ","))
		}
	}
	add("allow-read", p.Read)
	add("allow-write", p.Write)
	if p.NetAll {
		out = append(out, "--allow-net")
	} else {
		add("allow-net", p.Net)
	}
	add("allow-env", p.Env)
	add("allow-run", p.Run)
	add("allow-sys", p.Sys)
	for _, k := range permKinds {
		vals, ok := p.Deny[k]
		if !ok {
			continue
		}
		if len(vals) == 0 {
			out = append(out, "--deny-"+k)
		} else {
			add("deny-"+k, vals)
		}
	}
	return out
}

// String describes p for logs and `conductor doctor`: the flags separated by
// spaces, or "none" when nothing is granted or denied.
func (p Permissions) String() string {
	f := p.Flags()
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, " ")
}

// IsZero reports whether p grants and denies nothing.
func (p Permissions) IsZero() bool { return len(p.Flags()) == 0 }

// Clone returns a deep copy of p.
func (p Permissions) Clone() Permissions {
	c := p
	c.Read = slices.Clone(p.Read)
	c.Write = slices.Clone(p.Write)
	c.Net = slices.Clone(p.Net)
	c.Env = slices.Clone(p.Env)
	c.Run = slices.Clone(p.Run)
	c.Sys = slices.Clone(p.Sys)
	if p.Deny != nil {
		c.Deny = make(map[string][]string, len(p.Deny))
		for k, v := range p.Deny {
			c.Deny[k] = append([]string{}, v...)
		}
	}
	return c
}

// Merge returns the union of p and q: grants of both (deduplicated, p's
// first) and denials of both, where denying a whole permission (an empty
// list) wins over denying some values. Neither p nor q is modified.
func (p Permissions) Merge(q Permissions) Permissions {
	out := p.Clone()
	out.merge(q)
	return out
}
