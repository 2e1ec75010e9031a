package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

// BenchmarkStore measures the latency of the calls made on every request,
// for each backend: sqlite (a file in a temp dir) and redis (a local
// redis-server over loopback TCP).
func BenchmarkStore(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "state.db")
		benchStore(b, func() Store {
			s, err := Open(b.Context(), "sqlite://"+path, Options{ConversationTTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			return s
		})
	})
	b.Run("redis", func(b *testing.B) {
		srv := testenv.StartRedis(b, "")
		benchStore(b, func() Store {
			s, err := Open(b.Context(), srv.URL(), Options{ConversationTTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			return s
		})
	})
}

func benchStore(b *testing.B, open func() Store) {
	s := open()
	b.Cleanup(func() { s.Close() })
	ctx := b.Context()
	conv := &Conversation{
		Principal: "user@example.com", ID: "conv-0123456789",
		Loaded:  []string{"github.search_issues", "github.get_issue", "salesforce.query", "slack.post_message"},
		Servers: []string{"github", "salesforce", "slack"},
	}
	if err := s.PutConversation(ctx, conv); err != nil {
		b.Fatal(err)
	}
	latency := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
	}
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetConversation(ctx, conv.Principal, conv.ID); err != nil {
				b.Fatal(err)
			}
		}
		latency(b)
	})
	b.Run("put", func(b *testing.B) {
		for b.Loop() {
			if err := s.PutConversation(ctx, conv); err != nil {
				b.Fatal(err)
			}
		}
		latency(b)
	})
	b.Run("update", func(b *testing.B) {
		for b.Loop() {
			err := s.UpdateConversation(ctx, conv.Principal, conv.ID, func(c *Conversation) error {
				c.Meta = map[string]string{"n": "1"}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		latency(b)
	})
	b.Run("cousage", func(b *testing.B) {
		tools := make([]string, 5)
		for i := range tools {
			tools[i] = fmt.Sprintf("srv.tool%d", i)
		}
		for b.Loop() {
			if err := s.AddCoUsage(ctx, tools); err != nil {
				b.Fatal(err)
			}
			if _, err := s.CoUsage(ctx, tools[0], 10); err != nil {
				b.Fatal(err)
			}
		}
		latency(b)
	})
}
