package tokenbench

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/server"
	"github.com/mcp-conductor/conductor/internal/testenv"
	"github.com/mcp-conductor/conductor/internal/tokens"
)

const (
	dataFile = "testdata/servers.json"
	// The test binary re-executed with serveEnv=<server> serves that
	// server's snapshot over stdio (first limitEnv tools).
	serveEnv = "TOKENBENCH_SERVE"
	limitEnv = "TOKENBENCH_LIMIT"
	dataEnv  = "TOKENBENCH_DATA"
)

func TestMain(m *testing.M) {
	if name := os.Getenv(serveEnv); name != "" {
		serve(name)
		return
	}
	if i := os.Getenv(mixEnv); i != "" {
		n, _ := strconv.Atoi(i)
		serveMix(n, rssTools/rssServer)
		return
	}
	if os.Getenv(rssEnv) != "" {
		rssChild()
		return
	}
	os.Exit(m.Run())
}

// The agent's task in every scenario: two tools of two servers.
const (
	query   = "search GitHub issues and post a message to a Slack channel"
	program = `import * as github from "./mcp/github.ts";
import * as slack from "./mcp/slack.ts";
const found = await github.search_issues({ q: "repo:acme/api is:issue is:open label:bug", per_page: 5 });
const lines = found.items.map((i) => "#" + i.number + " " + i.title);
await slack.slack_post_message({ channel_id: "C024BE91L", text: "Open bugs:\n" + lines.join("\n") });
({ posted: lines.length, lines });`
)

var used = []string{"github.search_issues", "slack.slack_post_message"}

// answers are the canned results of the used tools (text content, as the
// real servers return them), shortened to what a real answer looks like.
var answers = map[string]string{
	"search_issues": `{"total_count":3,"incomplete_results":false,"items":[` +
		`{"number":482,"title":"Timeout when uploading files over 2 GB","state":"open","labels":[{"name":"bug"}],"html_url":"https://github.com/acme/api/issues/482"},` +
		`{"number":475,"title":"Pagination skips the last page","state":"open","labels":[{"name":"bug"}],"html_url":"https://github.com/acme/api/issues/475"},` +
		`{"number":431,"title":"Retry-After header ignored on 429","state":"open","labels":[{"name":"bug"}],"html_url":"https://github.com/acme/api/issues/431"}]}`,
	"slack_post_message": `{"ok":true,"channel":"C024BE91L","ts":"1700000000.000100","message":{"type":"message","text":"Open bugs: ...","user":"U0BOT"}}`,
}

// serve is the re-executed MCP server: a snapshot's tools with their exact
// schemas, answering the used tools with canned results and others with {}.
func serve(name string) {
	snaps, err := Load(os.Getenv(dataEnv))
	if err != nil {
		log.Fatal(err)
	}
	limit, _ := strconv.Atoi(os.Getenv(limitEnv))
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "snapshot"}, nil)
	for _, s := range snaps {
		if s.Server != name {
			continue
		}
		for i, t := range s.Tools {
			if limit > 0 && i >= limit {
				break
			}
			mt := &mcp.Tool{Name: t.Name, Title: t.Title, Description: t.Description, InputSchema: t.InputSchema}
			if len(t.OutputSchema) > 0 {
				mt.OutputSchema = t.OutputSchema
			}
			text, ok := answers[t.Name]
			if !ok {
				text = "{}"
			}
			srv.AddTool(mt, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil
			})
		}
	}
	if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}

// afterTable, when set by a test file, looks at the measured rows.
var afterTable func(*testing.T, []row)

// row is one line of the token table.
type row struct {
	tools       int
	traditional int
	toolList    int // the conductor's three tools
	search      int
	load        int
	first       int
	fragment    int
	exec        int
	later       int
	code        int // the program the model writes (not in first/later)

	// The texts counted.
	toolListText, searchText, loadText, fragText, execText string
}

// TestTokenTable prints the token table of the README: at 50, 100 and 200
// real tools, what the traditional way puts in context against the
// conductor's first and later messages. It starts a conductor over the
// snapshot servers (re-executed test binary) and talks MCP to it, so every
// text is the one a client receives.
func TestTokenTable(t *testing.T) {
	snaps, err := Load(dataFile)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "o200k_base tokens of %s\n", dataFile)
	perTool(&b, "official @modelcontextprotocol servers", snaps, func(s Snapshot) bool { return strings.HasPrefix(s.Package, "@modelcontextprotocol/") })
	perTool(&b, "other vendors' servers", snaps, func(s Snapshot) bool { return !strings.HasPrefix(s.Package, "@modelcontextprotocol/") })
	perTool(&b, "all", snaps, func(Snapshot) bool { return true })
	var rows []row
	for _, n := range sizes() {
		rows = append(rows, measure(t, Catalog(snaps, n), n))
	}
	if afterTable != nil {
		afterTable(t, rows)
	}
	fmt.Fprintf(&b, "\n| Tools | Traditional (per tool) | Conductor 1st msg | Conductor later msgs | Savings 1st msg | Savings later |\n")
	fmt.Fprintf(&b, "| ----- | ---------------------- | ----------------- | -------------------- | --------------- | ------------- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %d (%.0f) | %d | %d | %.1f%% | %.1f%% |\n", r.tools, r.traditional, float64(r.traditional)/float64(r.tools),
			r.first, r.later, 100*(1-float64(r.first)/float64(r.traditional)), 100*(1-float64(r.later)/float64(r.traditional)))
	}
	fmt.Fprintf(&b, "\n1st msg = the conductor's tool list + search_tools + load_tools (2 tools); later = context fragment + execute_code answer\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d tools: tool list %d, search %d, load %d; fragment %d, execute_code %d; (program written: %d)\n",
			r.tools, r.toolList, r.search, r.load, r.fragment, r.exec, r.code)
	}
	t.Log("\n" + b.String())
	for _, r := range rows {
		// The budgets of DESIGN.md.
		if r.first > 800 {
			t.Errorf("%d tools: first message = %d tokens, want <= 800", r.tools, r.first)
		}
		if r.load > 300 {
			t.Errorf("%d tools: load_tools of 2 tools = %d tokens, want <= 300", r.tools, r.load)
		}
		if r.later > 200 {
			t.Errorf("%d tools: later message = %d tokens, want <= 200", r.tools, r.later)
		}
	}
}

// perTool writes the average traditional cost of a tool over the servers
// keep selects.
func perTool(b *strings.Builder, what string, snaps []Snapshot, keep func(Snapshot) bool) {
	var sel []Snapshot
	n := 0
	for _, s := range snaps {
		if keep(s) {
			sel = append(sel, s)
			n += len(s.Tools)
		}
	}
	if n == 0 {
		return
	}
	total := tokens.Count(ToolListJSON(sel))
	fmt.Fprintf(b, "traditional, %s: %d tools of %d servers, %d tokens, %.0f per tool\n", what, n, len(sel), total, float64(total)/float64(n))
}

func measure(t *testing.T, cat []Snapshot, n int) row {
	t.Helper()
	r := row{tools: n, traditional: tokens.Count(ToolListJSON(cat)), code: tokens.Count(program)}
	c := startConductor(t, cat)
	cs := connect(t, server.New(c, nil))
	ctx := context.Background()

	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		InputSchema any    `json:"inputSchema"`
	}
	var own []entry
	for _, tl := range list.Tools {
		own = append(own, entry{tl.Name, tl.Description, tl.InputSchema})
	}
	b := marshal(own)
	r.toolList = tokens.Count(b)
	if testing.Verbose() && n == 50 {
		t.Logf("tool list:\n%s", b)
	}

	conv, err := c.CreateConversation()
	if err != nil {
		t.Fatal(err)
	}
	search := call(t, cs, "search_tools", map[string]any{"query": query, "limit": 8, "conversation_id": conv})
	for _, u := range used {
		if !strings.Contains(search, `"`+u+`"`) {
			t.Errorf("%d tools: search_tools(%q) does not find %s:\n%s", n, query, u, search)
		}
	}
	load := call(t, cs, "load_tools", map[string]any{"names": used, "conversation_id": conv})
	exec := call(t, cs, "execute_code", map[string]any{"code": program, "conversation_id": conv})
	frag := c.Context(conv)
	if testing.Verbose() && n == 50 {
		t.Logf("search_tools:\n%s\n\nload_tools:\n%s\n\ncontext:\n%s\n\nexecute_code:\n%s", search, load, frag, exec)
	}
	r.toolListText, r.searchText, r.loadText, r.fragText, r.execText = b, search, load, frag, exec
	r.search, r.load = tokens.Count(search), tokens.Count(load)
	r.fragment, r.exec = tokens.Count(frag), tokens.Count(exec)
	r.first = r.toolList + r.search + r.load
	r.later = r.fragment + r.exec
	return r
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	out := strings.Join(text, "\n")
	if res.IsError {
		t.Fatalf("%s: %s", tool, out)
	}
	return out
}

// toolPath finds a program `make` installs in tools/; a missing one skips the
// test outside CI and fails it under CI.
func toolPath(tb testing.TB, name string) string { return testenv.Tool(tb, name) }

func startConductor(t *testing.T, cat []Snapshot) *conductor.Conductor {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := filepath.Abs(dataFile)
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.Deno = toolPath(t, "deno")
	cfg.Workspace = filepath.Join(dir, "ws")
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		cfg.CacheDir = c
	}
	for _, s := range cat {
		orig := s.Server
		if s.CopyOf != "" {
			orig = s.CopyOf
		}
		cfg.Servers = append(cfg.Servers, config.Server{Name: s.Server, Command: exe,
			Env: map[string]string{serveEnv: orig, dataEnv: data, limitEnv: strconv.Itoa(len(s.Tools))}})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, st := range c.Status() {
		if st.State != "up" {
			t.Fatalf("server %s is %s: %v", st.Server, st.State, st.Err)
		}
	}
	return c
}

func connect(t *testing.T, s *server.Server) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := s.NewSession("").Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "tokenbench", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Close() })
	return cs
}

// sizes are the catalog sizes of the table: 50, 100 and 200 tools; -short
// leaves out 200 (its conductor takes a minute to close, re-embedding the
// catalog once per server that comes up).
func sizes() []int {
	if testing.Short() {
		return []int{50, 100}
	}
	return []int{50, 100, 200}
}
