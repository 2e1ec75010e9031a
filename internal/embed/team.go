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
// is used by one goroutine; close stops the helpers and waits for them.
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
		// Sleep until each or close wakes us; a step published between
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

// epilogue is what pass.matmul does with x·W + b besides storing it.
type epilogue struct {
	add  []float32 // added to it (may be the dst of the product)
	relu bool      // max(·, 0) instead
	// mean, zero on entry, receives the mean over each text's rows
	// (off[t]:off[t+1]) of what is stored, or would be when dst is nil.
	mean []float32
	off  []int
}

// matmul sets dst to x·W + b, as the package's matmul does, then to what
// e makes of it; dst may be nil when only e.mean is wanted. On a team,
// each item is a block of teamCols output columns, computed into the
// scratch of whoever runs it, then finished and stored.
func (p *pass) matmul(dst, x []float32, n int, l *linear, e epilogue) {
	p.products(n, product{dst, x, l, e})
}

// product is one matrix product for pass.products: dst = x·W + b, then e.
type product struct {
	dst, x []float32
	l      *linear
	e      epilogue
}

// products runs independent products of n rows as pass.matmul does, on
// a team as one step.
func (p *pass) products(n int, ps ...product) {
	if p.tm == nil || n == 0 {
		for _, pr := range ps {
			y := pr.dst
			if pr.e.add != nil || pr.dst == nil {
				y = p.ar.takeDirty(n * pr.l.out)
			}
			matmul(y, pr.x, n, pr.l)
			pr.e.finish(pr.dst, y, n, pr.l.out, 0, pr.l.out)
		}
		return
	}
	items := 0
	for _, pr := range ps {
		items += (pr.l.out + teamCols - 1) / teamCols
	}
	p.tm.each(items, func(i int, buf *[]float32) {
		k := 0
		for blocks := (ps[0].l.out + teamCols - 1) / teamCols; i >= blocks; blocks = (ps[k].l.out + teamCols - 1) / teamCols {
			i -= blocks
			k++
		}
		pr := ps[k]
		l := pr.l
		in, out := l.in, l.out
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
		matmul(y, pr.x, n, &sub)
		pr.e.finish(pr.dst, y, n, out, j0, j1)
	})
}

// finish applies e to columns j0:j1 of x·W + b, held in y (n rows of
// j1-j0 values), and stores them in dst (rows of out values) unless dst is
// nil or y itself.
func (e *epilogue) finish(dst, y []float32, n, out, j0, j1 int) {
	w := j1 - j0
	for r := range n {
		s := y[r*w : (r+1)*w]
		switch {
		case e.add != nil:
			for k, v := range e.add[r*out+j0 : r*out+j1] {
				s[k] += v
			}
		case e.relu:
			for k, v := range s {
				s[k] = max(v, 0)
			}
		}
		if dst != nil && &dst[0] != &y[0] {
			copy(dst[r*out+j0:r*out+j1], s)
		}
	}
	if e.mean == nil {
		return
	}
	for t := range len(e.off) - 1 {
		d := e.mean[t*out+j0 : t*out+j1]
		for r := e.off[t]; r < e.off[t+1]; r++ {
			for k, v := range y[r*w : (r+1)*w] {
				d[k] += v
			}
		}
		if c := e.off[t+1] - e.off[t]; c > 0 {
			div := float32(c)
			for k := range d {
				d[k] /= div
			}
		}
	}
}
