package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestHTTPLoad runs concurrent clients, each in its own session, running
// programs against one conductor, then shuts it down and checks that no
// goroutine, file descriptor or process is left. 10 clients for 5 s by
// default; CONDUCTOR_LOAD_CLIENTS=50 CONDUCTOR_LOAD_SECONDS=60 is the full
// load of issue 8. The only errors allowed are the configured concurrency
// limit's 429s.
func TestHTTPLoad(t *testing.T) {
	clients, seconds := 10, 5
	if testing.Short() {
		seconds = 2
	}
	if n, err := strconv.Atoi(os.Getenv("CONDUCTOR_LOAD_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	if n, err := strconv.Atoi(os.Getenv("CONDUCTOR_LOAD_SECONDS")); err == nil && n > 0 {
		seconds = min(n, 60)
	}
	heapBefore := heapAfterGC()
	fdsBefore := openFDs(t)
	kidsBefore := childProcesses(t)
	t.Cleanup(func() {
		// Runs last: after Serve returned and the conductor closed.
		waitFor(t, "sandbox processes to exit", 10*time.Second, func() bool { return childProcesses(t) <= kidsBefore })
		goleak.VerifyNone(t, goleak.IgnoreCurrent(),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"), // idle keep-alive reads of other tests' transports
		)
		if fds := openFDs(t); fds > fdsBefore+2 {
			t.Errorf("open fds: %d before, %d after", fdsBefore, fds)
		}
	})
	const limit = 8
	f := startHTTP(t, HTTPOptions{Token: "load", MaxConcurrentExecutions: limit}, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()

	var ok, limited atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var errs []string
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := mcp.NewClient(&mcp.Implementation{Name: "load", Version: "1"}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
			defer cancel()
			cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: f.url + "/mcp",
				HTTPClient: &http.Client{Transport: bearerOn{"load", tr}}, MaxRetries: -1}, nil)
			if err != nil {
				mu.Lock()
				errs = append(errs, "connect: "+err.Error())
				mu.Unlock()
				return
			}
			defer cs.Close()
			for j := 0; time.Now().Before(deadline); j++ {
				t0 := time.Now()
				res, err := execCode(ctx, cs, fmt.Sprintf(`const xs = Array.from({length: 1000}, (_, k) => k * %d); xs.reduce((a, b) => a + b, 0)`, i+j))
				switch {
				case err != nil && strings.Contains(err.Error(), "Too Many Requests"):
					limited.Add(1)
					time.Sleep(20 * time.Millisecond)
				case err != nil:
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				case res.IsError:
					mu.Lock()
					errs = append(errs, "isError: "+text(res))
					mu.Unlock()
				default:
					ok.Add(1)
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	tr.CloseIdleConnections()
	if len(errs) > 0 {
		t.Errorf("%d errors beyond the limit, first: %s", len(errs), errs[0])
	}
	if ok.Load() == 0 {
		t.Fatal("no run succeeded")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("%d clients, %d s: %d runs ok (%.1f/s), %d refused by the limit of %d, p50 %v p99 %v",
		clients, seconds, ok.Load(), float64(ok.Load())/float64(seconds), limited.Load(), limit,
		lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)])
	fams := f.scrape(t, "load")
	if got := value(fams, "conductor_executions_total", map[string]string{"outcome": "ok"}); got != float64(ok.Load()) {
		t.Errorf("executions{ok} = %v, clients saw %d", got, ok.Load())
	}
	if got := value(fams, "conductor_http_rejected_total", map[string]string{"reason": "too_many_executions"}); got != float64(limited.Load()) {
		t.Errorf("rejected{too_many_executions} = %v, clients saw %d", got, limited.Load())
	}
	if err := f.shutdown(t); err != nil {
		t.Fatal(err)
	}
	if n := f.s.activeSessions(); n != 0 {
		t.Errorf("%d sessions still counted after shutdown", n)
	}
	// Memory is flat: what the sessions held is gone once they closed.
	heapAfter := heapAfterGC()
	t.Logf("heap in use: %.1f MB before, %.1f MB after", float64(heapBefore)/1e6, float64(heapAfter)/1e6)
	if grew := int64(heapAfter) - int64(heapBefore); grew > 32<<20 {
		t.Errorf("heap grew by %d MB over the load", grew>>20)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

type bearerOn struct {
	token string
	base  http.RoundTripper
}

func (b bearerOn) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}
