package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkHTTPExecuteCode measures a trivial execute_code over streamable
// HTTP with 1, 10 and 50 concurrent clients (one session each) against one
// conductor, and over an in-memory session (what stdio costs minus the
// pipe) beside it. It reports requests/s and p50/p99 latency.
func BenchmarkHTTPExecuteCode(b *testing.B) {
	b.Run("transport=inmemory/clients=1", func(b *testing.B) {
		c := newConductor(b, nil)
		cs := connectSession(b, New(c, nil))
		benchClients(b, []*mcp.ClientSession{cs})
	})
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("transport=http/clients=%d", n), func(b *testing.B) {
			f := startHTTPBench(b)
			tr := &http.Transport{MaxIdleConnsPerHost: n}
			b.Cleanup(tr.CloseIdleConnections)
			var sessions []*mcp.ClientSession
			for range n {
				client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
				cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: f.url + "/mcp",
					HTTPClient: &http.Client{Transport: tr}, MaxRetries: -1}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { cs.Close() })
				sessions = append(sessions, cs)
			}
			benchClients(b, sessions)
		})
	}
}

func startHTTPBench(b *testing.B) *httpFixture {
	// startHTTP takes a *testing.T for its helpers; the fixture only needs TB.
	c := newConductor(b, nil)
	s := New(c, nil)
	h, err := s.Handler(HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	ln := listenLoopback(b)
	go srv.Serve(ln)
	b.Cleanup(func() { s.closeSessions(); srv.Close() })
	return &httpFixture{s: s, url: "http://" + ln.Addr().String()}
}

// benchClients spreads b.Loop's iterations over the sessions, each driven by
// its own goroutine, and reports throughput and latency percentiles.
func benchClients(b *testing.B, sessions []*mcp.ClientSession) {
	ctx := context.Background()
	for _, cs := range sessions { // warm-up: conversation directory
		if res, err := execCode(ctx, cs, trivialProgram); err != nil || res.IsError {
			b.Fatalf("warm-up: %v %v", err, res)
		}
	}
	jobs := make(chan struct{})
	var mu sync.Mutex
	var lat []time.Duration
	var failed error
	var wg sync.WaitGroup
	for _, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t0 := time.Now()
				res, err := execCode(ctx, cs, trivialProgram)
				d := time.Since(t0)
				mu.Lock()
				if err == nil && res.IsError {
					err = fmt.Errorf("isError: %s", text(res))
				}
				if err != nil && failed == nil {
					failed = err
				}
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for b.Loop() {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil {
		b.Fatal(failed)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
}
