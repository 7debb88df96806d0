package rules

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Committer commits the operations submitted by many callers in one
// nftables transaction per pass (group commit): what accumulates while one
// pass runs goes into the next. Each Submit's operations go into the same
// transaction, in order, so an announcement's evicted holes are deleted in
// the transaction that opens its new one. Submit is safe for concurrent
// use; Run is the one goroutine that commits.
type Committer struct {
	m    *Manager
	wake chan struct{}

	passes atomic.Uint64

	mu      sync.Mutex
	pending []request
	stopped bool
}

// Passes returns how many passes committed something.
func (c *Committer) Passes() uint64 { return c.passes.Load() }

type request struct {
	ops  []Op
	done func(Result)
}

// Committer returns a committer of m's holes and held flows. Run it.
func (m *Manager) Committer() *Committer {
	return &Committer{m: m, wake: make(chan struct{}, 1)}
}

// Submit queues ops for the next pass; done is called with their result
// from Run's goroutine once they are committed (or not). It returns
// ErrClosed, and does not call done, once Run has stopped.
func (c *Committer) Submit(done func(Result), ops ...Op) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return ErrClosed
	}
	c.pending = append(c.pending, request{ops: slices.Clone(ops), done: done})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // a pass is due already
	}
	return nil
}

// Run commits until ctx is cancelled; then it commits what is pending in
// one last pass and refuses further Submits (ErrClosed).
func (c *Committer) Run(ctx context.Context) error {
	var batch []request
	for {
		stop := false
		select {
		case <-ctx.Done():
			stop = true
		case <-c.wake:
		}
		c.mu.Lock()
		batch, c.pending = c.pending, batch[:0]
		c.stopped = stop
		c.mu.Unlock()
		c.commit(batch)
		clear(batch)
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
}

// commit makes one pass over reqs and calls each done.
func (c *Committer) commit(reqs []request) {
	if len(reqs) == 0 {
		return
	}
	c.passes.Add(1)
	res := make([]Result, len(reqs))
	ops := make([][]prepared, len(reqs))
	for i, r := range reqs {
		ops[i], res[i] = c.m.prepare(r.ops)
	}
	live := func(i int) bool { return res[i].Err == nil }
	p := plan(ops, live)
	if err := c.m.flush(p.pre, p.add, p.opdel, p.pure); err != nil {
		// A delete of an element already used or expired (ENOENT), or
		// another failure, rejected the whole transaction (which costs
		// an RCU grace period, ~15 ms: callers say Hole.Used when they
		// know). The deletes that may find nothing one by one, ENOENT
		// ignored; the adds (with the deletes that follow them, which
		// cannot miss) in one transaction, or, if that fails, each
		// Submit's in its own so only the culprit is refused.
		c.m.deleteEach(p.pre, res)
		if err := c.m.flush(setElems{}, p.add, p.opdel, setElems{}); err != nil {
			for i := range reqs {
				switch {
				case !live(i):
				case len(reqs) == 1:
					res[i].Err = err
				default:
					one := plan(ops[i:i+1], func(int) bool { return true })
					res[i].Err = c.m.flush(setElems{}, one.add, one.opdel, setElems{})
				}
			}
		}
		c.m.deleteEach(p.pure, res)
	}
	for i, r := range reqs {
		if r.done != nil {
			r.done(res[i])
		}
	}
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
			p.h, p.o, err = m.target(op.Hole)
		case OpHold, OpRelease:
			if p.f, err = op.Flow.normalize(); err == nil {
				p.o, err = m.objsFor(Hole{Addr: p.f.Src.Addr()})
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

// passPlan is a pass's operations netted per element: what one
// announcement opens and the next one of its session evicts in the same
// pass is added and deleted again; an element closed and then opened again
// is deleted first.
type passPlan struct {
	pre   setElems // deletes of elements opened again afterwards
	add   setElems // adds
	opdel setElems // deletes of elements added in this pass (cannot miss)
	pure  setElems // deletes of elements not added in this pass (may miss)
}

// plan nets the operations of the live requests, element by element.
func plan(ops [][]prepared, live func(int) bool) passPlan {
	type action struct {
		del bool
		el  nftables.SetElement
		req int
	}
	type seq struct {
		s           *nftables.Set
		first, last action
		add         *action // the last add
	}
	byKey := map[string]*seq{}
	var order []*seq
	act := func(s *nftables.Set, a action) {
		k := s.Name + "\x00" + fmt.Sprint(s.Table.Family) + "\x00" + string(a.el.Key)
		q, ok := byKey[k]
		if !ok {
			q = &seq{s: s, first: a}
			byKey[k] = q
			order = append(order, q)
		}
		q.last = a
		if !a.del {
			q.add = &a
		}
	}
	for i, ps := range ops {
		if !live(i) {
			continue
		}
		for _, p := range ps {
			o := p.o
			switch p.kind {
			case OpOpen:
				t := p.h.timeoutDuration()
				if p.h.To.IsValid() {
					act(o.xlate, action{el: nftables.SetElement{Key: p.h.expectKey(), Val: p.h.xlateValue(), Timeout: t}, req: i})
				}
				var owner string
				if p.h.Owner.Src.IsValid() {
					owner = p.h.Owner.String()
				}
				act(o.expect, action{el: nftables.SetElement{Key: p.h.expectKey(), Timeout: t, Comment: owner}, req: i})
			case OpClose:
				if !p.h.Used {
					act(o.expect, action{del: true, el: nftables.SetElement{Key: p.h.expectKey()}, req: i})
				}
				if p.h.To.IsValid() {
					act(o.xlate, action{del: true, el: nftables.SetElement{Key: p.h.expectKey()}, req: i})
				}
			case OpHold:
				act(o.hold, action{el: nftables.SetElement{Key: p.f.holdKey()}, req: i})
			case OpRelease:
				act(o.hold, action{del: true, el: nftables.SetElement{Key: p.f.holdKey()}, req: i})
			}
		}
	}
	var pl passPlan
	for _, q := range order {
		key := nftables.SetElement{Key: q.last.el.Key}
		switch {
		case !q.last.del:
			if q.first.del {
				pl.pre.put(q.s, key, q.first.req)
			}
			pl.add.put(q.s, q.add.el, q.add.req)
		case q.add != nil:
			pl.add.put(q.s, q.add.el, q.add.req)
			pl.opdel.put(q.s, key, q.last.req)
		default:
			pl.pure.put(q.s, key, q.last.req)
		}
	}
	return pl
}

// flush commits pre's deletes, add's adds, opdel's and pure's deletes, in
// that order, in one transaction.
func (m *Manager) flush(pre, add, opdel, pure setElems) error {
	n := 0
	for _, e := range []setElems{pre, add, opdel, pure} {
		for _, s := range e.sets {
			n += len(e.elems[s])
		}
	}
	if n == 0 {
		return nil
	}
	return m.locked(func() error {
		for i, e := range []setElems{pre, add, opdel, pure} {
			for _, s := range e.sets {
				var err error
				if i == 1 {
					err = m.conn.SetAddElements(s, e.elems[s])
				} else {
					err = m.conn.SetDeleteElements(s, e.elems[s])
				}
				if err != nil {
					return fmt.Errorf("commit %d elements: %w", n, err)
				}
			}
		}
		if err := m.conn.Flush(); err != nil {
			return fmt.Errorf("commit %d elements: %w", n, hint(err))
		}
		return nil
	})
}

// deleteEach deletes the elements of e, each in its own transaction,
// ENOENT ignored; other failures go to their request's CloseErr.
func (m *Manager) deleteEach(e setElems, res []Result) {
	for _, s := range e.sets {
		for j, el := range e.elems[s] {
			err := m.locked(func() error {
				if err := m.conn.SetDeleteElements(s, []nftables.SetElement{el}); err != nil {
					return err
				}
				return m.conn.Flush()
			})
			if err != nil && !errors.Is(err, unix.ENOENT) {
				i := e.reqs[s][j]
				res[i].CloseErr = errors.Join(res[i].CloseErr, fmt.Errorf("delete from %s: %w", s.Name, hint(err)))
			}
		}
	}
}
