package conductor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"testing"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/tokens"
)

// BenchmarkConversationMemory measures the heap a conductor keeps per
// conversation: 1,000 conversations, each with a tool loaded (its module
// written, its state in the SQLite store). The original's budget was 2 MB.
func BenchmarkConversationMemory(b *testing.B) {
	r := newRig(b, "")
	c := r.start(b, nil)
	ctx := context.Background()
	const n = 1000
	var perConv, rssPerConv float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rss0 := rssBytes()
		for range n {
			conv, err := c.CreateConversation()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.LoadToolSpec(ctx, conv, "filesystem.read_text_file"); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perConv = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
		rssPerConv = float64(rssBytes()-rss0) / n
	}
	b.ReportMetric(perConv, "heap-B/conv")
	// RSS also counts SQLite's page cache (modernc allocates it outside the
	// Go heap) and the heap's own growth.
	b.ReportMetric(rssPerConv, "rss-B/conv")
}

// rssBytes is the resident set size of this process (Linux; 0 elsewhere).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	fmt.Sscan(string(b), &size, &rss)
	return rss * int64(os.Getpagesize())
}

// BenchmarkTwoMessageTokens replays the two-message flow and counts the
// o200k_base tokens the agent reads and writes beyond the fixed tool list:
// message 1 = search answer + load_tools answer + program + result;
// message 2 = the context fragment of the system prompt + program + result.
func BenchmarkTwoMessageTokens(b *testing.B) {
	r := newRig(b, "")
	c := r.start(b, nil)
	ctx := context.Background()
	var t1, t2 int
	for b.Loop() {
		conv, err := c.CreateConversation()
		if err != nil {
			b.Fatal(err)
		}
		matches, err := c.FindTools(ctx, conv, "read the contents of a text file", 8)
		if err != nil {
			b.Fatal(err)
		}
		search, _ := json.Marshal(matches)
		specs, err := c.LoadToolSpec(ctx, conv, "filesystem.read_text_file")
		if err != nil {
			b.Fatal(err)
		}
		load := specs[0].Import + "\n" + specs[0].Declarations
		code1 := readNotes(r) + "\n" + `await Deno.writeTextFile("./workspace/x.json", JSON.stringify({ notes: f.content })); "saved";`
		res1 := mustExec(b, c, conv, code1, conductor.ExecOptions{})
		code2 := `JSON.parse(await Deno.readTextFile("./workspace/x.json")).notes`
		res2 := mustExec(b, c, conv, code2, conductor.ExecOptions{})
		t1 = tokens.Count(string(search)) + tokens.Count(load) + tokens.Count(code1) + tokens.Count(string(res1.Result))
		t2 = tokens.Count(c.Context(conv)) + tokens.Count(code2) + tokens.Count(string(res2.Result))
	}
	b.ReportMetric(float64(t1), "tokens-msg1")
	b.ReportMetric(float64(t2), "tokens-msg2")
}
