package rules

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Hold adds flows to the hold set of their family: while no daemon reads
// the queue, their packets are dropped instead of passed unadjusted. The
// daemon holds both directions of a control connection whose stream it
// resized, before it stores the state that makes the resize survive.
// Holding a held flow again is not an error.
func (m *Manager) Hold(flows ...Flow) error {
	return m.holdOp("hold", flows, m.elems.add)
}

// Release removes flows from the hold set; flows not held are ignored.
func (m *Manager) Release(flows ...Flow) error {
	var errs []error
	for _, f := range flows {
		// One transaction per flow: a missing element fails its
		// transaction (ENOENT).
		err := m.holdOp("release", []Flow{f}, m.elems.del)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// holdOp commits op of flows' elements on the hold sets of their families
// in one transaction (the Manager's element writer, as the committer's).
func (m *Manager) holdOp(what string, flows []Flow, op func(*nftables.Set, []nftables.SetElement) error) error {
	byTable := map[*tableObjs][]nftables.SetElement{}
	var order []*tableObjs
	for _, f := range flows {
		f, err := f.normalize()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		o, err := m.objsFor(Hole{Addr: f.Src.Addr()})
		if err != nil {
			return fmt.Errorf("%s %v: %w", what, f, err)
		}
		if _, ok := byTable[o]; !ok {
			order = append(order, o)
		}
		byTable[o] = append(byTable[o], nftables.SetElement{Key: f.holdKey()})
	}
	return m.locked(func() error {
		for _, o := range order {
			if err := op(o.hold, byTable[o]); err != nil {
				m.elems.discard()
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if err := m.elems.commit(); err != nil {
			return fmt.Errorf("%s: %w", what, hint(err))
		}
		return nil
	})
}

// Holes lists the holes in the kernel's sets: each pending one-shot
// element with its DNAT mapping, remaining lifetime (as Timeout) and owner.
func (m *Manager) Holes() ([]Hole, error) {
	var holes []Hole
	err := m.locked(func() error {
		for _, o := range m.tables {
			hs, _, err := m.listHoles(o)
			if err != nil {
				return err
			}
			holes = append(holes, hs...)
		}
		return nil
	})
	return holes, err
}

// listHoles reads o's expect set and xlate map; stale are the map
// elements whose hole is gone (used or deleted).
func (m *Manager) listHoles(o *tableObjs) (holes []Hole, stale []nftables.SetElement, err error) {
	n := int(o.fam.nl().addrLen)
	exp, err := m.conn.GetSetElements(o.expect)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s %s: %w", o.fam.nft, o.expect.Name, hint(err))
	}
	xl, err := m.conn.GetSetElements(o.xlate)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s %s: %w", o.fam.nft, o.xlate.Name, hint(err))
	}
	to := map[string]nftables.SetElement{}
	for _, e := range xl {
		to[string(e.Key)] = e
	}
	for _, e := range exp {
		var h Hole
		if !parseExpectKey(e.Key, n, &h) {
			continue
		}
		h.Timeout = e.Expires
		if x, ok := to[string(e.Key)]; ok {
			h.To, _ = parseXlateValue(x.Val, n)
			delete(to, string(e.Key))
		}
		if f, err := ParseFlow(e.Comment); err == nil {
			h.Owner = f
		}
		holes = append(holes, h)
	}
	for _, x := range to {
		stale = append(stale, nftables.SetElement{Key: x.Key})
	}
	return holes, stale, nil
}

// Left is what an earlier run left that Reconcile kept.
type Left struct {
	Holes   []Hole // holes whose owner lives
	Held    []Flow // held flows of live connections
	Removed int    // elements deleted: holes, mappings and held flows of the dead
}

// Reconcile is what a daemon does at start with what an earlier run left
// in the adopted tables. It keeps the holes whose owner alive reports as a
// live connection and the held flows alive reports live, and returns them;
// it deletes holes without a live owner, DNAT mappings whose hole is gone,
// and the other held flows. alive is called with the Manager locked: it
// must not call the Manager.
func (m *Manager) Reconcile(alive func(Flow) bool) (Left, error) {
	var left Left
	kept, removed := &left.Holes, &left.Removed
	err := m.locked(func() error {
		var errs []error
		del := func(s *nftables.Set, elems []nftables.SetElement) {
			for _, e := range elems {
				// One batch each: an element that expired meanwhile
				// fails with ENOENT alone.
				if err := m.conn.SetDeleteElements(s, []nftables.SetElement{e}); err != nil {
					errs = append(errs, err)
					continue
				}
				if err := m.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("delete from %s: %w", s.Name, hint(err)))
					continue
				}
				*removed++
			}
		}
		for _, o := range m.tables {
			holes, stale, err := m.listHoles(o)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			failed, now, fam := len(errs), time.Now(), o.fam.index()
			var dead []nftables.SetElement
			for _, h := range holes {
				if h.Owner.Src.IsValid() && alive(h.Owner) {
					*kept = append(*kept, h)
					// Listed with what is left of its timeout (none
					// shown: kept as if it never expired).
					t := h.Timeout
					if t <= 0 {
						t = 100 * 365 * 24 * time.Hour
					}
					m.known.added(fam, ledgerExpect, h.expectKey(), now, t)
					if h.To.IsValid() {
						m.known.added(fam, ledgerXlate, h.expectKey(), now, t)
					}
					continue
				}
				dead = append(dead, nftables.SetElement{Key: h.expectKey()})
				if h.To.IsValid() {
					stale = append(stale, nftables.SetElement{Key: h.expectKey()})
				}
			}
			del(o.expect, dead)
			del(o.xlate, stale)
			if len(errs) == failed {
				// Every hole and mapping left is recorded: what is
				// not, this Manager did not add, is surely gone.
				m.known.known(fam)
			}
			held, err := m.conn.GetSetElements(o.hold)
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s %s: %w", o.fam.nft, o.hold.Name, hint(err)))
				continue
			}
			var gone []nftables.SetElement
			for _, e := range held {
				f, ok := parseHoldKey(e.Key, int(o.fam.nl().addrLen))
				if !ok || !alive(f) {
					gone = append(gone, nftables.SetElement{Key: e.Key})
					continue
				}
				left.Held = append(left.Held, f)
			}
			del(o.hold, gone)
		}
		return errors.Join(errs...)
	})
	return left, err
}
