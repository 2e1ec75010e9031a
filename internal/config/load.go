package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The environment variables of DESIGN.md. An empty variable counts as unset.
const (
	EnvWorkspace       = "MCP_CONDUCTOR_WORKSPACE"
	EnvAllowedPackages = "MCP_CONDUCTOR_ALLOWED_PACKAGES"
	EnvRunArgs         = "MCP_CONDUCTOR_RUN_ARGS"
	EnvDefaultTimeout  = "MCP_CONDUCTOR_DEFAULT_TIMEOUT"
	EnvMaxTimeout      = "MCP_CONDUCTOR_MAX_TIMEOUT"
	EnvMaxMemoryMB     = "MCP_CONDUCTOR_MAX_MEMORY_MB"
	EnvMaxOutputBytes  = "MCP_CONDUCTOR_MAX_OUTPUT_BYTES"
	EnvConfig          = "MCP_CONDUCTOR_CONFIG"
	EnvStore           = "MCP_CONDUCTOR_STORE"
	EnvDeno            = "MCP_CONDUCTOR_DENO"
	EnvHTTPToken       = "MCP_CONDUCTOR_HTTP_TOKEN"
	EnvCache           = "MCP_CONDUCTOR_CACHE"
	// EnvOTLPEndpoint is OpenTelemetry's standard variable; it turns on
	// tracing like telemetry.otlpEndpoint (and wins over it).
	EnvOTLPEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
)

// LoadOptions adjusts LoadWith.
type LoadOptions struct {
	// Deno is the Deno binary that evaluates a TypeScript/JavaScript config
	// file. Empty means MCP_CONDUCTOR_DENO, then "deno" on the PATH of the
	// environment given to Load.
	Deno string
}

// Load builds the Config from defaults, then the config file, then the
// MCP_CONDUCTOR_* variables (which win over the file), and validates it.
//
// env looks up environment variables (os.Getenv in production; tests pass a
// map lookup); HOME, XDG_CACHE_HOME and PATH are read through it too, and a
// TypeScript config file sees exactly this environment in Deno.env.get.
// file is the --config flag; empty means MCP_CONDUCTOR_CONFIG, and when that
// is empty too no file is read.
//
// Any bad value is an error naming the variable or the file and field, and
// the value, except secrets (HTTP token, server env and header values),
// which never appear in an error. Several problems are reported together.
func Load(env func(string) string, file string) (*Config, error) {
	return LoadWith(env, file, LoadOptions{})
}

// LoadWith is Load with options.
func LoadWith(env func(string) string, file string, opts LoadOptions) (*Config, error) {
	if env == nil {
		env = os.Getenv
	}
	home := env("HOME")
	if home == "" || !filepath.IsAbs(home) {
		return nil, fmt.Errorf("HOME %q is not an absolute path; it is needed for ~, ${userHome} and the default paths", home)
	}
	cfg := Default(home)
	if xdg := env("XDG_CACHE_HOME"); filepath.IsAbs(xdg) {
		// The XDG spec says to ignore a relative value.
		cfg.CacheDir = filepath.Join(filepath.Clean(xdg), "mcp-conductor")
	}
	x := expander{home: filepath.Clean(home), env: env}
	l := &loader{cfg: cfg, x: x, env: env, opts: opts,
		timeoutSrc: "the default", maxTimeoutSrc: "the default"}

	src := "--config"
	if file == "" {
		file, src = env(EnvConfig), EnvConfig
	}
	if file != "" {
		if p, err := x.path(file, ""); err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s %q: %w", src, file, err))
		} else if err := l.loadFile(p); err != nil {
			l.errs = append(l.errs, err)
		}
	}
	l.applyEnv()
	if k := cfg.Catalog.EmbeddingKeyEnv; k != "" {
		cfg.Catalog.EmbeddingKey = env(k)
		if cfg.Catalog.EmbeddingKey == "" {
			l.errs = append(l.errs, fmt.Errorf("catalog.embeddingKeyEnv: environment variable %s is not set", k))
		}
	}
	if len(l.errs) == 0 {
		sb := &cfg.Sandbox
		if sb.DefaultTimeout > sb.MaxTimeout {
			l.errs = append(l.errs, fmt.Errorf("default timeout %d ms (from %s) is more than the maximum %d ms (from %s)",
				sb.DefaultTimeout.Milliseconds(), l.timeoutSrc, sb.MaxTimeout.Milliseconds(), l.maxTimeoutSrc))
		}
	}
	if err := errors.Join(l.errs...); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// loader carries the state of one Load.
type loader struct {
	cfg  *Config
	x    expander
	env  func(string) string
	opts LoadOptions
	errs []error
	// where the timeouts came from, for the default > max error
	timeoutSrc, maxTimeoutSrc string
}

// envErr records a bad environment variable. value is quoted unless secret.
func (l *loader) envErr(name, value string, err error) {
	l.errs = append(l.errs, fmt.Errorf("%s=%q: %w", name, value, err))
}

func (l *loader) applyEnv() {
	c, env := l.cfg, l.env
	if v := env(EnvWorkspace); v != "" {
		if p, err := l.x.path(v, ""); err != nil {
			l.envErr(EnvWorkspace, v, err)
		} else {
			c.Workspace = p
		}
	}
	if v := env(EnvCache); v != "" {
		if p, err := l.x.path(v, ""); err != nil {
			l.envErr(EnvCache, v, err)
		} else {
			c.CacheDir = p
		}
	}
	if v := env(EnvDeno); v != "" {
		if p, err := l.denoPath(v, ""); err != nil {
			l.envErr(EnvDeno, v, err)
		} else {
			c.Deno = p
		}
	}
	if v := env(EnvAllowedPackages); v != "" {
		var pkgs []string
		var bad error
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if err := checkPackage(e); err != nil {
				bad = err
				break
			}
			pkgs = appendUnique(pkgs, e)
		}
		if bad != nil {
			l.envErr(EnvAllowedPackages, v, bad)
		} else {
			c.Sandbox.AllowedPackages = pkgs
		}
	}
	if v := env(EnvRunArgs); v != "" {
		if p, err := parseRunArgs(v, l.x, ""); err != nil {
			l.envErr(EnvRunArgs, v, err)
		} else {
			c.Sandbox.Permissions.merge(p)
		}
	}
	if v := env(EnvDefaultTimeout); v != "" {
		if d, err := parseMillis(v); err != nil {
			l.envErr(EnvDefaultTimeout, v, err)
		} else {
			c.Sandbox.DefaultTimeout, l.timeoutSrc = d, EnvDefaultTimeout
		}
	}
	if v := env(EnvMaxTimeout); v != "" {
		if d, err := parseMillis(v); err != nil {
			l.envErr(EnvMaxTimeout, v, err)
		} else {
			c.Sandbox.MaxTimeout, l.maxTimeoutSrc = d, EnvMaxTimeout
		}
	}
	if v := env(EnvMaxMemoryMB); v != "" {
		n, err := parseInt(v)
		if err == nil {
			err = checkMemoryMB(n)
		}
		if err != nil {
			l.envErr(EnvMaxMemoryMB, v, err)
		} else {
			c.Sandbox.MemoryMB = int(n)
		}
	}
	if v := env(EnvMaxOutputBytes); v != "" {
		n, err := parseInt(v)
		if err == nil {
			err = checkMaxOutput(n)
		}
		if err != nil {
			l.envErr(EnvMaxOutputBytes, v, err)
		} else {
			c.Sandbox.MaxOutputBytes = int(n)
		}
	}
	if v := env(EnvStore); v != "" {
		if u, err := parseStoreURL(v, l.x, ""); err != nil {
			// parseStoreURL hides passwords itself; do not quote v.
			l.errs = append(l.errs, fmt.Errorf("%s: %w", EnvStore, err))
		} else {
			c.Store.URL = u
		}
	}
	if v := env(EnvHTTPToken); v != "" {
		if err := checkToken(v); err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: %w", EnvHTTPToken, err))
		} else {
			c.HTTP.Token = v
		}
	}
	if v := env(EnvOTLPEndpoint); v != "" {
		if err := checkHTTPURL(v); err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s: %w", EnvOTLPEndpoint, err))
		} else {
			c.Telemetry.OTLPEndpoint = v
		}
	}
}

// denoPath resolves a Deno binary setting: a bare name ("deno") stays as is
// to be found on PATH; anything with a slash becomes an absolute path.
func (l *loader) denoPath(v, base string) (string, error) {
	e, err := l.x.expand(v)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(e) == "" {
		return "", errors.New("must not be empty")
	}
	if !strings.Contains(e, "/") {
		return e, nil
	}
	return absPath(e, base)
}

// parseMillis parses a positive integer of milliseconds.
func parseMillis(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, errors.New("must be an integer number of milliseconds")
	}
	if n <= 0 {
		return 0, errors.New("must be a positive number of milliseconds")
	}
	if n > MaxTimeoutLimit.Milliseconds() {
		return 0, fmt.Errorf("must be at most %d ms (24h)", MaxTimeoutLimit.Milliseconds())
	}
	return time.Duration(n) * time.Millisecond, nil
}

func parseInt(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, errors.New("must be an integer")
	}
	return n, nil
}
