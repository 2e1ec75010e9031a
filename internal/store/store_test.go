package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/mcp-conductor/conductor/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// opener opens a new Store over the data of one test environment: every
// call sees what earlier Stores wrote (the same file, the same Redis and
// namespace), like a restarted or a second conductor process. Stores are
// closed by t.Cleanup.
type opener func(opts Options) Store

// newEnv makes a fresh, empty environment for one test.
type newEnv func(t *testing.T) opener

func sqliteEnv(t *testing.T) opener {
	path := filepath.Join(t.TempDir(), "state", "state.db")
	return func(opts Options) Store {
		t.Helper()
		s, err := Open(t.Context(), "sqlite://"+path, opts)
		if err != nil {
			t.Fatalf("Open(sqlite) = %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

var nsCounter atomic.Int64

// redisEnv gives each test its own namespace on one shared server.
func redisEnv(srv *testenv.Redis) newEnv {
	return func(t *testing.T) opener {
		ns := fmt.Sprintf("test%d:", nsCounter.Add(1))
		return func(opts Options) Store {
			t.Helper()
			opts.Namespace = ns
			s, err := Open(t.Context(), srv.URL(), opts)
			if err != nil {
				t.Fatalf("Open(redis) = %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
}

func TestSQLite(t *testing.T) {
	testStore(t, sqliteEnv)
}

func TestRedis(t *testing.T) {
	srv := testenv.StartRedis(t, "")
	testStore(t, redisEnv(srv))
}

// testStore is the behaviour every Store implementation must have.
func testStore(t *testing.T, env newEnv) {
	t.Run("CRUD", func(t *testing.T) { t.Parallel(); testCRUD(t, env(t)(Options{})) })
	t.Run("Invalid", func(t *testing.T) { t.Parallel(); testInvalid(t, env(t)(Options{})) })
	t.Run("PrincipalScope", func(t *testing.T) { t.Parallel(); testPrincipalScope(t, env(t)(Options{})) })
	t.Run("Update", func(t *testing.T) { t.Parallel(); testUpdate(t, env(t)(Options{})) })
	t.Run("SlidingTTL", func(t *testing.T) { t.Parallel(); testSlidingTTL(t, env(t)) })
	t.Run("ExpireIdle", func(t *testing.T) { t.Parallel(); testExpireIdle(t, env(t)(Options{})) })
	t.Run("ExpireMax", func(t *testing.T) { t.Parallel(); testExpireMax(t, env(t)(Options{})) })
	t.Run("History", func(t *testing.T) { t.Parallel(); testHistory(t, env(t)(Options{MaxExecutions: 5})) })
	t.Run("CoUsage", func(t *testing.T) { t.Parallel(); testCoUsage(t, env(t)(Options{})) })
	t.Run("Caches", func(t *testing.T) { t.Parallel(); testCaches(t, env(t)(Options{})) })
	t.Run("Reopen", func(t *testing.T) { t.Parallel(); testReopen(t, env(t)) })
	t.Run("TwoClients", func(t *testing.T) { t.Parallel(); testTwoClients(t, env(t)) })
	t.Run("ConcurrentUpdate", func(t *testing.T) { t.Parallel(); testConcurrentUpdate(t, env(t)) })
}

var ignoreTimes = cmpopts.IgnoreFields(Conversation{}, "Created", "LastUsed")

func testCRUD(t *testing.T, s Store) {
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	if _, err := s.GetConversation(ctx, "", "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetConversation(missing) error = %v, want ErrNotFound", err)
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	want := &Conversation{
		Principal: "", ID: "c1", Created: created,
		Loaded:  []string{"github.search_issues", "salesforce.query"},
		Servers: []string{"github", "salesforce"},
		Meta:    map[string]string{"client": "cursor"},
	}
	before := time.Now().Add(-time.Millisecond)
	if err := s.PutConversation(ctx, want); err != nil {
		t.Fatalf("PutConversation() = %v", err)
	}
	got, err := s.GetConversation(ctx, "", "c1")
	if err != nil {
		t.Fatalf("GetConversation() = %v", err)
	}
	if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
		t.Errorf("GetConversation() mismatch (-want +got):\n%s", diff)
	}
	if !got.Created.Equal(created) {
		t.Errorf("Created = %v, want %v", got.Created, created)
	}
	if got.LastUsed.Before(before) || got.LastUsed.Location() != time.UTC {
		t.Errorf("LastUsed = %v, want UTC and after %v", got.LastUsed, before)
	}

	// Replace; a zero Created becomes now.
	want2 := &Conversation{ID: "c1", Loaded: []string{"x.y"}}
	if err := s.PutConversation(ctx, want2); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetConversation(ctx, "", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want2, got, ignoreTimes, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("after replace (-want +got):\n%s", diff)
	}
	if got.Created.Before(before) {
		t.Errorf("Created = %v, want now", got.Created)
	}

	if err := s.DeleteConversation(ctx, "", "c1"); err != nil {
		t.Fatalf("DeleteConversation() = %v", err)
	}
	if _, err := s.GetConversation(ctx, "", "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetConversation(deleted) error = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConversation(ctx, "", "c1"); err != nil {
		t.Errorf("DeleteConversation(missing) = %v, want nil", err)
	}
}

func testInvalid(t *testing.T, s Store) {
	ctx := t.Context()
	for _, tc := range []struct{ principal, id string }{
		{"", ""},
		{"", strings.Repeat("x", MaxIDLen+1)},
		{"", "a\nb"},
		{"", "bad\xffutf8"},
		{"p\x00", "ok"},
		{strings.Repeat("p", MaxPrincipalLen+1), "ok"},
	} {
		if _, err := s.GetConversation(ctx, tc.principal, tc.id); !errors.Is(err, ErrInvalid) {
			t.Errorf("GetConversation(%q, %q) error = %v, want ErrInvalid", tc.principal, tc.id, err)
		}
		if err := s.PutConversation(ctx, &Conversation{Principal: tc.principal, ID: tc.id}); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutConversation(%q, %q) error = %v, want ErrInvalid", tc.principal, tc.id, err)
		}
		if err := s.UpdateConversation(ctx, tc.principal, tc.id, func(*Conversation) error { return nil }); !errors.Is(err, ErrInvalid) {
			t.Errorf("UpdateConversation(%q, %q) error = %v, want ErrInvalid", tc.principal, tc.id, err)
		}
		if err := s.AppendExecution(ctx, tc.principal, tc.id, Execution{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("AppendExecution(%q, %q) error = %v, want ErrInvalid", tc.principal, tc.id, err)
		}
	}
	// The longest id is fine.
	long := strings.Repeat("é", MaxIDLen/2)
	if err := s.PutConversation(ctx, &Conversation{ID: long}); err != nil {
		t.Errorf("PutConversation(128-byte id) = %v", err)
	}
	if err := s.PutToolSpecs(ctx, "", []byte("{}")); !errors.Is(err, ErrInvalid) {
		t.Errorf("PutToolSpecs(\"\") error = %v, want ErrInvalid", err)
	}
}

func testPrincipalScope(t *testing.T, s Store) {
	ctx := t.Context()
	if err := s.PutConversation(ctx, &Conversation{Principal: "alice", ID: "c1", Loaded: []string{"secret.tool"}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bob", "", "Alice", "alice ", "alic"} {
		if c, err := s.GetConversation(ctx, p, "c1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetConversation(%q, c1) = %+v, %v; want ErrNotFound", p, c, err)
		}
		if err := s.AppendExecution(ctx, p, "c1", Execution{Outcome: "ok"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("AppendExecution(%q, c1) = %v, want ErrNotFound", p, err)
		}
	}
	// bob's update of "c1" starts a new, empty conversation of his own.
	err := s.UpdateConversation(ctx, "bob", "c1", func(c *Conversation) error {
		if len(c.Loaded) != 0 || !c.Created.IsZero() {
			t.Errorf("bob's update sees %+v, want a new conversation", c)
		}
		c.Loaded = append(c.Loaded, "bob.tool")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deleting bob's leaves alice's.
	if err := s.DeleteConversation(ctx, "bob", "c1"); err != nil {
		t.Fatal(err)
	}
	c, err := s.GetConversation(ctx, "alice", "c1")
	if err != nil || !slices.Equal(c.Loaded, []string{"secret.tool"}) {
		t.Errorf("alice's conversation = %+v, %v; want intact", c, err)
	}
	// Separators in principal or id cannot make two keys one.
	pairs := [][2]string{{"a:b", "c"}, {"a", "b:c"}, {"a", ":b:c"}, {"a:", "b:c"}}
	for i, pi := range pairs {
		if err := s.PutConversation(ctx, &Conversation{Principal: pi[0], ID: pi[1], Meta: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, pi := range pairs {
		c, err := s.GetConversation(ctx, pi[0], pi[1])
		if err != nil || c.Meta["i"] != fmt.Sprint(i) {
			t.Errorf("GetConversation(%q, %q) = %+v, %v; want meta i=%d", pi[0], pi[1], c, err, i)
		}
	}
}

func testUpdate(t *testing.T, s Store) {
	ctx := t.Context()
	calls := 0
	err := s.UpdateConversation(ctx, "p", "u1", func(c *Conversation) error {
		calls++
		if !c.Created.IsZero() || c.Principal != "p" || c.ID != "u1" {
			t.Errorf("new conversation = %+v, want zero Created, p/u1", c)
		}
		c.Loaded = []string{"a.b"}
		c.Principal, c.ID = "mallory", "other" // ignored
		return nil
	})
	if err != nil || calls == 0 {
		t.Fatalf("UpdateConversation(new) = %v after %d calls", err, calls)
	}
	c, err := s.GetConversation(ctx, "p", "u1")
	if err != nil || !slices.Equal(c.Loaded, []string{"a.b"}) || c.Created.IsZero() {
		t.Fatalf("after update: %+v, %v", c, err)
	}
	if _, err := s.GetConversation(ctx, "mallory", "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("update wrote under a changed principal/id: %v", err)
	}
	created := c.Created

	// An error from fn aborts, unwrapped, and nothing is written.
	errStop := errors.New("stop")
	err = s.UpdateConversation(ctx, "p", "u1", func(c *Conversation) error {
		if !c.Created.Equal(created) {
			t.Errorf("existing Created = %v, want %v", c.Created, created)
		}
		c.Loaded = append(c.Loaded, "never.stored")
		return errStop
	})
	if err != errStop {
		t.Errorf("UpdateConversation(fn fails) = %v, want errStop as is", err)
	}
	c, _ = s.GetConversation(ctx, "p", "u1")
	if !slices.Equal(c.Loaded, []string{"a.b"}) {
		t.Errorf("Loaded after aborted update = %v, want [a.b]", c.Loaded)
	}
	// fn may refuse to create.
	err = s.UpdateConversation(ctx, "p", "missing", func(c *Conversation) error {
		if c.Created.IsZero() {
			return ErrNotFound
		}
		return nil
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateConversation(refused create) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetConversation(ctx, "p", "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused create wrote a conversation: %v", err)
	}
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still false after 15s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testSlidingTTL(t *testing.T, open opener) {
	ctx := t.Context()
	const ttl = time.Second
	s := open(Options{ConversationTTL: ttl})
	if err := s.PutConversation(ctx, &Conversation{ID: "live", Loaded: []string{"a.b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutConversation(ctx, &Conversation{ID: "idle"}); err != nil {
		t.Fatal(err)
	}
	// Uses more often than the TTL keep "live" alive well past one TTL.
	start := time.Now()
	for i := 0; time.Since(start) < 2*ttl; i++ {
		time.Sleep(ttl / 5)
		var err error
		if i%2 == 0 {
			_, err = s.GetConversation(ctx, "", "live")
		} else {
			err = s.AppendExecution(ctx, "", "live", Execution{Outcome: "ok"})
		}
		if err != nil {
			t.Fatalf("use %d of live conversation after %v: %v", i, time.Since(start), err)
		}
	}
	// "idle" was never used: it is gone, with no sweep needed.
	if _, err := s.GetConversation(ctx, "", "idle"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetConversation(idle past TTL) error = %v, want ErrNotFound", err)
	}
	// Left alone, "live" expires too, history included.
	eventually(t, "live conversation expires", func() bool {
		_, err := s.Executions(ctx, "", "live")
		return errors.Is(err, ErrNotFound)
	})
	if err := s.AppendExecution(ctx, "", "live", Execution{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AppendExecution(expired) = %v, want ErrNotFound", err)
	}
	// The sweep still reports both, so their files can be removed.
	refs, err := s.ExpireConversations(ctx, time.Now().Add(-ttl), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := refIDs(refs); !slices.Equal(got, []string{"idle", "live"}) {
		t.Errorf("ExpireConversations() = %v, want [idle live]", got)
	}
	// An expired id starts afresh: no history of the old one.
	if err := s.PutConversation(ctx, &Conversation{ID: "live"}); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Executions(ctx, "", "live"); err != nil || len(h) != 0 {
		t.Errorf("Executions(recreated) = %v, %v; want empty", h, err)
	}
}

func refIDs(refs []ConversationRef) []string {
	var ids []string
	for _, r := range refs {
		ids = append(ids, r.ID)
	}
	return ids
}

func put(t *testing.T, s Store, principal string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.PutConversation(t.Context(), &Conversation{Principal: principal, ID: id}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond) // distinct millisecond stamps
	}
}

func testExpireIdle(t *testing.T, s Store) {
	ctx := t.Context()
	put(t, s, "p1", "a")
	put(t, s, "p2", "b")
	if err := s.AppendExecution(ctx, "p1", "a", Execution{Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(3 * time.Millisecond)
	put(t, s, "p1", "c")
	refs, err := s.ExpireConversations(ctx, cutoff, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []ConversationRef{{Principal: "p2", ID: "b"}, {Principal: "p1", ID: "a"}}
	if diff := cmp.Diff(want, refs, cmpopts.IgnoreFields(ConversationRef{}, "LastUsed")); diff != "" {
		t.Errorf("ExpireConversations(idle) mismatch, want oldest first (-want +got):\n%s", diff)
	}
	for _, r := range refs {
		if !r.LastUsed.Before(cutoff) {
			t.Errorf("ref %v LastUsed %v not before cutoff %v", r.ID, r.LastUsed, cutoff)
		}
	}
	if _, err := s.GetConversation(ctx, "p1", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired a still readable: %v", err)
	}
	if _, err := s.GetConversation(ctx, "p1", "c"); err != nil {
		t.Errorf("recent c expired: %v", err)
	}
	// History went with it.
	put(t, s, "p1", "a")
	if h, err := s.Executions(ctx, "p1", "a"); err != nil || len(h) != 0 {
		t.Errorf("Executions(recreated a) = %v, %v; want empty", h, err)
	}
	// A second sweep finds nothing more.
	if refs, err := s.ExpireConversations(ctx, cutoff, 0); err != nil || len(refs) != 0 {
		t.Errorf("second ExpireConversations() = %v, %v; want none", refs, err)
	}
}

func testExpireMax(t *testing.T, s Store) {
	ctx := t.Context()
	put(t, s, "", "c", "d", "e", "f")
	// Using d makes it the most recent.
	if _, err := s.GetConversation(ctx, "", "d"); err != nil {
		t.Fatal(err)
	}
	refs, err := s.ExpireConversations(ctx, time.Time{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := refIDs(refs); !slices.Equal(got, []string{"c", "e"}) {
		t.Errorf("ExpireConversations(max 2) = %v, want [c e] (least recently used)", got)
	}
	for id, alive := range map[string]bool{"c": false, "e": false, "f": true, "d": true} {
		_, err := s.GetConversation(ctx, "", id)
		if got := err == nil; got != alive {
			t.Errorf("after cap, %s alive = %v (%v), want %v", id, got, err, alive)
		}
	}
	if refs, err := s.ExpireConversations(ctx, time.Time{}, 2); err != nil || len(refs) != 0 {
		t.Errorf("ExpireConversations(at cap) = %v, %v; want none", refs, err)
	}
}

func testHistory(t *testing.T, s Store) {
	ctx := t.Context()
	if err := s.AppendExecution(ctx, "", "none", Execution{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AppendExecution(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Executions(ctx, "", "none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Executions(missing) = %v, want ErrNotFound", err)
	}
	put(t, s, "", "h")
	if h, err := s.Executions(ctx, "", "h"); err != nil || len(h) != 0 {
		t.Errorf("Executions(new) = %v, %v; want empty", h, err)
	}
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var all []Execution
	for i := range 8 {
		e := Execution{
			CodeSHA256: fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(i)))),
			Tools:      []string{"s.t" + fmt.Sprint(i)},
			Outcome:    []string{"ok", "timeout"}[i%2],
			Started:    base.Add(time.Duration(i) * time.Second),
			Duration:   time.Duration(i) * time.Millisecond,
		}
		all = append(all, e)
		if err := s.AppendExecution(ctx, "", "h", e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Executions(ctx, "", "h")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all[3:], got); diff != "" {
		t.Errorf("Executions() keeps the last 5 (-want +got):\n%s", diff)
	}
}

func testCoUsage(t *testing.T, s Store) {
	ctx := t.Context()
	add := func(n int, tools ...string) {
		for range n {
			if err := s.AddCoUsage(ctx, tools); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(3, "gh.issues", "gh.pr", "sf.query")
	add(2, "gh.issues", "gh.pr")
	add(1, "gh.issues", "slack.post")
	add(1, "gh.issues", "gh.issues", "") // duplicates and empties count once
	add(1)                               // nothing
	add(4, "sf.query", "sf.update")

	got, err := s.CoUsage(ctx, "gh.issues", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{Tool: "gh.issues", Uses: 7, Partners: []Pair{
		{Tool: "gh.pr", Together: 5, Uses: 5},
		{Tool: "sf.query", Together: 3, Uses: 7},
		{Tool: "slack.post", Together: 1, Uses: 1},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CoUsage(gh.issues) mismatch (-want +got):\n%s", diff)
	}
	got, err = s.CoUsage(ctx, "sf.query", 1)
	if err != nil {
		t.Fatal(err)
	}
	want = Usage{Tool: "sf.query", Uses: 7, Partners: []Pair{{Tool: "sf.update", Together: 4, Uses: 4}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CoUsage(sf.query, 1) mismatch (-want +got):\n%s", diff)
	}
	got, err = s.CoUsage(ctx, "never.used", 5)
	if err != nil || got.Uses != 0 || len(got.Partners) != 0 {
		t.Errorf("CoUsage(unknown) = %+v, %v; want empty", got, err)
	}
}

func testCaches(t *testing.T, s Store) {
	ctx := t.Context()
	specs, err := s.ToolSpecs(ctx)
	if err != nil || len(specs) != 0 {
		t.Fatalf("ToolSpecs(empty) = %v, %v", specs, err)
	}
	must(t, s.PutToolSpecs(ctx, "github", []byte(`[{"name":"old"}]`)))
	must(t, s.PutToolSpecs(ctx, "salesforce", []byte(`[{"name":"query"}]`)))
	must(t, s.PutToolSpecs(ctx, "github", []byte(`[{"name":"search_issues"}]`)))
	specs, err = s.ToolSpecs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantSpecs := map[string][]byte{"github": []byte(`[{"name":"search_issues"}]`), "salesforce": []byte(`[{"name":"query"}]`)}
	if diff := cmp.Diff(wantSpecs, specs); diff != "" {
		t.Errorf("ToolSpecs() mismatch (-want +got):\n%s", diff)
	}

	vecs := map[string][]byte{}
	var keys []string
	for i := range 1200 { // more than one SQL chunk
		k := fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint("text", i))))
		v := bytes.Repeat([]byte{byte(i), 0, 0xff, '\n'}, 96) // binary, 384 bytes
		vecs[k] = v
		keys = append(keys, k)
	}
	must(t, s.PutVectors(ctx, "minilm", vecs))
	must(t, s.PutVectors(ctx, "other", map[string][]byte{keys[0]: []byte("x")}))
	ask := append(slices.Clone(keys), "missing1", "missing2")
	got, err := s.Vectors(ctx, "minilm", ask)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(vecs, got, bytes.Equal) {
		t.Errorf("Vectors(minilm) returned %d entries, want the %d stored, byte for byte", len(got), len(vecs))
	}
	got, err = s.Vectors(ctx, "other", keys[:2])
	if diff := cmp.Diff(map[string][]byte{keys[0]: []byte("x")}, got); err != nil || diff != "" {
		t.Errorf("Vectors(other) = %v; mismatch (-want +got):\n%s", err, diff)
	}
	got, err = s.Vectors(ctx, "unknown-model", keys[:3])
	if err != nil || len(got) != 0 {
		t.Errorf("Vectors(unknown model) = %v, %v; want empty", got, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testReopen(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(Options{})
	must(t, s.PutConversation(ctx, &Conversation{Principal: "p", ID: "keep", Loaded: []string{"a.b"}}))
	must(t, s.AppendExecution(ctx, "p", "keep", Execution{CodeSHA256: "abc", Outcome: "ok"}))
	must(t, s.AddCoUsage(ctx, []string{"a.b", "c.d"}))
	must(t, s.PutToolSpecs(ctx, "srv", []byte("[]")))
	must(t, s.PutVectors(ctx, "m", map[string][]byte{"k": {1, 2, 3}}))
	must(t, s.Close())

	s = open(Options{})
	c, err := s.GetConversation(ctx, "p", "keep")
	if err != nil || !slices.Equal(c.Loaded, []string{"a.b"}) {
		t.Errorf("after reopen: conversation = %+v, %v", c, err)
	}
	if h, err := s.Executions(ctx, "p", "keep"); err != nil || len(h) != 1 || h[0].CodeSHA256 != "abc" {
		t.Errorf("after reopen: executions = %+v, %v", h, err)
	}
	if u, err := s.CoUsage(ctx, "a.b", 5); err != nil || len(u.Partners) != 1 || u.Partners[0].Tool != "c.d" {
		t.Errorf("after reopen: co-usage = %+v, %v", u, err)
	}
	if sp, err := s.ToolSpecs(ctx); err != nil || string(sp["srv"]) != "[]" {
		t.Errorf("after reopen: specs = %q, %v", sp, err)
	}
	if v, err := s.Vectors(ctx, "m", []string{"k"}); err != nil || !bytes.Equal(v["k"], []byte{1, 2, 3}) {
		t.Errorf("after reopen: vectors = %v, %v", v, err)
	}
}

func testTwoClients(t *testing.T, open opener) {
	ctx := t.Context()
	s1, s2 := open(Options{}), open(Options{})
	must(t, s1.PutConversation(ctx, &Conversation{Principal: "p", ID: "shared", Loaded: []string{"a.b"}}))
	c, err := s2.GetConversation(ctx, "p", "shared")
	if err != nil || !slices.Equal(c.Loaded, []string{"a.b"}) {
		t.Fatalf("second client sees %+v, %v", c, err)
	}
	must(t, s2.UpdateConversation(ctx, "p", "shared", func(c *Conversation) error {
		c.Loaded = append(c.Loaded, "c.d")
		return nil
	}))
	c, err = s1.GetConversation(ctx, "p", "shared")
	if err != nil || !slices.Equal(c.Loaded, []string{"a.b", "c.d"}) {
		t.Errorf("first client sees %+v, %v after second's update", c, err)
	}
	must(t, s1.AddCoUsage(ctx, []string{"x.1", "x.2"}))
	must(t, s2.AddCoUsage(ctx, []string{"x.1", "x.2"}))
	u, err := s2.CoUsage(ctx, "x.1", 1)
	if err != nil || u.Uses != 2 || len(u.Partners) != 1 || u.Partners[0].Together != 2 {
		t.Errorf("co-usage shared by clients = %+v, %v; want together 2", u, err)
	}
	must(t, s2.DeleteConversation(ctx, "p", "shared"))
	if _, err := s1.GetConversation(ctx, "p", "shared"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted by the second client, first sees %v", err)
	}
}

func testConcurrentUpdate(t *testing.T, open opener) {
	ctx := t.Context()
	clients := []Store{open(Options{}), open(Options{})}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s := clients[i%len(clients)]
			errs <- s.UpdateConversation(ctx, "p", "busy", func(c *Conversation) error {
				c.Loaded = append(c.Loaded, fmt.Sprintf("srv.tool%02d", i))
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateConversation() = %v", err)
		}
	}
	c, err := clients[0].GetConversation(ctx, "p", "busy")
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(c.Loaded))
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("srv.tool%02d", i))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Loaded after %d concurrent updates (-want +got):\n%s", n, diff)
	}
}
