package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestNilMetricsIsNoop(t *testing.T) {
	var m *Metrics
	m.ObserveExecution("ok", time.Second, 10)
	m.ObserveToolCall("a", "b", "ok", time.Second)
	m.ObserveSearch(time.Millisecond)
	m.Rejected("origin")
	m.ExecStarted()()
	m.GaugeFunc("x", "y", func() float64 { return 1 })
}

func TestRotatingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.log")
	w, err := RotatingFile(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for range 1100 { // a bit more than 1 MB
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) < 2 {
		t.Errorf("no rotated file after 1.1 MB with a 1 MB limit: %v", ents)
	}
	if _, err := RotatingFile("/proc/nope/audit.log", 1); err == nil {
		t.Error("RotatingFile on an unwritable path: no error")
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

// TestTracingExportsOverOTLP: a span ends up as a protobuf POST to
// <endpoint>/v1/traces once the provider shuts down.
func TestTracingExportsOverOTLP(t *testing.T) {
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type") + " " + strconv.Itoa(len(body))
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	tr, shutdown, err := Tracing(srv.URL, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Start(context.Background(), "conductor.execute")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-got:
		if !strings.HasPrefix(req, "POST /v1/traces application/x-protobuf ") || strings.HasSuffix(req, " 0") {
			t.Errorf("collector got %q, want a protobuf POST to /v1/traces", req)
		}
	default:
		t.Fatal("no export reached the collector")
	}
	if _, _, err := Tracing("collector:4318", "test"); err == nil {
		t.Error("Tracing with a URL without scheme: no error")
	}
}
