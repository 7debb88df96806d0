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
	// One transaction: deletes and adds in submission order.
	err := c.m.flushOps(ops, live, true, true)
	if err != nil {
		// A delete of an element already used or expired (ENOENT), or
		// another failure, rejected the whole transaction (which costs
		// an RCU grace period, ~15 ms: callers say Hole.Used when they
		// know). Deletes one by one, ENOENT ignored; then the adds in
		// one transaction, or, if that fails, each Submit's in its own
		// so only the culprit is refused.
		c.m.deleteEach(ops, res)
		if err := c.m.flushOps(ops, live, true, false); err != nil {
			for i := range reqs {
				switch {
				case !live(i):
				case len(reqs) == 1:
					res[i].Err = err
				default:
					res[i].Err = c.m.flushOps(ops[i:i+1], func(int) bool { return true }, true, false)
				}
			}
		}
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

// flushOps commits the operations of the live requests (adds, deletes or
// both) in one transaction: one message per set and kind, deletes first
// (an evicted hole goes before the one that replaces it; a hole closed and
// opened again in one pass stays open).
func (m *Manager) flushOps(ops [][]prepared, live func(int) bool, adds, deletes bool) error {
	type setOp struct {
		s   *nftables.Set
		del bool
	}
	var order []setOp
	elems := map[setOp][]nftables.SetElement{}
	put := func(s *nftables.Set, del bool, e nftables.SetElement) {
		k := setOp{s, del}
		if _, ok := elems[k]; !ok {
			order = append(order, k)
		}
		elems[k] = append(elems[k], e)
	}
	n := 0
	for i, ps := range ops {
		if !live(i) {
			continue
		}
		for _, p := range ps {
			if (p.kind.adds() && !adds) || (!p.kind.adds() && !deletes) {
				continue
			}
			n++
			o := p.o
			switch p.kind {
			case OpOpen:
				t := p.h.timeoutDuration()
				if p.h.To.IsValid() {
					put(o.xlate, false, nftables.SetElement{Key: p.h.expectKey(), Val: p.h.xlateValue(), Timeout: t})
				}
				var owner string
				if p.h.Owner.Src.IsValid() {
					owner = p.h.Owner.String()
				}
				put(o.expect, false, nftables.SetElement{Key: p.h.expectKey(), Timeout: t, Comment: owner})
			case OpClose:
				if !p.h.Used {
					put(o.expect, true, nftables.SetElement{Key: p.h.expectKey()})
				}
				if p.h.To.IsValid() {
					put(o.xlate, true, nftables.SetElement{Key: p.h.expectKey()})
				}
			case OpHold:
				put(o.hold, false, nftables.SetElement{Key: p.f.holdKey()})
			case OpRelease:
				put(o.hold, true, nftables.SetElement{Key: p.f.holdKey()})
			}
		}
	}
	if n == 0 {
		return nil
	}
	slices.SortStableFunc(order, func(a, b setOp) int {
		switch {
		case a.del == b.del:
			return 0
		case a.del:
			return -1
		}
		return 1
	})
	return m.locked(func() error {
		for _, k := range order {
			var err error
			if k.del {
				err = m.conn.SetDeleteElements(k.s, elems[k])
			} else {
				err = m.conn.SetAddElements(k.s, elems[k])
			}
			if err != nil {
				return fmt.Errorf("commit %d operations: %w", n, err)
			}
		}
		if err := m.conn.Flush(); err != nil {
			return fmt.Errorf("commit %d operations: %w", n, hint(err))
		}
		return nil
	})
}

// deleteEach deletes every element the deletes of ops name, each in its own
// transaction, ENOENT ignored; other failures go to the request's CloseErr.
func (m *Manager) deleteEach(ops [][]prepared, res []Result) {
	for i, ps := range ops {
		for _, p := range ps {
			if p.kind.adds() {
				continue
			}
			var sets []*nftables.Set
			var key []byte
			switch p.kind {
			case OpClose:
				key = p.h.expectKey()
				if !p.h.Used {
					sets = append(sets, p.o.expect)
				}
				if p.h.To.IsValid() {
					sets = append(sets, p.o.xlate)
				}
			case OpRelease:
				key, sets = p.f.holdKey(), []*nftables.Set{p.o.hold}
			}
			for _, s := range sets {
				err := m.locked(func() error {
					if err := m.conn.SetDeleteElements(s, []nftables.SetElement{{Key: key}}); err != nil {
						return err
					}
					return m.conn.Flush()
				})
				if err != nil && !errors.Is(err, unix.ENOENT) {
					res[i].CloseErr = errors.Join(res[i].CloseErr, fmt.Errorf("%s %s: %w", p.kind, s.Name, hint(err)))
				}
			}
		}
	}
}
