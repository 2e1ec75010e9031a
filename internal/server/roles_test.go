package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
)

// TestHTTPRoles: the role a token or a JWT claim maps to narrows what the
// principal's code may call, search and load, over real HTTP clients.
func TestHTTPRoles(t *testing.T) {
	everything := toolPath(t, "mcp-server-everything")
	iss := newIssuer(t)
	f := startHTTP(t, HTTPOptions{
		Token:  "admin-tok",
		Tokens: []NamedToken{{Name: "ci", Token: "ci-tok", Role: "analyst"}},
		JWT:    &JWTOptions{Issuer: iss.url, Audience: "aud"},
		Roles: map[string]conductor.Role{
			"analyst": {Claims: map[string][]string{"groups": {"analysts"}},
				Servers: map[string]conductor.ToolPolicy{"everything": {AllowTools: []string{"get-sum"}}}},
			"nobody": {},
			"admin":  {Servers: map[string]conductor.ToolPolicy{"everything": {}}},
		},
		TokenRole:   "admin",
		DefaultRole: "nobody",
	}, func(c *config.Config) {
		c.Servers = []config.Server{{Name: "everything", Command: everything, Transport: "stdio"}}
	})
	jwtFor := func(sub string, groups ...string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss.url, "sub": sub, "aud": "aud",
			"exp": time.Now().Add(time.Hour).Unix(), "groups": groups})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(iss.key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	call := func(cs *mcp.ClientSession, tool string, args map[string]any) (string, bool) {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return text(res), res.IsError
	}
	const echo = `await (globalThis as any).__conductor_call("everything", "echo", {message: "hi"})`

	waitFor(t, "everything to be up", 30*time.Second, func() bool {
		return value(f.scrape(t, "admin-tok"), "conductor_upstream_up", map[string]string{"server": "everything"}) == 1
	})
	for _, who := range []struct{ name, token string }{{"jwt analyst", jwtFor("ann", "staff", "analysts")}, {"token ci", "ci-tok"}} {
		t.Run(who.name, func(t *testing.T) {
			cs := f.connect(t, who.token, nil)
			if out, isErr := call(cs, "execute_code", map[string]any{"code": echo}); !isErr || !strings.Contains(out, "everything.echo: refused: this principal's role does not allow this tool") {
				t.Errorf("echo under the analyst role: %q, want the bridge's refusal", out)
			}
			if out, isErr := call(cs, "execute_code", map[string]any{"code": `import * as e from "./mcp/everything"; [typeof e.echo, await e.get_sum({a: 1, b: 2})]`}); isErr ||
				!strings.Contains(out, `"undefined"`) || !strings.Contains(out, "3") {
				t.Errorf("module under the analyst role: %q, want no echo and a sum", out)
			}
			if out, _ := call(cs, "search_tools", map[string]any{"query": "echo a message back", "limit": 20}); strings.Contains(out, "everything.echo") || !strings.Contains(out, "everything.get-sum") {
				t.Errorf("search_tools under the analyst role: %s", out)
			}
			if out, isErr := call(cs, "load_tools", map[string]any{"names": []string{"everything.echo"}}); !isErr || !strings.Contains(out, "unknown tool") {
				t.Errorf("load_tools(echo) under the analyst role: %q, want unknown tool", out)
			}
		})
	}
	t.Run("default role", func(t *testing.T) {
		cs := f.connect(t, jwtFor("bob", "staff"), nil)
		if out, isErr := call(cs, "execute_code", map[string]any{"code": `import * as e from "./mcp/everything"; Object.keys(e).length`}); !isErr || !strings.Contains(out, `no MCP server is named "everything"`) {
			t.Errorf("import under a role without servers: %q", out)
		}
		if out, _ := call(cs, "search_tools", map[string]any{"query": "add two numbers"}); strings.Contains(out, "everything.") {
			t.Errorf("search_tools under a role without servers: %s", out)
		}
	})
	t.Run("admin token", func(t *testing.T) {
		cs := f.connect(t, "admin-tok", nil)
		if out, isErr := call(cs, "execute_code", map[string]any{"code": echo}); isErr || !strings.Contains(out, "Echo: hi") {
			t.Errorf("echo with the admin token: %q", out)
		}
	})
	fams := f.scrape(t, "admin-tok")
	if got := value(fams, "conductor_tool_calls_total", map[string]string{"server": "everything", "tool": "echo", "outcome": "refused"}); got != 2 {
		t.Errorf("tool_calls{echo,refused} = %v, want 2", got)
	}
	if got := value(fams, "conductor_tool_calls_total", map[string]string{"server": "everything", "tool": "echo", "outcome": "ok"}); got != 1 {
		t.Errorf("tool_calls{echo,ok} = %v, want 1", got)
	}
}

func TestClaimMatches(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want bool
	}{
		{"analysts", true},
		{"staff", false},
		{[]any{"staff", "analysts"}, true},
		{[]any{"staff", 3.0}, false},
		{nil, false},
		{map[string]any{"analysts": true}, false},
	} {
		if got := claimMatches(tt.v, []string{"analysts"}); got != tt.want {
			t.Errorf("claimMatches(%v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
