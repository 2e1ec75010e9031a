// Package testenv finds and starts the real components tests need — Deno
// and the MCP servers that `make` installs into tools/, and redis-server —
// with one rule: outside CI a missing component skips the test, under CI
// (CI set, as `make test` does) it fails it. Only tests import it.
package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// missing skips or fails tb for a component that is not installed.
func missing(tb testing.TB, what, fix string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s is missing: %s", what, fix)
	}
	tb.Skipf("%s is missing: %s", what, fix)
}

// root is the module root (the directory holding go.mod), found from the
// test's working directory.
func root(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("testenv: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Tool returns the path of a program `make` installs in tools/node_modules/.bin
// (deno, mcp-server-everything, mcp-server-filesystem, mcp-server-memory).
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(root(tb), "tools", "node_modules", ".bin", name)
	if _, err := os.Stat(p); err != nil {
		missing(tb, name, "`make test` installs it")
	}
	return p
}

// Deno returns the Deno binary: MCP_CONDUCTOR_DENO when set, else the one in
// tools/.
func Deno(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("MCP_CONDUCTOR_DENO"); p != "" {
		return p
	}
	return Tool(tb, "deno")
}

// Redis is a real redis-server child process on a loopback port,
// without persistence, owned by one test: t.Cleanup kills it.
type Redis struct {
	tb       testing.TB
	bin      string
	dir      string
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan error
}

// redisBinary returns the redis-server binary.
func redisBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(tb, "redis-server", "install it with apt-get install -y redis-server (`make test` does)")
	}
	return bin
}

// StartRedis starts a redis-server on a free loopback port; password may be
// empty.
func StartRedis(tb testing.TB, password string) *Redis {
	tb.Helper()
	r := &Redis{tb: tb, bin: redisBinary(tb), dir: tb.TempDir(), password: password}
	tb.Cleanup(r.Stop)
	var err error
	for range 5 { // the free port may be taken before redis binds it
		r.port = FreePort(tb)
		if err = r.start(); err == nil {
			return r
		}
	}
	tb.Fatalf("start redis-server: %v", err)
	return nil
}

// FreePort returns a loopback TCP port that nothing listens on (now).
func FreePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is the server's redis:// URL (with the password, if any).
func (r *Redis) URL() string {
	if r.password != "" {
		return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", r.password, r.port)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port)
}

// Restart starts the server again on the same port after Stop.
func (r *Redis) Restart() {
	r.tb.Helper()
	var err error
	for range 50 { // the old socket may linger for a moment
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.tb.Fatalf("restart redis-server on port %d: %v", r.port, err)
}

func (r *Redis) start() error {
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no",
		"--loglevel", "warning"}
	if r.password != "" {
		args = append(args, "--requirepass", r.password)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v: %s", err, out.String())
		default:
		}
		if r.ping() {
			r.cmd = cmd
			r.exited = exited
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server did not answer on port %d: %s", r.port, out.String())
}

// ping reports whether something answers PING like Redis on the port.
func (r *Redis) ping() bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	cmd := "PING\r\n"
	if r.password != "" {
		cmd = fmt.Sprintf("AUTH %s\r\nPING\r\n", r.password)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return false
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.HasPrefix(line, "+PONG") {
			return true
		}
		if strings.HasPrefix(line, "-") {
			return false
		}
	}
}

// Stop kills the server and waits for it. Stopping twice is harmless.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Buffer is a bytes.Buffer safe for concurrent writers (a slog handler's
// output shared by goroutines). The zero value is ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
