package conversation

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-conductor/conductor/internal/store"
)

func newManager(t *testing.T, opts Options) (*Manager, store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "state.db"), store.Options{ConversationTTL: opts.TTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, filepath.Join(dir, "ws"), opts), st
}

func TestFragment(t *testing.T) {
	tests := []struct {
		name string
		c    *Conversation
		want string
	}{
		{"nil", nil, ""},
		{"empty", &Conversation{}, ""},
		{"loaded", &Conversation{Loaded: []string{"salesforce.query", "slack.post"}},
			`Available modules: import * as salesforce from "./mcp/salesforce.ts"; import * as slack from "./mcp/slack.ts";` +
				"\nAlready loaded: salesforce.query, slack.post"},
		{"imported only", &Conversation{Servers: []string{"github"}},
			`Available modules: import * as github from "./mcp/github.ts";`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fragment(tt.c); got != tt.want {
				t.Errorf("Fragment() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenScopesByPrincipal(t *testing.T) {
	m, _ := newManager(t, Options{})
	ctx := context.Background()
	a, err := m.MarkLoaded(ctx, "alice", "c1", []string{"fs.read"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Open(ctx, "bob", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Dir == b.Dir || len(b.Loaded) != 0 {
		t.Errorf("bob's c1 = %+v, alice's = %+v: want distinct dirs and nothing loaded", b, a)
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "workspace")); err != nil {
		t.Errorf("Open did not prepare the directory: %v", err)
	}
	if _, err := m.Open(ctx, "", "../etc"); err == nil {
		t.Error("Open accepted a path as id")
	}
}

// TestOpenRestoresFiles: opening a stored conversation whose files are
// gone (another conductor on the same store made it, or they were removed)
// prepares its directory again and keeps its state.
func TestOpenRestoresFiles(t *testing.T) {
	m, _ := newManager(t, Options{})
	ctx := context.Background()
	a, err := m.MarkLoaded(ctx, "", "c1", []string{"fs.read"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(a.Dir); err != nil {
		t.Fatal(err)
	}
	b, err := m.Open(ctx, "", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "workspace")); err != nil {
		t.Errorf("Open did not prepare the removed directory again: %v", err)
	}
	if !slices.Equal(b.Loaded, []string{"fs.read"}) || !b.LastUsed.After(a.Created.Add(-time.Second)) {
		t.Errorf("state after Open = %+v, want fs.read loaded", b)
	}
}

// TestRecordCoUsage checks what Record counts as used together: the tools
// of one program, plus earlier tools of the conversation when a program
// brings a new one.
func TestRecordCoUsage(t *testing.T) {
	m, st := newManager(t, Options{})
	ctx := context.Background()
	for _, tools := range [][]string{{"a.x", "a.y", "a.x"}, {"b.z"}, {"b.z"}} {
		if err := m.Record(ctx, "", "c", Execution{Code: "1", Tools: tools, Outcome: "ok", Started: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := st.CoUsage(ctx, "a.x", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, p := range u.Partners {
		got[p.Tool] = p.Together
	}
	// run 1: {x,y}; run 2 brings z: {x,y,z}; run 3 brings nothing new, one tool: nothing.
	if diff := cmp.Diff(map[string]int64{"a.y": 2, "b.z": 1}, got); diff != "" || u.Uses != 2 {
		t.Errorf("co-usage of a.x (uses %d) (-want +got):\n%s", u.Uses, diff)
	}
	c, err := m.Get(ctx, "", "c")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Called, []string{"a.x", "a.y", "b.z"}) || !slices.Equal(c.Servers, []string{"a", "b"}) {
		t.Errorf("conversation = %+v", c)
	}
	h, _ := m.History(ctx, "", "c")
	if len(h) != 3 || h[0].CodeSHA256 == "" {
		t.Errorf("history = %+v", h)
	}
}

func TestConcurrentMarkLoaded(t *testing.T) {
	m, _ := newManager(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	var want []string
	for i := range 16 {
		tool := "s.t" + string(rune('a'+i))
		want = append(want, tool)
		wg.Go(func() {
			if _, err := m.MarkLoaded(ctx, "", "c", []string{tool}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c, _ := m.Get(ctx, "", "c")
	if !slices.Equal(c.Loaded, want) {
		t.Errorf("Loaded = %v, want %v", c.Loaded, want)
	}
}

func TestSweepRemovesFiles(t *testing.T) {
	m, _ := newManager(t, Options{MaxConversations: 1})
	ctx := context.Background()
	old, _ := m.Open(ctx, "", "old")
	os.WriteFile(filepath.Join(old.Dir, "workspace", "f"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(old.Dir, "mcp", "m.ts"), []byte("x"), 0o444)
	time.Sleep(5 * time.Millisecond)
	if _, err := m.Open(ctx, "", "new"); err != nil {
		t.Fatal(err)
	}
	n, err := m.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(old.Dir); !os.IsNotExist(err) {
		t.Errorf("expired conversation's files remain: %v", err)
	}
	if _, err := m.Get(ctx, "", "new"); err != nil {
		t.Errorf("the newest conversation was expired: %v", err)
	}
}

func TestCheckWorkspace(t *testing.T) {
	m, _ := newManager(t, Options{MaxWorkspaceBytes: 10})
	c, _ := m.Open(context.Background(), "", "c")
	if err := m.CheckWorkspace(c); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(c.Dir, "workspace", "sub"), 0o700)
	os.WriteFile(filepath.Join(c.Dir, "workspace", "sub", "f"), make([]byte, 11), 0o600)
	if err := m.CheckWorkspace(c); err == nil {
		t.Error("CheckWorkspace accepted 11 bytes over a cap of 10")
	}
}

func TestAffinity(t *testing.T) {
	_, st := newManager(t, Options{})
	ctx := context.Background()
	for range 3 {
		st.AddCoUsage(ctx, []string{"crm.find", "mail.send"})
	}
	st.AddCoUsage(ctx, []string{"crm.find", "docs.pdf"})
	a, err := LoadAffinity(ctx, st, []string{"crm.find"}, []string{"crm"})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Suggest(3, nil); !slices.Equal(got, []string{"mail.send"}) {
		t.Errorf("Suggest = %v, want [mail.send] (docs.pdf was seen once)", got)
	}
	if a.Boost("mail.send") <= a.Boost("docs.pdf") || a.Boost("docs.pdf") <= a.Boost("other.tool") || a.Boost("crm.other") <= 1 {
		t.Errorf("boosts: mail.send %v, docs.pdf %v, crm.other %v, other.tool %v",
			a.Boost("mail.send"), a.Boost("docs.pdf"), a.Boost("crm.other"), a.Boost("other.tool"))
	}
	if got := a.Suggest(3, func(k string) bool { return k == "mail.send" }); len(got) != 0 {
		t.Errorf("Suggest skipping mail.send = %v", got)
	}
}
