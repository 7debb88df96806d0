package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Committer commits the operations submitted by many callers in one
// nftables transaction per pass (group commit): what accumulates while one
// pass runs, or until the pass interval is up, goes into the next. Each
// Submit's operations go into the same transaction, in order, so an
// announcement's evicted holes are deleted in the transaction that opens
// its new one. Within a pass, an element added and deleted again that was
// not in the kernel before (the Manager's ledger) is not sent at all.
// Submit and Hurry are safe for concurrent use; Run is the one goroutine
// that commits.
type Committer struct {
	m        *Manager
	wake     chan struct{}
	interval time.Duration

	passes, sent, netted atomic.Uint64
	rejected, retries    atomic.Uint64
	planner              planner // Run's
	log                  *slog.Logger
	rejectLog            rejectLog // Run's

	mu      sync.Mutex
	pending []request
	hurry   bool // commit at once, without waiting for the interval
	parked  bool // Run waits for a poke (or its timer)
	armed   bool // ... and its timer will start a pass for what is pending
	stopped bool
}

// PassInterval is the least time from the start of one pass to the start
// of the next, unless something waits for the commit (Committer.Hurry): a
// storm's announcements then share a transaction, and an announcement's
// hole evicted by the next one of its session within the interval is never
// sent. An announcement's packet does not wait for its hole (the engine's
// guard); what may wait is its peer's first SYN, which hurries the commit.
const PassInterval = time.Millisecond

// Passes returns how many passes committed something.
func (c *Committer) Passes() uint64 { return c.passes.Load() }

// Rejections returns how many passes the kernel rejected whole (their one
// transaction failed, so they were committed again by halves) and how many
// transactions those retries took.
func (c *Committer) Rejections() (passes, retries uint64) { return c.rejected.Load(), c.retries.Load() }

// RejectLogEvery is the least time between two log lines of passes the
// kernel rejected whole. The first is logged at once: it names the first
// error, which the retries may hide (they fail only the request at fault).
const RejectLogEvery = 10 * time.Second

// rejectLog is what Run remembers of its last log line of a rejected pass.
type rejectLog struct {
	every    time.Duration // RejectLogEvery; tests change it
	last     time.Time     // zero: none logged yet
	unlogged uint64        // rejected passes since, not logged
}

// Elements returns how many element adds and deletes the passes sent, and
// how many they did not send because they cancelled out within a pass (an
// element added and deleted again that was not in the kernel before, or a
// delete of an element that is surely not there).
func (c *Committer) Elements() (sent, netted uint64) { return c.sent.Load(), c.netted.Load() }

type request struct {
	ops  []Op
	done func(Result)
}

// Committer returns a committer of m's holes and held flows. Run it.
// It logs nothing until SetLogger.
func (m *Manager) Committer() *Committer {
	return &Committer{m: m, wake: make(chan struct{}, 1), interval: PassInterval,
		log: slog.New(slog.DiscardHandler), rejectLog: rejectLog{every: RejectLogEvery}}
}

// SetLogger sets where a pass the kernel rejected whole is logged (at warn,
// at most one line per RejectLogEvery). Call it before Run.
func (c *Committer) SetLogger(l *slog.Logger) {
	if l != nil {
		c.log = l
	}
}

// Submit queues ops for the next pass; done is called with their result
// from Run's goroutine once they are committed (or not). It returns
// ErrClosed, and does not call done, once Run has stopped. The pass starts
// at most PassInterval after the previous one started; call Hurry when
// something waits for it.
func (c *Committer) Submit(done func(Result), ops ...Op) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return ErrClosed
	}
	c.pending = append(c.pending, request{ops: slices.Clone(ops), done: done})
	// A running pass looks for more when it is done, an armed timer
	// starts the next: only a committer idle without one needs waking.
	// (In a storm most Submits find it armed: no wake-up each.)
	poke := c.parked && !c.armed
	c.mu.Unlock()
	if poke {
		c.poke()
	}
	return nil
}

// Hurry makes the next pass start as soon as the running one (if any) is
// done, without waiting for the pass interval: a packet waits for what was
// submitted (a guarded SYN for its hole, a first resize for its hold).
func (c *Committer) Hurry() {
	c.mu.Lock()
	c.hurry = true
	poke := c.parked
	c.mu.Unlock()
	if poke {
		c.poke()
	}
}

func (c *Committer) poke() {
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is due already
	}
}

// Run commits until ctx is cancelled; then it commits what is pending in
// one last pass and refuses further Submits (ErrClosed).
func (c *Committer) Run(ctx context.Context) error {
	var (
		batch []request
		last  time.Time // start of the last pass
		timer *time.Timer
		tick  <-chan time.Time // timer's channel while it is set
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		stop := ctx.Err() != nil
		now := time.Now()
		c.mu.Lock()
		if !stop && (len(c.pending) == 0 || (!c.hurry && now.Sub(last) < c.interval)) {
			// Nothing due: wait for a poke, or for the end of the
			// interval when something is pending.
			c.parked, c.armed = true, len(c.pending) > 0
			if c.armed && tick == nil {
				d := c.interval - now.Sub(last)
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				tick = timer.C
			}
			c.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-c.wake:
			case <-tick:
				tick = nil
			}
			c.mu.Lock()
			c.parked, c.armed = false, false
			c.mu.Unlock()
			continue
		}
		batch, c.pending = c.pending, batch[:0]
		c.stopped = stop
		c.hurry = false
		c.mu.Unlock()
		if len(batch) > 0 {
			last = now
		}
		c.commit(batch)
		clear(batch)
		if oversized(cap(batch), len(batch)) {
			batch = nil
		}
		if stop {
			return nil
		}
		// Let the callers just told their result run first: what they
		// submit next joins the next pass rather than starting a pass
		// of its own.
		runtime.Gosched()
	}
}

// prepared is one checked operation: its table family and its elements.
type prepared struct {
	kind OpKind
	o    *tableObjs
	h    Hole
	f    Flow
	key  []byte // the element's key: h.expectKey or f.holdKey
}

// commit makes one pass over reqs and calls each done.
func (c *Committer) commit(reqs []request) {
	if len(reqs) == 0 {
		return
	}
	c.passes.Add(1)
	m := c.m
	res := make([]Result, len(reqs))
	ops := make([][]prepared, len(reqs))
	for i, r := range reqs {
		ops[i], res[i] = m.prepare(r.ops)
	}
	now := time.Now()
	if s := c.settle(ops, res, 0, len(reqs)); s.err != nil {
		c.rejected.Add(1)
		c.retries.Add(s.txs - 1)
		c.logRejected(now, s, len(reqs))
	}
	m.known.prune(now)
	for i, r := range reqs {
		if r.done != nil {
			r.done(res[i])
		}
	}
}

// logRejected logs the pass s rejected whole, of n requests, unless one was
// logged less than rejectLog.every ago (then it is counted for the next
// line).
func (c *Committer) logRejected(now time.Time, s settled, n int) {
	l := &c.rejectLog
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.unlogged++
		return
	}
	c.log.LogAttrs(context.Background(), slog.LevelWarn, "nftables rejected a whole pass of hole commits; committed again by halves",
		slog.String("err", s.err.Error()), slog.Int("elements", s.elems), slog.Int("requests", n),
		slog.Uint64("retry_transactions", s.txs-1), slog.Uint64("unlogged_since_last", l.unlogged))
	l.last, l.unlogged = now, 0
}

// settled is what settle did: the error of its first transaction (nil:
// committed whole, or nothing to send), the elements that transaction
// carried, and every transaction it sent, the first and its retries.
type settled struct {
	err   error
	elems int
	txs   uint64
}

// settle commits the operations of requests lo to hi-1 (those prepare
// accepted) in one transaction. When the kernel rejects it (a delete of an
// element already used or expired, ENOENT; an add it refuses), it settles
// each half again, in order, down to single requests: k failing requests
// among n cost about 2k·log2(n) transactions, not n (each rejected one
// costs an RCU grace period, ~15 ms: callers say Hole.Used when they
// know). A single request's deletes that may find nothing go one by one,
// ENOENT ignored; its adds (with the deletes that follow them, which cannot
// miss) in one transaction, whose failure refuses the request alone.
func (c *Committer) settle(ops [][]prepared, res []Result, lo, hi int) settled {
	m := c.m
	// The planner's scratch is reused by the halves: p is not used
	// after them.
	p := c.planner.plan(ops, func(i int) bool { return lo <= i && i < hi && res[i].Err == nil }, m.absentAt(time.Now()))
	out := settled{elems: p.pre.len() + p.add.len() + p.opdel.len() + p.pure.len()}
	c.sent.Add(uint64(out.elems))
	if lo == 0 && hi == len(ops) {
		c.netted.Add(uint64(p.netted))
	}
	n, err := m.flush(p.pre, p.add, p.opdel, p.pure)
	out.txs += n
	switch {
	case err == nil:
		m.record(p.pre, p.add, p.opdel, p.pure)
		return out
	case hi-lo > 1:
		out.err = err
		mid := lo + (hi-lo)/2
		out.txs += c.settle(ops, res, lo, mid).txs
		out.txs += c.settle(ops, res, mid, hi).txs
		return out
	}
	out.err = err
	out.txs += m.deleteEach(p.pre, res)
	n, err = m.flush(setElems{}, p.add, p.opdel, setElems{})
	out.txs += n
	if err != nil {
		res[lo].Err = err
	} else {
		m.record(setElems{}, p.add, p.opdel, setElems{})
	}
	out.txs += m.deleteEach(p.pure, res)
	return out
}

// prepare checks ops; res.Err is set when an add cannot be made.
func (m *Manager) prepare(ops []Op) ([]prepared, Result) {
	var res Result
	out := make([]prepared, 0, len(ops))
	for _, op := range ops {
		p := prepared{kind: op.Kind}
		var err error
		switch op.Kind {
		case OpOpen, OpClose:
			if p.h, p.o, err = m.target(op.Hole); err == nil {
				p.key = p.h.expectKey()
			}
		case OpHold, OpRelease:
			if p.f, err = op.Flow.normalize(); err == nil {
				p.o, err = m.objsFor(Hole{Addr: p.f.Src.Addr()})
				p.key = p.f.holdKey()
			}
		default:
			err = fmt.Errorf("%w: operation %d", ErrInvalidHole, op.Kind)
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", op.Kind, err)
			if op.Kind.adds() {
				res.Err = errors.Join(res.Err, err)
			} else {
				res.CloseErr = errors.Join(res.CloseErr, err)
			}
			continue
		}
		out = append(out, p)
	}
	return out, res
}

// setElems are elements of several sets, each set's in order.
type setElems struct {
	sets  []*nftables.Set
	elems map[*nftables.Set][]nftables.SetElement
	reqs  map[*nftables.Set][]int // the request each element is for
}

func (e *setElems) put(s *nftables.Set, el nftables.SetElement, req int) {
	if e.elems == nil {
		e.elems, e.reqs = map[*nftables.Set][]nftables.SetElement{}, map[*nftables.Set][]int{}
	}
	if _, ok := e.elems[s]; !ok {
		e.sets = append(e.sets, s)
	}
	e.elems[s] = append(e.elems[s], el)
	e.reqs[s] = append(e.reqs[s], req)
}

// len is the number of elements.
func (e *setElems) len() int {
	n := 0
	for _, s := range e.sets {
		n += len(e.elems[s])
	}
	return n
}

// passPlan is a pass's operations netted per element: what one
// announcement opens and the next one of its session evicts in the same
// pass is added and deleted again, or, when the element was not in the
// kernel before the pass, not sent at all; an element closed and then
// opened again is deleted first (if it may be there).
type passPlan struct {
	pre    setElems // deletes of elements opened again afterwards
	add    setElems // adds
	opdel  setElems // deletes of elements added in this pass (cannot miss)
	pure   setElems // deletes of elements not added in this pass (may miss)
	netted int      // element operations not sent: they cancel out
}

// absentFunc reports whether the element under key of set s (of o) is
// surely not in the kernel before the pass.
type absentFunc func(o *tableObjs, s *nftables.Set, key []byte) bool

// planKey is an element, its set and key, as a map key that needs no
// allocation.
type planKey struct {
	s *nftables.Set
	n uint8
	k [2*16 + 2*regSize]byte // the longest key: a held IPv6 flow
}

// planAction is one operation on an element.
type planAction struct {
	del bool
	p   *prepared
	req int
}

// planSeq is what a pass does to one element, in order.
type planSeq struct {
	s           *nftables.Set
	first, last planAction
	add         planAction // the last add, if any (p not nil)
	n           int        // operations on the element
}

// planner keeps plan's scratch between passes: one map and one slice,
// cleared, not made again.
type planner struct {
	byKey map[planKey]int
	seqs  []planSeq
	// used is how many keys the last plan had: after a burst the scratch
	// is made again, small (shrinkScratch).
	used int
}

// shrinkScratch is the fewest entries scratch kept between passes is made
// again from, once a pass uses under a quarter of it: the committer's
// memory follows the passes of now, not its largest ever (a pass that
// waited seconds for the CPU in a storm holds tens of thousands).
const shrinkScratch = 1024

// oversized reports whether scratch of capacity c, of which n is used, is
// worth making again.
func oversized(c, n int) bool { return c >= shrinkScratch && n < c/4 }

// plan nets the operations of the live requests, element by element.
// absent may be nil: then every element may be in the kernel.
func plan(ops [][]prepared, live func(int) bool, absent absentFunc) passPlan {
	var pl planner
	return pl.plan(ops, live, absent)
}

func (pl *planner) plan(ops [][]prepared, live func(int) bool, absent absentFunc) passPlan {
	if pl.byKey == nil || oversized(cap(pl.seqs), pl.used) {
		pl.byKey, pl.seqs = map[planKey]int{}, nil
	}
	clear(pl.byKey)
	clear(pl.seqs)
	pl.seqs = pl.seqs[:0]
	defer func() { pl.used = len(pl.seqs) }()
	act := func(s *nftables.Set, a planAction) {
		k := planKey{s: s, n: uint8(len(a.p.key))}
		copy(k.k[:], a.p.key)
		i, ok := pl.byKey[k]
		if !ok {
			i = len(pl.seqs)
			pl.byKey[k] = i
			pl.seqs = append(pl.seqs, planSeq{s: s, first: a})
		}
		q := &pl.seqs[i]
		q.last = a
		q.n++
		if !a.del {
			q.add = a
		}
	}
	for i := range ops {
		if !live(i) {
			continue
		}
		for j := range ops[i] {
			p := &ops[i][j]
			o := p.o
			switch p.kind {
			case OpOpen:
				if p.h.To.IsValid() {
					act(o.xlate, planAction{p: p, req: i})
				}
				act(o.expect, planAction{p: p, req: i})
			case OpClose:
				if !p.h.Used {
					act(o.expect, planAction{del: true, p: p, req: i})
				}
				if p.h.To.IsValid() {
					act(o.xlate, planAction{del: true, p: p, req: i})
				}
			case OpHold:
				act(o.hold, planAction{p: p, req: i})
			case OpRelease:
				act(o.hold, planAction{del: true, p: p, req: i})
			}
		}
	}
	var out passPlan
	for i := range pl.seqs {
		q := &pl.seqs[i]
		key := nftables.SetElement{Key: q.last.p.key}
		gone := absent != nil && absent(q.last.p.o, q.s, key.Key)
		switch {
		case !q.last.del:
			if q.first.del && !gone {
				out.pre.put(q.s, key, q.first.req)
			}
			out.add.put(q.s, q.add.element(q.s), q.add.req)
			out.netted += q.n - 1
			if q.first.del && !gone {
				out.netted--
			}
		case gone:
			// Not in the kernel before, not in it after.
			out.netted += q.n
		case q.add.p != nil:
			out.add.put(q.s, q.add.element(q.s), q.add.req)
			out.opdel.put(q.s, key, q.last.req)
			out.netted += q.n - 2
		default:
			out.pure.put(q.s, key, q.last.req)
			out.netted += q.n - 1
		}
	}
	return out
}

// element is the element add a adds to s (a hole's expect or xlate
// element, or a held flow), made only for what is sent.
func (a planAction) element(s *nftables.Set) nftables.SetElement {
	p := a.p
	el := nftables.SetElement{Key: p.key}
	switch s {
	case p.o.expect:
		el.Timeout = p.h.timeoutDuration()
		if p.h.Owner.Src.IsValid() {
			el.Comment = p.h.Owner.String()
		}
	case p.o.xlate:
		el.Timeout = p.h.timeoutDuration()
		el.Val = p.h.xlateValue()
	}
	return el
}

// flush commits pre's deletes, add's adds, opdel's and pure's deletes, in
// that order, in one transaction; it returns how many it sent (0 when there
// is nothing to send, else 1).
func (m *Manager) flush(pre, add, opdel, pure setElems) (uint64, error) {
	n := 0
	for _, e := range []setElems{pre, add, opdel, pure} {
		for _, s := range e.sets {
			n += len(e.elems[s])
		}
	}
	if n == 0 {
		return 0, nil
	}
	m.txs.Add(1)
	return 1, m.locked(func() error {
		for i, e := range []setElems{pre, add, opdel, pure} {
			for _, s := range e.sets {
				var err error
				if i == 1 {
					err = m.elems.add(s, e.elems[s])
				} else {
					err = m.elems.del(s, e.elems[s])
				}
				if err != nil {
					m.elems.discard()
					return fmt.Errorf("commit %d elements: %w", n, err)
				}
			}
		}
		if err := m.elems.commit(); err != nil {
			return fmt.Errorf("commit %d elements: %w", n, hint(err))
		}
		return nil
	})
}

// deleteEach deletes the elements of e, each in its own transaction,
// ENOENT ignored; other failures go to their request's CloseErr. It returns
// how many transactions it sent.
func (m *Manager) deleteEach(e setElems, res []Result) (txs uint64) {
	for _, s := range e.sets {
		elems := e.elems[s]
		for j := range elems {
			m.txs.Add(1)
			txs++
			err := m.locked(func() error {
				if err := m.elems.del(s, elems[j:j+1]); err != nil {
					m.elems.discard()
					return err
				}
				return m.elems.commit()
			})
			if err != nil && !errors.Is(err, unix.ENOENT) {
				i := e.reqs[s][j]
				res[i].CloseErr = errors.Join(res[i].CloseErr, fmt.Errorf("delete from %s: %w", s.Name, hint(err)))
				continue
			}
			m.recordDel(s, elems[j].Key)
		}
	}
	return txs
}

// ledgerOf finds the ledger's family and set of s; ok is false for a set
// the ledger does not keep (hold).
func (m *Manager) ledgerOf(s *nftables.Set) (fam uint8, ls ledgerSet, ok bool) {
	for _, o := range m.tables {
		switch s {
		case o.expect:
			return o.fam.index(), ledgerExpect, true
		case o.xlate:
			return o.fam.index(), ledgerXlate, true
		}
	}
	return 0, 0, false
}

// absentAt is plan's view of the ledger at now.
func (m *Manager) absentAt(now time.Time) absentFunc {
	return func(o *tableObjs, s *nftables.Set, key []byte) bool {
		fam, ls, ok := m.ledgerOf(s)
		return ok && m.known.absent(fam, ls, key, now)
	}
}

// record notes in the ledger what a committed transaction of pre's
// deletes, add's adds, opdel's and pure's deletes, in that order, did.
func (m *Manager) record(pre, add, opdel, pure setElems) {
	now := time.Now()
	for _, s := range pre.sets {
		for _, el := range pre.elems[s] {
			m.recordDel(s, el.Key)
		}
	}
	for _, s := range add.sets {
		fam, ls, ok := m.ledgerOf(s)
		if !ok {
			continue
		}
		for _, el := range add.elems[s] {
			m.known.added(fam, ls, el.Key, now, el.Timeout)
		}
	}
	for _, e := range []setElems{opdel, pure} {
		for _, s := range e.sets {
			for _, el := range e.elems[s] {
				m.recordDel(s, el.Key)
			}
		}
	}
}

// recordDel notes in the ledger that the element under key of s is gone.
func (m *Manager) recordDel(s *nftables.Set, key []byte) {
	if fam, ls, ok := m.ledgerOf(s); ok {
		m.known.deleted(fam, ls, key)
	}
}
