package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:s3cret@host:6379/1", "redis://:xxxxx@host:6379/1"},
		{"rediss://user:s3cret@host/2", "rediss://user:xxxxx@host/2"},
		{"redis://host/0?password=s3cret", "redis://host/0?password=xxxxx"},
		{"sqlite:///var/lib/state.db", "sqlite:///var/lib/state.db"},
		{"redis://u:s3cret@host:notaport/0%zz", "redis://…"},
		{"u:s3cret@host", "u:…"},
		{"://u:s3cret@host", "://…"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	closed := testenv.FreePort(t) // nothing listens there
	for _, tc := range []struct {
		url  string
		want string // in the error
	}{
		{"mysql://localhost/db", "unknown scheme"},
		{"state.db", "want sqlite://PATH"},
		{"sqlite://relative/state.db", "absolute"},
		{"sqlite:///tmp/a?b.db", "must not contain"},
		{"redis://:s3cret@127.0.0.1:notaport/0", "redis"},
		{"redis://:s3cret@[::1/0", "redis"},
		{fmt.Sprintf("redis://:s3cret@127.0.0.1:%d/0", closed), "connection refused"},
	} {
		start := time.Now()
		s, err := Open(ctx, tc.url, Options{})
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", Redact(tc.url))
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error = %q, want it to mention %q and no password", Redact(tc.url), err, tc.want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Open(%q) took %v to fail", Redact(tc.url), d)
		}
	}
}

func TestSQLiteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "state.db")
	s, err := Open(t.Context(), "sqlite://"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must(t, s.PutConversation(t.Context(), &Conversation{ID: "x"}))
	for name, want := range map[string]os.FileMode{
		dir: 0o700 | os.ModeDir, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600,
	} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Errorf("stat %s: %v", name, err)
			continue
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != want {
			t.Errorf("mode of %s = %v, want %v", filepath.Base(name), got, want)
		}
	}
	// WAL mode and the schema version are in the file.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	var version int
	must(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	must(t, db.QueryRow(`SELECT version FROM schema_version`).Scan(&version))
	if mode != "wal" || version != len(migrations) {
		t.Errorf("journal_mode, schema version = %q, %d; want wal, %d", mode, version, len(migrations))
	}
}

func TestSQLiteNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(t.Context(), "sqlite://"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Opening again migrates nothing and keeps the data.
	s, err = Open(t.Context(), "sqlite://"+path, Options{})
	if err != nil {
		t.Fatalf("second Open() = %v", err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`UPDATE schema_version SET version = 99`)
	db.Close()
	must(t, err)
	if s, err := Open(t.Context(), "sqlite://"+path, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open(newer schema) = %v, want a 'newer than this conductor' error", err)
	}
}

func TestSQLiteHomePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	s, err := Open(t.Context(), "sqlite://~/.mcp-conductor/state.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(home, ".mcp-conductor", "state.db")); err != nil {
		t.Errorf("state.db not under HOME: %v", err)
	}
}

// TestRedisKeys checks the key layout: everything under the namespace,
// principals and ids hex-encoded so they cannot inject key syntax.
func TestRedisKeys(t *testing.T) {
	srv := testenv.StartRedis(t, "")
	ctx := t.Context()
	s, err := Open(ctx, srv.URL(), Options{Namespace: "ns1:", ConversationTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	principal, id := "user*:{x}", "../conv 1"
	must(t, s.PutConversation(ctx, &Conversation{Principal: principal, ID: id}))
	must(t, s.AppendExecution(ctx, principal, id, Execution{Outcome: "ok"}))
	must(t, s.AddCoUsage(ctx, []string{"a.b", "c.d"}))
	must(t, s.PutToolSpecs(ctx, "srv", []byte("[]")))
	must(t, s.PutVectors(ctx, "m", map[string][]byte{"k": {1}}))

	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := hex.EncodeToString([]byte(principal)) + ":" + hex.EncodeToString([]byte(id))
	want := map[string]bool{
		"ns1:conv:" + m: true, "ns1:hist:" + m: true, "ns1:convs": true, "ns1:uses": true,
		"ns1:co:a.b": true, "ns1:co:c.d": true, "ns1:specs": true, "ns1:vec:m": true, "ns1:version": true,
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("unexpected key %q", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("missing key %q", k)
	}
	for _, k := range []string{"ns1:conv:" + m, "ns1:hist:" + m} {
		if ttl := raw.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("PTTL(%s) = %v, want (0, 1h]", k, ttl)
		}
	}

	// A newer key layout is refused.
	must(t, raw.Set(ctx, "ns1:version", 2, 0).Err())
	if s2, err := Open(ctx, srv.URL(), Options{Namespace: "ns1:"}); err == nil || !strings.Contains(err.Error(), "newer") {
		if s2 != nil {
			s2.Close()
		}
		t.Errorf("Open(newer layout) = %v, want a 'newer' error", err)
	}
}

// TestRedisDown kills Redis under a live Store: calls fail fast with clear
// errors that carry no password, and work again once Redis is back on the
// same port (go-redis reconnects by itself).
func TestRedisDown(t *testing.T) {
	srv := testenv.StartRedis(t, "s3cret")
	ctx := t.Context()
	s, err := Open(ctx, srv.URL(), Options{ConversationTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must(t, s.PutConversation(ctx, &Conversation{ID: "c"}))

	srv.Stop()
	ops := map[string]func(ctx context.Context) error{
		"ping": s.Ping,
		"get": func(ctx context.Context) error {
			_, err := s.GetConversation(ctx, "", "c")
			return err
		},
		"put": func(ctx context.Context) error { return s.PutConversation(ctx, &Conversation{ID: "c"}) },
		"update": func(ctx context.Context) error {
			return s.UpdateConversation(ctx, "", "c", func(*Conversation) error { return nil })
		},
		"append":   func(ctx context.Context) error { return s.AppendExecution(ctx, "", "c", Execution{}) },
		"cousage":  func(ctx context.Context) error { return s.AddCoUsage(ctx, []string{"a.b", "c.d"}) },
		"specs":    func(ctx context.Context) error { _, err := s.ToolSpecs(ctx); return err },
		"vectors":  func(ctx context.Context) error { _, err := s.Vectors(ctx, "m", []string{"k"}); return err },
		"expire":   func(ctx context.Context) error { _, err := s.ExpireConversations(ctx, time.Now(), 0); return err },
		"delete":   func(ctx context.Context) error { return s.DeleteConversation(ctx, "", "c") },
		"history":  func(ctx context.Context) error { _, err := s.Executions(ctx, "", "c"); return err },
		"co-usage": func(ctx context.Context) error { _, err := s.CoUsage(ctx, "a.b", 3); return err },
	}
	addr := srv.Addr()
	for name, op := range ops {
		start := time.Now()
		err := op(ctx)
		d := time.Since(start)
		switch {
		case err == nil:
			t.Errorf("%s with Redis down succeeded", name)
		case errors.Is(err, ErrNotFound):
			t.Errorf("%s with Redis down = %v, want a connection error, not ErrNotFound", name, err)
		case !strings.Contains(err.Error(), "store: redis "+addr) || strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%s error = %q, want it to name %s and no password", name, err, addr)
		}
		if name == "get" {
			t.Logf("with Redis down, %s failed after %v: %v", name, d.Round(time.Millisecond), err)
		}
		if d > 10*time.Second {
			t.Errorf("%s took %v to fail with Redis down", name, d)
		}
	}

	srv.Restart()
	eventually(t, "ping after restart", func() bool { return s.Ping(ctx) == nil })
	// The restarted server is empty (no persistence); the Store works again.
	for name, op := range ops {
		if err := op(ctx); err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after restart = %v", name, err)
		}
	}
	must(t, s.PutConversation(ctx, &Conversation{ID: "again", Loaded: []string{"x.y"}}))
	if c, err := s.GetConversation(ctx, "", "again"); err != nil || len(c.Loaded) != 1 {
		t.Errorf("GetConversation after restart = %+v, %v", c, err)
	}
}
