package telemetry

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// AuditHandler wraps the audit log's handler: every record still reaches
// inner, and the conductor's "tool_call" records (attributes tool =
// "server.tool", durationMs, outcome) also feed m's tool-call metrics. This is
// how tool calls made inside the sandbox are counted without a hook in the
// library API.
func AuditHandler(inner slog.Handler, m *Metrics) slog.Handler {
	if m == nil {
		return inner
	}
	return &auditTap{inner: inner, m: m}
}

type auditTap struct {
	inner slog.Handler
	m     *Metrics
}

func (a *auditTap) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (a *auditTap) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "tool_call" {
		var name, outcome string
		var ms int64
		r.Attrs(func(at slog.Attr) bool {
			switch at.Key {
			case "tool":
				name = at.Value.String()
			case "outcome":
				outcome = at.Value.String()
			case "durationMs":
				ms = at.Value.Int64()
			}
			return true
		})
		server, tool, _ := strings.Cut(name, ".")
		a.m.ObserveToolCall(server, tool, outcome, time.Duration(ms)*time.Millisecond)
	}
	if !a.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return a.inner.Handle(ctx, r)
}

func (a *auditTap) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &auditTap{inner: a.inner.WithAttrs(attrs), m: a.m}
}

func (a *auditTap) WithGroup(name string) slog.Handler {
	return &auditTap{inner: a.inner.WithGroup(name), m: a.m}
}
