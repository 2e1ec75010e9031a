package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/testenv"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// authServer serves handler behind a check of the Authorization header and
// counts the requests that lacked it.
func authServer(t *testing.T, handler http.Handler) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			refused.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &refused
}

func TestStreamableHTTP(t *testing.T) {
	mcpSrv := newTestMCPServer()
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mcpSrv }, nil)
	srv, refused := authServer(t, handler)
	var logs testenv.Buffer
	changed := make(chan struct{}, 16)
	h := newHub(t, []config.Server{
		{Name: "web", URL: srv.URL, Headers: map[string]string{"Authorization": "Bearer t0ken"}},
		{Name: "noauth", URL: srv.URL, Transport: "http"},
	}, Options{Logger: debugLogger(&logs), OnChange: func() { changed <- struct{}{} }})
	h.Start(context.Background())
	if st := statusOf(h, "web"); st.State != StateUp || st.Tools != 6 {
		t.Fatalf("Status(web) = %+v, want up with 6 tools", st)
	}
	if got := call(t, h, "web", "echo", `{"text":"over http"}`); got != "over http" {
		t.Errorf("echo = %q", got)
	}
	st := statusOf(h, "noauth")
	if st.State != StateDown || !strings.Contains(st.Err, "Unauthorized") {
		t.Errorf("Status(noauth) = %+v, want down, Unauthorized", st)
	}
	if refused.Load() == 0 {
		t.Errorf("the server never saw a request without the header")
	}

	// list_changed arrives over the standalone SSE stream.
	call(t, h, "web", "add_tool", `{"name":"web_dynamic"}`)
	eventually(t, "the new tool over HTTP", func() bool { return slices.Contains(toolNames(h, "web"), "web_dynamic") })

	h.Close()
	if strings.Contains(logs.String(), "t0ken") {
		t.Errorf("log shows a header value:\n%s", logs.String())
	}
}

func TestSSEFallback(t *testing.T) {
	mcpSrv := newTestMCPServer()
	handler := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return mcpSrv }, nil)
	srv, _ := authServer(t, handler)
	hdr := map[string]string{"Authorization": "Bearer t0ken"}
	h := newHub(t, []config.Server{
		{Name: "derived", URL: srv.URL, Headers: hdr},
		{Name: "explicit", URL: srv.URL, Headers: hdr, Transport: "sse"},
		{Name: "strict", URL: srv.URL, Headers: hdr, Transport: "http"},
	}, Options{})
	h.Start(context.Background())
	for _, name := range []string{"derived", "explicit"} {
		if st := statusOf(h, name); st.State != StateUp {
			t.Fatalf("Status(%s) = %+v, want up", name, st)
		}
		if got := call(t, h, name, "echo", `{"text":"over sse"}`); got != "over sse" {
			t.Errorf("%s echo = %q", name, got)
		}
	}
	if st := statusOf(h, "strict"); st.State != StateDown {
		t.Errorf("Status(strict) = %+v, want down (no fallback with transport http)", st)
	}
}

func TestHTTPServerGone(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	h := newHub(t, []config.Server{{Name: "gone", URL: url + "/mcp?key=s3cret", Transport: "http"}}, Options{})
	h.Start(context.Background())
	st := statusOf(h, "gone")
	if st.State != StateDown || st.Err == "" {
		t.Fatalf("Status = %+v, want down", st)
	}
	if strings.Contains(st.Err, "s3cret") {
		t.Errorf("Status.Err shows the URL's query: %s", st.Err)
	}
	if _, err := h.Call(context.Background(), "gone", "echo", nil); !errors.Is(err, ErrServerDown) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Call error = %v", err)
	}
}

func TestHeaderTransportOnlyToItsHost(t *testing.T) {
	var got []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		http.Redirect(w, r, other.URL, http.StatusFound)
	}))
	defer redirect.Close()
	rt, err := newHeaderTransport(redirect.URL, map[string]string{"Authorization": "Bearer x"})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.closeIdle()
	resp, err := (&http.Client{Transport: rt}).Get(redirect.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := []string{"Bearer x", ""}; !slices.Equal(got, want) {
		t.Errorf("Authorization seen by (server, redirect target) = %q, want %q", got, want)
	}
}
