package ftpparse

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func FuzzParseClient(f *testing.F) {
	for _, tc := range allClientCases() {
		f.Add([]byte(tc.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkParse(t, ParseClient, line) })
}

func FuzzParseServer(f *testing.F) {
	for _, tc := range allServerCases() {
		f.Add([]byte(tc.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkParse(t, ParseServer, line) })
}

// checkParse checks the invariants of one parse: no panic, errors wrap ErrMalformed with a
// zero Match, the range lies within the first line, and parse → AppendArg → splice →
// parse announces the same thing.
func checkParse(t *testing.T, parse func([]byte) (Match, error), line []byte) {
	orig := bytes.Clone(line)
	m, err := parse(line)
	if !bytes.Equal(line, orig) {
		t.Fatalf("parser modified its input")
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if m != (Match{}) {
			t.Fatalf("error %v with non-zero Match %+v", err, m)
		}
		return
	}
	if m.Kind == KindNone {
		if m != (Match{}) {
			t.Fatalf("KindNone with non-zero Match %+v", m)
		}
		return
	}
	content, _ := splitLine(line)
	if m.Start < 0 || m.Start > m.End || m.End > len(content) {
		t.Fatalf("range %d:%d outside the line content (%d bytes)", m.Start, m.End, len(content))
	}
	if m.Port == 0 {
		t.Fatalf("port 0 accepted: %+v", m)
	}
	if (m.Kind == KindEPSV) == m.Addr.IsValid() {
		t.Fatalf("Addr validity wrong for %v: %v", m.Kind, m.Addr)
	}
	if m.Addr.Zone() != "" {
		t.Fatalf("zoned address accepted: %v", m.Addr)
	}
	if m.Kind == KindEPRT {
		checkEPRTAddr(t, line[m.Start:m.End], m)
	}
	if !m.Kind.Carries(m.Addr) {
		t.Fatalf("%v cannot carry its own address %v", m.Kind, m.Addr)
	}
	arg := AppendArg(nil, m, m.Addr, m.Port)
	line2 := splice(line, m, arg)
	m2, err := parse(line2)
	if err != nil {
		t.Fatalf("reparse of %q (from %q): %v", line2, line, err)
	}
	if m2.Kind != m.Kind || m2.Port != m.Port || m2.Addr != m.Addr.Unmap() || m2.Delim != m.Delim ||
		m2.Start != m.Start || m2.End != m.Start+len(arg) {
		t.Fatalf("round trip of %q: %+v, then %q: %+v", line, m, line2, m2)
	}
	if m.Addr.IsValid() && !m.Addr.Is4In6() {
		// Canonical output formats to itself.
		if arg2 := AppendArg(nil, m2, m2.Addr, m2.Port); !bytes.Equal(arg, arg2) || !bytes.Equal(line2[m2.Start:m2.End], arg) {
			t.Fatalf("format not stable: %q then %q", arg, arg2)
		}
	}
}

// checkEPRTAddr compares the address text of an accepted EPRT argument with netip.
func checkEPRTAddr(t *testing.T, arg []byte, m Match) {
	fields := bytes.Split(arg[1:len(arg)-1], []byte{m.Delim})
	if len(fields) != 3 {
		t.Fatalf("EPRT argument %q does not have 3 fields", arg)
	}
	ref, err := netip.ParseAddr(string(fields[1]))
	if err != nil || ref != m.Addr {
		t.Fatalf("EPRT address %q parsed as %v; netip says %v, %v", fields[1], m.Addr, ref, err)
	}
	if want := map[bool]string{true: "1", false: "2"}[ref.Is4()]; string(fields[0]) != want {
		t.Fatalf("EPRT af %q for %v", fields[0], ref)
	}
}
