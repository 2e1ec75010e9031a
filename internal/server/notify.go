package server

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-conductor/conductor/internal/config"
)

// progressEvery is how often a run reports progress to a client that sent a
// progress token.
var progressEvery = time.Second

// notifier sends what a client may see while a program runs: console output
// as notifications/message (logger "stdout" or "stderr"; the client must
// have set a logging level, as MCP asks), and, when the call carried a
// progress token, notifications/progress with elapsed and total milliseconds.
// Nothing is sent after stop returns.
type notifier struct {
	ctx     context.Context
	session *mcp.ServerSession
	token   any
	totalMs float64
	start   time.Time

	mu       sync.Mutex
	stopped  bool
	last     float64 // last progress sent; progress must increase
	tickDone chan struct{}
	quit     chan struct{}
}

func newNotifier(ctx context.Context, req *mcp.CallToolRequest, cfg *config.Config, timeout time.Duration) *notifier {
	n := &notifier{ctx: ctx, start: time.Now(), quit: make(chan struct{}), tickDone: make(chan struct{})}
	if req != nil {
		n.session = req.Session
		if req.Params != nil {
			n.token = req.Params.GetProgressToken()
		}
	}
	t, _ := cfg.ClampTimeout(timeout)
	n.totalMs = float64(t.Milliseconds())
	if n.session == nil || n.token == nil {
		close(n.tickDone)
		return n
	}
	n.progress("running")
	go func() {
		defer close(n.tickDone)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				n.progress("running")
			case <-n.quit:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return n
}

// progress reports elapsed time; mu must not be held.
func (n *notifier) progress(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped || n.token == nil {
		return
	}
	p := float64(time.Since(n.start).Milliseconds())
	if p <= n.last {
		p = n.last + 1
	}
	n.last = p
	total := n.totalMs
	if p > total {
		total = 0
	}
	n.session.NotifyProgress(n.ctx, &mcp.ProgressNotificationParams{ProgressToken: n.token, Progress: p, Total: total, Message: msg})
}

// log forwards one chunk of console output (ExecOptions.OnLog).
func (n *notifier) log(stream, text string) {
	if n.session == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	level := mcp.LoggingLevel("info")
	if stream == "stderr" {
		level = "warning"
	}
	n.session.Log(n.ctx, &mcp.LoggingMessageParams{Level: level, Logger: stream, Data: strings.TrimRight(text, "\n")})
}

func (n *notifier) stop() {
	select {
	case <-n.quit:
	default:
		close(n.quit)
	}
	<-n.tickDone
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
}
