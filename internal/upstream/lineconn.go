package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// lineTransport speaks newline-delimited JSON-RPC over a server's stdio,
// like the SDK's IOTransport, with two differences that matter for a
// conductor holding many sessions for a long time:
//
//   - memory: the SDK decodes with a json.Decoder whose buffer grows to
//     the largest message a server ever sent and never shrinks (half a
//     megabyte per server after a 200-tool tools/list), and its batch
//     queue keeps the last message alive. Here each connection keeps a
//     fixed read buffer; a larger message is assembled in memory that is
//     garbage once decoded.
//   - latency: Read decodes on the caller's goroutine, without a relay
//     goroutine and channel, so a response reaches the waiting call with
//     one fewer hand-off.
//
// Close interrupts a blocked Read by closing the pipe.
type lineTransport struct {
	r io.ReadCloser
	w io.WriteCloser
	// max bounds one inbound message (mcp.DefaultMaxLineLength if 0).
	max int
}

// Connect implements mcp.Transport.
func (t *lineTransport) Connect(context.Context) (mcp.Connection, error) {
	limit := t.max
	if limit <= 0 {
		limit = mcp.DefaultMaxLineLength
	}
	return &lineConn{r: t.r, w: t.w, br: bufio.NewReaderSize(t.r, lineBuffer), max: limit}, nil
}

// lineBuffer is each connection's fixed read buffer: most messages
// (calls, results, notifications) fit in it without another allocation.
const lineBuffer = 32 << 10

type lineConn struct {
	r   io.ReadCloser
	w   io.WriteCloser
	br  *bufio.Reader
	max int

	queue []jsonrpc.Message // rest of a batch; only Read touches it

	writeMu sync.Mutex
	closeMu sync.Mutex
	closed  bool
}

var errFrameTooLarge = errors.New("upstream message exceeds the maximum size")

func (c *lineConn) SessionID() string { return "" }

// Read returns the next message. Servers send one message per line; one
// that pretty-prints a message over several lines is read too, and blank
// lines are skipped.
func (c *lineConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(c.queue) > 0 {
		m := c.queue[0]
		c.queue[0] = nil // the slice's array must not keep it alive
		c.queue = c.queue[1:]
		return m, nil
	}
	var acc []byte // a message over several lines
	for {
		line, err := c.line()
		if err != nil {
			if acc != nil && errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: the stream ended inside a message", io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if len(line) == 0 {
			continue
		}
		data := line
		if acc != nil {
			if len(acc)+len(line) > c.max {
				return nil, errFrameTooLarge
			}
			acc = append(append(acc, '\n'), line...)
			data = acc
		}
		m, err := c.decode(data)
		if err == nil {
			return m, nil
		}
		if !truncated(data) {
			// Say what came: usually a server logging to stdout.
			return nil, fmt.Errorf("invalid message from the server (%.60q): %w", data, err)
		}
		if acc == nil {
			acc = append([]byte(nil), line...)
		}
	}
}

// decode turns one JSON value into a message, or a batch into its first
// message and a queue of the rest.
func (c *lineConn) decode(data []byte) (jsonrpc.Message, error) {
	if data[0] != '[' {
		return jsonrpc.DecodeMessage(data)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	if len(raws) == 0 {
		return nil, errors.New("empty JSON-RPC batch")
	}
	msgs := make([]jsonrpc.Message, len(raws))
	for i, r := range raws {
		var err error
		if msgs[i], err = jsonrpc.DecodeMessage(r); err != nil {
			return nil, err
		}
	}
	c.queue = msgs[1:]
	return msgs[0], nil
}

// truncated reports whether data is the start of a JSON value that more
// input could complete.
func truncated(data []byte) bool {
	var v json.RawMessage
	err := json.NewDecoder(bytes.NewReader(data)).Decode(&v)
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// line returns the next line without surrounding space. It aliases the
// read buffer unless the line was longer than the buffer, and is valid
// until the next call. The last line may lack its newline.
func (c *lineConn) line() ([]byte, error) {
	var long []byte
	for {
		part, err := c.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(part) > c.max {
				return nil, errFrameTooLarge
			}
			long = append(long, part...)
			continue
		}
		if long != nil {
			if len(long)+len(part) > c.max {
				return nil, errFrameTooLarge
			}
			part = append(long, part...)
		}
		if err != nil && (!errors.Is(err, io.EOF) || len(bytes.TrimSpace(part)) == 0) {
			return nil, err
		}
		return bytes.TrimSpace(part), nil
	}
}

// Write sends one message as one line.
func (c *lineConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	data = append(data, '\n')
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, err = c.w.Write(data)
	return err
}

// Close closes both pipes, which ends a blocked Read.
func (c *lineConn) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return errors.Join(c.r.Close(), c.w.Close())
}
