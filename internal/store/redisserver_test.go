package store

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisServer is a real redis-server child process on a loopback port,
// without persistence, owned by one test: t.Cleanup kills it.
type redisServer struct {
	tb       testing.TB
	bin      string
	dir      string
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan error
}

// needRedis returns the redis-server binary, skipping the test when it is
// absent, except under CI where a missing component is a failure.
func needRedis(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("redis-server not found (CI=%s): install it (apt-get install -y redis-server)", os.Getenv("CI"))
		}
		tb.Skip("redis-server not found; install it with apt-get install -y redis-server")
	}
	return bin
}

// startRedis starts a redis-server on a free loopback port; password may be
// empty.
func startRedis(tb testing.TB, password string) *redisServer {
	tb.Helper()
	r := &redisServer{tb: tb, bin: needRedis(tb), dir: tb.TempDir(), password: password}
	tb.Cleanup(r.Stop)
	var err error
	for range 5 { // the free port may be taken before redis binds it
		r.port = freePort(tb)
		if err = r.start(); err == nil {
			return r
		}
	}
	tb.Fatalf("start redis-server: %v", err)
	return nil
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (r *redisServer) URL() string {
	if r.password != "" {
		return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", r.password, r.port)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port)
}

// Restart starts the server again on the same port after Stop.
func (r *redisServer) Restart() {
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

func (r *redisServer) start() error {
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
func (r *redisServer) ping() bool {
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
func (r *redisServer) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}
