package conductor_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisServer is a redis-server child process on a free loopback port,
// without persistence, owned by one test: its Cleanup stops it.
type redisServer struct {
	tb     testing.TB
	bin    string
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan error
}

// startRedis starts a redis-server, skipping the test when it is not
// installed, except under CI where that is a failure.
func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-server not found: install it (apt-get install -y redis-server)")
		}
		tb.Skip("redis-server not found; install it with apt-get install -y redis-server")
	}
	r := &redisServer{tb: tb, bin: bin, dir: tb.TempDir()}
	tb.Cleanup(r.Stop)
	for range 5 { // the free port may be taken before redis binds it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		r.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if err = r.start(); err == nil {
			return r
		}
	}
	tb.Fatalf("start redis-server: %v", err)
	return nil
}

func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() error {
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v: %s", err, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), time.Second); err == nil {
			c.Close()
			r.cmd, r.exited = cmd, exited
			return nil
		}
	}
	cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server did not answer on port %d", r.port)
}

// Stop kills the server (as a crash would) and waits for it.
func (r *redisServer) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Restart starts the server again on the same port after Stop.
func (r *redisServer) Restart() {
	r.tb.Helper()
	var err error
	for range 50 {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.tb.Fatalf("restart redis-server: %v", err)
}
