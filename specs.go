package conductor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-conductor/conductor/internal/store"
	"github.com/mcp-conductor/conductor/internal/upstream"
)

// tools returns the tools of every server: the live list of servers that
// are up, the cached specs (Catalog.CacheSpecs) of the others, in
// configuration order.
func (c *Conductor) tools() []upstream.Tool {
	if c.hub == nil {
		return nil
	}
	live := c.hub.Tools()
	up := map[string]bool{}
	for _, st := range c.hub.Status() {
		up[st.Server] = st.State == upstream.StateUp
	}
	c.specMu.Lock()
	defer c.specMu.Unlock()
	if len(c.cached) == 0 {
		return live
	}
	byServer := map[string][]upstream.Tool{}
	for _, t := range live {
		byServer[t.Server] = append(byServer[t.Server], t)
	}
	var out []upstream.Tool
	for _, s := range c.cfg.Servers {
		if up[s.Name] {
			out = append(out, byServer[s.Name]...)
			continue
		}
		for _, t := range c.cached[s.Name] {
			out = append(out, upstream.Tool{Server: s.Name, Tool: t})
		}
	}
	return out
}

// tool finds one tool, live or cached.
func (c *Conductor) tool(server, name string) (upstream.Tool, bool) {
	if c.hub == nil {
		return upstream.Tool{}, false
	}
	if t, ok := c.hub.Tool(server, name); ok {
		return t, true
	}
	c.specMu.Lock()
	defer c.specMu.Unlock()
	for _, t := range c.cached[server] {
		if t.Name == name {
			return upstream.Tool{Server: server, Tool: t}, true
		}
	}
	return upstream.Tool{}, false
}

func (c *Conductor) hasCached(server string) bool {
	c.specMu.Lock()
	defer c.specMu.Unlock()
	return len(c.cached[server]) > 0
}

// loadCachedSpecs reads the tool specs an earlier run stored, for the
// configured servers only.
func (c *Conductor) loadCachedSpecs(ctx context.Context) {
	all, err := c.st.ToolSpecs(ctx)
	if err != nil {
		c.log.Error("read cached tool specs", slog.String("err", err.Error()))
		return
	}
	c.specMu.Lock()
	defer c.specMu.Unlock()
	for _, s := range c.cfg.Servers {
		b, ok := all[s.Name]
		if !ok {
			continue
		}
		var tools []*mcp.Tool
		if err := json.Unmarshal(b, &tools); err != nil {
			c.log.Warn("ignore cached tool specs", slog.String("upstream", s.Name), slog.String("err", err.Error()))
			continue
		}
		for _, t := range tools {
			upstream.CompactSchemas(t)
		}
		c.cached[s.Name] = tools
		sum := sha256.Sum256(b)
		c.put[s.Name] = hex.EncodeToString(sum[:])
	}
	c.log.Info("tool specs read from the store", slog.Int("servers", len(c.cached)))
}

// cacheSpecs stores the tool list of every server that is up when it
// changed since it was last stored (Catalog.CacheSpecs), and keeps it as the
// stand-in for when the server is down or not started yet.
func (c *Conductor) cacheSpecs(ctx context.Context) {
	if !c.cfg.Catalog.CacheSpecs || c.st == nil || c.hub == nil {
		return
	}
	byServer := map[string][]*mcp.Tool{}
	for _, t := range c.hub.Tools() {
		byServer[t.Server] = append(byServer[t.Server], t.Tool)
	}
	for server, tools := range byServer {
		b, err := json.Marshal(tools)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		c.specMu.Lock()
		same := c.put[server] == h
		c.specMu.Unlock()
		if same {
			continue
		}
		if err := c.st.PutToolSpecs(ctx, server, b); err != nil {
			c.log.Error("cache tool specs", slog.String("upstream", server), slog.String("err", err.Error()))
			continue
		}
		c.specMu.Lock()
		c.put[server] = h
		c.cached[server] = tools
		c.specMu.Unlock()
	}
}

// vectorCache keeps embedding vectors in the store, so a restart embeds
// nothing it embedded before.
type vectorCache struct{ st store.Store }

func (v vectorCache) Get(ctx context.Context, model string, keys []string) (map[string][]byte, error) {
	return v.st.Vectors(ctx, model, keys)
}

func (v vectorCache) Put(ctx context.Context, model string, entries map[string][]byte) error {
	return v.st.PutVectors(ctx, model, entries)
}

// startSweeper runs the expiry of idle and surplus conversations in a
// goroutine that Close stops and waits for.
func (c *Conductor) startSweeper() {
	every := c.sweepInterval
	if every <= 0 {
		every = time.Minute
		if ttl := c.cfg.Store.ConversationTTL; ttl > 0 && ttl/4 < every {
			every = max(ttl/4, time.Second)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stopSweep = cancel
	c.sweeping.Go(func() {
		if _, err := c.convs.Sweep(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("sweep conversations", slog.String("err", err.Error()))
		}
		c.convs.SweepEvery(ctx, every)
	})
}

// Run is one recorded execution of a conversation.
type Run struct {
	CodeSHA256 string        `json:"codeSha256"`
	Tools      []string      `json:"tools,omitempty"`
	Outcome    string        `json:"outcome"` // "ok" or the error kind
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"duration"`
}

// History returns the recorded executions of principal's conversation
// convID, oldest first (the last 50 are kept).
func (c *Conductor) History(ctx context.Context, principal, convID string) ([]Run, error) {
	if c.convs == nil {
		return nil, errors.New("conductor: not started")
	}
	h, err := c.convs.History(ctx, principal, convID)
	if err != nil {
		return nil, err
	}
	out := make([]Run, len(h))
	for i, e := range h {
		out[i] = Run{CodeSHA256: e.CodeSHA256, Tools: e.Tools, Outcome: e.Outcome, Started: e.Started, Duration: e.Duration}
	}
	return out, nil
}
