package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

// denoBin returns the Deno binary installed by the repository's tools/
// step. Without it the test is skipped, except under CI, where it fails.
func denoBin(t *testing.T) string { return testenv.Deno(t) }

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tsEnv is an environment in which a TypeScript config can run: the real
// PATH and a writable HOME for Deno's cache, plus vars.
func tsEnv(t *testing.T, vars map[string]string) map[string]string {
	t.Helper()
	m := map[string]string{"HOME": t.TempDir(), "PATH": os.Getenv("PATH"), EnvDeno: denoBin(t)}
	for k, v := range vars {
		m[k] = v
	}
	return m
}

const fullJSON = `{
  "$schema": "https://example.com/schema.json",
  "mcpServers": [
    {"name": "github", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github", "~/repo"],
     "env": {"GITHUB_TOKEN": "${env:GH_TOKEN}"}, "cwd": "./work"},
    {"name": "remote_1", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${env:GH_TOKEN}"}, "lazy": true},
    {"name": "legacy", "url": "http://localhost:9000/sse", "transport": "sse"},
    {"name": "local-bin", "command": "./bin/server"}
  ],
  "catalog": {"embeddingModel": "text-embedding-3-small", "embeddingURL": "https://api.openai.com/v1", "embeddingKeyEnv": "OPENAI_API_KEY", "cacheSpecs": true},
  "sandbox": {"allowRead": ["./data", "${userHome}/shared"], "allowWrite": ["/tmp/out"], "allowNet": ["api.example.com:443"], "allowEnv": ["TZ"],
              "allowedPackages": ["npm:zod@^3", "jsr:@std/path"], "timeout": "45s", "maxTimeout": 600000, "memoryMB": 512, "maxOutputBytes": 65536},
  "servers": {"github": {"allowTools": ["search_*", "get_issue"], "denyTools": ["delete_*"]}},
  "store": {"url": "sqlite://./state.db", "conversationTTL": "2h", "maxConversations": 50, "maxWorkspaceBytes": 1048576},
  "http": {"addr": "0.0.0.0:9090", "token": "${env:HTTP_TOKEN}", "allowedOrigins": ["https://app.example.com"]}
}`

const fullYAML = `
$schema: https://example.com/schema.json
mcpServers:
  - name: github
    command: npx
    args: ["-y", "@modelcontextprotocol/server-github", "~/repo"]
    env: {GITHUB_TOKEN: "${env:GH_TOKEN}"}
    cwd: ./work
  - name: remote_1
    url: https://mcp.example.com/mcp
    headers:
      Authorization: Bearer ${env:GH_TOKEN}
    lazy: true
  - {name: legacy, url: "http://localhost:9000/sse", transport: sse}
  - name: local-bin
    command: ./bin/server
catalog:
  embeddingModel: text-embedding-3-small
  embeddingURL: https://api.openai.com/v1
  embeddingKeyEnv: OPENAI_API_KEY
  cacheSpecs: true
sandbox:
  allowRead: [./data, "${userHome}/shared"]
  allowWrite: [/tmp/out]
  allowNet: ["api.example.com:443"]
  allowEnv: [TZ]
  allowedPackages: ["npm:zod@^3", "jsr:@std/path"]
  timeout: 45s
  maxTimeout: 600000
  memoryMB: 512
  maxOutputBytes: 65536
servers:
  github:
    allowTools: ["search_*", get_issue]
    denyTools: ["delete_*"]
store:
  url: sqlite://./state.db
  conversationTTL: 2h
  maxConversations: 50
  maxWorkspaceBytes: 1048576
http:
  addr: 0.0.0.0:9090
  token: ${env:HTTP_TOKEN}
  allowedOrigins: [https://app.example.com]
`

// fullTS builds the same configuration in TypeScript, reading secrets with
// Deno.env.get as an administrator would.
const fullTS = `
interface Srv { name: string; [k: string]: unknown }
const token: string = Deno.env.get("GH_TOKEN") ?? "missing";
const servers: Srv[] = [
  { name: "github", command: "npx", args: ["-y", "@modelcontextprotocol/server-github", "~/repo"],
    env: { GITHUB_TOKEN: token }, cwd: "./work" },
  { name: "remote_1", url: "https://mcp.example.com/mcp", headers: { Authorization: "Bearer " + token }, lazy: true },
  { name: "legacy", url: "http://localhost:9000/sse", transport: "sse" },
  { name: "local-bin", command: "./bin/server" },
];
export default {
  $schema: "https://example.com/schema.json",
  mcpServers: servers,
  catalog: { embeddingModel: "text-embedding-3-small", embeddingURL: "https://api.openai.com/v1", embeddingKeyEnv: "OPENAI_API_KEY", cacheSpecs: true },
  sandbox: { allowRead: ["./data", "${userHome}/shared"], allowWrite: ["/tmp/out"], allowNet: ["api.example.com:443"], allowEnv: ["TZ"],
             allowedPackages: ["npm:zod@^3", "jsr:@std/path"], timeout: "45s", maxTimeout: 600000, memoryMB: 512, maxOutputBytes: 65536 },
  servers: { github: { allowTools: ["search_*", "get_issue"], denyTools: ["delete_*"] } },
  store: { url: "sqlite://./state.db", conversationTTL: "2h", maxConversations: 50, maxWorkspaceBytes: 1048576 },
  http: { addr: "0.0.0.0:9090", token: Deno.env.get("HTTP_TOKEN"), allowedOrigins: ["https://app.example.com"] },
};
`

// wantFull is the Config all three full* files give, in dir, for home h.
func wantFull(dir, h string) *Config {
	c := Default(h)
	c.Servers = []Server{
		{Name: "github", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-github", h + "/repo"},
			Env: map[string]string{"GITHUB_TOKEN": "gh-secret-value"}, Cwd: filepath.Join(dir, "work"), Transport: "stdio"},
		{Name: "remote_1", URL: "https://mcp.example.com/mcp", Headers: map[string]string{"Authorization": "Bearer gh-secret-value"}, Transport: "http", Lazy: true},
		{Name: "legacy", URL: "http://localhost:9000/sse", Transport: "sse"},
		{Name: "local-bin", Command: filepath.Join(dir, "bin/server"), Transport: "stdio"},
	}
	c.Catalog = Catalog{EmbeddingModel: "text-embedding-3-small", EmbeddingURL: "https://api.openai.com/v1", EmbeddingKeyEnv: "OPENAI_API_KEY", EmbeddingKey: "sk-secret-value", CacheSpecs: true}
	c.Sandbox = Sandbox{
		Permissions: Permissions{
			Read:  []string{filepath.Join(dir, "data"), h + "/shared"},
			Write: []string{"/tmp/out"},
			Net:   []string{"api.example.com:443"},
			Env:   []string{"TZ"},
		},
		AllowedPackages: []string{"npm:zod@^3", "jsr:@std/path"},
		DefaultTimeout:  45 * time.Second,
		MaxTimeout:      10 * time.Minute,
		MemoryMB:        512,
		MaxOutputBytes:  65536,
		Pool:            defaultPool,
	}
	c.Policy = map[string]ToolPolicy{"github": {AllowTools: []string{"search_*", "get_issue"}, DenyTools: []string{"delete_*"}}}
	c.Store = Store{URL: "sqlite://" + filepath.Join(dir, "state.db"), ConversationTTL: 2 * time.Hour, MaxConversations: 50, MaxWorkspaceBytes: 1 << 20}
	c.HTTP = HTTP{Addr: "0.0.0.0:9090", Token: "http-secret-value", AllowedOrigins: []string{"https://app.example.com"}}
	return c
}

func TestFileFormats(t *testing.T) {
	secrets := map[string]string{"GH_TOKEN": "gh-secret-value", "HTTP_TOKEN": "http-secret-value", "OPENAI_API_KEY": "sk-secret-value"}
	tests := []struct {
		name, file, content string
		deno                bool
	}{
		{name: "json", file: "conductor.json", content: fullJSON},
		{name: "yaml", file: "conductor.yaml", content: fullYAML},
		{name: "yml", file: "conductor.yml", content: fullYAML},
		{name: "ts", file: "conductor.config.ts", content: fullTS, deno: true},
		{name: "mts", file: "conductor.config.mts", content: fullTS, deno: true},
		{name: "js", file: "conductor.config.js", content: strings.NewReplacer(
			"interface Srv { name: string; [k: string]: unknown }", "",
			": string", "", ": Srv[]", "").Replace(fullTS), deno: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env map[string]string
			if tt.deno {
				env = tsEnv(t, secrets)
			} else {
				env = map[string]string{"HOME": home}
				for k, v := range secrets {
					env[k] = v
				}
			}
			dir := t.TempDir()
			path := writeFile(t, dir, tt.file, tt.content)
			got, err := Load(envOf(env), path)
			if err != nil {
				t.Fatalf("Load(%s) = %v", tt.file, err)
			}
			want := wantFull(dir, env["HOME"])
			want.File = path
			if tt.deno {
				want.Deno = env[EnvDeno]
			}
			if diff := cmp.Diff(want, got, cmpConfig); diff != "" {
				t.Errorf("Load(%s) mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

func TestConfigFileSelection(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.json", `{"sandbox": {"memoryMB": 100}}`)
	b := writeFile(t, dir, "b.yaml", `sandbox: {memoryMB: 200}`)
	tests := []struct {
		name, flag string
		env        map[string]string
		wantMB     int
		wantFile   string
	}{
		{name: "none", wantMB: 256},
		{name: "env var", env: map[string]string{EnvConfig: a}, wantMB: 100, wantFile: a},
		{name: "flag wins over env var", flag: b, env: map[string]string{EnvConfig: a}, wantMB: 200, wantFile: b},
		{name: "env var expands", env: map[string]string{EnvConfig: "${env:D}/b.yaml", "D": dir}, wantMB: 200, wantFile: b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(envOf(tt.env), tt.flag)
			if err != nil {
				t.Fatal(err)
			}
			if c.Sandbox.MemoryMB != tt.wantMB || c.File != tt.wantFile {
				t.Errorf("Load(%v, %q): MemoryMB, File = %d, %q; want %d, %q", tt.env, tt.flag, c.Sandbox.MemoryMB, c.File, tt.wantMB, tt.wantFile)
			}
		})
	}
	if _, err := Load(envOf(map[string]string{EnvConfig: filepath.Join(dir, "missing.json")}), ""); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("Load(missing file) error = %v, want one naming the file", err)
	}
	if _, err := Load(envOf(map[string]string{EnvConfig: "${nope}"}), ""); err == nil || !strings.Contains(err.Error(), EnvConfig) {
		t.Errorf("Load(MCP_CONDUCTOR_CONFIG=${nope}) error = %v, want one naming %s", err, EnvConfig)
	}
}

// TestEnvWinsOverFile: variables replace file values; RUN_ARGS adds to the
// file's grants.
func TestEnvWinsOverFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.yaml", `
workspace: ./ws
cache: ./cache
deno: ./deno
sandbox:
  allowRead: [/data]
  allowedPackages: ["npm:zod@^3"]
  timeout: 10s
  maxTimeout: 20s
  memoryMB: 100
  maxOutputBytes: 2048
store: {url: "redis://localhost:6379/0"}
http: {token: from-file}
`)
	fileOnly, err := Load(envOf(nil), path)
	if err != nil {
		t.Fatal(err)
	}
	want := Default(home)
	want.File = path
	want.Workspace = filepath.Join(dir, "ws")
	want.CacheDir = filepath.Join(dir, "cache")
	want.Deno = filepath.Join(dir, "deno")
	want.Sandbox = Sandbox{Permissions: Permissions{Read: []string{"/data"}}, AllowedPackages: []string{"npm:zod@^3"},
		DefaultTimeout: 10 * time.Second, MaxTimeout: 20 * time.Second, MemoryMB: 100, MaxOutputBytes: 2048, Pool: defaultPool}
	want.Store.URL = "redis://localhost:6379/0"
	want.HTTP.Token = "from-file"
	if diff := cmp.Diff(want, fileOnly, cmpConfig); diff != "" {
		t.Fatalf("file only mismatch (-want +got):\n%s", diff)
	}

	got, err := Load(envOf(map[string]string{
		EnvWorkspace: "/ws", EnvCache: "/cache", EnvDeno: "/bin/deno",
		EnvRunArgs: "allow-read=/more,deny-net", EnvAllowedPackages: "npm:axios@^1",
		EnvDefaultTimeout: "15000", EnvMaxTimeout: "60000", EnvMaxMemoryMB: "300", EnvMaxOutputBytes: "4096",
		EnvStore: "sqlite:///s.db", EnvHTTPToken: "from-env",
	}), path)
	if err != nil {
		t.Fatal(err)
	}
	want.Workspace, want.CacheDir, want.Deno = "/ws", "/cache", "/bin/deno"
	want.Sandbox = Sandbox{
		Permissions:     Permissions{Read: []string{"/data", "/more"}, Deny: map[string][]string{"net": {}}},
		AllowedPackages: []string{"npm:axios@^1"},
		DefaultTimeout:  15 * time.Second, MaxTimeout: time.Minute, MemoryMB: 300, MaxOutputBytes: 4096,
		Pool: defaultPool,
	}
	want.Store.URL = "sqlite:///s.db"
	want.HTTP.Token = "from-env"
	if diff := cmp.Diff(want, got, cmpConfig); diff != "" {
		t.Errorf("env over file mismatch (-want +got):\n%s", diff)
	}

	// File and variable errors are reported together.
	bad := writeFile(t, dir, "bad.json", `{"sandbox": {"memoryMB": 1}}`)
	_, err = Load(envOf(map[string]string{EnvMaxOutputBytes: "12"}), bad)
	for _, s := range []string{"sandbox.memoryMB", EnvMaxOutputBytes} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("bad file and bad env: error = %v, want it to contain %q", err, s)
		}
	}

	// A default timeout from the file above a maximum from the env is
	// refused, naming both sources.
	_, err = Load(envOf(map[string]string{EnvMaxTimeout: "5000"}), path)
	for _, s := range []string{"sandbox.timeout", EnvMaxTimeout, "10000 ms", "5000 ms"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("file timeout 10s, env max 5000: error = %v, want it to contain %q", err, s)
		}
	}
}

func TestClaudeDesktopForm(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "claude_desktop_config.json", `{
  "mcpServers": {
    "zeta": {"command": "node", "args": ["server.js"], "env": {"K": "v"}},
    "alpha": {"type": "streamable-http", "url": "https://a.example.com/mcp"},
    "beta": {"name": "beta", "type": "sse", "url": "https://b.example.com/sse", "headers": {"X-Key": "k"}},
    "gamma": {"type": "stdio", "command": "/usr/bin/gamma", "lazy": true}
  }
}`)
	got, err := Load(envOf(nil), path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{
		{Name: "alpha", URL: "https://a.example.com/mcp", Transport: "http"},
		{Name: "beta", URL: "https://b.example.com/sse", Headers: map[string]string{"X-Key": "k"}, Transport: "sse"},
		{Name: "gamma", Command: "/usr/bin/gamma", Transport: "stdio", Lazy: true},
		{Name: "zeta", Command: "node", Args: []string{"server.js"}, Env: map[string]string{"K": "v"}, Transport: "stdio"},
	}
	if diff := cmp.Diff(want, got.Servers, cmpConfig); diff != "" {
		t.Errorf("object form servers mismatch (-want +got):\n%s", diff)
	}
}

// TestFileErrors: every bad file names the file, the field and (unless
// secret) the value.
func TestFileErrors(t *testing.T) {
	tests := []struct {
		name, file, content string
		wantErr             []string
	}{
		{"unknown top key", "c.json", `{"mcpServer": []}`, []string{"mcpServer: unknown field", "mcpServers"}},
		{"unknown nested key", "c.json", `{"sandbox": {"timeoutMs": 5}}`, []string{"sandbox.timeoutMs: unknown field"}},
		{"unknown server key", "c.yaml", "mcpServers:\n  - {name: a, command: x, enviroment: {}}\n", []string{"mcpServers[0].enviroment: unknown field"}},
		{"unknown policy key", "c.json", `{"mcpServers": [{"name": "a", "command": "x"}], "servers": {"a": {"allow": []}}}`, []string{"servers.a.allow: unknown field"}},
		{"unknown store key", "c.json", `{"store": {"path": "/x"}}`, []string{"store.path: unknown field"}},
		{"unknown http key", "c.json", `{"http": {"port": 80}}`, []string{"http.port: unknown field"}},
		{"unknown catalog key", "c.json", `{"catalog": {"model": "x"}}`, []string{"catalog.model: unknown field"}},
		{"odd key quoted", "c.json", `{"sandbox": {"a b": 1}}`, []string{`sandbox["a b"]: unknown field`}},
		{"json syntax", "c.json", "{\n  \"sandbox\": {,}\n}", []string{"line 2"}},
		{"json trailing", "c.json", `{} {}`, []string{"data after the top-level value"}},
		{"json duplicate", "c.json", `{"http": {"addr": "a:1", "addr": "b:2"}}`, []string{"http.addr: duplicate key"}},
		{"yaml duplicate", "c.yaml", "http:\n  addr: a:1\n  addr: b:2\n", []string{"YAML", "addr"}},
		{"yaml syntax", "c.yaml", "sandbox: [\n", []string{"YAML"}},
		{"top not object", "c.json", `[]`, []string{"must be an object, got an array"}},
		{"empty yaml", "c.yaml", ``, []string{"must be an object, got null"}},
		{"bad extension", "c.toml", `x = 1`, []string{`unsupported file type ".toml"`}},
		{"wrong type", "c.json", `{"sandbox": {"memoryMB": "512"}}`, []string{"sandbox.memoryMB: must be an integer, got a string"}},
		{"float int", "c.json", `{"sandbox": {"memoryMB": 1.5}}`, []string{"sandbox.memoryMB: 1.5 is not an integer"}},
		{"memory range", "c.json", `{"sandbox": {"memoryMB": 8}}`, []string{"sandbox.memoryMB: 8: must be from 16 to 65536"}},
		{"output range", "c.json", `{"sandbox": {"maxOutputBytes": 10485760}}`, []string{"sandbox.maxOutputBytes: 10485760"}},
		{"timeout zero", "c.json", `{"sandbox": {"timeout": 0}}`, []string{"sandbox.timeout: 0 ms is out of range"}},
		{"timeout negative string", "c.json", `{"sandbox": {"timeout": "-1s"}}`, []string{"sandbox.timeout: must be positive"}},
		{"timeout garbage", "c.json", `{"sandbox": {"timeout": "soon"}}`, []string{`sandbox.timeout: "soon" is not a duration`}},
		{"timeout bool", "c.json", `{"sandbox": {"maxTimeout": true}}`, []string{"sandbox.maxTimeout: must be milliseconds"}},
		{"timeout over max", "c.json", `{"sandbox": {"timeout": "10m", "maxTimeout": "1m"}}`, []string{"sandbox.timeout in config file", "sandbox.maxTimeout in config file", "600000 ms"}},
		{"allowRead root", "c.json", `{"sandbox": {"allowRead": ["/"]}}`, []string{"sandbox.allowRead[0]: allow-read=/ grants the whole filesystem"}},
		{"allowRead empty list", "c.json", `{"sandbox": {"allowRead": []}}`, []string{"sandbox.allowRead: an empty list grants nothing"}},
		{"allowRead comma", "c.json", `{"sandbox": {"allowRead": ["/a,b"]}}`, []string{"sandbox.allowRead[0]", "comma"}},
		{"allowRead bad var", "c.json", `{"sandbox": {"allowRead": ["${HOME}/x"]}}`, []string{"sandbox.allowRead[0]", "unknown variable ${HOME}"}},
		{"allowNet url", "c.json", `{"sandbox": {"allowNet": ["https://x.com"]}}`, []string{"sandbox.allowNet[0]", `"https://x.com"`, "not a URL"}},
		{"allowNet false", "c.json", `{"sandbox": {"allowNet": false}}`, []string{"sandbox.allowNet: false grants nothing"}},
		{"allowEnv star", "c.json", `{"sandbox": {"allowEnv": ["*"]}}`, []string{"sandbox.allowEnv[0]", "not an environment variable name"}},
		{"allowEnv not list", "c.json", `{"sandbox": {"allowEnv": "HOME"}}`, []string{"sandbox.allowEnv: must be an array of strings, got a string"}},
		{"package empty", "c.json", `{"sandbox": {"allowedPackages": ["npm:zod@^3", " "]}}`, []string{"sandbox.allowedPackages[1]: empty entry"}},
		{"server no name", "c.json", `{"mcpServers": [{"command": "x"}]}`, []string{"mcpServers[0]: needs a name"}},
		{"server bad name", "c.json", `{"mcpServers": [{"name": "a.b", "command": "x"}]}`, []string{`mcpServers[0].name: "a.b" must match ^[a-zA-Z0-9_-]+$`}},
		{"server dup name", "c.json", `{"mcpServers": [{"name": "a", "command": "x"}, {"name": "a", "url": "http://h/"}]}`, []string{`mcpServers[1].name: "a" is already the name of mcpServers[0]`}},
		{"server neither", "c.json", `{"mcpServers": [{"name": "a"}]}`, []string{"mcpServers[0]: needs either command"}},
		{"server both", "c.json", `{"mcpServers": [{"name": "a", "command": "x", "url": "http://h/"}]}`, []string{"mcpServers[0]: has both command and url"}},
		{"server bad url", "c.json", `{"mcpServers": [{"name": "a"}, {"name": "b", "url": "ftp://h/x"}]}`, []string{"mcpServers[1].url:", `"ftp://h/x" is not an http or https URL`, "mcpServers[0]: needs either"}},
		{"server bad transport", "c.json", `{"mcpServers": [{"name": "a", "command": "x", "transport": "sse"}]}`, []string{`mcpServers[0].transport: "sse" does not go with command`}},
		{"server unknown transport", "c.json", `{"mcpServers": [{"name": "a", "url": "http://h/", "transport": "ws"}]}`, []string{`mcpServers[0].transport: "ws" is not a transport`}},
		{"server type transport disagree", "c.json", `{"mcpServers": [{"name": "a", "url": "http://h/", "transport": "http", "type": "sse"}]}`, []string{"disagree"}},
		{"server url with args", "c.json", `{"mcpServers": [{"name": "a", "url": "http://h/", "args": ["x"]}]}`, []string{"mcpServers[0]: args, env and cwd are only for command servers"}},
		{"server command with headers", "c.json", `{"mcpServers": [{"name": "a", "command": "x", "headers": {"A": "b"}}]}`, []string{"mcpServers[0].headers: only for url servers"}},
		{"server env key", "c.json", `{"mcpServers": [{"name": "a", "command": "x", "env": {"A-B": "v"}}]}`, []string{`mcpServers[0].env: "A-B" is not an environment variable name`}},
		{"server env not string", "c.json", `{"mcpServers": [{"name": "a", "command": "x", "env": {"N": 1}}]}`, []string{"mcpServers[0].env.N: must be a string, got a number"}},
		{"server env unset var", "c.json", `{"mcpServers": [{"name": "a", "command": "x", "env": {"T": "${env:NOT_SET_X}"}}]}`, []string{"mcpServers[0].env.T:", "NOT_SET_X is not set"}},
		{"server header name", "c.json", `{"mcpServers": [{"name": "a", "url": "http://h/", "headers": {"Bad Header": "v"}}]}`, []string{`"Bad Header" is not a header name`}},
		{"object form name differs", "c.json", `{"mcpServers": {"a": {"name": "b", "command": "x"}}}`, []string{`mcpServers.a.name: "b" differs from the key "a"`}},
		{"object form bad key", "c.json", `{"mcpServers": {"a b": {"command": "x"}}}`, []string{`mcpServers["a b"].name: "a b" must match`}},
		{"servers wrong type", "c.json", `{"mcpServers": "x"}`, []string{"mcpServers: must be an array of servers or an object"}},
		{"policy unknown server", "c.json", `{"mcpServers": [{"name": "a", "command": "x"}], "servers": {"b": {"allowTools": ["*"]}}}`, []string{`servers.b: no server named "b" in mcpServers`}},
		{"policy empty pattern", "c.json", `{"mcpServers": [{"name": "a", "command": "x"}], "servers": {"a": {"denyTools": [""]}}}`, []string{"servers.a.denyTools[0]: empty pattern"}},
		{"store bad", "c.json", `{"store": {"url": "mysql://x"}}`, []string{`store.url: "mysql://x"`}},
		{"store ttl", "c.json", `{"store": {"conversationTTL": "0s"}}`, []string{"store.conversationTTL: must be positive"}},
		{"store max conv", "c.json", `{"store": {"maxConversations": 0}}`, []string{"store.maxConversations: 0: must be a positive integer"}},
		{"store max bytes", "c.json", `{"store": {"maxWorkspaceBytes": -1}}`, []string{"store.maxWorkspaceBytes: -1"}},
		{"http addr", "c.json", `{"http": {"addr": "8080"}}`, []string{`http.addr: "8080" is not host:port`}},
		{"http origin", "c.json", `{"http": {"allowedOrigins": ["*"]}}`, []string{`http.allowedOrigins[0]: "*" is not an origin`}},
		{"catalog url", "c.json", `{"catalog": {"embeddingURL": "localhost:11434"}}`, []string{"catalog.embeddingURL:"}},
		{"catalog key env", "c.json", `{"catalog": {"embeddingKeyEnv": "my key"}}`, []string{`catalog.embeddingKeyEnv: "my key"`}},
		{"catalog bool", "c.json", `{"catalog": {"cacheSpecs": "yes"}}`, []string{"catalog.cacheSpecs: must be true or false, got a string"}},
		{"lazy not bool", "c.json", `{"mcpServers": [{"name": "a", "command": "x", "lazy": 1}]}`, []string{"mcpServers[0].lazy: must be true or false"}},
		{"pool unknown key", "c.json", `{"sandbox": {"pool": {"size": 3}}}`, []string{"sandbox.pool.size: unknown field"}},
		{"pool max range", "c.json", `{"sandbox": {"pool": {"max": 65}}}`, []string{"sandbox.pool.max: 65: must be from 0 to 64"}},
		{"pool min over max", "c.json", `{"sandbox": {"pool": {"max": 2, "min": 3}}}`, []string{"sandbox.pool: min 3: must be from 0 to max (2)"}},
		{"pool per conversation zero", "c.json", `{"sandbox": {"pool": {"perConversation": 0}}}`, []string{"sandbox.pool: perConversation 0"}},
		{"pool idle timeout", "c.json", `{"sandbox": {"pool": {"idleTimeout": "-1s"}}}`, []string{"sandbox.pool: idleTimeout -1s"}},
		{"several at once", "c.json", `{"sandbox": {"memoryMB": 1, "maxOutputBytes": 1}, "bogus": 1}`, []string{"sandbox.memoryMB", "sandbox.maxOutputBytes", "bogus: unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), tt.file, tt.content)
			_, err := Load(envOf(nil), path)
			if err == nil {
				t.Fatalf("Load(%s) = nil error, want %q", tt.content, tt.wantErr)
			}
			for _, s := range append([]string{"config file " + path}, tt.wantErr...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load(%s) error =\n%v\nwant it to contain %q", tt.content, err, s)
				}
			}
		})
	}
}

// TestSecretsNeverInErrors loads bad configurations that carry secrets and
// checks that no error shows them.
func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "S3CRET-d0nt-l3ak"
	env := map[string]string{"HOME": home, "TOK": secret}
	files := []struct{ name, content string }{
		{"bad token", `{"http": {"token": "` + secret + ` x"}}`},
		{"bad token ctl", `{"http": {"token": "` + secret + `\u0001"}}`},
		{"env value bad var", `{"mcpServers": [{"name": "a", "command": "x", "env": {"T": "` + secret + `${bogus}"}}]}`},
		{"env value unterminated", `{"mcpServers": [{"name": "a", "command": "x", "env": {"T": "` + secret + `${env:TOK"}}]}`},
		{"env value unset", `{"mcpServers": [{"name": "a", "command": "x", "env": {"T": "` + secret + `${env:NOPE}"}}]}`},
		{"env value with bad key", `{"mcpServers": [{"name": "a", "command": "x", "env": {"B-AD": "` + secret + `"}}]}`},
		{"header bad var", `{"mcpServers": [{"name": "a", "url": "http://h/", "headers": {"Authorization": "Bearer ` + secret + `${x}"}}]}`},
		{"header line break", `{"mcpServers": [{"name": "a", "url": "http://h/", "headers": {"A": "` + secret + `\r\nX: y"}}]}`},
		{"header via env line break", `{"mcpServers": [{"name": "a", "url": "http://h/", "headers": {"A": "${env:NL}"}}]}`},
		{"headers on command server", `{"mcpServers": [{"name": "a", "command": "x", "headers": {"A": "` + secret + `"}}]}`},
		{"env on url server", `{"mcpServers": [{"name": "a", "url": "http://h/", "env": {"A": "${env:TOK}"}}]}`},
		{"token from env plus bad", `{"http": {"token": "${env:TOK}"}, "sandbox": {"memoryMB": 1}}`},
		{"secret in url password", `{"mcpServers": [{"name": "a", "url": "ftp://user:` + secret + `@h/x"}]}`},
		{"secret in url query", `{"mcpServers": [{"name": "a", "url": "ftp://h/x?key=` + secret + `"}]}`},
		{"secret in store password", `{"store": {"url": "redis://:` + secret + `@localhost/0"}}`},
		{"secret in store password bad db", `{"store": {"url": "redis://:` + secret + `@localhost:6379/x"}}`},
		{"secret in unknown store scheme", `{"store": {"url": "mongo://u:` + secret + `@h/x"}}`},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			e := map[string]string{"NL": secret + "\nX: y"}
			for k, v := range env {
				e[k] = v
			}
			path := writeFile(t, t.TempDir(), "c.json", f.content)
			_, err := Load(envOf(e), path)
			if err == nil {
				t.Fatalf("Load(%s) = nil error, want one", f.content)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Load(%s) error shows the secret:\n%v", f.content, err)
			}
		})
	}
	envCases := []map[string]string{
		{EnvHTTPToken: secret + " with space"},
		{EnvHTTPToken: secret + "\n"},
		{EnvStore: "redis://:" + secret + "@localhost/0"},
		{EnvStore: "redis://:" + secret + "@localhost:6379/zz"},
		{EnvStore: "https://u:" + secret + "@h/x"},
		{EnvHTTPToken: secret, EnvMaxMemoryMB: "1"},
	}
	for i, m := range envCases {
		t.Run(fmt.Sprintf("env%d", i), func(t *testing.T) {
			m["HOME"] = home
			_, err := Load(envOf(m), "")
			if err == nil {
				t.Fatalf("Load(env case %d) = nil error, want one", i)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Load(env case %d) error shows the secret:\n%v", i, err)
			}
		})
	}
}

func TestTypeScriptConfig(t *testing.T) {
	const secret = "ts-S3CRET-value"
	tests := []struct {
		name, file, content string
		env                 map[string]string
		check               func(t *testing.T, c *Config)
		wantErr             []string
	}{
		{name: "env from injected lookup", file: "conductor.config.ts",
			content: `export default { http: { token: Deno.env.get("SF_TOKEN"), addr: Deno.env.has("NOT_SET") ? "x" : "127.0.0.1:1" } };`,
			env:     map[string]string{"SF_TOKEN": secret},
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Token != secret || c.HTTP.Addr != "127.0.0.1:1" {
					t.Errorf("HTTP = %+v, want token from SF_TOKEN and addr 127.0.0.1:1", c.HTTP)
				}
			}},
		{name: "only the injected env", file: "conductor.config.ts",
			// GOPATH-like variables of the test process must not be visible.
			content: `export default { catalog: { embeddingModel: String(Deno.env.get("GOROOT_FINAL_X") ?? "absent") } };`,
			check: func(t *testing.T, c *Config) {
				if c.Catalog.EmbeddingModel != "absent" {
					t.Errorf("embeddingModel = %q, want absent", c.Catalog.EmbeddingModel)
				}
			}},
		{name: "async function default", file: "conductor.config.mts",
			content: `export default async () => ({ sandbox: { memoryMB: 64 + 64 } });`,
			check: func(t *testing.T, c *Config) {
				if c.Sandbox.MemoryMB != 128 {
					t.Errorf("MemoryMB = %d, want 128", c.Sandbox.MemoryMB)
				}
			}},
		{name: "console output ignored", file: "conductor.config.js",
			content: `console.log("hello {\"x\":1}"); console.error("note"); export default { sandbox: { memoryMB: 32 } };`,
			check: func(t *testing.T, c *Config) {
				if c.Sandbox.MemoryMB != 32 {
					t.Errorf("MemoryMB = %d, want 32", c.Sandbox.MemoryMB)
				}
			}},
		{name: "local import", file: "conductor.config.ts",
			content: `import { servers } from "./servers.ts"; export default { mcpServers: servers };`,
			check: func(t *testing.T, c *Config) {
				if len(c.Servers) != 1 || c.Servers[0].Name != "x" {
					t.Errorf("Servers = %v, want one named x", c.Servers)
				}
			}},
		{name: "pending timer does not hold the load", file: "conductor.config.ts",
			content: `setInterval(() => {}, 1000); export default { sandbox: { memoryMB: 48 } };`,
			check: func(t *testing.T, c *Config) {
				if c.Sandbox.MemoryMB != 48 {
					t.Errorf("MemoryMB = %d, want 48", c.Sandbox.MemoryMB)
				}
			}},
		{name: "strict after evaluation", file: "conductor.config.ts",
			content: `export default { sandbox: { timeoutMS: 5 } };`,
			wantErr: []string{"sandbox.timeoutMS: unknown field"}},
		{name: "no default export", file: "conductor.config.ts",
			content: `export const x = 1;`,
			wantErr: []string{"no default export"}},
		{name: "not JSON", file: "conductor.config.ts",
			content: `export default undefined;`,
			wantErr: []string{"cannot be turned into JSON"}},
		{name: "syntax error", file: "conductor.config.ts",
			content: `export default {;`,
			wantErr: []string{"evaluating with Deno"}},
		{name: "thrown secret is scrubbed", file: "conductor.config.ts",
			content: `throw new Error("bad token " + Deno.env.get("SF_TOKEN"));`,
			env:     map[string]string{"SF_TOKEN": secret},
			wantErr: []string{"bad token <redacted>"}},
		{name: "toObject refused", file: "conductor.config.ts",
			content: `export default Deno.env.toObject();`,
			wantErr: []string{"Deno.env.get(NAME)"}},
		{name: "remote import refused", file: "conductor.config.ts",
			content: `import x from "https://deno.land/x/nope/mod.ts"; export default x;`,
			wantErr: []string{"evaluating with Deno"}},
		{name: "no npm download", file: "conductor.config.ts",
			content: `import z from "npm:left-pad@1.3.0"; export default {};`,
			wantErr: []string{"evaluating with Deno"}},
		{name: "no file reads", file: "conductor.config.ts",
			content: `export default { catalog: { embeddingModel: Deno.readTextFileSync("/etc/hostname") } };`,
			wantErr: []string{"evaluating with Deno", "NotCapable"}},
		{name: "no network", file: "conductor.config.ts",
			content: `await fetch("http://127.0.0.1:18080/"); export default {};`,
			wantErr: []string{"evaluating with Deno", "NotCapable"}},
		{name: "no subprocess", file: "conductor.config.ts",
			content: `new Deno.Command("true").outputSync(); export default {};`,
			wantErr: []string{"evaluating with Deno", "NotCapable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tsEnv(t, tt.env)
			dir := t.TempDir()
			writeFile(t, dir, "servers.ts", `export const servers = [{ name: "x", command: "x" }];`)
			path := writeFile(t, dir, tt.file, tt.content)
			c, err := Load(envOf(env), path)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Load(%s) = nil error, want %q", tt.content, tt.wantErr)
				}
				for _, s := range append([]string{path}, tt.wantErr...) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Load(%s) error =\n%v\nwant it to contain %q", tt.content, err, s)
					}
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Load(%s) error shows the secret:\n%v", tt.content, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%s) = %v", tt.content, err)
			}
			tt.check(t, c)
		})
	}
}

func TestTypeScriptConfigDenoChoice(t *testing.T) {
	deno := denoBin(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "conductor.config.ts", `export default { sandbox: { memoryMB: 99 } };`)
	h := t.TempDir()

	// The option wins; no MCP_CONDUCTOR_DENO and no PATH needed.
	c, err := LoadWith(envOf(map[string]string{"HOME": h}), path, LoadOptions{Deno: deno})
	if err != nil || c.Sandbox.MemoryMB != 99 {
		t.Fatalf("LoadWith(Deno option) = %v, %v", c, err)
	}
	// Found on the PATH of the injected environment.
	c, err = Load(envOf(map[string]string{"HOME": h, "PATH": "relative:" + filepath.Dir(deno)}), path)
	if err != nil || c.Sandbox.MemoryMB != 99 {
		t.Fatalf("Load(deno on PATH) = %v, %v", c, err)
	}
	// Absent: a clear error.
	_, err = Load(envOf(map[string]string{"HOME": h, "PATH": t.TempDir()}), path)
	if err == nil || !strings.Contains(err.Error(), EnvDeno) || !strings.Contains(err.Error(), "needs Deno") {
		t.Errorf("Load(no deno) error = %v, want one mentioning %s", err, EnvDeno)
	}
	_, err = Load(envOf(map[string]string{"HOME": h, EnvDeno: "/nonexistent/deno"}), path)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/deno") {
		t.Errorf("Load(MCP_CONDUCTOR_DENO missing) error = %v, want one naming the path", err)
	}
}

func TestRedacted(t *testing.T) {
	c := wantFull("/cfg", home)
	c.Store.URL = "redis://user:store-pass@localhost:6379/0"
	c.Servers[1].URL = "https://mcp.example.com/mcp?api_key=query-secret"
	r := c.Redacted()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{"gh-secret-value", "http-secret-value", "store-pass", "query-secret"} {
		for name, s := range map[string]string{"Redacted": out, "String": c.String(), "%v": fmt.Sprintf("%v %+v %v", c, c.Servers, c.HTTP)} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows %q:\n%s", name, secret, s)
			}
		}
	}
	for _, want := range []string{`"token":"set"`, `"GITHUB_TOKEN":"\u003credacted\u003e"`, `"Authorization":"\u003credacted\u003e"`,
		`"permissions":"--allow-read=/cfg/data,/home/u/shared --allow-write=/tmp/out --allow-net=api.example.com:443 --allow-env=TZ"`,
		`"name":"github"`, `"timeoutMs":45000`} {
		if !strings.Contains(out, want) {
			t.Errorf("Redacted() = %s\nwant it to contain %s", out, want)
		}
	}
	if got := Default(home).Redacted()["http"].(map[string]any)["token"]; got != "unset" {
		t.Errorf("default token shows %v, want unset", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr string
	}{
		{"ok", func(c *Config) {}, ""},
		{"derives transport", func(c *Config) { c.Servers = []Server{{Name: "a", URL: "http://h/"}} }, ""},
		{"relative workspace", func(c *Config) { c.Workspace = "ws" }, "workspace:"},
		{"zero timeout", func(c *Config) { c.Sandbox.DefaultTimeout = 0 }, "sandbox.timeout: must be positive"},
		{"default over max", func(c *Config) { c.Sandbox.DefaultTimeout = time.Hour }, "sandbox.timeout: 3600000 ms is more than"},
		{"memory", func(c *Config) { c.Sandbox.MemoryMB = 0 }, "sandbox.memoryMB"},
		{"output", func(c *Config) { c.Sandbox.MaxOutputBytes = 10 << 20 }, "sandbox.maxOutputBytes"},
		{"permissions", func(c *Config) { c.Sandbox.Permissions.Read = []string{"rel"} }, "allow-read"},
		{"dup server", func(c *Config) {
			c.Servers = []Server{{Name: "a", Command: "x"}, {Name: "a", Command: "y"}}
		}, `mcpServers[1].name: "a" is already`},
		{"policy unknown", func(c *Config) { c.Policy = map[string]ToolPolicy{"zz": {}} }, `servers.zz: no server named "zz"`},
		{"store", func(c *Config) { c.Store.URL = "sqlite://rel.db" }, "store.url"},
		{"store unexpanded", func(c *Config) { c.Store.URL = "sqlite://~/x.db" }, "store.url: not expanded"},
		{"ttl", func(c *Config) { c.Store.ConversationTTL = 0 }, "store.conversationTTL"},
		{"max conversations", func(c *Config) { c.Store.MaxConversations = 0 }, "store.maxConversations"},
		{"workspace bytes", func(c *Config) { c.Store.MaxWorkspaceBytes = 0 }, "store.maxWorkspaceBytes"},
		{"addr", func(c *Config) { c.HTTP.Addr = "" }, "http.addr"},
		{"package", func(c *Config) { c.Sandbox.AllowedPackages = []string{""} }, "sandbox.allowedPackages[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default(home)
			tt.edit(c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	c := Default(home)
	c.Servers = []Server{{Name: "a", URL: "http://h/"}, {Name: "b", Command: "x"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"http", "stdio"}, []string{c.Servers[0].Transport, c.Servers[1].Transport}); diff != "" {
		t.Errorf("derived transports (-want +got):\n%s", diff)
	}
}

func TestFileAllowNetAll(t *testing.T) {
	for _, tt := range []struct{ file, content string }{
		{"c.yaml", "sandbox:\n  allowNet: true\n"},
		{"c.json", `{"sandbox": {"allowNet": true}}`},
	} {
		path := writeFile(t, t.TempDir(), tt.file, tt.content)
		c, err := Load(envOf(nil), path)
		if err != nil {
			t.Fatalf("Load(%s) = %v", tt.content, err)
		}
		if diff := cmp.Diff([]string{"--allow-net"}, c.Sandbox.Permissions.Flags()); diff != "" {
			t.Errorf("Load(%s) flags (-want +got):\n%s", tt.content, diff)
		}
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	c := wantFull("/cfg", home)
	var buf strings.Builder
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("loaded", "config", c, "server", c.Servers[0], "http", c.HTTP)
	for _, secret := range []string{"gh-secret-value", "http-secret-value"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log shows %q:\n%s", secret, buf.String())
		}
	}
	if !strings.Contains(buf.String(), `"token":"set"`) {
		t.Errorf("log = %s, want the redacted config", buf.String())
	}
}

func TestPoolConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          Pool
	}{
		{"default", `{}`, Pool{Max: DefaultPoolMax, Min: DefaultPoolMin, PerConversation: DefaultPoolPerConversation, IdleTimeout: DefaultPoolIdleTimeout}},
		{"off", `{"sandbox": {"pool": {"max": 0}}}`, Pool{Max: 0, Min: DefaultPoolMin, PerConversation: DefaultPoolPerConversation, IdleTimeout: DefaultPoolIdleTimeout}},
		{"all", `{"sandbox": {"pool": {"max": 8, "min": 2, "perConversation": 3, "idleTimeout": "90s"}}}`, Pool{Max: 8, Min: 2, PerConversation: 3, IdleTimeout: 90 * time.Second}},
		{"idle ms", `{"sandbox": {"pool": {"idleTimeout": 60000}}}`, Pool{Max: DefaultPoolMax, Min: DefaultPoolMin, PerConversation: DefaultPoolPerConversation, IdleTimeout: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(envOf(nil), writeFile(t, dir, tt.name+".json", tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if c.Sandbox.Pool != tt.want {
				t.Errorf("Load(%s).Sandbox.Pool = %+v, want %+v", tt.content, c.Sandbox.Pool, tt.want)
			}
		})
	}
}
