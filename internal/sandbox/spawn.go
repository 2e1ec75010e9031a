package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// proc is one Deno process running the harness. It serves exactly one run:
// whoever takes it (a run, or the pool's Close) kills it afterwards, and it
// is never handed out twice (taken guards that).
type proc struct {
	key     string
	pid     int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdoutR *os.File
	stderrR *os.File
	br      *bufio.Reader

	// ready is closed when the harness said it waits for its program, or
	// when stdout ended first; ok and pre are valid after that.
	ready chan struct{}
	ok    bool
	// pre is what stdout carried before the ready frame (Deno warnings),
	// without the frame's own line break, capped.
	pre []byte

	// mayFork: the profile lets the program start processes (allow-run),
	// which may leave the process group; without it, killing the group
	// kills everything.
	mayFork bool

	// exited is closed after Wait returned; waitErr is valid after that.
	exited  chan struct{}
	waitErr error

	// state says who owns the process: the pool (0), a run or a caller
	// (owned), or nobody since it exited in the pool (exitedInPool). A
	// process leaves the pool once, by compare-and-swap.
	state atomic.Int32
}

const (
	inPool int32 = iota
	owned
	exitedInPool
)

// maxPre bounds what the harness's stdout may carry before it is ready.
const maxPre = 64 << 10

// args renders the Deno command line of a run: the profile of a process,
// together with the runner's fixed environment and the working directory.
func (r *Runner) args(memoryMB int, packages bool, permFlags []string) []string {
	args := make([]string, 0, 12+len(permFlags)+len(r.opts.ExtraFlags))
	args = append(args, "run", "--no-prompt", "--no-config", "--no-lock", "--no-remote", "--cached-only",
		"--node-modules-dir=none", "--v8-flags=--max-old-space-size="+strconv.Itoa(memoryMB))
	if !packages {
		args = append(args, "--no-npm") // nothing is allowed: do not even resolve npm:
	}
	args = append(args, permFlags...)
	args = append(args, r.opts.ExtraFlags...)
	args = append(args, r.harness)
	if packages {
		// The harness imports these while it waits for its program, so a
		// pooled process answers an import of an allowed package at once.
		args = append(args, r.opts.Preload...)
	}
	return args
}

// eagerCompile turns V8's lazy compilation off for a pooled process: it
// boots in the background, and compiling every function of the harness,
// the preloaded packages and modules ahead of time takes their first calls
// off the run (zod: a program using it 1.7 -> 1.0 ms in Deno alone). A
// cold start keeps lazy compilation, where it is the faster choice.
func eagerCompile(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if strings.HasPrefix(a, "--v8-flags=") {
			out[i] = a + ",--no-lazy"
			return out
		}
	}
	return out
}

// withModules appends to a spare's command line the modules of dir to
// load ahead (see Options.Modules). They are not part of the profile: a
// spare that loaded other versions is still a valid process for the
// directory, only not a preloaded one.
func (r *Runner) withModules(dir string, args []string) []string {
	if r.opts.Modules == nil {
		return args
	}
	mods := r.opts.Modules(dir)
	if len(mods) == 0 {
		return args
	}
	out := slices.Clip(args)
	for _, m := range mods {
		if filepath.IsAbs(m) && within(m, filepath.Join(dir, "mcp")) {
			out = append(out, fileURL(m))
		}
	}
	return out
}

// mayFork reports whether a Deno command line lets a program start
// processes: Deno cannot create one without allow-run (or allow-all or
// FFI, which the conductor never grants).
func mayFork(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == "-A" || strings.HasPrefix(a, "--allow-run") || strings.HasPrefix(a, "--allow-all") ||
			strings.HasPrefix(a, "--allow-ffi")
	})
}

// start starts the harness in dir with args and applies the limits that do
// not depend on the run (memory, core dumps). The harness waits for its
// program, so no user code runs before the run's own limits are set. The
// returned process is owned by the caller, who must kill it.
func (r *Runner) start(key, dir string, args []string, memoryMB int, pooled bool) (*proc, error) {
	if pooled {
		args = eagerCompile(args)
	}
	cmd := exec.Command(r.opts.Deno, args...)
	cmd.Dir = dir
	cmd.Env = r.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if r.dropsPrivileges() {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), NoSetGroups: true}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, errors.New("stdin pipe: " + err.Error())
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		stdin.Close()
		return nil, errors.New("stdout pipe: " + err.Error())
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdin.Close()
		stdoutR.Close()
		stdoutW.Close()
		return nil, errors.New("stderr pipe: " + err.Error())
	}
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	if err := cmd.Start(); err != nil {
		stdin.Close()
		stdoutR.Close()
		stdoutW.Close()
		stderrR.Close()
		stderrW.Close()
		return nil, errors.New("start deno: " + r.scrub.Replace(err.Error()))
	}
	stdoutW.Close()
	stderrW.Close()
	p := &proc{
		key:     key,
		pid:     cmd.Process.Pid,
		cmd:     cmd,
		stdin:   stdin,
		stdoutR: stdoutR,
		stderrR: stderrR,
		br:      bufio.NewReaderSize(stdoutR, 64<<10),
		mayFork: mayFork(args),
		ready:   make(chan struct{}),
		exited:  make(chan struct{}),
	}
	if !pooled {
		p.state.Store(owned)
	}
	limitMemory(p.pid, memoryMB)
	go func() {
		p.pre, p.ok = awaitReady(p.br)
		close(p.ready)
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
		if pooled {
			r.pool.gone(p)
		}
	}()
	return p, nil
}

// kill stops an unused process (the harness runs no user code yet, but the
// whole tree goes all the same) and closes the pipes once it has exited.
func (p *proc) kill() {
	killTree(p.pid)
	go func() {
		<-p.exited
		<-p.ready
		p.stdoutR.Close()
		p.stderrR.Close()
	}()
}

// awaitReady reads the harness's stdout up to its ready frame. What came
// before is returned (the line break that starts the frame excluded); when
// stdout ends first, everything read is returned and ok is false.
func awaitReady(br *bufio.Reader) (pre []byte, ok bool) {
	for {
		line, err := readLine(br, maxFrame)
		if len(line) > 0 {
			body := bytes.TrimSuffix(line, []byte("\n"))
			if string(body) == "\x1e:"+readyFrame {
				return bytes.TrimSuffix(pre, []byte("\n")), true
			}
			if len(pre) < maxPre {
				pre = append(pre, line[:min(len(line), maxPre-len(pre))]...)
			}
		}
		if err != nil {
			return pre, false
		}
	}
}

const readyFrame = `{"t":"ready"}`

// limitMemory applies RLIMIT_DATA and RLIMIT_CORE. V8's heap is capped by
// --max-old-space-size; RLIMIT_DATA caps the rest (ArrayBuffers, Workers,
// native allocations) with room for the runtime.
func limitMemory(pid, memoryMB int) {
	data := uint64(memoryMB)*3<<20 + 512<<20
	_ = unix.Prlimit(pid, unix.RLIMIT_DATA, &unix.Rlimit{Cur: data, Max: data}, nil)
	_ = unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil)
}
