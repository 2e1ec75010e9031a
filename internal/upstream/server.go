package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Bounds on one tools/list sweep, against a server that pages forever.
const (
	maxListPages = 1000
	maxTools     = 10000
)

// server is the hub's view of one upstream server. Its supervisor goroutine
// (run) is the only writer of the fields under mu once started.
type server struct {
	h   *Hub
	cfg config.Server
	log *slog.Logger

	kind      string // "stdio", "http", "sse" or "" (streamable HTTP, then SSE)
	configErr error  // permanent: the server is never started

	firstDone chan struct{} // closed when the first attempt has finished

	mu       sync.Mutex
	started  bool // guarded by h.mu, not mu
	state    string
	cause    error
	tools    []*mcp.Tool // sorted by name
	restarts int
	since    time.Time
	cur      *conn         // the live connection while up
	changed  chan struct{} // closed and replaced on every state change
}

// conn is one connection to a server: the SDK session and, for stdio, the
// child process.
type conn struct {
	cs      *mcp.ClientSession
	proc    *process         // nil for HTTP
	http    *headerTransport // nil for stdio
	cancel  func()           // ends an HTTP session's context; nil for stdio
	refresh chan struct{}    // a tools/list_changed arrived (capacity 1)
	done    chan struct{}    // closed when the session has ended
	cause   error            // why it ended; valid once done is closed
}

func newServer(h *Hub, cfg config.Server) *server {
	s := &server{
		h:         h,
		cfg:       cfg,
		log:       h.log.With(slog.String("upstream", cfg.Name)),
		firstDone: make(chan struct{}),
		state:     StateLazy,
		since:     time.Now(),
		changed:   make(chan struct{}),
	}
	s.kind, s.configErr = transportKind(cfg)
	if s.configErr != nil {
		s.state = StateDown
		s.cause = s.configErr
		close(s.firstDone)
	}
	return s
}

// transportKind derives how to reach a server from its configuration.
func transportKind(cfg config.Server) (string, error) {
	switch cfg.Transport {
	case "stdio":
		if cfg.Command == "" {
			return "", errors.New(`transport "stdio" needs a command`)
		}
		return "stdio", nil
	case "http", "sse":
		if cfg.URL == "" {
			return "", fmt.Errorf("transport %q needs a url", cfg.Transport)
		}
		return cfg.Transport, nil
	case "":
		switch {
		case cfg.Command != "":
			return "stdio", nil
		case cfg.URL != "":
			return "", nil
		}
		return "", errors.New("neither command nor url configured")
	}
	return "", fmt.Errorf("unknown transport %q", cfg.Transport)
}

// ensureStarted launches the supervisor once, unless the hub is closed or
// the configuration is unusable. It reports whether a supervisor runs.
func (s *server) ensureStarted() bool {
	if s.configErr != nil {
		return false
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	if !s.started {
		s.started = true
		s.setState(StateStarting, nil, nil, nil)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			s.run(h.ctx)
		}()
	}
	return true
}

// ready returns the live connection, starting the server if needed and
// waiting while an attempt is in progress.
func (s *server) ready(ctx context.Context) (*conn, error) {
	s.ensureStarted()
	for {
		s.mu.Lock()
		state, c, cause, ch := s.state, s.cur, s.cause, s.changed
		s.mu.Unlock()
		if s.h.ctx.Err() != nil {
			return nil, fmt.Errorf("upstream %q: %w", s.cfg.Name, ErrClosed)
		}
		switch state {
		case StateUp:
			return c, nil
		case StateDown:
			return nil, fmt.Errorf("upstream %q: %w: %w", s.cfg.Name, ErrServerDown, cause)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("upstream %q: waiting for the server to start: %w", s.cfg.Name, ctx.Err())
		}
	}
}

// setState records a transition; mu must not be held. tools replaces the
// catalog when state is up.
func (s *server) setState(state string, cause error, c *conn, tools []*mcp.Tool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
	s.cause = cause
	s.cur = c
	if state == StateUp {
		s.tools = tools
	} else {
		s.tools = nil
	}
	s.since = time.Now()
	close(s.changed)
	s.changed = make(chan struct{})
}

// run is the supervisor: connect, serve until the connection ends, restart
// with backoff; until the hub closes.
func (s *server) run(ctx context.Context) {
	h := s.h
	backoff := h.minBackoff
	var once sync.Once
	firstDone := func() { once.Do(func() { close(s.firstDone) }) }
	defer firstDone() // also when Close interrupts the first attempt
	for attempt := 0; ; attempt++ {
		c, tools, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				s.setState(StateDown, ErrClosed, nil, nil)
				return
			}
			s.log.Warn("upstream failed to start", slog.Any("err", err), slog.Duration("retry_in", backoff))
			s.setState(StateDown, err, nil, nil)
		} else {
			s.log.Info("upstream up", slog.Int("tools", len(tools)))
			s.setState(StateUp, nil, c, tools)
		}
		firstDone()
		if c != nil || attempt == 0 {
			// A retry that fails again changes nothing for OnChange.
			h.changed()
		}
		if c != nil {
			upAt := time.Now()
			s.serve(ctx, c)
			c.close(h.opts.StopTimeout)
			if ctx.Err() != nil {
				s.setState(StateDown, ErrClosed, nil, nil)
				return
			}
			if time.Since(upAt) >= h.stableAfter {
				backoff = h.minBackoff
			}
			s.log.Warn("upstream down", slog.Any("err", c.cause), slog.Duration("retry_in", backoff))
			s.setState(StateDown, c.cause, nil, nil)
			h.changed()
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			s.mu.Lock()
			s.cause = ErrClosed
			s.mu.Unlock()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, h.maxBackoff)
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		s.setState(StateStarting, s.lastCause(), nil, nil)
	}
}

func (s *server) lastCause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

// serve waits until c ends or the hub closes, re-listing tools whenever the
// server says they changed.
func (s *server) serve(ctx context.Context, c *conn) {
	var exited chan struct{}
	if c.proc != nil {
		exited = c.proc.exited
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-exited:
			return
		case <-c.refresh:
			lctx, cancel := context.WithTimeout(ctx, s.h.opts.StartTimeout)
			tools, err := listTools(lctx, c.cs)
			cancel()
			if err != nil {
				if ctx.Err() == nil { // not a shutdown
					s.log.Warn("upstream tools/list after list_changed", slog.Any("err", err))
				}
				continue
			}
			s.mu.Lock()
			if s.cur == c {
				s.tools = tools
			}
			s.mu.Unlock()
			s.log.Info("upstream tools changed", slog.Int("tools", len(tools)))
			s.h.changed()
		}
	}
}

// connect makes one connection attempt, bounded by StartTimeout, and lists
// the server's tools.
func (s *server) connect(life context.Context) (*conn, []*mcp.Tool, error) {
	h := s.h
	ctx, cancel := context.WithTimeout(life, h.opts.StartTimeout)
	defer cancel()
	c := &conn{refresh: make(chan struct{}, 1), done: make(chan struct{})}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-conductor", Version: "1"}, &mcp.ClientOptions{
		Logger: s.log,
		// No roots, sampling or elicitation: the conductor offers none.
		Capabilities: &mcp.ClientCapabilities{},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			// Never block the session's reader: the supervisor re-lists.
			select {
			case c.refresh <- struct{}{}:
			default:
			}
		},
	})
	var err error
	if s.kind == "stdio" {
		c.proc, err = startProcess(s.cfg, h.baseEnv, s.log)
		if err != nil {
			return nil, nil, fmt.Errorf("start %q: %w", s.cfg.Command, err)
		}
		tr := &lineTransport{r: c.proc.stdout, w: c.proc.stdin}
		c.cs, err = client.Connect(ctx, tr, nil)
		if err != nil {
			err = c.proc.failure(err)
			c.proc.stop(h.opts.StopTimeout)
			return nil, nil, fmt.Errorf("initialize: %w", err)
		}
	} else {
		c.cs, c.http, c.cancel, err = connectHTTP(ctx, life, client, s.cfg, s.kind)
		if err != nil {
			return nil, nil, fmt.Errorf("connect: %w", err)
		}
	}
	go c.watch()
	tools, err := listTools(ctx, c.cs)
	if err != nil {
		if c.proc != nil {
			err = c.proc.failure(err)
		}
		c.close(h.opts.StopTimeout)
		return nil, nil, redactURL(fmt.Errorf("tools/list: %w", err), s.cfg.URL)
	}
	return c, tools, nil
}

// watch records why the session ended and closes done.
func (c *conn) watch() {
	err := c.cs.Wait()
	cause := err
	if c.proc != nil {
		t := time.NewTimer(time.Second)
		select {
		case <-c.proc.exited:
			cause = c.proc.exitCause()
		case <-t.C:
		}
		t.Stop()
	}
	if cause == nil {
		cause = errors.New("connection closed")
	}
	c.cause = cause
	close(c.done)
}

// close stops the child (closing its stdin first), ends the session and
// waits for watch. The child goes first because closing a session waits for
// the calls in flight, which end when the child's stdout does.
func (c *conn) close(grace time.Duration) {
	if c.proc != nil {
		c.proc.stop(grace)
	}
	c.cs.Close()
	if c.cancel != nil {
		c.cancel()
	}
	if c.http != nil {
		c.http.closeIdle()
	}
	<-c.done
}

// failure explains err, an error of the session, by the child's exit when
// the child exited by itself (its stdout closing usually comes first).
func (p *process) failure(err error) error {
	t := time.NewTimer(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.exitCause()
	case <-t.C:
		return err
	}
}

// listTools lists every page of a server's tools, sorted by name, last
// definition winning for duplicate names.
func listTools(ctx context.Context, cs *mcp.ClientSession) ([]*mcp.Tool, error) {
	byName := map[string]*mcp.Tool{}
	params := &mcp.ListToolsParams{}
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page == maxListPages {
			return nil, fmt.Errorf("more than %d pages", maxListPages)
		}
		res, err := cs.ListTools(ctx, params)
		if err != nil {
			return nil, err
		}
		for _, t := range res.Tools {
			if t != nil && t.Name != "" {
				byName[t.Name] = t
			}
		}
		if len(byName) > maxTools {
			return nil, fmt.Errorf("more than %d tools", maxTools)
		}
		if res.NextCursor == "" {
			break
		}
		if seen[res.NextCursor] {
			return nil, errors.New("repeated pagination cursor")
		}
		seen[res.NextCursor] = true
		params = &mcp.ListToolsParams{Cursor: res.NextCursor}
	}
	tools := make([]*mcp.Tool, 0, len(byName))
	for _, t := range byName {
		tools = append(tools, detach(t))
	}
	sort.Slice(tools, func(i, j int) bool { return tools[i].Name < tools[j].Name })
	return tools, nil
}

// detach makes a listed tool stop sharing memory with the raw tools/list
// response: the SDK's JSON decoder may hand out strings that alias it, which
// would keep the whole response (about 1 MB for a 200-tool server) alive as
// long as the tool. It works in place, because the SDK's own cache of
// tools/list results holds the same values.
func detach(t *mcp.Tool) *mcp.Tool {
	t.Name = strings.Clone(t.Name)
	t.Title = strings.Clone(t.Title)
	t.Description = strings.Clone(t.Description)
	if a := t.Annotations; a != nil {
		a.Title = strings.Clone(a.Title)
	}
	CompactSchemas(t) // re-encodes the schemas: fresh memory too
	return t
}

// CompactSchemas keeps a tool's schemas as JSON text (json.RawMessage)
// instead of the decoded maps the SDK hands over: a catalog of 1,000 tools
// then costs a fraction of the memory, and every consumer marshals them
// anyway.
func CompactSchemas(t *mcp.Tool) {
	for _, s := range []*any{&t.InputSchema, &t.OutputSchema} {
		if *s == nil {
			continue
		}
		if _, ok := (*s).(json.RawMessage); ok {
			continue
		}
		if b, err := json.Marshal(*s); err == nil {
			*s = json.RawMessage(b)
		}
	}
}
