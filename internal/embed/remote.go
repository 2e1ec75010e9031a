package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Remote defaults and bounds.
const (
	defaultRemoteTimeout = 30 * time.Second
	defaultRemoteBatch   = 64
	// remoteAttempts bounds the requests per batch: one plus retries on
	// 429, 5xx and transport errors.
	remoteAttempts = 4
	// remoteBackoff is the first retry delay, doubled per retry up to
	// remoteMaxDelay; a Retry-After above remoteMaxDelay ends the retries.
	remoteBackoff  = 500 * time.Millisecond
	remoteMaxDelay = 20 * time.Second
	// remoteMaxBody bounds a response body; remoteMaxErrBody the part of an
	// error body kept for the message.
	remoteMaxBody    = 256 << 20
	remoteMaxErrBody = 4 << 10
)

// RemoteOptions configures NewRemote.
type RemoteOptions struct {
	// URL is the base of an OpenAI-compatible API, such as
	// "https://api.openai.com/v1"; Embed posts to URL + "/embeddings".
	URL string
	// Model is the remote model, such as "text-embedding-3-small".
	Model string
	// APIKey, if set, is sent as "Authorization: Bearer <APIKey>". It
	// never appears in errors. The caller reads it (from the environment
	// variable named by the configuration).
	APIKey string
	// Dim is the expected vector length; 0 learns it from the first
	// response. Vectors of another length are an error.
	Dim int
	// Timeout bounds each HTTP request (each attempt); 0 means 30s.
	Timeout time.Duration
	// HTTPClient sends the requests; nil means a new http.Client.
	HTTPClient *http.Client
	// BatchSize is the number of texts per request; 0 means 64.
	BatchSize int
}

// Remote embeds texts with an OpenAI-compatible embeddings API. It is
// safe for concurrent use.
type Remote struct {
	endpoint string // base + "/embeddings"
	public   string // endpoint without credentials or query, for messages
	model    string
	key      string
	dim      atomic.Int64
	timeout  time.Duration
	client   *http.Client
	batch    int
	// sleep waits before a retry; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// RemoteError is a request the API answered with an error status.
type RemoteError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the API's error message (without the API key), or the
	// start of the body when it has none.
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("status %d", e.StatusCode)
	}
	return fmt.Sprintf("status %d: %s", e.StatusCode, e.Message)
}

// NewRemote checks opts and returns a Remote. It sends nothing.
func NewRemote(opts RemoteOptions) (*Remote, error) {
	if opts.Model == "" {
		return nil, errors.New("remote embeddings: no model")
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// url.Parse's error quotes the URL, which may hold credentials.
		return nil, errors.New("remote embeddings: URL must be an absolute http(s) URL")
	}
	if opts.Dim < 0 || opts.BatchSize < 0 || opts.Timeout < 0 {
		return nil, errors.New("remote embeddings: negative Dim, BatchSize or Timeout")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/embeddings"
	u.RawPath = ""
	pub := *u
	pub.User, pub.RawQuery, pub.Fragment = nil, "", ""
	r := &Remote{
		endpoint: u.String(),
		public:   pub.String(),
		model:    opts.Model,
		key:      opts.APIKey,
		timeout:  orDefault(opts.Timeout, defaultRemoteTimeout),
		client:   opts.HTTPClient,
		batch:    orDefault(opts.BatchSize, defaultRemoteBatch),
		sleep:    sleepCtx,
	}
	if r.client == nil {
		r.client = &http.Client{}
	}
	r.dim.Store(int64(opts.Dim))
	return r, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Name is "remote:" and the model: vectors stored under it stay valid as
// long as the remote model does not change.
func (r *Remote) Name() string { return "remote:" + r.model }

// Dim is the vector length: RemoteOptions.Dim, or the length learned from
// the first response (0 before it).
func (r *Remote) Dim() int { return int(r.dim.Load()) }

// Embed returns one unit-length vector per text, in the order of texts,
// sending BatchSize texts per request, one request at a time. A request
// answered with 429 or 5xx, or failing in transport, is retried up to
// three times with exponential backoff, waiting as long as a Retry-After
// header asks when that is at most 20s. Empty texts are sent as " " (the
// OpenAI API rejects empty input). A zero vector stays zero. On error no
// vectors are returned; errors never contain the API key.
func (r *Remote) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += r.batch {
		batch := texts[start:min(start+r.batch, len(texts))]
		vs, err := r.embedBatch(ctx, batch)
		if err != nil {
			if len(texts) > len(batch) {
				return nil, fmt.Errorf("remote embeddings %s: texts %d-%d: %w", r.public, start, start+len(batch)-1, err)
			}
			return nil, fmt.Errorf("remote embeddings %s: %w", r.public, err)
		}
		out = append(out, vs...)
	}
	return out, nil
}

type embeddingsRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

func (r *Remote) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	req := embeddingsRequest{Model: r.model, Input: make([]string, len(texts))}
	for i, t := range texts {
		req.Input[i] = orDefault(t, " ")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	delay := remoteBackoff
	for attempt := 1; ; attempt++ {
		resp, retryAfter, err := r.post(ctx, body)
		if err == nil {
			return r.decode(resp, len(texts))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var re *RemoteError
		retryable := !errors.As(err, &re) || re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500
		if !retryable || attempt == remoteAttempts {
			if retryable {
				return nil, fmt.Errorf("%d attempts: %w", attempt, err)
			}
			return nil, err
		}
		wait := delay + rand.N(delay/4+1)
		if retryAfter > 0 {
			if retryAfter > remoteMaxDelay {
				return nil, fmt.Errorf("%w (server asks to retry after %s)", err, retryAfter)
			}
			wait = retryAfter
		}
		if err := r.sleep(ctx, wait); err != nil {
			return nil, err
		}
		delay = min(2*delay, remoteMaxDelay)
	}
}

// post sends one request and returns the body of a 2xx answer. Otherwise
// it returns a *RemoteError for an error status with the Retry-After delay
// (0 if none), or a transport error that names neither the URL nor the
// key.
func (r *Remote) post(ctx context.Context, body []byte) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, 0, errors.New("build request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r.key != "" {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error quotes the full URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, 0, fmt.Errorf("post: %s", r.scrub(err.Error()))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, remoteMaxErrBody))
		return nil, retryAfter(resp.Header.Get("Retry-After")), &RemoteError{StatusCode: resp.StatusCode, Message: r.scrub(errorMessage(raw))}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, remoteMaxBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read response: %s", r.scrub(err.Error()))
	}
	if len(raw) > remoteMaxBody {
		return nil, 0, fmt.Errorf("response larger than %d MB", remoteMaxBody>>20)
	}
	return raw, 0, nil
}

// decode checks a response for n texts and returns its vectors by index,
// normalised.
func (r *Remote) decode(raw []byte, n int) ([][]float32, error) {
	var resp embeddingsResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if len(resp.Data) != n {
		return nil, fmt.Errorf("response has %d vectors for %d texts", len(resp.Data), n)
	}
	out := make([][]float32, n)
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= n || out[d.Index] != nil {
			return nil, fmt.Errorf("response has a bad or repeated index %d", d.Index)
		}
		dim := int(r.dim.Load())
		if dim == 0 && len(d.Embedding) > 0 {
			r.dim.CompareAndSwap(0, int64(len(d.Embedding)))
			dim = int(r.dim.Load())
		}
		if len(d.Embedding) != dim {
			return nil, fmt.Errorf("vector %d has %d values, want %d", d.Index, len(d.Embedding), dim)
		}
		normalize(d.Embedding)
		out[d.Index] = d.Embedding
	}
	return out, nil
}

// normalize scales v to unit length; a zero vector stays zero.
func normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return
	}
	s := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= s
	}
}

// errorMessage extracts the message of an OpenAI-style error body
// ({"error": {"message": ...}} or {"error": "..."}), else returns the
// body's start, on one line.
func errorMessage(raw []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	msg := ""
	if json.Unmarshal(raw, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
		}
		var s string
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			msg = obj.Message
		} else if json.Unmarshal(e.Error, &s) == nil {
			msg = s
		}
	}
	if msg == "" {
		msg = string(raw)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// scrub removes the API key, and any run of 8 or more of its characters
// (services echo parts of a wrong key), from s.
func (r *Remote) scrub(s string) string {
	k := r.key
	if k == "" {
		return s
	}
	const minRun = 8
	if len(k) < minRun {
		return strings.ReplaceAll(s, k, "[redacted]")
	}
	hide := make([]bool, len(s))
	found := false
	for i := 0; i+minRun <= len(k); i++ {
		w := k[i : i+minRun]
		for off := 0; ; {
			j := strings.Index(s[off:], w)
			if j < 0 {
				break
			}
			for p := off + j; p < off+j+minRun; p++ {
				hide[p] = true
			}
			found = true
			off += j + 1
		}
	}
	if !found {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !hide[i] {
			b.WriteByte(s[i])
			continue
		}
		b.WriteString("[redacted]")
		for i+1 < len(s) && hide[i+1] {
			i++
		}
	}
	return b.String()
}

// retryAfter parses a Retry-After header: seconds or an HTTP date. It
// returns 0 when absent or unparsable.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 1<<20)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
