// Package config turns the administrator's environment variables and config
// file into one validated Config. It is the only package that reads
// MCP_CONDUCTOR_* variables; every other package receives values from here.
// Any package of the module may import it; it imports no other internal
// package.
//
// Load applies, in order: Default, the config file (--config or
// MCP_CONDUCTOR_CONFIG; JSON, YAML, or a .ts/.mts/.js/.mjs module whose
// default export Deno evaluates), then the MCP_CONDUCTOR_* variables, which
// win over the file. MCP_CONDUCTOR_RUN_ARGS adds to the file's sandbox grants
// rather than replacing them. An empty variable counts as unset.
//
// Values that name paths or servers expand ${userHome}, ${env:NAME} and a
// leading ~; any other ${...} is an error. Paths become absolute and clean;
// relative paths in a file resolve against the file's directory. The file
// may also set workspace, cache and deno at the top level.
//
// Nothing falls back silently: a bad value is an error naming the variable,
// or the file and field path ("mcpServers[1].url"), and the bad value,
// except for secrets (HTTP token, server env and header values, URL
// passwords), which never appear in errors, String, LogValue or Redacted.
package config

import "time"

// Config is everything the conductor needs to run. The zero value is not
// useful; build one with Load (environment + optional file) or Default.
type Config struct {
	// Workspace is the root of all conversation directories (absolute).
	Workspace string
	// CacheDir holds Deno, dependency caches and the embedding model (absolute).
	CacheDir string
	// Deno is the Deno binary to use; empty means "find it" (PATH, then cache).
	Deno string
	// File is the config file this Config was read from, if any.
	File string

	Sandbox Sandbox
	// Servers are the upstream MCP servers, in the order given.
	Servers []Server
	// Policy says which tools of each server the sandbox may call, by server name.
	Policy  map[string]ToolPolicy
	Catalog Catalog
	Store   Store
	HTTP    HTTP
	// Telemetry configures OpenTelemetry traces (off by default).
	Telemetry Telemetry
}

// Telemetry configures tracing.
type Telemetry struct {
	// OTLPEndpoint, when set, exports one trace span per execution, with a
	// child span per tool call, to this OTLP/HTTP endpoint
	// ("http://collector:4318"). From telemetry.otlpEndpoint or
	// OTEL_EXPORTER_OTLP_ENDPOINT; empty means no tracing.
	OTLPEndpoint string
}

// Sandbox holds the limits and grants of every execution.
type Sandbox struct {
	// Permissions granted to user code by the administrator.
	Permissions Permissions
	// AllowedPackages are raw allowlist entries ("npm:zod@^3"), validated by
	// internal/deps.
	AllowedPackages []string
	DefaultTimeout  time.Duration
	MaxTimeout      time.Duration
	MemoryMB        int
	MaxOutputBytes  int
	// Pool sizes the warm pool of pre-started sandbox processes.
	Pool Pool
}

// Pool sizes the warm pool (sandbox.pool): single-use Deno processes started
// ahead of their run, per conversation and permission profile.
type Pool struct {
	// Max is the most pre-started processes at once; 0 turns the pool off.
	Max int
	// Min is how many recently used conversations keep their spare past
	// IdleTimeout.
	Min int
	// PerConversation caps the spares of one conversation.
	PerConversation int
	// IdleTimeout ends the spares of a conversation unused for that long.
	IdleTimeout time.Duration
}

// Permissions are Deno permission grants. Each list holds the values of one
// flag; an empty list means the permission is not granted at all. Deny lists
// hold values of --deny-* flags keyed by permission name ("net", "read", ...);
// a key with an empty list denies that permission entirely.
type Permissions struct {
	Read  []string
	Write []string
	Net   []string
	// NetAll grants network access to every host (a bare allow-net). Net is
	// then ignored.
	NetAll bool
	Env    []string
	// Run holds explicit program names or paths; unscoped run is refused.
	Run []string
	// Sys holds sys API names (e.g. "hostname"); unscoped sys is refused.
	Sys  []string
	Deny map[string][]string
}

// Server is one upstream MCP server: either a command (stdio) or a URL
// (streamable HTTP, falling back to legacy SSE). Name matches
// ^[a-zA-Z0-9_-]+$ and is unique within a Config. Env and Headers values are
// secrets: they never appear in errors, logs or Redacted.
type Server struct {
	Name    string
	Command string
	Args    []string
	Env     map[string]string
	Cwd     string
	URL     string
	Headers map[string]string
	// Transport is "stdio", "http" or "sse"; derived when empty.
	Transport string
	// Lazy servers start on first use instead of at start-up.
	Lazy bool
}

// ToolPolicy filters what the sandbox may call on one server. Patterns are
// tool names with optional '*' wildcards. Deny wins over allow; an empty
// Allow list allows every tool.
type ToolPolicy struct {
	AllowTools []string
	DenyTools  []string
}

// Catalog configures tool search.
type Catalog struct {
	// EmbeddingModel names a remote embedding model; empty means the local model.
	EmbeddingModel string
	// EmbeddingURL is an OpenAI-compatible base URL (".../v1"); empty means local.
	EmbeddingURL string
	// EmbeddingKeyEnv names the environment variable holding the remote API key.
	EmbeddingKeyEnv string
	// EmbeddingKey is the value of that variable, read by Load. It is a
	// secret: never logged, never in errors, "set"/"unset" in Redacted.
	EmbeddingKey string
	// CacheSpecs keeps tool specs and vectors in the store across restarts.
	CacheSpecs bool
}

// Store selects where conversation state lives.
type Store struct {
	// URL is "sqlite:///abs/path.db" or "redis://host:port/db".
	URL string
	// ConversationTTL is how long an idle conversation is kept.
	ConversationTTL time.Duration
	// MaxConversations caps how many conversations are kept (oldest expire first).
	MaxConversations int
	// MaxWorkspaceBytes caps the size of one conversation's workspace.
	MaxWorkspaceBytes int64
}

// HTTP configures `conductor start --http`.
type HTTP struct {
	// Addr is host:port to listen on; 127.0.0.1:8080 by default.
	Addr string
	// Token is the bearer token required on HTTP; empty means none. It is a
	// secret: it never appears in errors, logs or Redacted.
	Token          string
	AllowedOrigins []string

	// JWTIssuer, when set, also accepts JWT access tokens signed by this
	// issuer's keys (OAuth 2.1 resource server) for JWTAudience, which is
	// then required. JWKSURL overrides the jwks_uri found by discovery.
	JWTIssuer   string
	JWTAudience string
	JWKSURL     string
	// MaxBodyBytes caps one request body; 0 means 4 MiB.
	MaxBodyBytes int64
	// RatePerSecond and RateBurst bound MCP requests per principal; 0 means
	// unlimited.
	RatePerSecond float64
	RateBurst     int
	// MaxConcurrentExecutions bounds execute_code runs in flight per
	// principal; 0 means unlimited.
	MaxConcurrentExecutions int

	// Tokens are more static bearer tokens, each with a name (its principal
	// is "token:"+Name) and a role. Their values are secrets.
	Tokens []HTTPToken
	// TokenRole is the role of Token (the principal "token"); empty means
	// DefaultRole.
	TokenRole string
	// Roles narrow the administrator's policy per principal, by role name.
	// A JWT principal takes the first role, by name, whose Claims match.
	Roles map[string]Role
	// DefaultRole is the role of an authenticated principal that no token
	// or claim maps to a role; empty means the administrator's policy only.
	DefaultRole string
}

// HTTPToken is one named static bearer token and its role.
type HTTPToken struct {
	Name string
	// Token is a secret: never in errors, logs or Redacted.
	Token string
	Role  string
}

// Role says which servers and tools the code of a principal may call. It
// only narrows the administrator's policy (servers.<name>): a server that
// Servers does not name is out of reach, and a tool must pass both policies.
type Role struct {
	// Name is the role's key in http.roles.
	Name string
	// Claims match JWT access tokens: every claim named must hold (or, for a
	// list claim, contain) one of the values given. No claims: the role is
	// reached only through tokens and defaultRole.
	Claims map[string][]string
	// Servers are the reachable servers and their tool filters; an empty
	// ToolPolicy allows every tool the administrator exposes.
	Servers map[string]ToolPolicy
}
