package embed

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// team spreads the steps of one batch (matrix products by blocks of
// output columns, attention by text and head, layer norms by rows) over
// the calling goroutine and helper goroutines, so that a request and its
// parts embed in about half the time on two cores.
//
// Helpers spin between steps for up to teamSpin before they sleep: on the
// VMs this runs on, waking a thread on another CPU takes 70-90 µs, longer
// than most steps. Items are claimed one at a time, so a helper that
// starts late, or never gets a CPU, only leaves more items to the caller,
// which never waits for a helper to start. A team lives for one batch and
// is used by one goroutine; close stops the helpers and waits for them. A
// nil *team runs everything on the caller.
type team struct {
	cur    atomic.Pointer[teamStep]
	quit   atomic.Bool
	parked atomic.Int32 // helpers asleep or about to be
	wake   chan struct{}
	wg     sync.WaitGroup
	buf    []float32 // the caller's scratch
}

// teamStep is one step's items: do(i, buf) runs item i < n with buf as
// scratch. next is the next item to claim, done the items done.
type teamStep struct {
	n          int
	do         func(i int, buf *[]float32)
	next, done atomic.Int64
}

// teamMinRows is the fewest rows for which a batch takes helpers: below
// it the steps are too short to share.
const teamMinRows = 6

// teamSpin is how long an idle helper spins before it sleeps: longer than
// the serial parts between steps, short enough not to hold a CPU that
// another process needs for long.
const teamSpin = 100 * time.Microsecond

// teamCols is the width of a block of output columns: a multiple of the
// kernels' four columns, small enough to balance (1536 columns make 24
// blocks), big enough to amortise claiming (a block of 64 columns of 512
// inputs for 7 rows is about 2 µs).
const teamCols = 64

// newTeam returns a team with up to helpers helper goroutines, or nil when
// there is no other CPU to use.
func newTeam(helpers int) *team {
	helpers = min(helpers, runtime.GOMAXPROCS(0)-1)
	if helpers <= 0 {
		return nil
	}
	t := &team{wake: make(chan struct{}, helpers)}
	for range helpers {
		t.wg.Go(t.help)
	}
	return t
}

// help runs the items of each new step until the team closes.
func (t *team) help() {
	var buf []float32
	var last *teamStep
	idle := time.Now()
	for spins := 0; !t.quit.Load(); spins++ {
		if s := t.cur.Load(); s != last {
			s.work(&buf)
			last = s
			spins, idle = 0, time.Now()
			continue
		}
		if spins%64 != 0 || time.Since(idle) < teamSpin {
			continue
		}
		// Sleep until run or close wakes us; a step published between
		// the check above and parked.Add is seen by the check below.
		t.parked.Add(1)
		if t.cur.Load() == last && !t.quit.Load() {
			<-t.wake
		}
		t.parked.Add(-1)
		idle = time.Now()
	}
}

// work claims and runs items of s until none is left.
func (s *teamStep) work(buf *[]float32) {
	for {
		i := int(s.next.Add(1) - 1)
		if i >= s.n {
			return
		}
		s.do(i, buf)
		s.done.Add(1)
	}
}

// each runs do for items 0..n-1 on the team and returns when all are
// done.
func (t *team) each(n int, do func(i int, buf *[]float32)) {
	s := &teamStep{n: n, do: do}
	t.cur.Store(s)
	for range t.parked.Load() {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	s.work(&t.buf)
	for s.done.Load() < int64(n) {
	}
}

// close stops the helpers and waits for them.
func (t *team) close() {
	t.quit.Store(true)
	close(t.wake)
	t.wg.Wait()
}

// pass is the scratch and the team of one embedBatch call.
type pass struct {
	ar *arena
	tm *team // nil when the caller works alone
}

// each runs do for items 0..n-1, on the team if there is one.
func (p *pass) each(n int, do func(i int, buf *[]float32)) {
	if p.tm == nil {
		var buf []float32
		for i := range n {
			do(i, &buf)
		}
		return
	}
	p.tm.each(n, do)
}

// rowChunk is the rows per item of the row-wise steps.
const rowChunk = 4

// rows runs do on chunks [r0, r1) of n rows.
func (p *pass) rows(n int, do func(r0, r1 int)) {
	if p.tm == nil {
		do(0, n)
		return
	}
	p.tm.each((n+rowChunk-1)/rowChunk, func(i int, _ *[]float32) {
		do(i*rowChunk, min((i+1)*rowChunk, n))
	})
}

// matmul sets dst to x·W + b, as the package's matmul does; with add, to
// x·W + b + add (add may be dst itself); with relu, to max(x·W + b, 0). On
// a team, each item is a block of teamCols output columns, computed into
// the scratch of whoever runs it and then stored.
func (p *pass) matmul(dst, x []float32, n int, l *linear, add []float32, relu bool) {
	if p.tm == nil || l.out <= teamCols || n == 0 {
		y := dst
		if add != nil {
			y = p.ar.takeDirty(n * l.out)
		}
		matmul(y, x, n, l)
		switch {
		case add != nil:
			for i, v := range y {
				dst[i] = v + add[i]
			}
		case relu:
			for i, v := range y[:n*l.out] {
				y[i] = max(v, 0)
			}
		}
		return
	}
	in, out := l.in, l.out
	blocks := (out + teamCols - 1) / teamCols
	p.tm.each(blocks, func(i int, buf *[]float32) {
		j0, j1 := i*teamCols, min((i+1)*teamCols, out)
		w := j1 - j0
		sub := linear{in: in, out: w, b: l.b[j0:j1]}
		if l.q != nil {
			sub.q, sub.scale = l.q[j0*in:j1*in], l.scale[j0:j1]
		} else {
			sub.wt = l.wt[j0*in : j1*in]
		}
		if cap(*buf) < n*w {
			*buf = make([]float32, n*w)
		}
		y := (*buf)[:n*w]
		matmul(y, x, n, &sub)
		for r := range n {
			d, s := dst[r*out+j0:r*out+j1], y[r*w:(r+1)*w]
			switch {
			case add != nil:
				for k, v := range add[r*out+j0 : r*out+j1] {
					d[k] = s[k] + v
				}
			case relu:
				for k, v := range s {
					d[k] = max(v, 0)
				}
			default:
				copy(d, s)
			}
		}
	})
}
