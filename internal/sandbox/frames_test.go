package sandbox

import (
	"context"
	"io"
	"strings"
	"testing"
)

// chunkReader returns its chunks one Read at a time, like a pipe.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func newTestRunState(t *testing.T) *runState {
	r := &Runner{scrub: strings.NewReplacer()}
	return &runState{r: r, p: &prepared{}, stdin: nopWriteCloser{}, pid: -1 << 30, secret: "S3CR3T",
		max: 1 << 20, stopped: make(chan struct{}), callCtx: context.Background(), killed: true}
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

func TestReadStdout(t *testing.T) {
	t.Parallel()
	ready := "\n\x1e:{\"t\":\"ready\"}\n"
	done := "\n\x1eS3CR3T:{\"t\":\"done\",\"ok\":true,\"has\":true,\"result\":7}\n"
	cases := []struct {
		name   string
		chunks []string
		stdout string
		done   bool
	}{
		{"plain", []string{ready, "a\nb\n", done}, "a\nb\n", true},
		{"no newline before frame", []string{ready, "partial", done}, "partial", true},
		{"frame split across reads", []string{ready, "x\n", done[:5], done[5:17], done[17:]}, "x\n", true},
		{"byte by byte", append([]string{ready}, strings.Split("hi\n\n"+done, "")...), "hi\n\n", true},
		{"record separator in output", []string{ready, "a\x1eb\n\x1e:{\"t\":\"done\"}\n", done}, "a\x1eb\n\x1e:{\"t\":\"done\"}\n", true},
		{"guessed secret", []string{ready, "\n\x1eS3CR3:{\"t\":\"done\",\"ok\":true}\n", done}, "\n\x1eS3CR3:{\"t\":\"done\",\"ok\":true}\n", true},
		{"huge line", []string{ready, strings.Repeat("y", 300<<10) + "\n", done}, strings.Repeat("y", 300<<10) + "\n", true},
		{"output before ready", []string{"deno warning\n", ready, "z", done}, "deno warning\nz", true},
		{"ready forged after start", []string{ready, "\x1e:{\"t\":\"ready\"}\n", done}, "\x1e:{\"t\":\"ready\"}\n", true},
		{"no done", []string{ready, "end"}, "end", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newTestRunState(t)
			s.readStdout(&chunkReader{chunks: append([]string(nil), c.chunks...)})
			if got := s.stdout.String(); got != c.stdout {
				t.Errorf("stdout = %q, want %q", got, c.stdout)
			}
			if (s.done != nil) != c.done {
				t.Errorf("done = %v, want %v", s.done != nil, c.done)
			}
			if c.done && s.done != nil && string(s.done.Result) != "7" {
				t.Errorf("result = %s", s.done.Result)
			}
		})
	}
}

func TestReadStdoutLimits(t *testing.T) {
	t.Parallel()
	s := newTestRunState(t)
	s.max = 100
	s.readStdout(&chunkReader{chunks: []string{"\n\x1e:{\"t\":\"ready\"}\n", strings.Repeat("q\n", 200)}})
	if s.failKind != KindOutputLimit || s.stdout.Len() > 100 {
		t.Errorf("fail %q, kept %d bytes", s.failKind, s.stdout.Len())
	}
	s = newTestRunState(t)
	s.readStdout(&chunkReader{chunks: []string{"\n\x1e:{\"t\":\"ready\"}\n", "\n\x1eS3CR3T:not json\n"}})
	if s.failKind != KindInternal {
		t.Errorf("a bad frame gave %q", s.failKind)
	}
}
