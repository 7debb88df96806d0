package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ftpct/ftpct/conntrack"
	"github.com/ftpct/ftpct/rules"
)

// cmdUninstall removes everything `ftpct run` installs and leaves on exit
// (its nft tables with holes and held flows, and the iptables accept
// rules). It needs no daemon and refuses while one uses the table.
func cmdUninstall(args []string, stderr io.Writer) error {
	fs, l := settingsFlags("uninstall", nil) // all of run's: the same command line works
	c, err := loadSettings(fs, l, args, stderr)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("uninstall needs root (CAP_NET_ADMIN) to remove rules")
	}
	// Held for the removal: no daemon starts on the table meanwhile.
	cl, err := claim("table/"+c.Rules.Table, fmt.Sprintf("nftables table %q", c.Rules.Table))
	if errors.Is(err, errRunning) {
		return fmt.Errorf("a daemon uses nftables table %q: stop it first (or run it with --remove-on-exit)", c.Rules.Table)
	}
	if err != nil {
		return err
	}
	defer cl.Close()
	m, err := rules.New(c.Rules)
	if err != nil {
		return err
	}
	defer m.Shutdown()
	return m.Remove()
}

// reconcile takes over what an earlier run left in the adopted tables:
// holes and held flows of control connections conntrack still tracks are
// kept (and the engine learns them), the rest is deleted.
func (d *daemon) reconcile() {
	alive := func(f rules.Flow) bool {
		_, err := d.kernel.Lookup(conntrack.Tuple{Src: f.Src.Addr(), Dst: f.Dst.Addr(), SrcPort: f.Src.Port(), DstPort: f.Dst.Port()})
		// Only a definite "not tracked" deletes: on any other error keep it.
		return !errors.Is(err, conntrack.ErrNoEntry)
	}
	left, err := d.mgr.Reconcile(alive)
	if err != nil {
		d.log.Error("reconcile with what an earlier run left", "err", err)
	}
	taken := d.eng.Adopt(left.Holes, left.Held)
	if len(left.Holes)+len(left.Held)+left.Removed > 0 {
		d.log.Info("took over from an earlier run", "holes", taken, "held_flows", len(left.Held),
			"sessions", d.eng.Stats().SessionsOpen, "removed", left.Removed)
	}
}
