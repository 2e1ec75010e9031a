package config

import (
	"path/filepath"
	"time"
)

// Defaults of DESIGN.md, also used by Default.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxTimeout = 300 * time.Second
	DefaultMemoryMB   = 256
	// An idle pooled Deno process costs about 9 MB of private memory (32 MB
	// RSS, most of it the shared pages of the Deno binary): 4 spares ≈ 35 MB.
	DefaultPoolMax             = 4
	DefaultPoolMin             = 1
	DefaultPoolPerConversation = 2
	DefaultPoolIdleTimeout     = 5 * time.Minute
	// MaxPoolSize bounds sandbox.pool.max.
	MaxPoolSize              = 64
	DefaultMaxOutputBytes    = 1 << 20
	DefaultConversationTTL   = 24 * time.Hour
	DefaultMaxConversations  = 1000
	DefaultMaxWorkspaceBytes = 100 << 20
	DefaultHTTPAddr          = "127.0.0.1:8080"
)

// Limits enforced by validation.
const (
	MinMemoryMB       = 16
	MaxMemoryMB       = 65536
	MinMaxOutputBytes = 1024
	// MaxMaxOutputBytes keeps the whole response of one run below 10 MiB.
	MaxMaxOutputBytes = 9 << 20
	// MaxTimeoutLimit is the largest timeout accepted anywhere.
	MaxTimeoutLimit = 24 * time.Hour
)

// Default returns the configuration used when no variable and no file says
// otherwise, for a user whose home directory is home (absolute). The cache
// directory is home/.cache/mcp-conductor; Load prefers $XDG_CACHE_HOME.
func Default(home string) *Config {
	home = filepath.Clean(home)
	return &Config{
		Workspace: filepath.Join(home, ".mcp-conductor", "workspace"),
		CacheDir:  filepath.Join(home, ".cache", "mcp-conductor"),
		Sandbox: Sandbox{
			DefaultTimeout: DefaultTimeout,
			MaxTimeout:     DefaultMaxTimeout,
			MemoryMB:       DefaultMemoryMB,
			MaxOutputBytes: DefaultMaxOutputBytes,
			Pool: Pool{Max: DefaultPoolMax, Min: DefaultPoolMin, PerConversation: DefaultPoolPerConversation,
				IdleTimeout: DefaultPoolIdleTimeout},
		},
		Store: Store{
			URL:               "sqlite://" + filepath.Join(home, ".mcp-conductor", "state.db"),
			ConversationTTL:   DefaultConversationTTL,
			MaxConversations:  DefaultMaxConversations,
			MaxWorkspaceBytes: DefaultMaxWorkspaceBytes,
		},
		HTTP: HTTP{Addr: DefaultHTTPAddr},
	}
}

// ClampTimeout turns the timeout a caller asked for into the one to use:
// zero (or negative) means the default; more than the maximum is cut to the
// maximum and clamped reports it, so the result can say so.
func (c *Config) ClampTimeout(requested time.Duration) (d time.Duration, clamped bool) {
	switch {
	case requested <= 0:
		return c.Sandbox.DefaultTimeout, false
	case requested > c.Sandbox.MaxTimeout:
		return c.Sandbox.MaxTimeout, true
	}
	return requested, false
}
