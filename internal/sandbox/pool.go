package sandbox

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-conductor/conductor/internal/config"
)

// PoolOptions configure the warm pool: Deno processes started ahead of
// their run, the harness loaded and waiting for its program. A process is
// bound to one profile (conversation directory, permission flags, memory
// flag, packages on or off) because Deno fixes them at start; it runs
// exactly one program and is then killed, so no state crosses runs.
//
// Spares are kept for the conversations used recently (the hot set): after
// a conversation's directory is prepared (warming the default profile) and
// whenever a run takes a process, a spare for the same profile is started
// in the background.
type PoolOptions struct {
	// Max is the most pooled processes at once, idle or starting. 0 turns
	// the pool off: every run starts its own process.
	Max int
	// Min is how many of the most recently used conversations keep their
	// spare past IdleTimeout.
	Min int
	// PerConversation caps the spares of one profile; the pool keeps as
	// many as the profile had concurrent runs, at least one.
	PerConversation int
	// IdleTimeout ends the spares of a profile unused for that long, giving
	// their memory back. 0 means 5 minutes.
	IdleTimeout time.Duration
	// Spawns bounds how many pooled processes boot at once. 0 means 2.
	Spawns int
	// Warm is the profile PrepareDir warms a new conversation with, as the
	// conductor's Specs will carry it; nil warms nothing before the first run.
	Warm *Profile
}

// Profile is what fixes a process at start, as a Spec carries it.
type Profile struct {
	// Permissions are the grants before narrowing to the conversation.
	Permissions config.Permissions
	// MemoryMB 0 means 256, as in Spec.
	MemoryMB int
	// Packages says whether packages may be imported (Spec.Importer.Package
	// is set).
	Packages bool
}

// Default pool figures. An idle Deno 2.9 process with the harness loaded
// measured 32 MB RSS, of which 23.5 MB are file pages of the Deno binary
// shared by every process and 8.8 MB private: four spares cost about 35 MB
// of private memory.
const (
	DefaultPoolMax             = 4
	DefaultPoolMin             = 1
	DefaultPoolPerConversation = 2
	DefaultPoolIdleTimeout     = 5 * time.Minute
)

// pool holds the warm processes of one Runner.
type pool struct {
	r     *Runner
	opts  PoolOptions
	log   *slog.Logger
	sem   chan struct{}
	stop  chan struct{}
	spawn sync.WaitGroup // spawner goroutines and the janitor
	live  sync.WaitGroup // processes the pool owns, until they exited

	hits, misses, started, crashed atomic.Int64

	mu     sync.Mutex
	slots  map[string]*slot
	n      int // processes idle, starting or queued to start
	closed bool
}

// slot is the pool's state for one profile.
type slot struct {
	key     string
	dir     string
	args    []string
	mem     int
	procs   []*proc // started, not taken; oldest first
	queued  int     // spawns not yet in procs (waiting or starting), cancelled ones excluded
	cancel  int     // spawns evicted before they reached procs
	active  int     // runs of this profile in progress
	want    int
	used    time.Time
	crashes int
}

func newPool(r *Runner, opts PoolOptions) *pool {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultPoolIdleTimeout
	}
	if opts.Spawns <= 0 {
		opts.Spawns = 2
	}
	if opts.PerConversation <= 0 {
		opts.PerConversation = 1
	}
	p := &pool{r: r, opts: opts, log: r.log, sem: make(chan struct{}, opts.Spawns),
		stop: make(chan struct{}), slots: map[string]*slot{}}
	p.spawn.Add(1)
	go p.janitor()
	return p
}

func profileKey(dir string, args []string) string {
	return dir + "\x00" + strings.Join(args, "\x00")
}

// take hands out a process of the profile, ready or still booting, or nil,
// and records the demand; release, at the end of the run, starts the
// replacement (booting one while the run executes would take the CPU the
// run needs). Spares of other profiles for the same directory are retired:
// the grants or limits changed, and they must never run a program.
func (p *pool) take(dir string, args []string, mem int) *proc {
	key := profileKey(dir, args)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	for k, s := range p.slots {
		if s.dir == dir && k != key {
			p.retire(s)
		}
	}
	s := p.slots[key]
	if s == nil {
		s = &slot{key: key, dir: dir, args: args, mem: mem}
		p.slots[key] = s
	}
	s.used = time.Now()
	s.active++
	s.want = min(max(s.active, s.want, 1), p.opts.PerConversation)
	var got *proc
	idx := -1
	for i, pr := range s.procs { // a ready process first
		if isClosed(pr.ready) && pr.ok && !isClosed(pr.exited) {
			idx = i
			break
		}
	}
	if idx < 0 {
		for i, pr := range s.procs { // else one still booting
			if !isClosed(pr.ready) && !isClosed(pr.exited) {
				idx = i
				break
			}
		}
	}
	if idx >= 0 {
		got = s.procs[idx]
		s.procs = slices.Delete(s.procs, idx, idx+1)
		p.n--
		if got.state.CompareAndSwap(inPool, owned) {
			p.live.Done()
			s.crashes = 0
			p.hits.Add(1)
		} else {
			got = nil // it exited just now; gone() finds it no more
		}
	}
	if got == nil {
		p.misses.Add(1)
	}
	if got != nil && !isClosed(got.ready) || got == nil && s.queued > 0 {
		// Runs come faster than one spare boots: keep more.
		s.want = min(s.want+1, p.opts.PerConversation)
	}
	return got
}

// release records the end of a run of the profile.
func (p *pool) release(dir string, args []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.slots[profileKey(dir, args)]; s != nil {
		s.active--
		s.used = time.Now()
		if !p.closed {
			p.fill(s)
		}
	}
}

// warm starts spares for a profile without a run (a new conversation).
func (p *pool) warm(dir string, args []string, mem int) {
	key := profileKey(dir, args)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	s := p.slots[key]
	if s == nil {
		s = &slot{key: key, dir: dir, args: args, mem: mem, want: 1}
		p.slots[key] = s
	}
	s.used = time.Now()
	p.fill(s)
}

// fill starts spares until s has what it wants, within the ceiling; at the
// ceiling it ends the spare of the least recently used other profile.
// Called with mu held.
func (p *pool) fill(s *slot) {
	for len(s.procs)+s.queued < s.want {
		if p.n >= p.opts.Max && !p.evictFor(s) {
			return
		}
		s.queued++
		p.n++
		p.spawn.Add(1)
		go p.spawnOne(s)
	}
}

// evictFor ends one spare (or a start not begun) of the least recently
// used profile other than s, if it was used before s. Called with mu held.
func (p *pool) evictFor(s *slot) bool {
	var lru *slot
	for _, o := range p.slots {
		if o != s && len(o.procs)+o.queued > 0 && (lru == nil || o.used.Before(lru.used)) {
			lru = o
		}
	}
	if lru == nil || !lru.used.Before(s.used) {
		return false
	}
	p.n--
	if lru.queued > 0 { // the spawner drops it when it looks next
		lru.queued--
		lru.cancel++
		return true
	}
	pr := lru.procs[0]
	lru.procs = lru.procs[1:]
	pr.kill()
	p.dropIfCold(lru)
	return true
}

// retire ends every spare of s and forgets it. Called with mu held.
func (p *pool) retire(s *slot) {
	for _, pr := range s.procs {
		pr.kill()
	}
	p.n -= len(s.procs)
	s.procs = nil
	s.want = 0
	delete(p.slots, s.key)
}

func (p *pool) dropIfCold(s *slot) {
	if len(s.procs) == 0 && s.queued == 0 && s.cancel == 0 && s.active == 0 {
		delete(p.slots, s.key)
	}
}

// spawnOne starts one spare for s when its turn comes, and holds the turn
// until the process is ready, so at most Spawns processes boot at once.
func (p *pool) spawnOne(s *slot) {
	defer p.spawn.Done()
	// dropped reports (with mu held) whether this spawn was evicted or is no
	// longer wanted, and uncounts it.
	dropped := func() bool {
		if s.cancel > 0 { // evicted: already uncounted
			s.cancel--
			return true
		}
		if p.closed || p.slots[s.key] != s || len(s.procs)+s.queued > s.want {
			s.queued--
			p.n--
			return true
		}
		return false
	}
	select {
	case p.sem <- struct{}{}:
	case <-p.stop:
		p.mu.Lock()
		if s.cancel > 0 {
			s.cancel--
		} else {
			s.queued--
			p.n--
		}
		p.mu.Unlock()
		return
	}
	defer func() { <-p.sem }()
	p.mu.Lock()
	if dropped() {
		p.mu.Unlock()
		return
	}
	p.live.Add(1)
	p.mu.Unlock()
	pr, err := p.r.start(s.key, s.dir, p.r.withModules(s.dir, s.args), s.mem, true)
	p.mu.Lock()
	if err != nil {
		if s.cancel > 0 {
			s.cancel--
		} else {
			s.queued--
			p.n--
		}
		p.live.Done()
		p.mu.Unlock()
		p.log.Warn("sandbox pool: start", slog.String("err", err.Error()))
		return
	}
	p.started.Add(1)
	// Evicted, closed or retired meanwhile, or dead already: kill it
	// (gone() uncounts it from live once it exited).
	if dropped() {
		p.mu.Unlock()
		pr.kill()
		return
	}
	if isClosed(pr.exited) {
		s.queued--
		p.n--
		p.mu.Unlock()
		pr.kill()
		return
	}
	s.queued--
	s.procs = append(s.procs, pr)
	p.mu.Unlock()
	select {
	case <-pr.ready:
	case <-p.stop:
	}
}

// gone learns that a process exited. A spare that died while idle is
// removed and, if it had been ready, replaced (a few times in a row at
// most: a profile whose processes keep dying is not restarted forever).
func (p *pool) gone(pr *proc) {
	if !pr.state.CompareAndSwap(inPool, exitedInPool) {
		return // a run owns it
	}
	defer p.live.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.slots[pr.key]
	if s == nil {
		return
	}
	i := slices.Index(s.procs, pr)
	if i < 0 {
		return
	}
	s.procs = slices.Delete(s.procs, i, i+1)
	p.n--
	p.crashed.Add(1)
	wasReady := isClosed(pr.ready) && pr.ok
	go func() { <-pr.ready; pr.stdoutR.Close(); pr.stderrR.Close() }()
	s.crashes++
	if p.closed || !wasReady || s.crashes > 3 {
		p.dropIfCold(s)
		return
	}
	p.log.Info("sandbox pool: an idle process died; replacing it", slog.Int("pid", pr.pid))
	p.fill(s)
}

// janitor ends the spares of profiles unused for IdleTimeout, except those
// of the Min most recently used.
func (p *pool) janitor() {
	defer p.spawn.Done()
	every := max(p.opts.IdleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		all := make([]*slot, 0, len(p.slots))
		for _, s := range p.slots {
			all = append(all, s)
		}
		slices.SortFunc(all, func(a, b *slot) int { return b.used.Compare(a.used) })
		for i, s := range all {
			if i < p.opts.Min || s.active > 0 || time.Since(s.used) < p.opts.IdleTimeout {
				continue
			}
			p.retire(s)
		}
		p.mu.Unlock()
	}
}

// close kills every pooled process and waits for the pool's goroutines
// and for the killed processes to be reaped.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, s := range p.slots {
		p.retire(s)
	}
	close(p.stop)
	p.mu.Unlock()
	p.spawn.Wait()
	p.live.Wait()
}

// pids lists the pids of the pool's processes, idle or booting.
func (p *pool) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, s := range p.slots {
		for _, pr := range s.procs {
			out = append(out, pr.pid)
		}
	}
	return out
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// poolPids lists the pids of the warm pool's processes (none without one).
func (r *Runner) poolPids() []int {
	if r.pool == nil {
		return nil
	}
	return r.pool.pids()
}

// PoolStats are counters of the warm pool since the Runner started.
type PoolStats struct {
	// Idle counts processes started and not handed out (booting included).
	Idle int
	// Hits and Misses count runs that got a pooled process or started their
	// own; Started counts pooled processes started; Crashed counts those that
	// died while idle.
	Hits, Misses, Started, Crashed int64
}

// PoolStats reports the warm pool's figures; zero without a pool.
func (r *Runner) PoolStats() PoolStats {
	if r.pool == nil {
		return PoolStats{}
	}
	p := r.pool
	return PoolStats{Idle: len(p.pids()), Hits: p.hits.Load(), Misses: p.misses.Load(),
		Started: p.started.Load(), Crashed: p.crashed.Load()}
}
