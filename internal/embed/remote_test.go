package embed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testKey = "sk-test-0123456789abcdefSECRET"

// fakeAPI is an OpenAI-compatible /v1/embeddings endpoint. It checks the
// method, path, headers and body of every request, records the inputs,
// and answers with the vector fakeVector(text) for each input, in the
// order given by reorder, after replaying any scripted failures.
type fakeAPI struct {
	t       *testing.T
	model   string
	dim     int
	reorder bool
	mu      sync.Mutex
	fail    []func(w http.ResponseWriter) // answered first, one per request
	batches [][]string
}

// fakeVector is a deterministic, not normalised vector for text.
func fakeVector(text string, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(len(text)+i+1) * 0.5
	}
	return v
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		f.t.Errorf("request %s %s, want POST /v1/embeddings", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		f.t.Errorf("Authorization = %q, want Bearer <key>", got)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("Content-Type = %q, want application/json", ct)
	}
	raw, _ := io.ReadAll(r.Body)
	var req map[string]any
	if err := json.Unmarshal(raw, &req); err != nil {
		f.t.Errorf("request body %q: %v", raw, err)
		return
	}
	if len(req) != 2 || req["model"] != f.model {
		f.t.Errorf("request body %s, want {model: %q, input: [...]}", raw, f.model)
	}
	var input []string
	for _, x := range req["input"].([]any) {
		input = append(input, x.(string))
	}
	f.mu.Lock()
	f.batches = append(f.batches, input)
	var fail func(http.ResponseWriter)
	if len(f.fail) > 0 {
		fail, f.fail = f.fail[0], f.fail[1:]
	}
	f.mu.Unlock()
	if fail != nil {
		fail(w)
		return
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	resp := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
	}{Object: "list", Model: f.model}
	for i, text := range input {
		resp.Data = append(resp.Data, item{"embedding", i, fakeVector(text, f.dim)})
	}
	if f.reorder {
		for i, j := 0, len(resp.Data)-1; i < j; i, j = i+1, j-1 {
			resp.Data[i], resp.Data[j] = resp.Data[j], resp.Data[i]
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func newFake(t *testing.T, f *fakeAPI, opts RemoteOptions) (*Remote, *[]time.Duration) {
	t.Helper()
	f.t = t
	f.model = "test-embed"
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	opts.URL = srv.URL + "/v1"
	opts.Model = f.model
	opts.APIKey = testKey
	r, err := NewRemote(opts)
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	r.sleep = func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return ctx.Err()
	}
	return r, &slept
}

func unit(v []float32) []float32 {
	out := append([]float32(nil), v...)
	normalize(out)
	return out
}

func checkVectors(t *testing.T, texts []string, got [][]float32, dim int) {
	t.Helper()
	if len(got) != len(texts) {
		t.Fatalf("Embed: %d vectors for %d texts", len(got), len(texts))
	}
	for i, text := range texts {
		want := unit(fakeVector(orDefault(text, " "), dim))
		if diff := cmp.Diff(want, got[i], cmp.Comparer(func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-6 })); diff != "" {
			t.Errorf("vector %d (%q) (-want +got):\n%s", i, text, diff)
		}
	}
}

func TestRemoteEmbed(t *testing.T) {
	texts := []string{"alpha", "be", "", "delta delta", "e", "ffffff", "g"}
	for _, tc := range []struct {
		name    string
		reorder bool
		batch   int
		batches int
	}{
		{"one batch", false, 0, 1},
		{"out of order", true, 0, 1},
		{"batches of 3", true, 3, 3},
		{"batches of 1", false, 1, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPI{dim: 6, reorder: tc.reorder}
			r, _ := newFake(t, f, RemoteOptions{BatchSize: tc.batch})
			if r.Dim() != 0 {
				t.Errorf("Dim() before any request = %d, want 0", r.Dim())
			}
			got, err := r.Embed(context.Background(), texts)
			if err != nil {
				t.Fatal(err)
			}
			checkVectors(t, texts, got, 6)
			if r.Dim() != 6 {
				t.Errorf("Dim() = %d, want 6 (learned)", r.Dim())
			}
			if len(f.batches) != tc.batches {
				t.Errorf("%d requests, want %d", len(f.batches), tc.batches)
			}
			var sent []string
			for _, b := range f.batches {
				sent = append(sent, b...)
			}
			want := append([]string(nil), texts...)
			want[2] = " "
			if diff := cmp.Diff(want, sent); diff != "" {
				t.Errorf("inputs sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRemoteNameAndEmpty(t *testing.T) {
	f := &fakeAPI{dim: 4}
	r, _ := newFake(t, f, RemoteOptions{Dim: 4})
	if r.Name() != "remote:test-embed" || r.Dim() != 4 {
		t.Errorf("Name, Dim = %q, %d; want remote:test-embed, 4", r.Name(), r.Dim())
	}
	got, err := r.Embed(context.Background(), nil)
	if err != nil || len(got) != 0 || len(f.batches) != 0 {
		t.Errorf("Embed(nil) = %v, %v after %d requests; want no vectors, no request", got, err, len(f.batches))
	}
}

func TestRemoteRetry(t *testing.T) {
	status := func(code int, retryAfter string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error":{"message":"status %d","type":"x"}}`, code)
		}
	}
	for _, tc := range []struct {
		name     string
		fail     []func(http.ResponseWriter)
		wantErr  string
		requests int
		slept    []time.Duration // exact when Retry-After, else checked by range
	}{
		{name: "429 then success", fail: []func(http.ResponseWriter){status(429, "3")}, requests: 2, slept: []time.Duration{3 * time.Second}},
		{name: "503 twice then success", fail: []func(http.ResponseWriter){status(503, ""), status(502, "")}, requests: 3},
		{name: "always 500", fail: []func(http.ResponseWriter){status(500, ""), status(500, ""), status(500, ""), status(500, "")}, wantErr: "4 attempts: status 500: status 500", requests: 4},
		{name: "Retry-After too long", fail: []func(http.ResponseWriter){status(429, "3600")}, wantErr: "status 429: status 429 (server asks to retry after 1h0m0s)", requests: 1},
		{name: "400 not retried", fail: []func(http.ResponseWriter){status(400, "")}, wantErr: "status 400: status 400", requests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPI{dim: 3, fail: tc.fail}
			r, slept := newFake(t, f, RemoteOptions{})
			texts := []string{"a", "bb"}
			got, err := r.Embed(context.Background(), texts)
			if len(f.batches) != tc.requests {
				t.Errorf("%d requests, want %d", len(f.batches), tc.requests)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.HasSuffix(err.Error(), tc.wantErr) {
					t.Fatalf("Embed error = %v, want ...%s", err, tc.wantErr)
				}
				var re *RemoteError
				if !errors.As(err, &re) {
					t.Errorf("Embed error %v is not a *RemoteError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkVectors(t, texts, got, 3)
			if tc.slept != nil {
				if diff := cmp.Diff(tc.slept, *slept); diff != "" {
					t.Errorf("waits (-want +got):\n%s", diff)
				}
			}
			for i, d := range *slept {
				if d <= 0 || d > remoteMaxDelay {
					t.Errorf("wait %d = %v, want in (0, %v]", i, d, remoteMaxDelay)
				}
			}
		})
	}
}

func TestRemoteBadResponses(t *testing.T) {
	write := func(body string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { io.WriteString(w, body) }
	}
	for _, tc := range []struct {
		name, body, wantErr string
		dim                 int
	}{
		{"not json", "<html>", "decode response", 0},
		{"too few", `{"data":[{"index":0,"embedding":[1,2]}]}`, "1 vectors for 2 texts", 0},
		{"repeated index", `{"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]}`, "bad or repeated index 0", 0},
		{"index out of range", `{"data":[{"index":0,"embedding":[1,2]},{"index":2,"embedding":[1,2]}]}`, "bad or repeated index 2", 0},
		{"ragged", `{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,2,3]}]}`, "vector 1 has 3 values, want 2", 0},
		{"wrong dim", `{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,2]}]}`, "vector 0 has 2 values, want 5", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPI{dim: 2, fail: []func(http.ResponseWriter){write(tc.body)}}
			r, _ := newFake(t, f, RemoteOptions{Dim: tc.dim})
			_, err := r.Embed(context.Background(), []string{"a", "b"})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Embed error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestRemoteKeyNeverInErrors makes the server echo the key (whole, and in
// part, as OpenAI's "Incorrect API key provided" does) and puts it in the
// URL's query and user info: no error text may contain it.
func TestRemoteKeyNeverInErrors(t *testing.T) {
	echo := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s. Also %s...%s"}}`, testKey, testKey[:12], testKey[len(testKey)-10:])
	}
	f := &fakeAPI{dim: 2, fail: []func(http.ResponseWriter){echo}}
	r, _ := newFake(t, f, RemoteOptions{})
	_, err := r.Embed(context.Background(), []string{"a"})
	if err == nil {
		t.Fatal("Embed: no error for 401")
	}
	checkNoKey(t, err)
	if !strings.Contains(err.Error(), "status 401: Incorrect API key provided: [redacted]") {
		t.Errorf("Embed error = %v, want the API's message with the key redacted", err)
	}

	// Transport errors: nothing listens; the key is also in the URL.
	r2, err := NewRemote(RemoteOptions{URL: "http://user:" + testKey + "@127.0.0.1:1/v1?key=" + testKey, Model: "m", APIKey: testKey, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r2.sleep = func(context.Context, time.Duration) error { return nil }
	_, err = r2.Embed(context.Background(), []string{"a"})
	if err == nil {
		t.Fatal("Embed to a closed port: no error")
	}
	checkNoKey(t, err)
	t.Logf("transport error: %v", err)

	_, err = NewRemote(RemoteOptions{URL: "ftp://x:" + testKey + "@h/", Model: "m", APIKey: testKey})
	if err == nil {
		t.Fatal("NewRemote(ftp URL): no error")
	}
	checkNoKey(t, err)
}

func checkNoKey(t *testing.T, err error) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := e.Error()
		for i := 0; i+8 <= len(testKey); i++ {
			if strings.Contains(msg, testKey[i:i+8]) {
				t.Fatalf("error %q contains part of the API key", msg)
			}
		}
	}
}

func TestRemoteContextCanceled(t *testing.T) {
	f := &fakeAPI{dim: 2, fail: []func(http.ResponseWriter){func(w http.ResponseWriter) { w.WriteHeader(503) }}}
	r, _ := newFake(t, f, RemoteOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	r.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	_, err := r.Embed(ctx, []string{"a"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Embed after cancel = %v, want context.Canceled", err)
	}
}

func TestNewRemoteInvalid(t *testing.T) {
	for _, opts := range []RemoteOptions{
		{URL: "https://api.example.com/v1"},
		{URL: "api.example.com/v1", Model: "m"},
		{URL: "https://api.example.com/v1", Model: "m", Dim: -1},
	} {
		if _, err := NewRemote(opts); err == nil {
			t.Errorf("NewRemote(%+v): no error", opts)
		}
	}
}
