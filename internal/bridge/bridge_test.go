package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-conductor/conductor/internal/config"
)

// fakeUpstream is a map-backed Upstream: tools by "server.tool", each with a
// schema and a handler. It records the calls that reach it.
type fakeUpstream struct {
	tools map[string]fakeTool

	mu    sync.Mutex
	calls []string // "server.tool args"
	n     atomic.Int64
}

type fakeTool struct {
	schema string
	handle func(ctx context.Context, args json.RawMessage) (*mcp.CallToolResult, error)
}

func (f *fakeUpstream) InputSchema(server, tool string) (json.RawMessage, bool) {
	t, ok := f.tools[server+"."+tool]
	if !ok {
		return nil, false
	}
	return json.RawMessage(t.schema), true
}

func (f *fakeUpstream) Call(ctx context.Context, server, tool string, args json.RawMessage) (*mcp.CallToolResult, error) {
	f.n.Add(1)
	f.mu.Lock()
	f.calls = append(f.calls, server+"."+tool+" "+string(args))
	f.mu.Unlock()
	t := f.tools[server+"."+tool]
	if t.handle == nil {
		return textResult("ok"), nil
	}
	return t.handle(ctx, args)
}

func (f *fakeUpstream) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

const objSchema = `{"type":"object"}`

func TestPolicy(t *testing.T) {
	t.Parallel()
	policy := map[string]config.ToolPolicy{
		"fs":    {AllowTools: []string{"read_*", "list_directory"}, DenyTools: []string{"read_secret*"}},
		"db":    {DenyTools: []string{"*_delete", "drop*table", "admin"}},
		"odd":   {DenyTools: []string{"x[1]", "a?c", `back\slash`, "[broken"}},
		"allow": {AllowTools: []string{"*"}, DenyTools: []string{"*"}},
		"mid":   {AllowTools: []string{"a*b*c"}},
	}
	b := New(&fakeUpstream{}, policy, Limits{})
	tests := []struct {
		server, tool string
		want         bool
	}{
		{"fs", "read_file", true},
		{"fs", "read_", true},
		{"fs", "list_directory", true},
		{"fs", "list_directory2", false},
		{"fs", "write_file", false},
		{"fs", "read_secret_key", false}, // deny wins over allow
		{"fs", "read_secret", false},
		{"db", "query", true}, // no allow list: everything not denied
		{"db", "row_delete", true == false},
		{"db", "_delete", false},
		{"db", "drop_big_table", false},
		{"db", "droptable", false},
		{"db", "admin", false},
		{"db", "admin2", true},
		{"db", "Admin", true}, // case-sensitive, as MCP tool names are
		// Only '*' is special: other glob syntax is literal, and a pattern
		// path.Match calls malformed still denies its literal name.
		{"odd", "x[1]", false},
		{"odd", "x1", true},
		{"odd", "a?c", false},
		{"odd", "abc", true},
		{"odd", `back\slash`, false},
		{"odd", "backslash", true},
		{"odd", "[broken", false},
		{"allow", "anything", false},
		{"mid", "abc", true},
		{"mid", "a-b-c", true},
		{"mid", "abbc", true},
		{"mid", "acb", false},
		{"mid", "ab", false},
		{"unlisted", "whatever", true}, // a server without policy: all tools
	}
	for _, tt := range tests {
		if got := b.Exposed(tt.server, tt.tool); got != tt.want {
			t.Errorf("Exposed(%q, %q) = %v, want %v", tt.server, tt.tool, got, tt.want)
		}
	}
	// An extra policy (a principal's role) can only narrow.
	role := map[string]config.ToolPolicy{"db": {AllowTools: []string{"query"}}}
	if !b.Exposed("db", "query", role) {
		t.Errorf("Exposed(db, query, role) = false, want true")
	}
	if b.Exposed("db", "admin2", role) {
		t.Errorf("Exposed(db, admin2, role) = true, want false (role allows only query)")
	}
	if b.Exposed("db", "admin", map[string]config.ToolPolicy{"db": {AllowTools: []string{"*"}}}) {
		t.Errorf("Exposed(db, admin, allow-all role) = true, want false (deny of the admin wins)")
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"**", "abc", true},
		{"a*", "a", true},
		{"*a", "a", true},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"*x*", "abxcd", true},
		{"*x*", "abcd", false},
		{"get_*_by_id", "get_user_by_id", true},
		{"get_*_by_id", "get_by_id", false},
		{"a*b*b", "abb", true},
		{"a*b*b", "ab", false},
		{"ns/*", "ns/a/b", true}, // '*' crosses '/' (path.Match's does not)
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"a*b", "axb"}, {"*", ""}, {"x*y*z", "xyz"}, {"[", "["}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		// A pattern without '*' matches exactly itself.
		if !strings.Contains(pattern, "*") && match(pattern, name) != (pattern == name) {
			t.Fatalf("match(%q, %q) = %v", pattern, name, !(pattern == name))
		}
		// Every name matches itself as a pattern when it has no '*'.
		if !strings.Contains(name, "*") && !match(name, name) {
			t.Fatalf("match(%q, %q) = false", name, name)
		}
		// '*' + name + '*' matches any string containing name.
		if !strings.Contains(name, "*") && !match("*"+name+"*", "pre"+name+"post") {
			t.Fatalf("match(*%s*, pre%spost) = false", name, name)
		}
	})
}

const draft07 = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1},
    "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}]},
    "mode": {"$ref": "#/definitions/mode"}
  },
  "required": ["path"],
  "additionalProperties": false,
  "definitions": {"mode": {"enum": ["r", "w"]}}
}`

const draft2020 = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "query": {"type": "string"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false},
    "filter": {"$ref": "#/$defs/filter"}
  },
  "required": ["query"],
  "$defs": {"filter": {"type": "object", "properties": {"field": {"type": "string"}}, "required": ["field"]}}
}`

// noDollarSchema is what most servers send (the Go SDK, zod-to-json-schema
// without $schema): the 2020-12 default applies.
const noDollarSchema = `{"type":"object","properties":{"n":{"type":"number"}},"required":["n"]}`

func TestValidate(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{tools: map[string]fakeTool{
		"s.d7":     {schema: draft07},
		"s.d2020":  {schema: draft2020},
		"s.plain":  {schema: noDollarSchema},
		"s.none":   {schema: ``},
		"s.bad":    {schema: `{"type": 12}`},                           // broken: the server validates
		"s.remote": {schema: `{"$ref": "https://example.com/s.json"}`}, // never fetched
		"s.enum": {schema: `{"type":"object","properties":{"color":{"enum":[` +
			strings.TrimSuffix(strings.Repeat(`"a-very-long-color-name-indeed",`, 300), ",") + `]}}}`},
		"s.many": {schema: `{"type":"object","properties":{` +
			`"a":{"type":"string"},"b":{"type":"string"},"c":{"type":"string"},"d":{"type":"string"},` +
			`"e":{"type":"string"},"f":{"type":"string"},"g":{"type":"string"},"h":{"type":"string"}}}`},
	}}
	b := New(up, nil, Limits{})
	call := b.Run(nil)
	tests := []struct {
		tool, args string
		// wantErr lists substrings of the error; empty means success.
		wantErr []string
	}{
		{"d7", `{"path":"/a"}`, nil},
		{"d7", `{"path":"/a","pair":["x",1],"mode":"r"}`, nil},
		{"d7", `{}`, []string{"s.d7: invalid arguments", "path"}},
		{"d7", `{"path":""}`, []string{"at /path"}},
		{"d7", `{"path":"/a","extra":1}`, []string{"extra"}},
		{"d7", `{"path":"/a","pair":["x","y"]}`, []string{"at /pair/1"}}, // draft-07 tuple items
		{"d7", `{"path":"/a","mode":"x"}`, []string{"at /mode"}},
		{"d7", `{"path":7}`, []string{"at /path", "string"}},
		{"d2020", `{"query":"q","limit":5,"pair":["x",2],"filter":{"field":"f"}}`, nil},
		{"d2020", `{"limit":5}`, []string{"s.d2020: invalid arguments", "query"}},
		{"d2020", `{"query":"q","limit":0}`, []string{"at /limit"}},
		{"d2020", `{"query":"q","limit":1.5}`, []string{"at /limit", "integer"}},
		{"d2020", `{"query":"q","pair":["x",2,3]}`, []string{"at /pair"}},
		{"d2020", `{"query":"q","filter":{}}`, []string{"at /filter", "field"}},
		{"plain", `{"n":1}`, nil},
		{"plain", `{"n":"1"}`, []string{"at /n"}},
		{"plain", ``, []string{"at /", "n"}}, // empty args are {}
		{"none", `{"anything":true}`, nil},
		{"bad", `{"x":1}`, nil},
		{"remote", `{"x":1}`, nil},
		{"enum", `{"color":"red"}`, []string{"at /color"}},
		{"many", `{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1}`, []string{"at /a", "and 3 more"}},
		{"plain", `{"n":`, []string{"not JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.tool+" "+tt.args, func(t *testing.T) {
			_, err := call(context.Background(), "s", tt.tool, json.RawMessage(tt.args))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("call(%s, %s) = %v, want success", tt.tool, tt.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("call(%s, %s) succeeded, want an error with %q", tt.tool, tt.args, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("call(%s, %s) = %q, want it to mention %q", tt.tool, tt.args, err, w)
				}
			}
			t.Logf("%s", err)
			if n := len(err.Error()); n > 1200 {
				t.Errorf("call(%s, %s): error is %d bytes, want it short: %.300s…", tt.tool, tt.args, n, err)
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("call(%s, %s) = %v, want errors.Is ErrRefused", tt.tool, tt.args, err)
			}
		})
	}
	// Refused calls never reach the server: only the successful ones did.
	for _, c := range up.received() {
		if strings.Contains(c, `"n":"1"`) || strings.Contains(c, `"limit":0`) || strings.HasPrefix(c, "s.d7 {}") {
			t.Errorf("an invalid call reached the server: %s", c)
		}
	}
}

func TestValidationMessage(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{tools: map[string]fakeTool{"s.t": {schema: draft2020}}}
	_, err := New(up, nil, Limits{}).Run(nil)(context.Background(), "s", "t", json.RawMessage(`{"limit":500}`))
	// One short line the model can act on: which field, what is wrong.
	got := err.Error()
	t.Logf("message: %s", got)
	for _, want := range []string{"s.t: invalid arguments: ", "query", "at /limit", "100"} {
		if !strings.Contains(got, want) {
			t.Errorf("error = %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "\n") || strings.Contains(got, "mem:///") || strings.Contains(got, "jsonschema") {
		t.Errorf("error = %q: want one line without validator internals", got)
	}
}

func TestSchemaCache(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{tools: map[string]fakeTool{
		"s.a": {schema: noDollarSchema},
		"s.b": {schema: noDollarSchema}, // same schema, other tool: one entry
		"s.c": {schema: draft07},
	}}
	b := New(up, nil, Limits{})
	call := b.Run(nil)
	for range 3 {
		for _, tc := range []struct{ tool, args string }{{"a", `{"n":1}`}, {"b", `{"n":2}`}, {"c", `{"path":"p"}`}} {
			if _, err := call(context.Background(), "s", tc.tool, json.RawMessage(tc.args)); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.mu.Lock()
	n := len(b.schemas)
	first := map[[32]byte]any{}
	for k, v := range b.schemas {
		first[k] = v
	}
	b.mu.Unlock()
	if n != 2 {
		t.Errorf("cache holds %d schemas, want 2", n)
	}
	// A cached schema is reused, not recompiled.
	s1, _ := b.compile(json.RawMessage(noDollarSchema))
	s2, _ := b.compile(json.RawMessage(noDollarSchema))
	if s1 != s2 {
		t.Errorf("compile twice gave two schemas, want the cached one")
	}
	// The cache is bounded.
	for i := range maxSchemas + 10 {
		if _, err := b.compile(json.RawMessage(fmt.Sprintf(`{"type":"object","title":"t%d"}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	n = len(b.schemas)
	b.mu.Unlock()
	if n > maxSchemas {
		t.Errorf("cache holds %d schemas, want at most %d", n, maxSchemas)
	}
}

func TestCallCap(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{tools: map[string]fakeTool{"s.t": {schema: objSchema}, "s.denied": {schema: objSchema}}}
	b := New(up, map[string]config.ToolPolicy{"s": {DenyTools: []string{"denied"}}}, Limits{MaxCalls: 5})
	var observed atomic.Int64
	call := b.Run(func(Call) { observed.Add(1) })
	var ok, capped int
	for i := range 8 {
		tool := "t"
		if i == 0 {
			tool = "denied" // refused calls count too: a flood of bad calls is capped
		}
		_, err := call(context.Background(), "s", tool, nil)
		switch {
		case err == nil:
			ok++
		case strings.Contains(err.Error(), "more than 5 tool calls"):
			capped++
			if !errors.Is(err, ErrRefused) {
				t.Errorf("cap error %v is not ErrRefused", err)
			}
		}
	}
	if ok != 4 || capped != 3 {
		t.Errorf("8 calls with a cap of 5 (one denied): %d ok, %d capped; want 4 and 3", ok, capped)
	}
	if n := up.n.Load(); n != 4 {
		t.Errorf("upstream saw %d calls, want 4", n)
	}
	if n := observed.Load(); n != 8 {
		t.Errorf("onCall saw %d calls, want 8 (refused ones too)", n)
	}
	// The cap is per run: a new run starts from zero.
	if _, err := b.Run(nil)(context.Background(), "s", "t", nil); err != nil {
		t.Errorf("first call of a new run: %v", err)
	}
	// Default cap.
	if New(up, nil, Limits{}).limits.MaxCalls != 1000 {
		t.Errorf("default MaxCalls = %d, want 1000", New(up, nil, Limits{}).limits.MaxCalls)
	}
}

func TestArgAndResultCaps(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 2000)
	up := &fakeUpstream{tools: map[string]fakeTool{
		"s.echo": {schema: objSchema, handle: func(_ context.Context, args json.RawMessage) (*mcp.CallToolResult, error) {
			return textResult(string(args)), nil
		}},
		"s.huge": {schema: objSchema, handle: func(context.Context, json.RawMessage) (*mcp.CallToolResult, error) {
			return textResult(big), nil
		}},
		"s.hugeerr": {schema: objSchema, handle: func(context.Context, json.RawMessage) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("e", 1<<20)}}}, nil
		}},
	}}
	b := New(up, nil, Limits{MaxArgBytes: 1000, MaxResultBytes: 1500})
	call := b.Run(nil)
	ctx := context.Background()

	if _, err := call(ctx, "s", "echo", json.RawMessage(`{"a":"`+strings.Repeat("y", 900)+`"}`)); err != nil {
		t.Errorf("args under the cap: %v", err)
	}
	_, err := call(ctx, "s", "echo", json.RawMessage(`{"a":"`+strings.Repeat("y", 1000)+`"}`))
	if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "more than 1000") {
		t.Errorf("args over the cap: err = %v, want a refusal naming the cap", err)
	}
	if n := up.n.Load(); n != 1 {
		t.Errorf("upstream saw %d calls, want 1 (the oversized one refused)", n)
	}
	_, err = call(ctx, "s", "huge", nil)
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 1500") {
		t.Errorf("result over the cap: err = %v, want one naming the limit", err)
	}
	_, err = call(ctx, "s", "hugeerr", nil)
	if err == nil || len(err.Error()) > maxErrorBytes+100 || !strings.Contains(err.Error(), "more bytes)") {
		t.Errorf("1 MiB tool error: got %d bytes, want it clipped to about %d", len(fmt.Sprint(err)), maxErrorBytes)
	}
}

func TestUnknownToolAndServerError(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{tools: map[string]fakeTool{
		"s.down": {schema: objSchema, handle: func(context.Context, json.RawMessage) (*mcp.CallToolResult, error) {
			return nil, errors.New(`upstream "s": call "down": server is down: exit status 3`)
		}},
	}}
	call := New(up, nil, Limits{}).Run(nil)
	_, err := call(context.Background(), "s", "nope", nil)
	if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "s.nope: refused: no such tool") {
		t.Errorf("unknown tool: err = %v", err)
	}
	_, err = call(context.Background(), "s", "down", nil)
	if err == nil || errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "s.down: ") || !strings.Contains(err.Error(), "server is down") {
		t.Errorf("server error: err = %v, want the hub's message, not a refusal", err)
	}
}

func TestValue(t *testing.T) {
	t.Parallel()
	img := &mcp.ImageContent{Data: []byte{0x89, 'P', 'N', 'G'}, MIMEType: "image/png"}
	tests := []struct {
		name    string
		res     *mcp.CallToolResult
		want    string // JSON
		wantErr string
	}{
		{"nil", nil, `null`, ""},
		{"structured wins over text", &mcp.CallToolResult{
			StructuredContent: map[string]any{"sum": 3},
			Content:           []mcp.Content{&mcp.TextContent{Text: `{"sum": 3, "as": "text"}`}},
		}, `{"sum":3}`, ""},
		{"json text object", textResult(` {"a": [1, 2]} `), `{"a":[1,2]}`, ""},
		{"json text array", textResult(`[1,"x"]`), `[1,"x"]`, ""},
		{"json text number", textResult(`42`), `42`, ""},
		{"plain text", textResult("hello world"), `"hello world"`, ""},
		{"text that only starts like JSON", textResult(`{"a": 1} and more`), `"{\"a\": 1} and more"`, ""},
		{"two texts joined", &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "a"}, &mcp.TextContent{Text: "b"}}}, `"a\nb"`, ""},
		{"empty", &mcp.CallToolResult{}, `""`, ""},
		{"image", &mcp.CallToolResult{Content: []mcp.Content{img}}, `[{"type":"image","mimeType":"image/png","data":"iVBORw=="}]`, ""},
		{"text and image", &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "a tiny image"}, img}},
			`[{"type":"text","text":"a tiny image"},{"type":"image","mimeType":"image/png","data":"iVBORw=="}]`, ""},
		{"isError", &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no such file: /x"}}}, "", "no such file: /x"},
		{"isError with structured", &mcp.CallToolResult{IsError: true, StructuredContent: map[string]any{"a": 1},
			Content: []mcp.Content{&mcp.TextContent{Text: "quota exceeded"}}}, "", "quota exceeded"},
		{"isError without text", &mcp.CallToolResult{IsError: true}, "", "the tool reported an error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Value(tt.res)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Value() = %s, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Value() error: %v", err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("Value() = %s: not JSON: %v", got, err)
			}
			json.Unmarshal([]byte(tt.want), &w)
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("Value() = %s; (-want +got):\n%s", got, diff)
			}
		})
	}
}

// TestConcurrentCalls runs many calls at once through one run and several
// runs (with -race: the schema cache, the counters and onCall).
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int64
	up := &fakeUpstream{tools: map[string]fakeTool{
		"s.slow": {schema: noDollarSchema, handle: func(ctx context.Context, args json.RawMessage) (*mcp.CallToolResult, error) {
			n := inFlight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			defer inFlight.Add(-1)
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &mcp.CallToolResult{StructuredContent: json.RawMessage(args)}, nil
		}},
	}}
	b := New(up, nil, Limits{MaxCalls: 60})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for r := range 4 {
		var seen atomic.Int64
		call := b.Run(func(Call) { seen.Add(1) })
		for i := range 80 {
			wg.Go(func() {
				v, err := call(context.Background(), "s", "slow", json.RawMessage(fmt.Sprintf(`{"n":%d}`, r*1000+i)))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				if want := fmt.Sprintf(`{"n":%d}`, r*1000+i); string(v) != want {
					errs = append(errs, fmt.Errorf("result %s, want %s", v, want))
				}
			})
		}
	}
	wg.Wait()
	capped := 0
	for _, err := range errs {
		if !strings.Contains(err.Error(), "more than 60 tool calls") {
			t.Errorf("unexpected error: %v", err)
		}
		capped++
	}
	if capped != 4*20 {
		t.Errorf("%d calls capped, want 80 (20 per run over the cap of 60)", capped)
	}
	if n := up.n.Load(); n != 4*60 {
		t.Errorf("upstream saw %d calls, want 240", n)
	}
	if peak.Load() < 10 {
		t.Errorf("at most %d calls were in flight at once, want many", peak.Load())
	}
}

func TestCancelReachesUpstream(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	up := &fakeUpstream{tools: map[string]fakeTool{
		"s.block": {schema: objSchema, handle: func(ctx context.Context, _ json.RawMessage) (*mcp.CallToolResult, error) {
			<-ctx.Done()
			close(cancelled)
			return nil, ctx.Err()
		}},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := New(up, nil, Limits{}).Run(nil)(ctx, "s", "block", nil)
		done <- err
	}()
	for up.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream call did not see the cancellation")
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled call: err = %v", err)
	}
}

// TestRunWithRole: a role narrows the administrator's policy, never widens
// it, and refused calls never reach the upstream server.
func TestRunWithRole(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{tools: map[string]fakeTool{
		"fs.read": {schema: objSchema}, "fs.write": {schema: objSchema}, "fs.admin": {schema: objSchema},
		"mem.get": {schema: objSchema},
	}}
	admin := map[string]config.ToolPolicy{"fs": {DenyTools: []string{"admin"}}}
	role := map[string]config.ToolPolicy{"fs": {AllowTools: []string{"read", "admin"}}, "mem": {DenyTools: []string{"*"}}}
	b := New(up, admin, Limits{})
	var calls []Call
	call := b.RunWith(role, func(c Call) { calls = append(calls, c) })
	for _, tt := range []struct {
		tool, want string
	}{
		{"fs.read", ""},
		{"fs.write", "this principal's role does not allow this tool"},
		{"fs.admin", "the administrator does not expose this tool"},
		{"mem.get", "this principal's role does not allow this tool"},
	} {
		server, tool, _ := strings.Cut(tt.tool, ".")
		_, err := call(context.Background(), server, tool, nil)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("call %s = %v, want success", tt.tool, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrRefused)):
			t.Errorf("call %s = %v, want a refusal saying %q", tt.tool, err, tt.want)
		}
		if got, want := b.Exposed(server, tool, role), tt.want == ""; got != want {
			t.Errorf("Exposed(%s, role) = %v, want %v", tt.tool, got, want)
		}
	}
	if got := up.received(); len(got) != 1 || got[0] != "fs.read {}" {
		t.Errorf("upstream received %q, want only fs.read", got)
	}
	if len(calls) != 4 || calls[0].Start.IsZero() {
		t.Errorf("onCall saw %d calls (first %+v), want 4 with a start time", len(calls), calls[0])
	}
}
