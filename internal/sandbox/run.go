package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxFrame bounds one protocol frame from the harness (a tool call's
// arguments or the result).
const maxFrame = 16 << 20

// Run executes one program. Failures of the program are reported in
// Result.Error; the returned error is non-nil only when the run could not be
// attempted at all (bad spec). A cancelled ctx kills the run.
func (r *Runner) Run(ctx context.Context, spec Spec) (*Result, error) {
	start := time.Now()
	if spec.Dir == "" || !filepath.IsAbs(spec.Dir) {
		return nil, fmt.Errorf("sandbox: run dir %q is not absolute", spec.Dir)
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 30 * time.Second
	}
	if spec.MaxOutputBytes <= 0 {
		spec.MaxOutputBytes = 1 << 20
	}
	if spec.MemoryMB <= 0 {
		spec.MemoryMB = 256
	}
	res := &Result{}
	finish := func() (*Result, error) {
		res.Duration = time.Since(start)
		return res, nil
	}
	spec.Dir = filepath.Clean(spec.Dir)
	syntax := func(err error) (*Result, error) {
		var se *SyntaxError
		if errors.As(err, &se) {
			res.Error = &Error{Kind: KindSyntax, Message: se.Error(), Line: se.Line, Column: se.Column}
			return finish()
		}
		res.Error = &Error{Kind: KindInternal, Message: err.Error()}
		return finish()
	}
	// The workspace is checked before any process is handed out: a refused
	// run starts nothing and burns no spare.
	if err := checkLinks(filepath.Join(spec.Dir, "workspace")); err != nil {
		res.Error = &Error{Kind: KindPermission, Message: err.Error()}
		return finish()
	}
	perms := narrow(spec.Permissions, r.opts.Workspace, spec.Dir)
	args := r.args(spec.MemoryMB, spec.Importer.Package != nil, flags(perms))
	var pr *proc
	var p *prepared
	var err error
	if r.pool != nil {
		// A program that does not compile must not burn a spare: compile
		// first (esbuild takes about a millisecond), then take a process.
		if p, err = r.prep.prepare(spec.Code, spec.Importer); err != nil {
			return syntax(err)
		}
		pr = r.pool.take(spec.Dir, args, spec.MemoryMB)
		defer r.pool.release(spec.Dir, args)
	}
	if pr != nil {
		select {
		case <-pr.ready:
		case <-ctx.Done():
		}
		if !isClosed(pr.ready) || !pr.ok || isClosed(pr.exited) || !inDir(pr.pid, spec.Dir) {
			// Died idle, the run was cancelled while it booted, or the
			// conversation's directory was removed and made again since.
			pr.kill()
			pr = nil
		}
	}
	if pr == nil {
		// Cold: start Deno first and compile while it boots.
		pr, err = r.start(profileKey(spec.Dir, args), spec.Dir, args, spec.MemoryMB, false)
		if err != nil {
			res.Error = &Error{Kind: KindInternal, Message: err.Error()}
			return finish()
		}
		if p == nil {
			if p, err = r.prep.prepare(spec.Code, spec.Importer); err != nil {
				// Wait for the process to be gone, as after any run: it may
				// be creating Deno's caches, and the caller may remove the
				// directories right after (seen as a flaky test cleanup).
				pr.kill()
				<-pr.exited
				return syntax(err)
			}
		}
	}
	r.execute(ctx, spec, p, pr, res)
	return finish()
}

var frameStart = []byte("\n\x1e")

// inDir reports whether the working directory of process pid is dir itself
// (not a directory of that name that was removed since).
func inDir(pid int, dir string) bool {
	cwd, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return false
	}
	d, err := os.Stat(dir)
	return err == nil && os.SameFile(cwd, d)
}

// execute runs the prepared program in pr, which it kills, and fills res.
func (r *Runner) execute(ctx context.Context, spec Spec, p *prepared, pr *proc, res *Result) {
	pid := pr.pid
	limitCPU(pid, spec.Timeout)
	if r.onStart != nil {
		r.onStart(pid)
	}
	stdoutR, stderrR := pr.stdoutR, pr.stderrR

	run := &runState{
		r:         r,
		spec:      spec,
		p:         p,
		stdin:     pr.stdin,
		pid:       pid,
		mayFork:   pr.mayFork,
		secret:    randomHex(24),
		max:       spec.MaxOutputBytes,
		stopped:   make(chan struct{}),
		stderrEnd: make(chan struct{}),
	}
	runCtx, cancelCalls := context.WithCancel(ctx)
	run.callCtx = runCtx

	// A ready spare gets its program from this goroutine, which is running
	// anyway: handing the send to the reader costs a goroutine wake-up,
	// up to a millisecond on an idle VM. A frame this small fits the
	// empty pipe, so the write cannot block.
	frame := run.runFrame()
	begin := func() bool { // false: the harness never got ready
		run.output("stdout", pr.pre)
		if pr.ok {
			run.write(frame)
		}
		return pr.ok
	}
	direct := isClosed(pr.ready) && pr.ok && len(frame) <= maxDirectFrame
	if direct {
		begin()
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		if !direct {
			<-pr.ready
			if !begin() {
				return
			}
		}
		run.readFrames(pr.br)
	}()
	go func() { defer readers.Done(); run.readStderr(stderrR) }()

	timer := time.NewTimer(spec.Timeout)
	waited := make(chan error, 1)
	go func() {
		<-pr.exited
		// A process that escaped the kill (it double-forked away) may hold
		// the pipes open: give the readers a moment to drain what the run
		// wrote, then stop reading.
		drained := make(chan struct{})
		go func() { readers.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(time.Second):
			stdoutR.Close()
			stderrR.Close()
			<-drained
		}
		waited <- pr.waitErr
		stdoutR.Close()
		stderrR.Close()
	}()
	var waitErr error
	select {
	case <-timer.C:
		run.stop(KindTimeout, fmt.Sprintf("the program ran longer than its timeout of %v", spec.Timeout))
		waitErr = <-waited
	case <-ctx.Done():
		run.stop(KindInternal, "the execution was cancelled")
		waitErr = <-waited
	case <-run.stopped:
		if !run.finished() {
			waitErr = <-waited
			break
		}
		// The done frame came and the tree is SIGKILLed: once stderr is
		// complete the result is, and the process is reaped behind us.
		select {
		case <-run.stderrEnd:
			r.reap.Add(1)
			go func() { defer r.reap.Done(); <-waited }()
		case waitErr = <-waited:
		}
	case waitErr = <-waited:
	}
	timer.Stop()
	cancelCalls()
	run.kill()
	run.calls.Wait()
	run.mu.Lock()
	run.sealed = true
	run.mu.Unlock()
	run.fill(res, waitErr)
}

// limitCPU applies RLIMIT_CPU for the run's timeout when the process is
// handed to it, before its program is sent.
func limitCPU(pid int, timeout time.Duration) {
	cpu := uint64(timeout/time.Second) + 2
	_ = unix.Prlimit(pid, unix.RLIMIT_CPU, &unix.Rlimit{Cur: cpu, Max: cpu + 1}, nil)
}

func (r *Runner) env() []string {
	env := []string{
		"HOME=" + r.opts.Home,
		"DENO_NO_UPDATE_CHECK=1",
		"DENO_NO_PROMPT=1",
		"NO_COLOR=1",
		"TMPDIR=" + r.opts.Home,
	}
	if r.opts.DenoDir != "" {
		env = append(env, "DENO_DIR="+r.opts.DenoDir)
	}
	return append(env, r.opts.ExtraEnv...)
}

// runState is one live run. Its fields after the constructor are guarded by mu.
type runState struct {
	r       *Runner
	spec    Spec
	p       *prepared
	stdin   io.WriteCloser
	pid     int
	secret  string
	max     int
	callCtx context.Context
	calls   sync.WaitGroup

	writeMu sync.Mutex // serializes writes to stdin

	mu       sync.Mutex
	stdout   bytes.Buffer
	stderr   bytes.Buffer
	used     int // output bytes counted against max
	done     *doneFrame
	failKind Kind
	failMsg  string
	stopped  chan struct{}
	stopOnce sync.Once
	killed   bool
	mayFork  bool // see proc.mayFork
	// sealed drops output that arrives after the result was taken.
	sealed bool

	stderrEnd  chan struct{}
	stderrOnce sync.Once
}

type doneFrame struct {
	OK     bool            `json:"ok"`
	Has    bool            `json:"has"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Name    string `json:"name"`
		Message string `json:"message"`
		Stack   string `json:"stack"`
	} `json:"error"`
}

// finished reports whether the harness sent its done frame.
func (s *runState) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done != nil
}

// stop ends the run for a reason of the conductor's (first reason wins).
func (s *runState) stop(kind Kind, msg string) {
	s.mu.Lock()
	if s.failKind == "" && s.done == nil {
		s.failKind, s.failMsg = kind, msg
	}
	s.mu.Unlock()
	s.kill()
	s.stopOnce.Do(func() { close(s.stopped) })
}

// kill SIGKILLs the whole process group and, the first time, every
// descendant that left the group (a subprocess that called setsid), when
// the program could start processes at all: finding them takes a walk
// of /proc (0.1 to 0.2 ms), on the way to every result.
func (s *runState) kill() {
	s.mu.Lock()
	first := !s.killed
	s.killed = true
	s.mu.Unlock()
	if first && s.mayFork {
		killTree(s.pid)
		return
	}
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
}

func (s *runState) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	s.write(append(b, '\n'))
}

// write sends one line to the harness.
func (s *runState) write(b []byte) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, _ = s.stdin.Write(b)
}

// output records program output and enforces the output limit.
func (s *runState) output(stream string, b []byte) {
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	if s.sealed {
		s.mu.Unlock()
		return
	}
	over := false
	room := s.max - s.used
	if room < len(b) {
		over = true
		if room > 0 {
			b = b[:room]
		} else {
			b = nil
		}
	}
	s.used += len(b)
	if stream == "stdout" {
		s.stdout.Write(b)
	} else {
		s.stderr.Write(b)
	}
	s.mu.Unlock()
	if len(b) > 0 && s.spec.OnOutput != nil {
		s.spec.OnOutput(stream, s.r.scrub.Replace(string(b)))
	}
	if over {
		s.stop(KindOutputLimit, fmt.Sprintf("the program wrote more than %d bytes of output", s.max))
	}
}

// readStdout reads a whole stdout stream: the harness's ready frame, then
// the run (tests drive the frame parser through it).
func (s *runState) readStdout(rd io.Reader) {
	br := bufio.NewReaderSize(rd, 64<<10)
	pre, ok := awaitReady(br)
	s.output("stdout", pre)
	if ok {
		s.write(s.runFrame())
		s.readFrames(br)
	}
}

// runFrame is the line that gives the harness its program. Only frames
// carrying the secret count from then on.
func (s *runState) runFrame() []byte {
	code := s.p.js
	if s.p.fn {
		code = fnPrologue + code + "\n//# sourceURL=" + fnSourceURL
	}
	b, _ := json.Marshal(map[string]any{"t": "run", "secret": s.secret, "code": code, "fn": s.p.fn,
		"ns": s.p.imports, "resultKey": s.p.resultKey, "resultMax": s.max})
	return append(b, '\n')
}

// maxDirectFrame is the largest run frame execute writes itself: well
// under the 64 KB a Linux pipe holds.
const maxDirectFrame = 32 << 10

// readFrames separates the program's own output from the harness's frames,
// after the ready frame. A frame is "\n\x1e<secret>:<json>\n"; the newline
// before it belongs to the frame, so program output is reproduced byte for
// byte.
func (s *runState) readFrames(br *bufio.Reader) {
	marker := []byte("\x1e" + s.secret + ":")
	var pending []byte // program output not yet known not to precede a frame
	flush := func() {
		s.output("stdout", pending)
		pending = pending[:0]
	}
	for {
		line, err := readLine(br, maxFrame)
		if len(line) > 0 {
			body := line
			if body[len(body)-1] == '\n' {
				body = body[:len(body)-1]
			}
			if i := bytes.Index(body, marker); i >= 0 {
				// Output before the marker on the same line is the program's.
				pending = append(pending, body[:i]...)
				frame := body[i+len(marker):]
				if len(pending) > 0 && pending[len(pending)-1] == '\n' {
					pending = pending[:len(pending)-1]
				}
				flush()
				if !s.frame(frame) {
					return
				}
				continue
			}
			pending = append(pending, line...)
			// Keep at most one trailing newline pending: earlier output is final.
			if len(pending) > 1 {
				cut := len(pending)
				if pending[cut-1] == '\n' {
					cut--
				}
				s.output("stdout", pending[:cut])
				pending = append(pending[:0], pending[cut:]...)
			}
		}
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.stop(KindOutputLimit, "the program wrote a line longer than the protocol allows")
			}
			flush()
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads up to and including '\n'. Program output longer than max is
// returned in pieces; only frames must fit.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if err == bufio.ErrBufferFull {
			if len(out) > max {
				return out, errLineTooLong
			}
			if !bytes.Contains(out, []byte{0x1e}) {
				return out, nil // plain output: hand it on now
			}
			continue
		}
		return out, err
	}
}

// frame handles one authenticated frame; false ends reading.
func (s *runState) frame(b []byte) bool {
	var f struct {
		T      string          `json:"t"`
		ID     int64           `json:"id"`
		Server string          `json:"server"`
		Tool   string          `json:"tool"`
		Args   string          `json:"args"`
		OK     bool            `json:"ok"`
		Has    bool            `json:"has"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		s.stop(KindInternal, "bad frame from the harness")
		return false
	}
	switch f.T {
	case "call":
		s.call(f.ID, f.Server, f.Tool, json.RawMessage(f.Args))
	case "done":
		var d doneFrame
		if err := json.Unmarshal(b, &d); err != nil {
			s.stop(KindInternal, "bad result frame from the harness")
			return false
		}
		s.mu.Lock()
		if s.failKind == "" && s.done == nil {
			s.done = &d
		}
		s.mu.Unlock()
		s.kill()
		s.stopOnce.Do(func() { close(s.stopped) })
		return false
	}
	return true
}

func (s *runState) call(id int64, server, tool string, args json.RawMessage) {
	reply := func(v json.RawMessage, err error) {
		if err != nil {
			s.send(map[string]any{"t": "res", "id": id, "ok": false, "error": err.Error()})
			return
		}
		if v == nil {
			v = json.RawMessage("null")
		}
		s.send(map[string]any{"t": "res", "id": id, "ok": true, "value": v})
	}
	if s.spec.Calls == nil {
		reply(nil, fmt.Errorf("%s.%s: no MCP servers are available to this program", server, tool))
		return
	}
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		// Arguments may hold text user code got from the runtime (a stack
		// trace naming the harness): they leave the sandbox scrubbed.
		v, err := s.spec.Calls(s.callCtx, server, tool, s.r.scrubJSON(args))
		if s.callCtx.Err() != nil {
			return
		}
		reply(v, err)
	}()
}

// readStderr passes the program's stderr on, up to the harness's end
// marker ("\x1e<secret>:end\n", written just before the done frame), whose
// arrival closes stderrEnd, as does the end of the stream.
func (s *runState) readStderr(rd io.Reader) {
	defer s.endStderr()
	br := bufio.NewReaderSize(rd, 64<<10)
	marker := []byte("\x1e" + s.secret + ":end\n")
	for {
		line, err := readLine(br, 64<<10)
		if i := bytes.Index(line, marker); i >= 0 && s.secret != "" {
			s.output("stderr", line[:i])
			s.endStderr()
			line = line[i+len(marker):]
		}
		s.output("stderr", line)
		if err != nil && !errors.Is(err, errLineTooLong) {
			return
		}
	}
}

func (s *runState) endStderr() {
	s.stderrOnce.Do(func() { close(s.stderrEnd) })
}

var (
	oomText = regexp.MustCompile(`(?i)out of memory|Reached heap limit|allocation failed|Array buffer allocation failed`)
	// A position in the program: in a module, or in a function (V8 calls
	// the frame of its body "eval").
	programPos = regexp.MustCompile(`blob:null/[0-9a-f-]+:(\d+):(\d+)|(eval \()?` + regexp.QuoteMeta(fnSourceURL) + `(?:, <anonymous>)?:(\d+):(\d+)(\))?`)
)

// fill turns what was observed into the result.
func (s *runState) fill(res *Result, waitErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scrub := s.r.scrub.Replace
	res.Stdout = scrub(s.stdout.String())
	stderr := s.stderr.String()
	switch {
	case s.failKind != "":
		res.Error = &Error{Kind: s.failKind, Message: s.failMsg}
	case s.done != nil && s.done.OK:
		if s.done.Has {
			if s.used+len(s.done.Result) > s.max {
				res.Error = &Error{Kind: KindOutputLimit, Message: fmt.Sprintf(
					"the result and output together are more than %d bytes", s.max)}
			} else {
				res.Value = s.r.scrubJSON(s.done.Result)
			}
		}
	case s.done != nil:
		res.Error = s.classify(s.done)
	case oomText.MatchString(stderr):
		res.Error = &Error{Kind: KindMemory, Message: fmt.Sprintf(
			"the program ran out of memory (limit %d MB of heap)", s.spec.MemoryMB)}
		stderr = trimCrashReport(stderr)
	default:
		msg := "the program ended without a result"
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
				sig := st.Signal()
				if sig == syscall.SIGXCPU {
					res.Error = &Error{Kind: KindTimeout, Message: "the program used more CPU time than allowed"}
					break
				}
				if sig == syscall.SIGSEGV || sig == syscall.SIGTRAP || sig == syscall.SIGABRT || sig == syscall.SIGBUS {
					res.Error = &Error{Kind: KindMemory, Message: fmt.Sprintf(
						"the program ran out of memory (the process was stopped by %v)", sig)}
					stderr = trimCrashReport(stderr)
					break
				}
				msg = fmt.Sprintf("the program was stopped by signal %v", sig)
			} else {
				msg = fmt.Sprintf("the program exited with status %d", ee.ExitCode())
			}
		} else if waitErr == nil {
			// Exited with status 0 before finishing (e.g. process.exit(0)).
			break
		}
		res.Error = &Error{Kind: KindInternal, Message: msg}
		if strings.Contains(stderr, "error:") {
			res.Error.Kind = KindException
			res.Error.Message = firstErrorLine(stderr)
		}
	}
	res.Stderr = scrub(stderr)
	if res.Error != nil {
		res.Error.Message = scrub(res.Error.Message)
		res.Error.Stack = scrub(res.Error.Stack)
	}
}

func firstErrorLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if i := strings.Index(l, "error:"); i >= 0 {
			return strings.TrimSpace(l[i+len("error:"):])
		}
	}
	return strings.TrimSpace(stderr)
}

// trimCrashReport drops V8's fatal-error report (GC traces, C stack).
func trimCrashReport(stderr string) string {
	for _, m := range []string{"\n<--- Last few GCs --->", "<--- Last few GCs --->", "\n#\n# Fatal", "#\n# Fatal", "\n\n#", "==== C stack trace"} {
		if i := strings.Index(stderr, m); i >= 0 {
			stderr = stderr[:i]
		}
	}
	return stderr
}

func (s *runState) classify(d *doneFrame) *Error {
	if d.Error == nil {
		return &Error{Kind: KindInternal, Message: "the program failed without an error"}
	}
	name, msg := d.Error.Name, d.Error.Message
	e := &Error{Kind: KindException, Message: msg, Stack: s.cleanStack(d.Error.Stack)}
	if name != "" && name != "Error" && name != "Uncaught" && !strings.HasPrefix(msg, name) {
		e.Message = name + ": " + msg
	}
	switch {
	case name == "NotCapable" || name == "PermissionDenied" || strings.Contains(msg, "Requires ") && strings.Contains(msg, " access to "):
		e.Kind = KindPermission
	case name == "OutputLimit":
		e.Kind = KindOutputLimit
		e.Message = msg
	case name == "RangeError" && oomText.MatchString(msg):
		e.Kind = KindMemory
	case name == "SyntaxError":
		e.Kind = KindSyntax
	}
	e.Message = s.mapPositions(e.Message)
	return e
}

// cleanStack maps blob positions to the user's file and drops frames of the
// harness and of Deno's internals.
func (s *runState) cleanStack(stack string) string {
	var out []string
	for _, l := range strings.Split(stack, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "at ") {
			if strings.Contains(t, s.r.harness) || strings.Contains(t, "ext:") || strings.Contains(t, "<harness>") {
				continue
			}
		}
		out = append(out, s.mapPositions(l))
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

func (s *runState) mapPositions(text string) string {
	return programPos.ReplaceAllStringFunc(text, func(m string) string {
		sub := programPos.FindStringSubmatch(m)
		ls, cs, bare := sub[1], sub[2], false
		if ls == "" {
			// "eval (pos)" becomes "pos", like a module's top-level frame.
			ls, cs, bare = sub[4], sub[5], sub[3] != "" && sub[6] != ""
		}
		line, _ := strconv.Atoi(ls)
		col, _ := strconv.Atoi(cs)
		if sub[1] == "" {
			line -= fnHeaderLines
		}
		pos := userFile
		if line == s.p.prefixLine && col > s.p.prefixCols {
			col -= s.p.prefixCols
		}
		if l, c, ok := s.p.srcmap.lookup(line, col); ok {
			pos = fmt.Sprintf("%s:%d:%d", userFile, l, c)
		}
		if sub[1] == "" && !bare {
			return sub[3] + pos + sub[6]
		}
		return pos
	})
}
