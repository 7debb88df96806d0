package rules

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// acceptTool is the part of *iptables.IPTables the Manager uses; tests
// substitute it to inject failures.
type acceptTool interface {
	Exists(table, chain string, rulespec ...string) (bool, error)
	Insert(table, chain string, pos int, rulespec ...string) error
	DeleteIfExists(table, chain string, rulespec ...string) error
}

// Manager installs and removes ftpct's rules and opens and closes holes.
// It is safe for concurrent use: its lasting nftables netlink connection
// and its element writer's socket are used under one mutex.
type Manager struct {
	cfg    Config
	ns     *os.File // network namespace (Config.NetNS), nil for the caller's
	tables []*tableObjs

	// newTool returns the iptables runner for a family; replaced in tests.
	newTool func(f family) (acceptTool, error)

	// known is what may be in the tables' expect sets and xlate maps
	// (ledger.go); it has its own lock.
	known ledger

	mu   sync.Mutex
	conn *nftables.Conn
	// elems writes the element transactions of the committer and the
	// hold set (elembatch_linux.go) on a socket of its own.
	elems  *elemBatch
	closed bool
	// txs counts the element transactions the committer sent (tests).
	txs atomic.Uint64
	// created lists, per table family, the iptables-nft base chains (and
	// whether the "filter" table itself) did not exist before Install: an
	// iptables-nft rule insert creates them and its delete keeps them, so
	// Remove deletes them again when they are empty.
	created map[nftables.TableFamily]createdFilter
}

type createdFilter struct {
	table  bool
	chains []string
}

// New validates cfg and opens the netlink connection. It installs nothing.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Ports = append([]uint16(nil), cfg.Ports...)
	m := &Manager{cfg: cfg, newTool: newIptables}
	opts := []nftables.ConnOption{nftables.AsLasting()}
	netns := 0
	if cfg.NetNS != "" {
		f, err := os.Open(cfg.NetNS)
		if err != nil {
			return nil, fmt.Errorf("open network namespace: %w", err)
		}
		m.ns = f
		netns = int(f.Fd())
		opts = append(opts, nftables.WithNetNSFd(netns))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		m.closeNS()
		return nil, fmt.Errorf("open nftables netlink socket: %w", hint(err))
	}
	sock, err := dialElemSocket(netns)
	if err != nil {
		conn.CloseLasting()
		m.closeNS()
		return nil, fmt.Errorf("open nftables netlink socket: %w", hint(err))
	}
	m.conn, m.elems = conn, newElemBatch(sock)
	for _, f := range cfg.families() {
		m.tables = append(m.tables, newTableObjs(cfg.Table, f))
	}
	return m, nil
}

func newIptables(f family) (acceptTool, error) {
	proto := iptables.ProtocolIPv4
	if f == familyIPv6 {
		proto = iptables.ProtocolIPv6
	}
	t, err := iptables.New(iptables.IPFamily(proto))
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: %w", f.iptables, ErrNoIptables)
		}
		return nil, fmt.Errorf("%s: %w", f.iptables, err)
	}
	return t, nil
}

// hint adds the usual cause to a permission error.
func hint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (are you root? CAP_NET_ADMIN is required)", err)
	}
	return err
}

// Install puts in place the tables of every configured family and the
// iptables accept rules. A table left by an earlier run is adopted: its
// chains are made again and its holes, DNAT mappings and held flows stay
// (see Reconcile). On failure it removes what this call added.
func (m *Manager) Install() error {
	return m.locked(func() error {
		var u undo
		if err := m.install(&u); err != nil {
			if rerr := m.undo(&u); rerr != nil {
				return errors.Join(err, fmt.Errorf("cleanup after failed install: %w", rerr))
			}
			return err
		}
		return nil
	})
}

// undo is what one install added, so that a failed one removes exactly that.
type undo struct {
	tables []*tableObjs
	accept []family // families whose accept rules this install inserted
}

// locked runs f with m locked, or returns ErrClosed after Shutdown.
func (m *Manager) locked(f func() error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return f()
}

func (m *Manager) install(u *undo) error {
	for _, o := range m.tables {
		name := fmt.Sprintf("%s %s", o.fam.nft, m.cfg.Table)
		chains, sets, exists, err := m.existing(o)
		if err != nil {
			return fmt.Errorf("install nft table %s: %w", name, hint(err))
		}
		if m.cfg.Accept {
			// Before the accept rules create them: which filter objects
			// ftpct adds, with what an earlier run added (recorded in its
			// table), so that Remove, in this process or another, can
			// delete them again.
			m.noteFilter(o.table.Family)
			if exists {
				m.recallCreated(o)
			}
		}
		note := createdNote(m.created[o.table.Family])
		if exists {
			var carry map[string][]nftables.SetElement
			if carry, err = m.carry(o, sets); err != nil {
				return fmt.Errorf("install nft table %s: %w", name, hint(err))
			}
			err = queueAdopt(m.conn, &m.cfg, o, chains, sets, carry, note)
		} else {
			err = queueTable(m.conn, &m.cfg, o, note)
		}
		if err != nil {
			return fmt.Errorf("install nft table %s: %w", name, err)
		}
		if err := m.conn.Flush(); err != nil {
			return fmt.Errorf("install nft table %s: %w", name, hint(err))
		}
		if exists {
			m.known.unknown(o.fam.index()) // until Reconcile
		} else {
			m.known.reset(o.fam.index())
			u.tables = append(u.tables, o)
		}
	}
	if !m.cfg.Accept {
		return nil
	}
	spec := m.cfg.acceptRuleSpec()
	for _, o := range m.tables {
		inserted := false
		err := m.inNS(func() error {
			tool, err := m.newTool(o.fam)
			if err != nil {
				return err
			}
			for _, chain := range acceptChains {
				ok, err := tool.Exists("filter", chain, spec...)
				if err != nil {
					return fmt.Errorf("check %s: %w", chain, err)
				}
				if ok {
					continue // left by an earlier run: keep one, Remove deletes it
				}
				if err := tool.Insert("filter", chain, 1, spec...); err != nil {
					return fmt.Errorf("%s -I %s 1 %s: %w", o.fam.iptables, chain, strings.Join(spec, " "), err)
				}
				inserted = true
			}
			return nil
		})
		if inserted || err != nil {
			u.accept = append(u.accept, o.fam)
		}
		if err != nil {
			return fmt.Errorf("install accept rules: %w", hint(err))
		}
	}
	return nil
}

// existing lists the chains and sets of o's table; exists is false when
// there is no such table.
func (m *Manager) existing(o *tableObjs) (chains []*nftables.Chain, sets []*nftables.Set, exists bool, err error) {
	tables, err := m.conn.ListTablesOfFamily(o.table.Family)
	if err != nil {
		return nil, nil, false, err
	}
	for _, t := range tables {
		exists = exists || t.Name == o.table.Name
	}
	if !exists {
		return nil, nil, false, nil
	}
	all, err := m.conn.ListChainsOfTableFamily(o.table.Family)
	if err != nil {
		return nil, nil, true, err
	}
	for _, c := range all {
		if c.Table != nil && c.Table.Name == o.table.Name {
			c.Table = o.table
			chains = append(chains, c)
		}
	}
	sets, err = m.conn.GetSets(o.table)
	if err != nil {
		return nil, nil, true, err
	}
	for _, s := range sets {
		s.Table = o.table
	}
	return chains, sets, true, nil
}

// carry reads the elements of the kernel's sets that adopting o makes
// again with them (tableObjs.carried). No packet path adds to them
// meanwhile: they are made again because no rule of the table that left
// them could add to them.
func (m *Manager) carry(o *tableObjs, sets []*nftables.Set) (map[string][]nftables.SetElement, error) {
	carry := map[string][]nftables.SetElement{}
	for _, s := range sets {
		if !o.carried(s) {
			continue
		}
		elems, err := m.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.Name, err)
		}
		for i := range elems {
			elems[i] = nftables.SetElement{Key: elems[i].Key}
		}
		carry[s.Name] = elems
	}
	return carry, nil
}

// undo removes what a failed install added: the tables it created (not
// adopted ones) and the accept rules it inserted.
func (m *Manager) undo(u *undo) error {
	var errs []error
	for _, o := range u.tables {
		m.conn.DelTable(o.table)
		if err := m.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove nft table %s %s: %w", o.fam.nft, m.cfg.Table, hint(err)))
		}
	}
	if len(u.accept) > 0 {
		if err := m.removeAccept(u.accept); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Remove deletes the own tables and the accept rules (by exact rule spec).
// It is idempotent and safe after a partial or failed Install.
func (m *Manager) Remove() error { return m.locked(m.remove) }

func (m *Manager) remove() error {
	var errs []error
	for _, o := range m.tables {
		if m.cfg.Accept {
			m.recallCreated(o)
		}
		m.conn.DelTable(o.table)
		m.known.unknown(o.fam.index())
		if err := m.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove nft table %s %s: %w", o.fam.nft, m.cfg.Table, hint(err)))
		}
	}
	if m.cfg.Accept {
		var fams []family
		for _, o := range m.tables {
			fams = append(fams, o.fam)
		}
		if err := m.removeAccept(fams); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeAccept deletes the accept rules of the families fams (by exact
// rule spec) and the filter chains and tables noteFilter saw created.
func (m *Manager) removeAccept(fams []family) error {
	var errs []error
	spec := m.cfg.acceptRuleSpec()
	for _, f := range fams {
		err := m.inNS(func() error {
			tool, err := m.newTool(f)
			if errors.Is(err, ErrNoIptables) {
				return nil // then Install cannot have added a rule either
			}
			if err != nil {
				return err
			}
			var errs []error
			for _, chain := range acceptChains {
				if err := tool.DeleteIfExists("filter", chain, spec...); err != nil {
					errs = append(errs, fmt.Errorf("%s -D %s %s: %w", f.iptables, chain, strings.Join(spec, " "), err))
				}
			}
			return errors.Join(errs...)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("remove accept rules: %w", hint(err)))
		}
	}
	if err := m.dropCreatedFilter(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// noteFilter records which of the iptables-nft "filter" table and accept
// chains do not exist yet in family f (none do with iptables-legacy, whose
// rules are not nftables objects; then nothing is recorded as created
// unless iptables-nft is what creates them).
func (m *Manager) noteFilter(f nftables.TableFamily) {
	if m.created == nil {
		m.created = map[nftables.TableFamily]createdFilter{}
	}
	if _, done := m.created[f]; done {
		return
	}
	var c createdFilter
	chains, err := m.conn.ListChainsOfTableFamily(f)
	if err != nil {
		m.created[f] = c // unknown: claim nothing
		return
	}
	have := map[string]bool{}
	table := false
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == "filter" {
			table = true
			have[ch.Name] = true
		}
	}
	if !table {
		tables, err := m.conn.ListTablesOfFamily(f)
		if err != nil {
			m.created[f] = c
			return
		}
		c.table = true
		for _, t := range tables {
			if t.Name == "filter" {
				c.table = false
			}
		}
	}
	for _, name := range acceptChains {
		if !have[name] {
			c.chains = append(c.chains, name)
		}
	}
	m.created[f] = c
}

// dropCreatedFilter deletes the chains (and table) noteFilter found missing,
// if they exist now and hold no rules.
func (m *Manager) dropCreatedFilter() error {
	var errs []error
	for f, c := range m.created {
		tbl := &nftables.Table{Name: "filter", Family: f}
		left := 0
		chains, err := m.conn.ListChainsOfTableFamily(f)
		if err != nil {
			continue
		}
		for _, ch := range chains {
			if ch.Table == nil || ch.Table.Name != "filter" {
				continue
			}
			left++
			if !slices.Contains(c.chains, ch.Name) {
				continue
			}
			rules, err := m.conn.GetRules(tbl, ch)
			if err != nil || len(rules) > 0 {
				continue
			}
			m.conn.DelChain(ch)
			if err := m.conn.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("remove empty chain %s filter %s: %w", familyName(f), ch.Name, err))
				continue
			}
			left--
		}
		if c.table && left == 0 {
			m.conn.DelTable(tbl)
			if err := m.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove empty table %s filter: %w", familyName(f), err))
			}
		}
		delete(m.created, f)
	}
	return errors.Join(errs...)
}

// createdPrefix starts the comment of the keep_labels rule that records
// which iptables-nft filter objects ftpct created: "table" (the filter
// table itself) and chain names, comma-separated.
const createdPrefix = "ftpct created filter: "

// createdNote is the comment recording c, or "" when ftpct created nothing.
func createdNote(c createdFilter) string {
	var parts []string
	if c.table {
		parts = append(parts, "table")
	}
	parts = append(parts, c.chains...)
	if len(parts) == 0 {
		return ""
	}
	return createdPrefix + strings.Join(parts, ",")
}

// recallCreated adds to m.created what the record in o's existing table
// (written by an earlier run) says ftpct created.
func (m *Manager) recallCreated(o *tableObjs) {
	rules, err := m.conn.GetRules(o.table, &nftables.Chain{Name: labelsChainName, Table: o.table})
	if err != nil {
		return
	}
	if m.created == nil {
		m.created = map[nftables.TableFamily]createdFilter{}
	}
	c := m.created[o.table.Family]
	for _, r := range rules {
		note, ok := userdata.GetString(r.UserData, userdata.TypeComment)
		if !ok || !strings.HasPrefix(note, createdPrefix) {
			continue
		}
		for _, part := range strings.Split(strings.TrimPrefix(note, createdPrefix), ",") {
			switch {
			case part == "table":
				c.table = true
			case slices.Contains(acceptChains, part) && !slices.Contains(c.chains, part):
				c.chains = append(c.chains, part)
			}
		}
	}
	m.created[o.table.Family] = c
}

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyIPv6 {
		return "ip6"
	}
	return "ip"
}

func (m *Manager) objsFor(h Hole) (*tableObjs, error) {
	want := familyIPv4
	if h.Addr.Is6() {
		want = familyIPv6
	}
	for _, o := range m.tables {
		if o.fam == want {
			return o, nil
		}
	}
	return nil, fmt.Errorf("%w %v: IPv6 is disabled", ErrInvalidHole, h)
}

// target checks h and finds the table family it belongs to.
func (m *Manager) target(h Hole) (Hole, *tableObjs, error) {
	h, err := h.normalize()
	if err != nil {
		return h, nil, err
	}
	o, err := m.objsFor(h)
	return h, o, err
}

// Open adds the one-shot hole (and its DNAT mapping when h.To is valid) in
// one atomic batch. The kernel drops both after h.Timeout on its own.
func (m *Manager) Open(h Hole) error {
	h, o, err := m.target(h)
	if err != nil {
		return err
	}
	return m.locked(func() error {
		t := h.timeoutDuration()
		if h.To.IsValid() {
			if err := m.conn.SetAddElements(o.xlate, []nftables.SetElement{{Key: h.expectKey(), Val: h.xlateValue(), Timeout: t}}); err != nil {
				return fmt.Errorf("open hole %v: %w", h, err)
			}
		}
		var owner string
		if h.Owner.Src.IsValid() {
			owner = h.Owner.String()
		}
		if err := m.conn.SetAddElements(o.expect, []nftables.SetElement{{Key: h.expectKey(), Timeout: t, Comment: owner}}); err != nil {
			return fmt.Errorf("open hole %v: %w", h, err)
		}
		if err := m.conn.Flush(); err != nil {
			return fmt.Errorf("open hole %v: %w", h, hint(err))
		}
		now, fam := time.Now(), o.fam.index()
		m.known.added(fam, ledgerExpect, h.expectKey(), now, t)
		if h.To.IsValid() {
			m.known.added(fam, ledgerXlate, h.expectKey(), now, t)
		}
		return nil
	})
}

// Close deletes the hole and its DNAT mapping if they are still there (with
// h.Used, only the mapping). An element already used or expired is not an
// error: each delete is its own batch and ENOENT is ignored; but such a
// failed batch is slow, so callers that know the element is gone say Used.
func (m *Manager) Close(h Hole) error {
	h, o, err := m.target(h)
	if err != nil {
		return err
	}
	return m.locked(func() error {
		var errs []error
		var sets []*nftables.Set
		if !h.Used {
			sets = append(sets, o.expect)
		}
		if h.To.IsValid() {
			sets = append(sets, o.xlate)
		}
		for _, s := range sets {
			if err := m.conn.SetDeleteElements(s, []nftables.SetElement{{Key: h.expectKey()}}); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := m.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("%s: %w", s.Name, hint(err)))
				continue
			}
			m.recordDel(s, h.expectKey())
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("close hole %v: %w", h, err)
		}
		return nil
	})
}

// Shutdown closes the netlink connection (and the namespace handle). It
// does not remove rules; call Remove first. It is idempotent; every other
// method returns ErrClosed afterwards.
func (m *Manager) Shutdown() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	err := errors.Join(m.conn.CloseLasting(), m.elems.close())
	m.closeNS()
	return err
}

func (m *Manager) closeNS() {
	if m.ns != nil {
		m.ns.Close()
		m.ns = nil
	}
}

// inNS runs f with the calling thread in the configured network namespace,
// so that the iptables binary go-iptables starts inherits it. The thread is
// locked and, since it is never switched back, discarded when f returns.
func (m *Manager) inNS(f func() error) error {
	if m.ns == nil {
		return f()
	}
	fd := int(m.ns.Fd())
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the goroutine exits locked, so the runtime
		// terminates this thread instead of reusing it in the wrong netns.
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", m.cfg.NetNS, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
