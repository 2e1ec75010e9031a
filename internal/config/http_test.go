package config

import (
	"strings"
	"testing"
)

func TestHTTPServingFields(t *testing.T) {
	path := writeFile(t, t.TempDir(), "c.yaml", `http:
  addr: 127.0.0.1:9000
  jwt: {issuer: "https://auth.example.com", audience: "https://conductor.example.com", jwksURL: "https://auth.example.com/keys"}
  maxBodyBytes: 1048576
  maxConcurrentExecutions: 4
  rateLimit: {perSecond: 2.5, burst: 10}
`)
	c, err := Load(envOf(nil), path)
	if err != nil {
		t.Fatal(err)
	}
	h := c.HTTP
	if h.JWTIssuer != "https://auth.example.com" || h.JWTAudience != "https://conductor.example.com" ||
		h.JWKSURL != "https://auth.example.com/keys" || h.MaxBodyBytes != 1<<20 || h.MaxConcurrentExecutions != 4 ||
		h.RatePerSecond != 2.5 || h.RateBurst != 10 {
		t.Errorf("HTTP = %+v", h)
	}

	for _, tt := range []struct{ content, want string }{
		{`{"http": {"jwt": {"issuer": "https://a"}}}`, "http.jwt.audience: required with an issuer"},
		{`{"http": {"jwt": {"audience": "x"}}}`, "http.jwt.issuer: required"},
		{`{"http": {"jwt": {"issuer": "auth.example.com", "audience": "x"}}}`, "http.jwt.issuer:"},
		{`{"http": {"jwt": {"iss": "https://a"}}}`, "http.jwt.iss: unknown field"},
		{`{"http": {"maxBodyBytes": 10}}`, "http.maxBodyBytes: 10: must be at least 1024"},
		{`{"http": {"maxConcurrentExecutions": -1}}`, "http.maxConcurrentExecutions: -1"},
		{`{"http": {"rateLimit": {"perSecond": "fast"}}}`, "http.rateLimit.perSecond: must be a number"},
		{`{"http": {"rateLimit": {"burst": -2}}}`, "http.rateLimit.burst: -2"},
	} {
		path := writeFile(t, t.TempDir(), "c.json", tt.content)
		_, err := Load(envOf(nil), path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%s) = %v, want an error containing %q", tt.content, err, tt.want)
		}
	}
}

func TestHTTPRoles(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.yaml", `mcpServers:
  fs: {command: /bin/true}
  mem: {command: /bin/true}
http:
  tokens:
    - {name: ci, token: "${env:CI_TOKEN}", role: analyst}
  tokenRole: admin
  defaultRole: reader
  roles:
    admin: {servers: {fs: {}, mem: {}}}
    analyst:
      claims: {groups: [analysts, data]}
      servers: {fs: {allowTools: [read_*], denyTools: [read_media_file]}}
    reader: {servers: {mem: {allowTools: [read_graph]}}}
telemetry: {otlpEndpoint: "http://127.0.0.1:4318"}
`)
	env := map[string]string{"CI_TOKEN": "s3cret-ci", "MCP_CONDUCTOR_HTTP_TOKEN": "main-token"}
	c, err := Load(envOf(env), path)
	if err != nil {
		t.Fatal(err)
	}
	h := c.HTTP
	if h.Token != "main-token" || h.TokenRole != "admin" || h.DefaultRole != "reader" {
		t.Errorf("HTTP token/roles = %q %q %q", h.Token, h.TokenRole, h.DefaultRole)
	}
	if len(h.Tokens) != 1 || h.Tokens[0] != (HTTPToken{Name: "ci", Token: "s3cret-ci", Role: "analyst"}) {
		t.Errorf("Tokens = %+v", h.Tokens)
	}
	a := h.Roles["analyst"]
	if a.Name != "analyst" || strings.Join(a.Claims["groups"], ",") != "analysts,data" ||
		strings.Join(a.Servers["fs"].AllowTools, ",") != "read_*" || strings.Join(a.Servers["fs"].DenyTools, ",") != "read_media_file" {
		t.Errorf("Roles[analyst] = %+v", a)
	}
	if _, ok := h.Roles["admin"].Servers["mem"]; !ok {
		t.Errorf("Roles[admin] = %+v, want server mem with an empty policy", h.Roles["admin"])
	}
	if c.Telemetry.OTLPEndpoint != "http://127.0.0.1:4318" {
		t.Errorf("OTLPEndpoint = %q", c.Telemetry.OTLPEndpoint)
	}
	if s := c.String(); strings.Contains(s, "s3cret-ci") || strings.Contains(s, "main-token") || !strings.Contains(s, "analyst") {
		t.Errorf("String() shows a token or hides roles: %s", s)
	}
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318"
	if c, err := Load(envOf(env), path); err != nil || c.Telemetry.OTLPEndpoint != "http://collector:4318" {
		t.Errorf("with OTEL_EXPORTER_OTLP_ENDPOINT: %v, %q", err, c.Telemetry.OTLPEndpoint)
	}

	const servers = `"mcpServers": {"fs": {"command": "/bin/true"}}, `
	for _, tt := range []struct{ content, want string }{
		{`{` + servers + `"http": {"roles": {"r": {"servers": {"nope": {}}}}}}`, `http.roles.r.servers.nope: no server named "nope"`},
		{`{` + servers + `"http": {"roles": {"r": {"claims": {"groups": []}}}}}`, `http.roles.r.claims.groups: lists no values`},
		{`{` + servers + `"http": {"roles": {"r": {"servers": {"fs": {"allowTools": [""]}}}}}}`, `http.roles.r.servers.fs.allowTools[0]: empty pattern`},
		{`{` + servers + `"http": {"roles": {"r": {"tools": []}}}}`, `http.roles.r.tools: unknown field`},
		{`{` + servers + `"http": {"roles": {"bad name": {}}}}`, `http.roles["bad name"]: role names match`},
		{`{"http": {"defaultRole": "x"}}`, `http.defaultRole: no role named "x"`},
		{`{"http": {"token": "t", "tokenRole": "x", "roles": {"y": {}}}}`, `http.tokenRole: no role named "x" in http.roles (roles: y)`},
		{`{"http": {"tokenRole": "y", "roles": {"y": {}}}}`, `http.tokenRole: there is no http.token`},
		{`{"http": {"tokens": [{"name": "a", "token": "t", "role": "x"}]}}`, `http.tokens[0].role: no role named "x"`},
		{`{"http": {"tokens": [{"name": "a", "role": "x"}]}}`, `http.tokens[0].token: required`},
		{`{"http": {"tokens": [{"token": "t", "role": "x"}]}}`, `http.tokens[0].name: required`},
		{`{"http": {"roles": {"y": {}}, "token": "t", "tokens": [{"name": "a", "token": "t", "role": "y"}]}}`, `http.tokens[0].token: same value as http.token`},
		{`{"telemetry": {"otlpEndpoint": "collector:4318"}}`, `telemetry.otlpEndpoint:`},
	} {
		path := writeFile(t, t.TempDir(), "c.json", tt.content)
		_, err := Load(envOf(nil), path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%s) = %v, want an error containing %q", tt.content, err, tt.want)
		}
	}
}
