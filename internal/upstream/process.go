package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
)

// maxStderrLine bounds one logged line of a server's stderr; the rest of a
// longer line is dropped and the line is marked truncated.
const maxStderrLine = 4096

// process is one running stdio server. It owns the child, the parent's ends
// of its three pipes and the two goroutines that wait for the child and read
// its stderr; stop ends all of them.
type process struct {
	pid    int
	stdin  *onceCloser // parent's write end of the child's stdin
	stdout *os.File    // parent's read end of the child's stdout
	stderr *os.File    // parent's read end of the child's stderr

	exited     chan struct{} // closed when the child has been reaped
	waitErr    error         // valid once exited is closed
	stderrDone chan struct{} // closed when the stderr reader returns
}

// childEnv builds a stdio server's environment from nothing: base (by
// default PATH and HOME of the conductor) and then the server's own env,
// which wins. Nothing else of the conductor's environment is passed on: no
// MCP_CONDUCTOR_* variable and no other server's secrets.
func childEnv(base []string, own map[string]string) []string {
	m := make(map[string]string, len(base)+len(own))
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	for k, v := range own {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// defaultBaseEnv is PATH and HOME of this process, where set.
func defaultBaseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// startProcess starts the server's command with its own environment and
// working directory, in a new process group, with a parent-death signal.
//
// Pdeathsig fires when the OS thread that forked the child exits, not when
// the process does, and the Go runtime may end a thread whose goroutine exits
// while locked to it. So the fork happens on a goroutine that locks its
// thread and keeps it, blocked in Wait, until the child has exited.
func startProcess(cfg config.Server, baseEnv []string, log *slog.Logger) (*process, error) {
	cmd := exec.Command(cfg.Command, cfg.Args...)
	cmd.Env = childEnv(baseEnv, cfg.Env)
	cmd.Dir = cfg.Cwd
	cmd.SysProcAttr = sysProcAttr()

	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW

	p := &process{
		stdin:      &onceCloser{f: inW},
		stdout:     outR,
		stderr:     errR,
		exited:     make(chan struct{}),
		stderrDone: make(chan struct{}),
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	err = <-started
	// The child holds its own copies of its ends now.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	p.pid = cmd.Process.Pid
	go p.logStderr(log)
	return p, nil
}

// logStderr forwards the child's stderr to log, one record per line, each
// line cut at maxStderrLine bytes.
func (p *process) logStderr(log *slog.Logger) {
	defer close(p.stderrDone)
	r := bufio.NewReaderSize(p.stderr, maxStderrLine)
	for {
		line, isPrefix, err := r.ReadLine()
		if len(line) > 0 {
			text := strings.ToValidUTF8(string(line), "\uFFFD")
			if isPrefix {
				log.Info("stderr", slog.String("line", text), slog.Bool("truncated", true))
				for isPrefix && err == nil {
					_, isPrefix, err = r.ReadLine()
				}
			} else {
				log.Info("stderr", slog.String("line", text))
			}
		}
		if err != nil {
			return
		}
	}
}

// exitCause describes how the child ended; call it after exited is closed.
func (p *process) exitCause() error {
	if p.waitErr == nil {
		return errors.New("process exited with status 0")
	}
	return fmt.Errorf("process exited: %w", p.waitErr)
}

// stop ends the child the way the MCP spec asks: close its stdin, wait
// grace, SIGTERM the process group, wait grace, SIGKILL the group. Once the
// child is reaped, whatever is left in its group is killed too, and stop
// waits for the stderr reader. It is safe to call on a child that already
// exited, and more than once.
func (p *process) stop(grace time.Duration) {
	p.stdin.Close()
	wait := func() bool {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.exited:
			return true
		case <-t.C:
			return false
		}
	}
	if !wait() {
		if signalGroup(p.pid, syscall.SIGTERM) != nil || !wait() {
			signalGroup(p.pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	// Grandchildren left behind in the group would hold the stderr pipe
	// open and outlive the conductor.
	signalGroup(p.pid, syscall.SIGKILL)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.stderrDone:
	case <-t.C:
		// Someone outside the group still holds the pipe: stop reading.
		p.stderr.Close()
		<-p.stderrDone
	}
	p.stdout.Close()
	p.stderr.Close()
}

// onceCloser closes an *os.File once; the MCP connection and stop both close
// the child's stdin.
type onceCloser struct {
	f    *os.File
	once sync.Once
	err  error
}

func (c *onceCloser) Write(b []byte) (int, error) { return c.f.Write(b) }

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.f.Close() })
	return c.err
}
