package upstream

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// pipeConn returns a connection reading what the test writes to w, and
// the file its own writes go to.
func pipeConn(t *testing.T, max int) (*lineConn, *os.File, *os.File) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inW.Close(); outR.Close() })
	c, err := (&lineTransport{r: inR, w: outW, max: max}).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*lineConn), inW, outR
}

func feed(t *testing.T, w io.Writer, s string) {
	t.Helper()
	go func() { _, _ = io.WriteString(w, s) }()
}

func feedAndClose(t *testing.T, w io.WriteCloser, s string) {
	t.Helper()
	go func() { _, _ = io.WriteString(w, s); w.Close() }()
}

func readMethod(t *testing.T, c *lineConn) string {
	t.Helper()
	m, err := c.Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	req, ok := m.(*jsonrpc.Request)
	if !ok {
		t.Fatalf("Read = %T, want a request", m)
	}
	return req.Method
}

func TestLineConnReadsWhatServersSend(t *testing.T) {
	c, w, _ := pipeConn(t, 0)
	long := strings.Repeat("x", 3*lineBuffer)
	feedAndClose(t, w, `{"jsonrpc":"2.0","method":"a"}`+"\n"+
		"\n  \r\n"+ // blank lines
		`{"jsonrpc":"2.0","method":"b"}`+"\r\n"+ // CRLF
		"{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"c\"\n}\n"+ // pretty-printed
		`[{"jsonrpc":"2.0","method":"d"},{"jsonrpc":"2.0","method":"e"}]`+"\n"+ // batch
		`{"jsonrpc":"2.0","method":"f","params":{"s":"`+long+`"}}`+"\n"+ // longer than the buffer
		`{"jsonrpc":"2.0","method":"g"}`) // no final newline, then EOF
	for _, want := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		if got := readMethod(t, c); got != want {
			t.Fatalf("method %q, want %q", got, want)
		}
	}
	if _, err := c.Read(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after the stream ended: %v, want EOF", err)
	}
}

func TestLineConnRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", "server starting on stdout\n", `invalid message from the server ("server starting on stdout")`},
		{"bad JSON", `{"jsonrpc":"2.0","method":}` + "\n", "invalid"},
		{"too large", `{"jsonrpc":"2.0","method":"x","params":"` + strings.Repeat("y", 4*lineBuffer) + "\"}\n", "maximum size"},
		{"cut off", `{"jsonrpc":"2.0",` + "\n", "ended inside a message"},
		{"empty batch", "[]\n", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, w, _ := pipeConn(t, 2*lineBuffer)
			feedAndClose(t, w, tc.in)
			_, err := c.Read(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestLineConnWriteAndClose(t *testing.T) {
	c, _, out := pipeConn(t, 0)
	id, _ := jsonrpc.MakeID(int64(7))
	if err := c.Write(context.Background(), &jsonrpc.Request{ID: id, Method: "ping"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); !strings.HasSuffix(got, "}\n") || strings.Count(got, "\n") != 1 || !strings.Contains(got, `"ping"`) {
		t.Fatalf("wrote %q, want one line", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Write(ctx, &jsonrpc.Request{ID: id, Method: "ping"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write on a cancelled context: %v", err)
	}

	// Close ends a Read blocked on a silent server.
	done := make(chan error, 1)
	go func() { _, err := c.Read(context.Background()); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestLineConnKeepsNoLargeBuffer: after a 4 MB message (a large
// tools/list), the connection holds its fixed buffer, not the message.
func TestLineConnKeepsNoLargeBuffer(t *testing.T) {
	c, w, _ := pipeConn(t, 0)
	big := `{"jsonrpc":"2.0","method":"big","params":{"s":"` + strings.Repeat("z", 4<<20) + `"}}` + "\n"
	feed(t, w, big+`{"jsonrpc":"2.0","method":"small"}`+"\n")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if got := readMethod(t, c); got != "big" {
		t.Fatal(got)
	}
	if got := readMethod(t, c); got != "small" {
		t.Fatal(got)
	}
	big = ""
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Fatalf("heap grew by %d bytes after reading a 4 MB message", grown)
	}
	runtime.KeepAlive(c)
}
