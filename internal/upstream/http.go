package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// headerTransport adds a server's configured headers to every request for
// that server's host (never to a redirect elsewhere), and notes whether a
// session-less POST was refused the way servers that only speak the legacy
// SSE transport refuse it.
type headerTransport struct {
	base    http.RoundTripper
	host    string
	headers http.Header
	legacy  atomic.Bool
}

func newHeaderTransport(rawURL string, headers map[string]string) (*headerTransport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("invalid url")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("url scheme must be http or https")
	}
	h := make(http.Header, len(headers))
	for k, v := range headers {
		h.Set(k, v)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	return &headerTransport{base: base, host: u.Host, headers: h}, nil
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 && req.URL.Host == t.host {
		req = req.Clone(req.Context())
		for k, vs := range t.headers {
			// The SDK's own protocol headers win over configured ones.
			if req.Header.Get(k) == "" {
				req.Header[k] = vs
			}
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && req.Header.Get("Mcp-Session-Id") == "" {
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
			t.legacy.Store(true)
		}
	}
	return resp, err
}

// closeIdle releases the transport's pooled connections.
func (t *headerTransport) closeIdle() {
	t.base.(*http.Transport).CloseIdleConnections()
}

// connectHTTP connects to a server by URL. Transport "http" means streamable
// HTTP only and "sse" legacy SSE only; when it is empty, streamable HTTP is
// tried first and, if the server refuses the session-less POST with 400, 404
// or 405 (as legacy SSE servers do), SSE is tried next, following the MCP
// spec's backwards-compatibility advice.
//
// ctx bounds connecting; life is the session's lifetime. The returned cancel
// must be called when the session is closed.
func connectHTTP(ctx, life context.Context, client *mcp.Client, cfg config.Server, kind string) (*mcp.ClientSession, *headerTransport, context.CancelFunc, error) {
	rt, err := newHeaderTransport(cfg.URL, cfg.Headers)
	if err != nil {
		return nil, nil, nil, err
	}
	hc := &http.Client{Transport: rt}
	if kind != "sse" {
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: cfg.URL, HTTPClient: hc}, nil)
		if err == nil {
			return cs, rt, func() {}, nil
		}
		if kind == "http" || !rt.legacy.Load() || ctx.Err() != nil {
			rt.closeIdle()
			return nil, nil, nil, redactURL(err, cfg.URL)
		}
	}
	// The SSE transport's event stream lives as long as the context given
	// to Connect, so connect with one that outlives ctx but is cancelled if
	// ctx ends before the handshake is done.
	sseCtx, cancel := context.WithCancel(life)
	stop := context.AfterFunc(ctx, cancel)
	cs, err := client.Connect(sseCtx, &mcp.SSEClientTransport{Endpoint: cfg.URL, HTTPClient: hc}, nil)
	if !stop() && err == nil {
		cs.Close()
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		rt.closeIdle()
		if kind != "sse" {
			err = fmt.Errorf("streamable HTTP refused, legacy SSE: %w", err)
		}
		return nil, nil, nil, redactURL(err, cfg.URL)
	}
	return cs, rt, cancel, nil
}

// redactURL removes credentials a configured URL may carry (user info, query)
// from an error text; such errors reach logs and clients.
func redactURL(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	u, perr := url.Parse(rawURL)
	if perr != nil || (u.User == nil && u.RawQuery == "") {
		return err
	}
	msg := err.Error()
	safe := *u
	safe.User = nil
	if safe.RawQuery != "" {
		safe.RawQuery = "REDACTED"
	}
	noUser := *u
	noUser.User = nil
	out := msg
	// The URL as configured, re-encoded, or as net/http prints it (password
	// starred, user and query kept).
	for _, s := range []string{rawURL, u.String(), u.Redacted(), noUser.String()} {
		if s != "" {
			out = strings.ReplaceAll(out, s, safe.String())
		}
	}
	if out == msg {
		return err
	}
	return &redactedError{msg: out, err: err}
}

// redactedError shows a cleaned message but still unwraps to the cause, so
// errors.Is keeps working.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
