// Package store keeps the state the conductor must not lose between runs or
// share between replicas: conversations and their execution history,
// co-usage counts of tools, and caches of tool specs and embedding vectors.
//
// It has one interface, [Store], and two implementations chosen by URL in
// [Open]: SQLite (the embedded default, a single file in WAL mode) and Redis
// (shared by several conductor processes). Feature packages
// (internal/conversation, internal/catalog) import it; it imports nothing of
// the conductor. No SQLite or Redis type appears in its API.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultURL is the store used when none is configured. "~" is the home
// directory of the user running the conductor.
const DefaultURL = "sqlite://~/.mcp-conductor/state.db"

// Limits on the strings a caller may use as keys.
const (
	// MaxIDLen is the longest conversation id, in bytes.
	MaxIDLen = 128
	// MaxPrincipalLen is the longest principal, in bytes.
	MaxPrincipalLen = 512
	// MaxCoUsageTools is how many distinct tools of one AddCoUsage call are
	// counted; the rest are ignored (the pair count grows quadratically).
	MaxCoUsageTools = 64
)

var (
	// ErrNotFound reports a conversation that does not exist for this
	// principal, or has been idle longer than the conversation TTL.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid reports an argument the store refuses: an empty or too long
	// conversation id, a principal that is too long, a string that is not
	// UTF-8 or holds control characters.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrConflict reports an UpdateConversation that lost too many races with
	// concurrent writers to the same conversation (Redis only) and gave up.
	ErrConflict = errors.New("store: too many concurrent updates")
)

// Store is the persistent state of the conductor.
//
// All methods are safe for concurrent use by many goroutines and, for the
// same URL, by many processes: two conductors on one Redis (or one SQLite
// file) see each other's conversations and co-usage counts.
//
// Conversations are keyed by principal and id together: the principal is
// the authenticated caller ("" is the local stdio user), and an id names a
// conversation only within its principal. Naming another principal's id finds
// nothing. Every call that reads or writes a conversation (except
// Executions) counts as a use and restarts its idle TTL
// ([Options.ConversationTTL]). A conversation idle longer than the TTL reads
// as ErrNotFound even before ExpireConversations sweeps it.
//
// Times are kept to the millisecond and returned in UTC. Errors wrap the
// cause with the operation and, for Redis, the address (never a password).
type Store interface {
	// GetConversation returns the conversation and marks it used
	// (LastUsed is now). It returns ErrNotFound if there is none.
	GetConversation(ctx context.Context, principal, id string) (*Conversation, error)
	// PutConversation creates or replaces c (last writer wins). Created is
	// set to now when zero; LastUsed is always now. c is not modified.
	PutConversation(ctx context.Context, c *Conversation) error
	// UpdateConversation atomically reads, modifies and writes a
	// conversation. fn receives the current conversation, or a new one with
	// a zero Created when there is none (Created is then set on write).
	// If fn returns an error nothing is written and that error is returned
	// as is. fn may run more than once when concurrent writers race; it must
	// not keep c, must not call the Store (SQLite holds its only connection
	// during fn), and should be quick. Principal and ID changes are ignored.
	UpdateConversation(ctx context.Context, principal, id string, fn func(c *Conversation) error) error
	// DeleteConversation removes a conversation and its history. Deleting
	// one that does not exist is not an error.
	DeleteConversation(ctx context.Context, principal, id string) error
	// ExpireConversations deletes every conversation last used before
	// idleBefore and then, when maxKept > 0, the least recently used ones
	// beyond maxKept. It returns what it deleted, oldest first, so that the
	// caller can remove their files. On Redis it also reports conversations
	// whose keys the TTL already removed (and only then forgets them).
	ExpireConversations(ctx context.Context, idleBefore time.Time, maxKept int) ([]ConversationRef, error)

	// AppendExecution adds e to the history of a conversation, keeping the
	// last [Options.MaxExecutions]. It returns ErrNotFound if the
	// conversation does not exist.
	AppendExecution(ctx context.Context, principal, id string, e Execution) error
	// Executions returns the kept history of a conversation, oldest first.
	// It does not count as a use.
	Executions(ctx context.Context, principal, id string) ([]Execution, error)

	// AddCoUsage records that tools ("server.tool") were used together, in
	// one program or one conversation: each distinct tool's use count and
	// each distinct pair's count grow by one. Empty names are skipped.
	AddCoUsage(ctx context.Context, tools []string) error
	// CoUsage returns how often tool was used and its limit most frequent
	// partners, most frequent first (ties in no fixed order).
	CoUsage(ctx context.Context, tool string, limit int) (Usage, error)

	// PutToolSpecs replaces the cached tool specs of one upstream server
	// (opaque bytes, JSON by convention).
	PutToolSpecs(ctx context.Context, server string, specs []byte) error
	// ToolSpecs returns the cached specs of every server, by server name.
	ToolSpecs(ctx context.Context) (map[string][]byte, error)
	// PutVectors caches embedding vectors of one model, by key (the hex
	// sha256 of the embedded text). Values are opaque bytes.
	PutVectors(ctx context.Context, model string, vectors map[string][]byte) error
	// Vectors returns the cached vectors of model for keys; keys that are
	// not cached are absent from the map.
	Vectors(ctx context.Context, model string, keys []string) (map[string][]byte, error)

	// Ping checks that the store answers (for readiness probes).
	Ping(ctx context.Context) error
	// Close releases the store. The caller of Open closes it once, after
	// every other call has returned.
	Close() error
}

// Conversation is the state of one conversation. Files (workspace/, mcp/)
// are not here: they belong to internal/conversation.
type Conversation struct {
	Principal string    `json:"principal"`
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"lastUsed"`
	// Loaded are the tools whose declarations were sent ("server.tool").
	Loaded []string `json:"loaded,omitempty"`
	// Servers are the upstream servers whose modules the conversation has.
	Servers []string `json:"servers,omitempty"`
	// Meta holds anything else the owner of the conversation needs.
	Meta map[string]string `json:"meta,omitempty"`
}

// ConversationRef names a conversation that ExpireConversations removed.
type ConversationRef struct {
	Principal string
	ID        string
	LastUsed  time.Time
}

// Execution is one run of a program in a conversation.
type Execution struct {
	// CodeSHA256 is the hex sha256 of the program text.
	CodeSHA256 string   `json:"code"`
	Tools      []string `json:"tools,omitempty"`
	// Outcome is "ok" or the error kind of the run ("timeout", …).
	Outcome  string        `json:"outcome"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
}

// Usage is what CoUsage knows of one tool.
type Usage struct {
	Tool string
	// Uses counts the AddCoUsage calls that named Tool.
	Uses     int64
	Partners []Pair
}

// Pair is a tool used together with another.
type Pair struct {
	Tool string
	// Together counts the AddCoUsage calls that named both tools.
	Together int64
	// Uses counts the AddCoUsage calls that named this partner.
	Uses int64
}

// Options tune a Store. The zero value is usable.
type Options struct {
	// ConversationTTL is how long an idle conversation is kept; zero keeps
	// conversations until ExpireConversations or DeleteConversation.
	ConversationTTL time.Duration
	// MaxExecutions is how many executions each conversation keeps; zero
	// means 50.
	MaxExecutions int
	// Namespace prefixes every Redis key; empty means "conductor:".
	// Ignored by SQLite.
	Namespace string
	// Logger receives warnings and migrations; nil discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxExecutions <= 0 {
		o.MaxExecutions = 50
	}
	if o.Namespace == "" {
		o.Namespace = "conductor:"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ConversationTTL < 0 {
		o.ConversationTTL = 0
	}
	return o
}

// Open opens the store named by rawURL and checks that it answers:
//
//	sqlite:///abs/path/state.db   (created 0600, parent directories 0700)
//	sqlite://~/rel/to/home.db
//	redis://[user:password@]host:port/db
//	rediss://…                    (TLS)
//
// An empty rawURL means DefaultURL. The caller closes the Store.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	opts = opts.withDefaults()
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("store: open %q: want sqlite://PATH or redis://HOST:PORT/DB", Redact(rawURL))
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		return openSQLite(ctx, rawURL[len("sqlite://"):], opts)
	case "redis", "rediss":
		return openRedis(ctx, rawURL, opts)
	default:
		return nil, fmt.Errorf("store: open %q: unknown scheme %q, want sqlite or redis", Redact(rawURL), scheme)
	}
}

// Redact returns rawURL with any password replaced, safe for logs and
// error messages. A URL that does not parse loses everything after its
// scheme.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		scheme, _, ok := strings.Cut(rawURL, "://")
		if !ok || strings.ContainsAny(scheme, "@:/") {
			return "(unparsable URL)"
		}
		return scheme + "://…"
	}
	if u.Opaque != "" || u.Host == "" && u.User != nil {
		return u.Scheme + ":…"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	// Passwords may also hide in the query (?password=…).
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// checkKey validates a principal and a conversation id.
func checkKey(principal, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty conversation id", ErrInvalid)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: conversation id longer than %d bytes", ErrInvalid, MaxIDLen)
	}
	if len(principal) > MaxPrincipalLen {
		return fmt.Errorf("%w: principal longer than %d bytes", ErrInvalid, MaxPrincipalLen)
	}
	if !printable(id) {
		return fmt.Errorf("%w: conversation id is not printable UTF-8", ErrInvalid)
	}
	if !printable(principal) {
		return fmt.Errorf("%w: principal is not printable UTF-8", ErrInvalid)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// checkName validates a tool, server or model name used as a cache key.
func checkName(what, s string) error {
	if s == "" || len(s) > 1024 || !printable(s) {
		return fmt.Errorf("%w: %s name %q", ErrInvalid, what, s)
	}
	return nil
}

// coUsageSet returns the distinct non-empty tools, at most MaxCoUsageTools.
func coUsageSet(tools []string) []string {
	seen := make(map[string]bool, len(tools))
	out := make([]string, 0, len(tools))
	for _, t := range tools {
		if t == "" || seen[t] || len(t) > 1024 {
			continue
		}
		seen[t] = true
		out = append(out, t)
		if len(out) == MaxCoUsageTools {
			break
		}
	}
	return out
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func nowMS() int64 { return time.Now().UnixMilli() }
