// Package bridge serves the tool calls that sandboxed programs make: it
// checks each call against the administrator's policy and the tool's input
// schema, forwards it to the upstream hub, caps calls and result sizes, and
// turns MCP results into the values the program's promises resolve to.
//
// It is used by the conductor's wiring layer; it imports internal/config and
// the MCP SDK's types, never the sandbox.
package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/mcp-conductor/conductor/internal/config"
)

// Upstream is what the bridge needs of the hub.
type Upstream interface {
	// InputSchema returns the tool's input schema, or false if the server has
	// no such tool (now).
	InputSchema(server, tool string) (json.RawMessage, bool)
	Call(ctx context.Context, server, tool string, args json.RawMessage) (*mcp.CallToolResult, error)
}

// Limits cap what one run may do through the bridge.
type Limits struct {
	// MaxCalls per run; 0 means 1000.
	MaxCalls int
	// MaxResultBytes per call result; 0 means 4 MiB.
	MaxResultBytes int
	// MaxArgBytes per call; 0 means 1 MiB.
	MaxArgBytes int
}

// Bridge is shared by all runs; Run makes the per-run handler. Safe for
// concurrent use.
type Bridge struct {
	up     Upstream
	policy map[string]config.ToolPolicy
	limits Limits

	mu      sync.Mutex
	schemas map[[32]byte]*jsonschema.Schema
}

// New makes a bridge over up with the administrator's policy.
func New(up Upstream, policy map[string]config.ToolPolicy, limits Limits) *Bridge {
	if limits.MaxCalls <= 0 {
		limits.MaxCalls = 1000
	}
	if limits.MaxResultBytes <= 0 {
		limits.MaxResultBytes = 4 << 20
	}
	if limits.MaxArgBytes <= 0 {
		limits.MaxArgBytes = 1 << 20
	}
	return &Bridge{up: up, policy: policy, limits: limits, schemas: map[[32]byte]*jsonschema.Schema{}}
}

// Exposed reports whether the policy lets programs call server.tool.
// An extra policy (a principal's role) must allow it too when given.
func (b *Bridge) Exposed(server, tool string, extra ...map[string]config.ToolPolicy) bool {
	if !allowed(b.policy, server, tool) {
		return false
	}
	for _, p := range extra {
		if p != nil && !allowed(p, server, tool) {
			return false
		}
	}
	return true
}

func allowed(policy map[string]config.ToolPolicy, server, tool string) bool {
	p, ok := policy[server]
	if !ok {
		return true
	}
	for _, pat := range p.DenyTools {
		if match(pat, tool) {
			return false
		}
	}
	if len(p.AllowTools) == 0 {
		return true
	}
	for _, pat := range p.AllowTools {
		if match(pat, tool) {
			return true
		}
	}
	return false
}

// match reports whether name matches pattern, where '*' stands for any run
// of characters and every other character is literal (config.ToolPolicy).
// path.Match would read '?', '[' and '\\' as syntax, and a malformed pattern
// would then match nothing: a deny rule would silently fail open.
func match(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(name, p)
		if i < 0 {
			return false
		}
		name = name[i+len(p):]
	}
	return strings.HasSuffix(name, last)
}

// Call is one observed tool call, for audit, metrics, traces and co-usage.
type Call struct {
	Server, Tool string
	Start        time.Time
	Duration     time.Duration
	Err          error
}

// Run returns the handler for one run under the administrator's policy
// alone; see RunWith.
func (b *Bridge) Run(onCall func(Call)) func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
	return b.RunWith(nil, onCall)
}

// RunWith returns the handler for one run. A call must pass the
// administrator's policy and, when role is not nil, role too (a principal's
// role narrows, never widens; a server missing from role is allowed by it,
// so a caller that means "only these servers" lists the others with
// DenyTools ["*"]). onCall, if set, observes every call (also refused ones).
// The handler's signature matches sandbox.CallHandler.
func (b *Bridge) RunWith(role map[string]config.ToolPolicy, onCall func(Call)) func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
	var n atomic.Int64
	return func(ctx context.Context, server, tool string, args json.RawMessage) (json.RawMessage, error) {
		start := time.Now()
		v, err := b.call(ctx, &n, role, server, tool, args)
		if onCall != nil {
			onCall(Call{Server: server, Tool: tool, Start: start, Duration: time.Since(start), Err: err})
		}
		return v, err
	}
}

// ErrRefused marks calls the bridge refused before reaching a server.
var ErrRefused = errors.New("refused")

// refusal is a refused call whose message need not say "refused" (invalid
// arguments read better without it); errors.Is(err, ErrRefused) holds.
type refusal struct{ msg string }

func (r refusal) Error() string        { return r.msg }
func (r refusal) Is(target error) bool { return target == ErrRefused }

// maxErrorBytes caps the text of one tool error that reaches the program: a
// server's error message is not bounded by MaxResultBytes otherwise.
const maxErrorBytes = 16 << 10

// clip cuts s to at most n bytes on a rune boundary, saying so.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes)", len(s)-cut)
}

func (b *Bridge) call(ctx context.Context, n *atomic.Int64, role map[string]config.ToolPolicy, server, tool string, args json.RawMessage) (json.RawMessage, error) {
	name := server + "." + tool
	if c := n.Add(1); c > int64(b.limits.MaxCalls) {
		return nil, fmt.Errorf("%s: %w: more than %d tool calls in one program", name, ErrRefused, b.limits.MaxCalls)
	}
	if !b.Exposed(server, tool) {
		return nil, fmt.Errorf("%s: %w: the administrator does not expose this tool", name, ErrRefused)
	}
	if role != nil && !allowed(role, server, tool) {
		return nil, fmt.Errorf("%s: %w: this principal's role does not allow this tool", name, ErrRefused)
	}
	schema, ok := b.up.InputSchema(server, tool)
	if !ok {
		return nil, fmt.Errorf("%s: %w: no such tool", name, ErrRefused)
	}
	if len(args) > b.limits.MaxArgBytes {
		return nil, fmt.Errorf("%s: %w: arguments are %d bytes, more than %d", name, ErrRefused, len(args), b.limits.MaxArgBytes)
	}
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("{}")
	}
	if err := b.validate(schema, args); err != nil {
		return nil, refusal{fmt.Sprintf("%s: invalid arguments: %v", name, err)}
	}
	res, err := b.up.Call(ctx, server, tool, args)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, clip(err.Error(), maxErrorBytes))
	}
	v, err := Value(res)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, clip(err.Error(), maxErrorBytes))
	}
	if len(v) > b.limits.MaxResultBytes {
		return nil, fmt.Errorf("%s: result is %d bytes, more than the limit of %d", name, len(v), b.limits.MaxResultBytes)
	}
	return v, nil
}

func (b *Bridge) validate(schema, args json.RawMessage) error {
	if len(schema) == 0 {
		return nil
	}
	sch, err := b.compile(schema)
	if err != nil {
		return nil // a server's broken schema must not block its tool; the server validates too
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(args))
	if err != nil {
		return fmt.Errorf("arguments are not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return errors.New(flatten(ve))
		}
		return err
	}
	return nil
}

func (b *Bridge) compile(schema json.RawMessage) (*jsonschema.Schema, error) {
	key := sha256.Sum256(schema)
	b.mu.Lock()
	sch, ok := b.schemas[key]
	b.mu.Unlock()
	if ok {
		return sch, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource("mem:///schema.json", doc); err != nil {
		return nil, err
	}
	sch, err = c.Compile("mem:///schema.json")
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if len(b.schemas) >= maxSchemas {
		// Tool lists change over a long life; start over rather than grow.
		clear(b.schemas)
	}
	b.schemas[key] = sch
	b.mu.Unlock()
	return sch, nil
}

// maxSchemas bounds the compiled-schema cache.
const maxSchemas = 4096

// noLoader refuses remote $refs: schemas are checked offline.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("remote schema %q is not loaded", url)
}

// maxPartBytes caps one validation message: an enum of a thousand values or
// a long pattern must not turn into a page of text for the model.
const maxPartBytes = 200

// flatten renders the innermost validation errors, at most five, each cut
// to maxPartBytes.
func flatten(ve *jsonschema.ValidationError) string {
	printer := message.NewPrinter(language.English)
	var parts []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			parts = append(parts, clip(fmt.Sprintf("at %s: %s", loc, e.ErrorKind.LocalizedString(printer)), maxPartBytes))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	// Causes come from maps: sort, so one input always gives one message.
	slices.Sort(parts)
	parts = slices.Compact(parts)
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("and %d more", len(parts)-5))
	}
	return strings.Join(parts, "; ")
}

// Value turns a tool result into what the program receives: structured
// content when present; else, when any content is not text (an image,
// audio, a resource), the MCP content array as JSON; else the text parsed as
// JSON when it is JSON, else the text. A result with isError set becomes an
// error carrying the server's message.
func Value(res *mcp.CallToolResult) (json.RawMessage, error) {
	if res == nil {
		return json.RawMessage("null"), nil
	}
	text := contentText(res.Content)
	if res.IsError {
		if text == "" {
			text = "the tool reported an error"
		}
		return nil, errors.New(text)
	}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("structured result: %w", err)
		}
		return b, nil
	}
	if !allText(res.Content) {
		// Images, audio, resources (alone or beside text): hand them over as
		// MCP content, so nothing the server sent is dropped.
		b, err := json.Marshal(res.Content)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	if t := strings.TrimSpace(text); t != "" && json.Valid([]byte(t)) {
		return json.RawMessage(t), nil
	}
	b, _ := json.Marshal(text)
	return b, nil
}

func allText(cs []mcp.Content) bool {
	for _, c := range cs {
		if _, ok := c.(*mcp.TextContent); !ok {
			return false
		}
	}
	return true
}

func contentText(cs []mcp.Content) string {
	var parts []string
	for _, c := range cs {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, "\n")
}
