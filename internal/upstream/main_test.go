package upstream

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

// modeVar makes the test binary act as something else (the fork and exec
// trick of go-sdk's mcp/cmd_test.go). The hub passes only a server's own env,
// so the mode travels in config.Server.Env.
const modeVar = "UPSTREAM_TEST_MODE"

func TestMain(m *testing.M) {
	switch mode := os.Getenv(modeVar); mode {
	case "":
		goleak.VerifyTestMain(m)
	case "server":
		runTestServer()
	case "hub":
		runTestHub()
	default:
		log.Fatalf("unknown %s %q", modeVar, mode)
	}
}

type echoIn struct {
	Text string `json:"text"`
}

type sleepIn struct {
	MS int `json:"ms"`
}

type nameIn struct {
	Name string `json:"name"`
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// newTestMCPServer is the MCP server of these tests, over stdio (re-exec'd)
// or HTTP (in process). PageSize 2 makes tools/list paginate.
func newTestMCPServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "upstream-test", Version: "1"}, &mcp.ServerOptions{PageSize: 2})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echoes text"}, func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return text(in.Text), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "sleep", Description: "sleeps ms milliseconds"}, func(ctx context.Context, req *mcp.CallToolRequest, in sleepIn) (*mcp.CallToolResult, any, error) {
		select {
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
			return text("slept"), nil, nil
		case <-ctx.Done():
			if f := os.Getenv("CANCEL_FILE"); f != "" {
				os.WriteFile(f, []byte("cancelled"), 0o600)
			}
			return nil, nil, ctx.Err()
		}
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "pid", Description: "process id"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		return text(fmt.Sprint(os.Getpid())), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "env", Description: "environment, one per line"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		return text(strings.Join(os.Environ(), "\n")), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail", Description: "always fails"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, fmt.Errorf("tool failed on purpose")
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "add_tool", Description: "adds a tool named name"}, func(ctx context.Context, req *mcp.CallToolRequest, in nameIn) (*mcp.CallToolResult, any, error) {
		mcp.AddTool(srv, &mcp.Tool{Name: in.Name, Description: "added at run time"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return text("dynamic " + in.Name), nil, nil
		})
		return text("added"), nil, nil
	})
	return srv
}

// runTestServer serves newTestMCPServer over stdio. With STUBBORN set it
// ignores SIGTERM and keeps running after its stdin closes, so only SIGKILL
// (from the stop ladder or the parent-death signal) ends it; with GRANDCHILD
// set it starts a long sleep in its process group, whose pid the tool
// "grandchild" returns.
func runTestServer() {
	fmt.Fprintln(os.Stderr, "test server starting")
	fmt.Fprintln(os.Stderr, strings.Repeat("x", 3*maxStderrLine)+"END")
	srv := newTestMCPServer()
	if os.Getenv("GRANDCHILD") != "" {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		mcp.AddTool(srv, &mcp.Tool{Name: "grandchild"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return text(fmt.Sprint(cmd.Process.Pid)), nil, nil
		})
	}
	stubborn := os.Getenv("STUBBORN") != ""
	if stubborn {
		signal.Ignore(syscall.SIGTERM)
	}
	err := srv.Run(context.Background(), &mcp.StdioTransport{})
	if stubborn {
		select {}
	}
	if err != nil {
		log.Fatal(err)
	}
}

// runTestHub starts a hub with the servers listed in the test's arguments,
// prints "ready" and their pids, and blocks until it is killed.
func runTestHub() {
	marker := os.Getenv("ORPHAN_MARKER")
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	servers := []config.Server{
		{Name: "a", Command: exe, Args: []string{marker}, Env: map[string]string{modeVar: "server", "STUBBORN": "1"}},
		{Name: "b", Command: exe, Args: []string{marker}, Env: map[string]string{modeVar: "server", "STUBBORN": "1"}},
	}
	if bin := os.Getenv("EVERYTHING_BIN"); bin != "" {
		servers = append(servers, config.Server{Name: "everything", Command: bin, Args: []string{"stdio"}})
	}
	h := New(servers, Options{})
	h.Start(context.Background())
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprint(w, "ready")
	for _, st := range h.Status() {
		if st.State != StateUp {
			log.Fatalf("server %s: %s %s", st.Server, st.State, st.Err)
		}
		fmt.Fprintf(w, " %d", st.Pid)
	}
	fmt.Fprintln(w)
	w.Flush()
	select {}
}
