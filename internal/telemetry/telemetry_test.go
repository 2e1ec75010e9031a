package telemetry

import (
	"os"
	"path/filepath"
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
