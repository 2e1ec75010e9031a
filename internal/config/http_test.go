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
