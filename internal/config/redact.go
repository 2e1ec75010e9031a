package config

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
)

// Redacted returns the configuration as plain data for `conductor doctor`
// and logs, shaped like the config file. Secret values are left out: the
// HTTP token shows as "set" or "unset", server env and header values as
// "<redacted>", and passwords and query values in URLs are hidden.
func (c *Config) Redacted() map[string]any {
	servers := make([]any, 0, len(c.Servers))
	for _, s := range c.Servers {
		m := map[string]any{"name": s.Name, "transport": s.Transport}
		if s.Command != "" {
			m["command"] = s.Command
			m["args"] = nonNil(s.Args)
			m["env"] = redactValues(s.Env)
			if s.Cwd != "" {
				m["cwd"] = s.Cwd
			}
		} else {
			m["url"] = redactURL(s.URL)
			m["headers"] = redactValues(s.Headers)
		}
		if s.Lazy {
			m["lazy"] = true
		}
		servers = append(servers, m)
	}
	policy := map[string]any{}
	for name, p := range c.Policy {
		policy[name] = map[string]any{"allowTools": nonNil(p.AllowTools), "denyTools": nonNil(p.DenyTools)}
	}
	token := "unset"
	if c.HTTP.Token != "" {
		token = "set"
	}
	sb := c.Sandbox
	return map[string]any{
		"file":      c.File,
		"workspace": c.Workspace,
		"cache":     c.CacheDir,
		"deno":      c.Deno,
		"sandbox": map[string]any{
			"permissions":     sb.Permissions.String(),
			"flags":           nonNil(sb.Permissions.Flags()),
			"allowedPackages": nonNil(sb.AllowedPackages),
			"timeoutMs":       sb.DefaultTimeout.Milliseconds(),
			"maxTimeoutMs":    sb.MaxTimeout.Milliseconds(),
			"memoryMB":        sb.MemoryMB,
			"maxOutputBytes":  sb.MaxOutputBytes,
		},
		"mcpServers": servers,
		"servers":    policy,
		"catalog": map[string]any{
			"embeddingModel":  c.Catalog.EmbeddingModel,
			"embeddingURL":    redactURL(c.Catalog.EmbeddingURL),
			"embeddingKeyEnv": c.Catalog.EmbeddingKeyEnv,
			"embeddingKey":    setOrUnset(c.Catalog.EmbeddingKey),
			"cacheSpecs":      c.Catalog.CacheSpecs,
		},
		"store": map[string]any{
			"url":               redactStoreURL(c.Store.URL),
			"conversationTTL":   c.Store.ConversationTTL.String(),
			"maxConversations":  c.Store.MaxConversations,
			"maxWorkspaceBytes": c.Store.MaxWorkspaceBytes,
		},
		"http": map[string]any{
			"addr":           c.HTTP.Addr,
			"token":          token,
			"allowedOrigins": nonNil(c.HTTP.AllowedOrigins),
			"tokens":         redactTokens(c.HTTP.Tokens),
			"tokenRole":      c.HTTP.TokenRole,
			"roles":          rolesData(c.HTTP.Roles),
			"defaultRole":    c.HTTP.DefaultRole,
		},
		"telemetry": map[string]any{
			"otlpEndpoint": redactURL(c.Telemetry.OTLPEndpoint),
		},
	}
}

// redactTokens shows named tokens with their roles, values as "set".
func redactTokens(ts []HTTPToken) []any {
	out := make([]any, 0, len(ts))
	for _, t := range ts {
		out = append(out, map[string]any{"name": t.Name, "token": setOrUnset(t.Token), "role": t.Role})
	}
	return out
}

func rolesData(rs map[string]Role) map[string]any {
	out := map[string]any{}
	for name, r := range rs {
		servers := map[string]any{}
		for s, p := range r.Servers {
			servers[s] = map[string]any{"allowTools": nonNil(p.AllowTools), "denyTools": nonNil(p.DenyTools)}
		}
		claims := map[string]any{}
		for c, v := range r.Claims {
			claims[c] = v
		}
		out[name] = map[string]any{"claims": claims, "servers": servers}
	}
	return out
}

func redactValues(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = "<redacted>"
	}
	return out
}

func redactStoreURL(s string) string {
	if strings.HasPrefix(s, "sqlite://") {
		return s
	}
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "<unparseable URL>"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// String prints the redacted configuration as JSON, so that %v of a Config
// never shows a secret.
func (c *Config) String() string {
	b, err := json.Marshal(c.Redacted())
	if err != nil {
		return "<config>"
	}
	return string(b)
}

// LogValue makes slog print the redacted configuration.
func (c *Config) LogValue() slog.Value { return slog.AnyValue(c.Redacted()) }

// String prints the server without its env and header values.
func (s Server) String() string {
	m := (&Config{Servers: []Server{s}}).Redacted()["mcpServers"].([]any)[0]
	b, _ := json.Marshal(m)
	return string(b)
}

// LogValue makes slog print the server without secrets.
func (s Server) LogValue() slog.Value { return slog.StringValue(s.String()) }

// String prints the HTTP settings with the token as "set" or "unset".
func (h HTTP) String() string {
	b, _ := json.Marshal((&Config{HTTP: h}).Redacted()["http"])
	return string(b)
}

// LogValue makes slog print the HTTP settings without the token.
func (h HTTP) LogValue() slog.Value { return slog.StringValue(h.String()) }

func setOrUnset(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "set"
}
