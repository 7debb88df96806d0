//go:build linux

// Command nftcost measures what one nftables transaction costs, the way
// ftpct's rule manager sends them (google/nftables, one lasting connection,
// one element per batch): adding an element, deleting one that is there, and
// deleting one that is not (the kernel rejects the batch with ENOENT and
// aborts it). It creates its own table in the network namespace it runs in
// and removes it again; run it in a throw-away one:
//
//	go build -o /tmp/nftcost ./bench/nftcost && unshare -n /tmp/nftcost -n 200
//
// Linux only, root.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 200, "transactions of each kind")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "nftcost:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	if n < 1 || n > 100000 {
		return fmt.Errorf("-n %d: want 1 to 100000", n)
	}
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	t := c.AddTable(&nftables.Table{Name: "nftcost", Family: nftables.TableFamilyIPv4})
	set := &nftables.Set{
		Table:         t,
		Name:          "expect",
		KeyType:       nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetService),
		Concatenation: true,
		HasTimeout:    true,
		Dynamic:       true,
		Size:          65535,
	}
	if err := c.AddSet(set, nil); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	defer func() {
		c.DelTable(t)
		_ = c.Flush()
	}()
	key := func(i int) []byte {
		// 203.0.113.2 . 203.0.113.1 . port, each field padded to 4 bytes.
		return []byte{203, 0, 113, 2, 203, 0, 113, 1, byte(i >> 8), byte(i), 0, 0}
	}
	// timed applies op to the element of port, with timeout, and flushes.
	timed := func(op func(*nftables.Set, []nftables.SetElement) error, port int, timeout time.Duration) (time.Duration, error) {
		t0 := time.Now()
		err := op(set, []nftables.SetElement{{Key: key(port), Timeout: timeout}})
		if err == nil {
			err = c.Flush()
		}
		return time.Since(t0), err
	}
	var add, del, missing []time.Duration
	for i := range n {
		port := 10000 + i
		d, err := timed(c.SetAddElements, port, time.Minute)
		if err != nil {
			return fmt.Errorf("add: %w", err)
		}
		add = append(add, d)
		d, err = timed(c.SetDeleteElements, port, 0)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		del = append(del, d)
		d, err = timed(c.SetDeleteElements, port, 0)
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete of a missing element: got %v, want ENOENT", err)
		}
		missing = append(missing, d)
	}
	fmt.Printf("one element per transaction, %d each: p50 / p99\n", n)
	for _, r := range []struct {
		name string
		ds   []time.Duration
	}{
		{"add", add},
		{"delete, element present", del},
		{"delete, element missing (ENOENT, batch aborted)", missing},
	} {
		fmt.Printf("  %-48s %8v / %v\n", r.name, pct(r.ds, 50), pct(r.ds, 99))
	}
	return nil
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Microsecond)
}
