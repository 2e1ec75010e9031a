package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// loadFile reads the config file at path (absolute) into l.cfg. Relative
// paths in it resolve against its directory. Every error names the file
// and the field.
func (l *loader) loadFile(path string) error {
	tree, err := l.readTree(path)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	d := &fileDec{l: l, x: l.x, dir: filepath.Dir(path), file: path, cfg: l.cfg}
	d.top(tree)
	if len(d.errs) > 0 {
		errs := make([]error, len(d.errs))
		for i, e := range d.errs {
			errs[i] = fmt.Errorf("config file %s: %w", path, e)
		}
		return errors.Join(errs...)
	}
	l.cfg.File = path
	return nil
}

// readTree decodes the file by its extension into generic JSON values
// (map[string]any, []any, string, json.Number, bool, nil).
func (l *loader) readTree(path string) (any, error) {
	ext := strings.ToLower(filepath.Ext(path))
	switch ext {
	case ".json", ".yaml", ".yml":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if ext != ".json" {
			data, err = yaml.YAMLToJSONStrict(data)
			if err != nil {
				return nil, fmt.Errorf("YAML: %w", err)
			}
		}
		return decodeJSON(data)
	case ".ts", ".mts", ".js", ".mjs":
		if _, err := os.Stat(path); err != nil {
			return nil, err
		}
		data, err := evalScript(path, l.denoForScript(), l.env)
		if err != nil {
			return nil, err
		}
		return decodeJSON(data)
	}
	return nil, fmt.Errorf("unsupported file type %q: use .json, .yaml, .yml, .ts, .mts, .js or .mjs", ext)
}

// decodeJSON decodes one JSON value, refusing duplicate keys and trailing data.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readJSONValue(dec, "")
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			line, col := lineCol(data, dec.InputOffset())
			return nil, fmt.Errorf("line %d, column %d: %w", line, col, err)
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		line, col := lineCol(data, dec.InputOffset())
		return nil, fmt.Errorf("line %d, column %d: data after the top-level value", line, col)
	}
	return v, nil
}

func readJSONValue(dec *json.Decoder, path string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		m := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			kp := joinPath(path, k)
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("%s: duplicate key", kp)
			}
			v, err := readJSONValue(dec, kp)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		_, err := dec.Token()
		return m, err
	case json.Delim('['):
		l := []any{}
		for i := 0; dec.More(); i++ {
			v, err := readJSONValue(dec, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := dec.Token()
		return l, err
	}
	return tok, nil
}

func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

var identRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*$`)

// joinPath appends key to a field path: a.b, or a["odd key"].
func joinPath(path, key string) string {
	if !identRE.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// fileDec walks the decoded file into a Config, collecting every error.
type fileDec struct {
	l    *loader
	x    expander
	dir  string
	file string
	cfg  *Config
	errs []error
}

func (d *fileDec) errf(path, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// object decodes an object with the given fields; a null or missing field is
// skipped, an unknown one is an error.
func (d *fileDec) object(path string, v any, fields map[string]func(p string, v any)) {
	m, ok := v.(map[string]any)
	if !ok {
		d.errf(path, "must be an object, got %s", kindOf(v))
		return
	}
	for _, k := range sortedKeys(m) {
		p := joinPath(path, k)
		f, ok := fields[k]
		if !ok {
			known := sortedKeys(fields)
			known = slices.DeleteFunc(known, func(s string) bool { return strings.HasPrefix(s, "$") })
			d.errf(p, "unknown field (known fields: %s)", strings.Join(known, ", "))
			continue
		}
		if m[k] == nil {
			continue
		}
		f(p, m[k])
	}
}

func (d *fileDec) str(p string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		d.errf(p, "must be a string, got %s", kindOf(v))
	}
	return s, ok
}

// expanded decodes a string and expands variables in it. Secret values are
// never quoted in errors (the expander never quotes its input).
func (d *fileDec) expanded(p string, v any) (string, bool) {
	s, ok := d.str(p, v)
	if !ok {
		return "", false
	}
	e, err := d.x.expand(s)
	if err != nil {
		d.errf(p, "%v", err)
		return "", false
	}
	return e, true
}

func (d *fileDec) path(p string, v any) (string, bool) {
	s, ok := d.str(p, v)
	if !ok {
		return "", false
	}
	r, err := d.x.path(s, d.dir)
	if err != nil {
		d.errf(p, "%q: %v", s, err)
		return "", false
	}
	return r, true
}

func (d *fileDec) strList(p string, v any) ([]string, bool) {
	l, ok := v.([]any)
	if !ok {
		d.errf(p, "must be an array of strings, got %s", kindOf(v))
		return nil, false
	}
	out := make([]string, 0, len(l))
	good := true
	for i, e := range l {
		s, ok := d.str(fmt.Sprintf("%s[%d]", p, i), e)
		good = good && ok
		out = append(out, s)
	}
	return out, good
}

// strMap decodes an object of strings, expanding values. The values are
// treated as secrets: errors name the key, never the value.
func (d *fileDec) strMap(p string, v any) (map[string]string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		d.errf(p, "must be an object of strings, got %s", kindOf(v))
		return nil, false
	}
	out := make(map[string]string, len(m))
	good := true
	for _, k := range sortedKeys(m) {
		s, ok := d.expanded(joinPath(p, k), m[k])
		good = good && ok
		out[k] = s
	}
	return out, good
}

func (d *fileDec) boolean(p string, v any) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		d.errf(p, "must be true or false, got %s", kindOf(v))
	}
	return b, ok
}

func (d *fileDec) integer(p string, v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		d.errf(p, "must be an integer, got %s", kindOf(v))
		return 0, false
	}
	i, err := n.Int64()
	if err != nil {
		d.errf(p, "%s is not an integer", n)
		return 0, false
	}
	return i, true
}

// duration decodes an integer of milliseconds or a Go duration string ("30s").
func (d *fileDec) duration(p string, v any) (time.Duration, bool) {
	switch t := v.(type) {
	case json.Number:
		n, err := t.Int64()
		if err != nil {
			d.errf(p, "%s is not an integer number of milliseconds", t)
			return 0, false
		}
		if n <= 0 || n > MaxTimeoutLimit.Milliseconds()*365 {
			d.errf(p, "%d ms is out of range", n)
			return 0, false
		}
		return time.Duration(n) * time.Millisecond, true
	case string:
		dur, err := time.ParseDuration(t)
		if err != nil {
			d.errf(p, "%q is not a duration (\"30s\", \"5m\") nor an integer of milliseconds", t)
			return 0, false
		}
		return dur, true
	}
	d.errf(p, "must be milliseconds (integer) or a duration string (\"30s\"), got %s", kindOf(v))
	return 0, false
}

func (d *fileDec) top(v any) {
	d.object("", v, map[string]func(string, any){
		"$schema":    func(string, any) {},
		"workspace":  d.setPath(&d.cfg.Workspace),
		"cache":      d.setPath(&d.cfg.CacheDir),
		"deno":       d.deno,
		"mcpServers": d.servers,
		"catalog":    d.catalog,
		"sandbox":    d.sandbox,
		"servers":    d.policies,
		"store":      d.store,
		"http":       d.http,
		"telemetry":  d.telemetry,
	})
	// Policies name servers: check after both are decoded.
	names := map[string]bool{}
	for _, s := range d.cfg.Servers {
		names[s.Name] = true
	}
	for _, n := range sortedKeys(d.cfg.Policy) {
		if !names[n] {
			d.errf(joinPath("servers", n), "no server named %q in mcpServers", n)
		}
	}
	for _, r := range sortedKeys(d.cfg.HTTP.Roles) {
		for _, n := range sortedKeys(d.cfg.HTTP.Roles[r].Servers) {
			if !names[n] {
				d.errf(joinPath(joinPath(joinPath("http.roles", r), "servers"), n), "no server named %q in mcpServers", n)
			}
		}
	}
}

func (d *fileDec) telemetry(p string, v any) {
	d.object(p, v, map[string]func(string, any){
		"otlpEndpoint": func(fp string, v any) {
			s, ok := d.expanded(fp, v)
			if !ok {
				return
			}
			if err := checkHTTPURL(s); err != nil {
				d.errf(fp, "%v", err)
				return
			}
			d.cfg.Telemetry.OTLPEndpoint = s
		},
	})
}

// roles decodes http.roles: {name: {claims: {claim: [values]}, servers:
// {server: {allowTools, denyTools}}}}.
func (d *fileDec) roles(p string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		d.errf(p, "must be an object of roles by name, got %s", kindOf(v))
		return
	}
	h := &d.cfg.HTTP
	for _, name := range sortedKeys(m) {
		rp := joinPath(p, name)
		if !serverNameRE.MatchString(name) {
			d.errf(rp, "role names match %s", serverNameRE)
			continue
		}
		r := Role{Name: name, Servers: map[string]ToolPolicy{}}
		d.object(rp, m[name], map[string]func(string, any){
			"claims": func(fp string, v any) {
				cm, ok := v.(map[string]any)
				if !ok {
					d.errf(fp, "must be an object of value lists by claim name, got %s", kindOf(v))
					return
				}
				r.Claims = map[string][]string{}
				for _, c := range sortedKeys(cm) {
					l, ok := d.strList(joinPath(fp, c), cm[c])
					if !ok {
						continue
					}
					if len(l) == 0 {
						d.errf(joinPath(fp, c), "lists no values (a claim that matches nothing)")
						continue
					}
					r.Claims[c] = l
				}
			},
			"servers": func(fp string, v any) {
				sm, ok := v.(map[string]any)
				if !ok {
					d.errf(fp, "must be an object of policies by server name, got %s", kindOf(v))
					return
				}
				for _, s := range sortedKeys(sm) {
					sp := joinPath(fp, s)
					var tp ToolPolicy
					d.object(sp, sm[s], map[string]func(string, any){
						"allowTools": func(fp string, v any) { tp.AllowTools, _ = d.strList(fp, v) },
						"denyTools":  func(fp string, v any) { tp.DenyTools, _ = d.strList(fp, v) },
					})
					if err := checkPolicy(sp, tp); err != nil {
						d.errs = append(d.errs, err)
					}
					r.Servers[s] = tp
				}
			},
		})
		if h.Roles == nil {
			h.Roles = map[string]Role{}
		}
		h.Roles[name] = r
	}
}

// tokens decodes http.tokens: [{name, token, role}].
func (d *fileDec) tokens(p string, v any) {
	l, ok := v.([]any)
	if !ok {
		d.errf(p, "must be an array of {name, token, role}, got %s", kindOf(v))
		return
	}
	seen := map[string]bool{}
	for i, e := range l {
		tp := fmt.Sprintf("%s[%d]", p, i)
		var t HTTPToken
		d.object(tp, e, map[string]func(string, any){
			"name": func(fp string, v any) { t.Name, _ = d.str(fp, v) },
			"token": func(fp string, v any) {
				s, ok := d.expanded(fp, v)
				if !ok {
					return
				}
				if err := checkToken(s); err != nil {
					d.errf(fp, "%v", err)
					return
				}
				t.Token = s
			},
			"role": func(fp string, v any) { t.Role, _ = d.str(fp, v) },
		})
		switch {
		case !serverNameRE.MatchString(t.Name):
			d.errf(tp+".name", "required; names match %s", serverNameRE)
		case seen[t.Name]:
			d.errf(tp+".name", "%q is already the name of another token", t.Name)
		case t.Token == "":
			d.errf(tp+".token", "required (use ${env:NAME} to keep it out of the file)")
		case t.Role == "":
			d.errf(tp+".role", "required")
		}
		seen[t.Name] = true
		d.cfg.HTTP.Tokens = append(d.cfg.HTTP.Tokens, t)
	}
}

func (d *fileDec) setPath(dst *string) func(string, any) {
	return func(p string, v any) {
		if s, ok := d.path(p, v); ok {
			*dst = s
		}
	}
}

func (d *fileDec) deno(p string, v any) {
	s, ok := d.str(p, v)
	if !ok {
		return
	}
	r, err := d.l.denoPath(s, d.dir)
	if err != nil {
		d.errf(p, "%q: %v", s, err)
		return
	}
	d.cfg.Deno = r
}

func (d *fileDec) servers(p string, v any) {
	seen := map[string]string{}
	add := func(sp string, s Server, ok bool) {
		if !ok {
			return
		}
		if err := validateServer(sp, &s); err != nil {
			d.errs = append(d.errs, err)
			return
		}
		if prev, dup := seen[s.Name]; dup {
			d.errf(sp+".name", "%q is already the name of %s", s.Name, prev)
			return
		}
		seen[s.Name] = sp
		d.cfg.Servers = append(d.cfg.Servers, s)
	}
	switch t := v.(type) {
	case []any:
		for i, e := range t {
			sp := fmt.Sprintf("%s[%d]", p, i)
			s, ok := d.server(sp, e, "")
			add(sp, s, ok)
		}
	case map[string]any:
		// The Claude Desktop form: {"name": {...}}, ordered by name.
		for _, name := range sortedKeys(t) {
			sp := joinPath(p, name)
			s, ok := d.server(sp, t[name], name)
			add(sp, s, ok)
		}
	default:
		d.errf(p, "must be an array of servers or an object of servers by name, got %s", kindOf(v))
	}
}

// server decodes one server; key is its name in the object form.
func (d *fileDec) server(p string, v any, key string) (Server, bool) {
	s := Server{Name: key}
	before := len(d.errs)
	var transport, typ string
	d.object(p, v, map[string]func(string, any){
		"name": func(fp string, v any) {
			n, ok := d.str(fp, v)
			if !ok {
				return
			}
			if key != "" && n != key {
				d.errf(fp, "%q differs from the key %q", n, key)
				return
			}
			s.Name = n
		},
		"command": func(fp string, v any) {
			c, ok := d.expanded(fp, v)
			if !ok {
				return
			}
			if strings.Contains(c, "/") {
				c, _ = absPath(c, d.dir)
			}
			s.Command = c
		},
		"args": func(fp string, v any) {
			l, ok := v.([]any)
			if !ok {
				d.errf(fp, "must be an array of strings, got %s", kindOf(v))
				return
			}
			for i, e := range l {
				a, _ := d.expanded(fmt.Sprintf("%s[%d]", fp, i), e)
				s.Args = append(s.Args, a)
			}
		},
		"env":     func(fp string, v any) { s.Env, _ = d.strMap(fp, v) },
		"headers": func(fp string, v any) { s.Headers, _ = d.strMap(fp, v) },
		"cwd": func(fp string, v any) {
			s.Cwd, _ = d.path(fp, v)
		},
		"url": func(fp string, v any) {
			raw, ok := d.str(fp, v)
			if !ok {
				return
			}
			u, err := d.x.expand(raw)
			if err != nil {
				d.errf(fp, "%v", err)
				return
			}
			s.URL = u
		},
		"transport": func(fp string, v any) { transport, _ = d.str(fp, v) },
		"type":      func(fp string, v any) { typ, _ = d.str(fp, v) },
		"lazy":      func(fp string, v any) { s.Lazy, _ = d.boolean(fp, v) },
	})
	if key == "" && s.Name == "" && len(d.errs) == before {
		d.errf(p, "needs a name")
	}
	norm := func(fp, t string) string {
		switch strings.ToLower(t) {
		case "":
			return ""
		case "stdio":
			return "stdio"
		case "http", "streamable-http", "streamablehttp", "streamable_http":
			return "http"
		case "sse":
			return "sse"
		}
		d.errf(fp, "%q is not a transport (stdio, http or sse)", t)
		return ""
	}
	nt, ny := norm(p+".transport", transport), norm(p+".type", typ)
	if nt != "" && ny != "" && nt != ny {
		d.errf(p, "transport %q and type %q disagree", transport, typ)
	}
	s.Transport = cmpOr(nt, ny)
	return s, len(d.errs) == before
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (d *fileDec) catalog(p string, v any) {
	c := &d.cfg.Catalog
	d.object(p, v, map[string]func(string, any){
		"embeddingModel": func(fp string, v any) { c.EmbeddingModel, _ = d.str(fp, v) },
		"embeddingURL": func(fp string, v any) {
			u, ok := d.expanded(fp, v)
			if !ok {
				return
			}
			if err := checkHTTPURL(u); err != nil {
				d.errf(fp, "%v", err)
				return
			}
			c.EmbeddingURL = u
		},
		"embeddingKeyEnv": func(fp string, v any) {
			k, ok := d.str(fp, v)
			if ok && !envNameRE.MatchString(k) {
				d.errf(fp, "%q is not an environment variable name", k)
				return
			}
			c.EmbeddingKeyEnv = k
		},
		"cacheSpecs": func(fp string, v any) { c.CacheSpecs, _ = d.boolean(fp, v) },
	})
}

func (d *fileDec) sandbox(p string, v any) {
	sb := &d.cfg.Sandbox
	perm := func(kind string) func(string, any) {
		return func(fp string, v any) {
			if kind == "net" {
				if b, ok := v.(bool); ok {
					if !b {
						d.errf(fp, "false grants nothing: leave it out")
					}
					sb.Permissions.NetAll = sb.Permissions.NetAll || b
					return
				}
			}
			vals, ok := d.strList(fp, v)
			if !ok {
				return
			}
			if len(vals) == 0 {
				d.errf(fp, "an empty list grants nothing: leave it out")
				return
			}
			var q Permissions
			for i, val := range vals {
				if err := q.allow(kind, []string{val}, d.x, d.dir); err != nil {
					d.errf(fmt.Sprintf("%s[%d]", fp, i), "%v", err)
				}
			}
			sb.Permissions.merge(q)
		}
	}
	d.object(p, v, map[string]func(string, any){
		"allowRead":  perm("read"),
		"allowWrite": perm("write"),
		"allowNet":   perm("net"),
		"allowEnv":   perm("env"),
		"allowedPackages": func(fp string, v any) {
			l, ok := d.strList(fp, v)
			if !ok {
				return
			}
			var pkgs []string
			for i, e := range l {
				e = strings.TrimSpace(e)
				if err := checkPackage(e); err != nil {
					d.errf(fmt.Sprintf("%s[%d]", fp, i), "%v", err)
					return
				}
				pkgs = appendUnique(pkgs, e)
			}
			sb.AllowedPackages = pkgs
		},
		"timeout": func(fp string, v any) {
			if t, ok := d.duration(fp, v); ok {
				if err := checkTimeout(t); err != nil {
					d.errf(fp, "%v", err)
					return
				}
				sb.DefaultTimeout, d.l.timeoutSrc = t, fp+" in config file "+d.file
			}
		},
		"maxTimeout": func(fp string, v any) {
			if t, ok := d.duration(fp, v); ok {
				if err := checkTimeout(t); err != nil {
					d.errf(fp, "%v", err)
					return
				}
				sb.MaxTimeout, d.l.maxTimeoutSrc = t, fp+" in config file "+d.file
			}
		},
		"memoryMB": func(fp string, v any) {
			if n, ok := d.integer(fp, v); ok {
				if err := checkMemoryMB(n); err != nil {
					d.errf(fp, "%d: %v", n, err)
					return
				}
				sb.MemoryMB = int(n)
			}
		},
		"maxOutputBytes": func(fp string, v any) {
			if n, ok := d.integer(fp, v); ok {
				if err := checkMaxOutput(n); err != nil {
					d.errf(fp, "%d: %v", n, err)
					return
				}
				sb.MaxOutputBytes = int(n)
			}
		},
		"pool": d.pool,
	})
}

// pool decodes sandbox.pool; Validate checks the figures together.
func (d *fileDec) pool(p string, v any) {
	pl := &d.cfg.Sandbox.Pool
	count := func(dst *int) func(string, any) {
		return func(fp string, v any) {
			if n, ok := d.integer(fp, v); ok {
				if n < 0 || n > MaxPoolSize {
					d.errf(fp, "%d: must be from 0 to %d", n, MaxPoolSize)
					return
				}
				*dst = int(n)
			}
		}
	}
	d.object(p, v, map[string]func(string, any){
		"max":             count(&pl.Max),
		"min":             count(&pl.Min),
		"perConversation": count(&pl.PerConversation),
		"idleTimeout": func(fp string, v any) {
			if t, ok := d.duration(fp, v); ok {
				pl.IdleTimeout = t
			}
		},
	})
	if err := checkPool(*pl); err != nil {
		d.errf(p, "%v", err)
	}
}

func (d *fileDec) policies(p string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		d.errf(p, "must be an object of policies by server name, got %s", kindOf(v))
		return
	}
	for _, name := range sortedKeys(m) {
		np := joinPath(p, name)
		var tp ToolPolicy
		d.object(np, m[name], map[string]func(string, any){
			"allowTools": func(fp string, v any) { tp.AllowTools, _ = d.strList(fp, v) },
			"denyTools":  func(fp string, v any) { tp.DenyTools, _ = d.strList(fp, v) },
		})
		if err := checkPolicy(np, tp); err != nil {
			d.errs = append(d.errs, err)
		}
		if d.cfg.Policy == nil {
			d.cfg.Policy = map[string]ToolPolicy{}
		}
		d.cfg.Policy[name] = tp
	}
}

func (d *fileDec) store(p string, v any) {
	st := &d.cfg.Store
	d.object(p, v, map[string]func(string, any){
		"url": func(fp string, v any) {
			s, ok := d.str(fp, v)
			if !ok {
				return
			}
			u, err := parseStoreURL(s, d.x, d.dir)
			if err != nil {
				d.errf(fp, "%v", err)
				return
			}
			st.URL = u
		},
		"conversationTTL": func(fp string, v any) {
			if t, ok := d.duration(fp, v); ok {
				if t <= 0 {
					d.errf(fp, "must be positive")
					return
				}
				st.ConversationTTL = t
			}
		},
		"maxConversations": func(fp string, v any) {
			if n, ok := d.integer(fp, v); ok {
				if n <= 0 || n > 1<<31-1 {
					d.errf(fp, "%d: must be a positive integer", n)
					return
				}
				st.MaxConversations = int(n)
			}
		},
		"maxWorkspaceBytes": func(fp string, v any) {
			if n, ok := d.integer(fp, v); ok {
				if n <= 0 {
					d.errf(fp, "%d: must be a positive number of bytes", n)
					return
				}
				st.MaxWorkspaceBytes = n
			}
		},
	})
}

func (d *fileDec) http(p string, v any) {
	h := &d.cfg.HTTP
	d.object(p, v, map[string]func(string, any){
		"addr": func(fp string, v any) {
			s, ok := d.str(fp, v)
			if !ok {
				return
			}
			if err := checkAddr(s); err != nil {
				d.errf(fp, "%v", err)
				return
			}
			h.Addr = s
		},
		"token": func(fp string, v any) {
			s, ok := d.expanded(fp, v)
			if !ok {
				return
			}
			if err := checkToken(s); err != nil {
				d.errf(fp, "%v", err)
				return
			}
			h.Token = s
		},
		"allowedOrigins": func(fp string, v any) {
			l, ok := d.strList(fp, v)
			if !ok {
				return
			}
			for i, o := range l {
				if err := checkOrigin(o); err != nil {
					d.errf(fmt.Sprintf("%s[%d]", fp, i), "%v", err)
					return
				}
			}
			h.AllowedOrigins = l
		},
		"jwt": func(fp string, v any) {
			d.object(fp, v, map[string]func(string, any){
				"issuer": func(fp string, v any) {
					if s, ok := d.str(fp, v); ok {
						if err := checkHTTPURL(s); err != nil {
							d.errf(fp, "%v", err)
							return
						}
						h.JWTIssuer = s
					}
				},
				"audience": func(fp string, v any) {
					if s, ok := d.str(fp, v); ok {
						h.JWTAudience = s
					}
				},
				"jwksURL": func(fp string, v any) {
					if s, ok := d.str(fp, v); ok {
						if err := checkHTTPURL(s); err != nil {
							d.errf(fp, "%v", err)
							return
						}
						h.JWKSURL = s
					}
				},
			})
			if h.JWTIssuer != "" && h.JWTAudience == "" {
				d.errf(fp+".audience", "required with an issuer (the resource identifier tokens must name in aud)")
			}
			if h.JWTIssuer == "" && (h.JWTAudience != "" || h.JWKSURL != "") {
				d.errf(fp+".issuer", "required (audience and jwksURL need it)")
			}
		},
		"roles":       d.roles,
		"tokens":      d.tokens,
		"tokenRole":   func(fp string, v any) { h.TokenRole, _ = d.str(fp, v) },
		"defaultRole": func(fp string, v any) { h.DefaultRole, _ = d.str(fp, v) },
		"maxBodyBytes": func(fp string, v any) {
			if n, ok := d.integer(fp, v); ok {
				if n < 1024 {
					d.errf(fp, "%d: must be at least 1024 bytes", n)
					return
				}
				h.MaxBodyBytes = n
			}
		},
		"maxConcurrentExecutions": func(fp string, v any) {
			if n, ok := d.integer(fp, v); ok {
				if n < 0 {
					d.errf(fp, "%d: must be 0 (unlimited) or more", n)
					return
				}
				h.MaxConcurrentExecutions = int(n)
			}
		},
		"rateLimit": func(fp string, v any) {
			d.object(fp, v, map[string]func(string, any){
				"perSecond": func(fp string, v any) {
					n, ok := v.(json.Number)
					f, err := n.Float64()
					if !ok || err != nil || f < 0 {
						d.errf(fp, "must be a number of requests per second, 0 (unlimited) or more")
						return
					}
					h.RatePerSecond = f
				},
				"burst": func(fp string, v any) {
					if n, ok := d.integer(fp, v); ok {
						if n < 0 {
							d.errf(fp, "%d: must be 0 or more", n)
							return
						}
						h.RateBurst = int(n)
					}
				},
			})
		},
	})
}
