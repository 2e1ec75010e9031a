package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serverNameRE is the form of a server name: letters, digits, '_' and '-'.
// The name becomes part of module paths (./mcp/<name>) and tool names
// ("<name>.tool"), so nothing else is allowed.
var serverNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// headerNameRE is an HTTP header field name (RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func isAbsClean(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p }

// checkTimeout validates one timeout value.
func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return errors.New("must be positive")
	}
	if d > MaxTimeoutLimit {
		return fmt.Errorf("must be at most %d ms (24h)", MaxTimeoutLimit.Milliseconds())
	}
	return nil
}

func checkMemoryMB(n int64) error {
	if n < MinMemoryMB || n > MaxMemoryMB {
		return fmt.Errorf("must be from %d to %d (MB)", MinMemoryMB, MaxMemoryMB)
	}
	return nil
}

func checkMaxOutput(n int64) error {
	if n < MinMaxOutputBytes || n > MaxMaxOutputBytes {
		return fmt.Errorf("must be from %d to %d bytes (the whole response of a run stays below 10 MiB)", MinMaxOutputBytes, MaxMaxOutputBytes)
	}
	return nil
}

// checkPackage validates one raw allowlist entry; internal/deps checks more.
func checkPackage(s string) error {
	if s == "" {
		return errors.New("empty entry (stray comma?)")
	}
	if strings.ContainsAny(s, " \t\r\n,") {
		return fmt.Errorf("entry %q contains a space or comma", s)
	}
	return nil
}

// parseStoreURL validates and normalises a store URL: sqlite://ABS (after
// expansion; relative paths join base when base is not empty) or
// redis[s]://[user:pass@]host:port[/db]. Errors never show a password.
func parseStoreURL(s string, x expander, base string) (string, error) {
	switch {
	case strings.HasPrefix(s, "sqlite://"):
		p := strings.TrimPrefix(s, "sqlite://")
		if p == "" {
			return "", fmt.Errorf("%q has no path: use sqlite:///abs/path.db", s)
		}
		p, err := x.expand(p)
		if err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		if !filepath.IsAbs(p) && base == "" {
			return "", fmt.Errorf("%q: the sqlite path must be absolute: sqlite:///abs/path.db", s)
		}
		p, err = absPath(p, base)
		if err != nil {
			return "", err
		}
		return "sqlite://" + p, nil
	case strings.HasPrefix(s, "redis://"), strings.HasPrefix(s, "rediss://"):
		u, err := url.Parse(s)
		if err != nil {
			return "", errors.New("not a valid redis URL: use redis://host:port/db")
		}
		shown := u.Redacted()
		if u.Hostname() == "" || u.Port() == "" {
			return "", fmt.Errorf("%q: need host and port: redis://host:port/db", shown)
		}
		if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: bad port", shown)
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				return "", fmt.Errorf("%q: database %q is not a non-negative integer", shown, db)
			}
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("%q: query and fragment are not supported", shown)
		}
		return s, nil
	}
	return "", fmt.Errorf("%q: use sqlite:///abs/path.db or redis://host:port/db", redactURL(s))
}

// checkHTTPURL accepts absolute http and https URLs.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", redactURL(s))
	}
	return nil
}

// redactURL hides the password and query values of a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.ContainsAny(s, "@?") {
			return "<unparseable URL>"
		}
		return s
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func checkAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port", s)
	}
	_ = host
	return nil
}

func checkToken(s string) error {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return errors.New("contains a space or control character (value not shown)")
		}
	}
	return nil
}

func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin (scheme://host[:port])", s)
	}
	return nil
}

// validateServer checks one server entry. p is the field path of the entry
// ("mcpServers[2]"). Env and header values are never quoted.
func validateServer(p string, s *Server) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", p, field, fmt.Sprintf(format, args...)))
	}
	if !serverNameRE.MatchString(s.Name) {
		bad("name", "%q must match ^[a-zA-Z0-9_-]+$", s.Name)
	}
	switch {
	case s.Command == "" && s.URL == "":
		errs = append(errs, fmt.Errorf("%s: needs either command (stdio server) or url (HTTP server)", p))
	case s.Command != "" && s.URL != "":
		errs = append(errs, fmt.Errorf("%s: has both command and url; give exactly one", p))
	case s.Command != "":
		if s.Transport == "" {
			s.Transport = "stdio"
		}
		if s.Transport != "stdio" {
			bad("transport", "%q does not go with command (use stdio)", s.Transport)
		}
		if len(s.Headers) > 0 {
			bad("headers", "only for url servers")
		}
	default:
		if err := checkHTTPURL(s.URL); err != nil {
			bad("url", "%v", err)
		}
		if s.Transport == "" {
			s.Transport = "http"
		}
		if s.Transport != "http" && s.Transport != "sse" {
			bad("transport", "%q does not go with url (use http or sse)", s.Transport)
		}
		if len(s.Args) > 0 || len(s.Env) > 0 || s.Cwd != "" {
			errs = append(errs, fmt.Errorf("%s: args, env and cwd are only for command servers", p))
		}
	}
	for _, k := range sortedKeys(s.Env) {
		if !envNameRE.MatchString(k) {
			bad("env", "%q is not an environment variable name", k)
		}
	}
	for _, k := range sortedKeys(s.Headers) {
		if !headerNameRE.MatchString(k) {
			bad("headers", "%q is not a header name", k)
		}
		if strings.ContainsAny(s.Headers[k], "\r\n") {
			bad("headers."+k, "contains a line break (value not shown)")
		}
	}
	if s.Cwd != "" && !isAbsClean(s.Cwd) {
		bad("cwd", "%q is not an absolute path", s.Cwd)
	}
	return errors.Join(errs...)
}

func checkPolicy(p string, tp ToolPolicy) error {
	for i, pat := range tp.AllowTools {
		if strings.TrimSpace(pat) == "" {
			return fmt.Errorf("%s.allowTools[%d]: empty pattern", p, i)
		}
	}
	for i, pat := range tp.DenyTools {
		if strings.TrimSpace(pat) == "" {
			return fmt.Errorf("%s.denyTools[%d]: empty pattern", p, i)
		}
	}
	return nil
}

// Validate checks a Config however it was built (Load, Default, or by hand
// in Go) and fills derived fields (Server.Transport). Errors use the field
// paths of the config file ("sandbox.timeout", "mcpServers[1].url"); Load
// reports the variable or file a bad value came from instead.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	for _, f := range []struct{ name, v string }{{"workspace", c.Workspace}, {"cache", c.CacheDir}} {
		if !isAbsClean(f.v) {
			bad(f.name, fmt.Errorf("%q is not an absolute, clean path", f.v))
		}
	}
	if c.Deno != "" && strings.Contains(c.Deno, "/") && !isAbsClean(c.Deno) {
		bad("deno", fmt.Errorf("%q is not an absolute path", c.Deno))
	}
	sb := &c.Sandbox
	bad("sandbox.timeout", checkTimeout(sb.DefaultTimeout))
	bad("sandbox.maxTimeout", checkTimeout(sb.MaxTimeout))
	if sb.DefaultTimeout > sb.MaxTimeout {
		bad("sandbox.timeout", fmt.Errorf("%d ms is more than sandbox.maxTimeout %d ms", sb.DefaultTimeout.Milliseconds(), sb.MaxTimeout.Milliseconds()))
	}
	bad("sandbox.memoryMB", checkMemoryMB(int64(sb.MemoryMB)))
	bad("sandbox.maxOutputBytes", checkMaxOutput(int64(sb.MaxOutputBytes)))
	bad("sandbox permissions", sb.Permissions.Validate())
	bad("sandbox.pool", checkPool(sb.Pool))
	for i, pk := range sb.AllowedPackages {
		bad(fmt.Sprintf("sandbox.allowedPackages[%d]", i), checkPackage(pk))
	}
	names := map[string]int{}
	for i := range c.Servers {
		p := fmt.Sprintf("mcpServers[%d]", i)
		if err := validateServer(p, &c.Servers[i]); err != nil {
			errs = append(errs, err)
		}
		if j, dup := names[c.Servers[i].Name]; dup {
			bad(p+".name", fmt.Errorf("%q is already the name of mcpServers[%d]", c.Servers[i].Name, j))
		} else {
			names[c.Servers[i].Name] = i
		}
	}
	for _, name := range sortedKeys(c.Policy) {
		p := "servers." + name
		if _, ok := names[name]; !ok {
			bad(p, fmt.Errorf("no server named %q in mcpServers", name))
		}
		bad(p, checkPolicy(p, c.Policy[name]))
	}
	if c.Catalog.EmbeddingURL != "" {
		bad("catalog.embeddingURL", checkHTTPURL(c.Catalog.EmbeddingURL))
	}
	if k := c.Catalog.EmbeddingKeyEnv; k != "" && !envNameRE.MatchString(k) {
		bad("catalog.embeddingKeyEnv", fmt.Errorf("%q is not an environment variable name", k))
	}
	if strings.Contains(c.Store.URL, "${") || strings.HasPrefix(c.Store.URL, "sqlite://~") {
		bad("store.url", errors.New("not expanded"))
	} else if _, err := parseStoreURL(c.Store.URL, expander{}, ""); err != nil {
		bad("store.url", err)
	}
	if c.Store.ConversationTTL <= 0 {
		bad("store.conversationTTL", errors.New("must be positive"))
	}
	if c.Store.MaxConversations <= 0 {
		bad("store.maxConversations", errors.New("must be positive"))
	}
	if c.Store.MaxWorkspaceBytes <= 0 {
		bad("store.maxWorkspaceBytes", errors.New("must be positive"))
	}
	bad("http.addr", checkAddr(c.HTTP.Addr))
	bad("http.token", checkToken(c.HTTP.Token))
	for i, o := range c.HTTP.AllowedOrigins {
		bad(fmt.Sprintf("http.allowedOrigins[%d]", i), checkOrigin(o))
	}
	errs = append(errs, c.HTTP.checkRoles()...)
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkRoles checks that every role named (tokenRole, defaultRole,
// tokens[].role) is defined, and that tokens differ from each other and
// from http.token (values never quoted).
func (h *HTTP) checkRoles() []error {
	var errs []error
	ref := func(p, role string) {
		if role == "" {
			return
		}
		if _, ok := h.Roles[role]; !ok {
			errs = append(errs, fmt.Errorf("%s: no role named %q in http.roles (roles: %s)", p, role, strings.Join(sortedKeys(h.Roles), ", ")))
		}
	}
	ref("http.tokenRole", h.TokenRole)
	ref("http.defaultRole", h.DefaultRole)
	if h.TokenRole != "" && h.Token == "" {
		errs = append(errs, fmt.Errorf("http.tokenRole: there is no http.token (or %s) to give a role", EnvHTTPToken))
	}
	seen := map[string]string{}
	if h.Token != "" {
		seen[h.Token] = "http.token"
	}
	for i, t := range h.Tokens {
		p := fmt.Sprintf("http.tokens[%d]", i)
		ref(p+".role", t.Role)
		if prev, dup := seen[t.Token]; dup && t.Token != "" {
			errs = append(errs, fmt.Errorf("%s.token: same value as %s (value not shown)", p, prev))
		}
		seen[t.Token] = p + ".token"
	}
	return errs
}

func checkPool(p Pool) error {
	switch {
	case p.Max < 0 || p.Max > MaxPoolSize:
		return fmt.Errorf("max %d: must be from 0 (off) to %d", p.Max, MaxPoolSize)
	case p.Max == 0:
		return nil
	case p.Min < 0 || p.Min > p.Max:
		return fmt.Errorf("min %d: must be from 0 to max (%d)", p.Min, p.Max)
	case p.PerConversation < 1 || p.PerConversation > p.Max:
		return fmt.Errorf("perConversation %d: must be from 1 to max (%d)", p.PerConversation, p.Max)
	case p.IdleTimeout <= 0 || p.IdleTimeout > 24*time.Hour:
		return fmt.Errorf("idleTimeout %v: must be positive and at most 24h", p.IdleTimeout)
	}
	return nil
}
