#!/usr/bin/env python3
"""Sends PORT commands on one FTP control connection until the rewrites
through a NAT gateway have grown the stream by --growth bytes, for the test
of conntrack's window tracking (e2e TestLongActiveSession).

Logs in (anonymous), then sends PORT in batches of --batch commands in one
write each and reads every reply before the next batch. Each PORT announces
the client's own address (the control socket's local address). The growth
per PORT is measured, not assumed: the gateway's address (--public) against
the client's, as ftpct rewrites it. Exits 0 with one JSON line on stdout
({"ports": N, "growth": BYTES}), or 1 with the reason on stderr when a reply
does not come within --op-timeout or is not 200.
"""
import argparse
import json
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--public", required=True, help="the gateway's public address PORT is rewritten to")
    ap.add_argument("--growth", type=int, default=80000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--op-timeout", type=float, default=5)
    a = ap.parse_args()

    s = socket.create_connection((a.server, a.port), timeout=a.op_timeout)
    buf = b""

    def reply():
        nonlocal buf
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                line, buf = buf[:i].decode("latin-1"), buf[i + 2:]
                if len(line) >= 4 and line[:3].isdigit() and line[3] == " ":
                    return line
                continue  # a continuation line of a multi-line reply
            try:
                data = s.recv(65536)
            except socket.timeout:
                raise SystemExit("no reply within %.0f s (after %d PORTs, %d bytes of growth)" % (a.op_timeout, sent, grown))
            if not data:
                raise SystemExit("server closed the connection (after %d PORTs)" % sent)
            buf += data

    def expect(code, line):
        if not line.startswith(code):
            raise SystemExit("want %s, got %r (after %d PORTs)" % (code, line, sent))

    sent = grown = 0
    expect("220", reply())
    s.sendall(b"USER anonymous\r\n")
    line = reply()
    if line.startswith("331"):
        s.sendall(b"PASS x@example.org\r\n")
        line = reply()
    expect("230", line)
    local = s.getsockname()[0]
    diff = len(a.public) - len(local)  # dots become commas: same length
    if diff <= 0:
        raise SystemExit("the public address %s is not longer than %s: PORT does not grow" % (a.public, local))
    start = time.monotonic()
    n = 0
    while grown < a.growth:
        cmds = []
        for _ in range(a.batch):
            port = 10000 + n % 5000
            n += 1
            cmds.append("PORT %s,%d,%d\r\n" % (local.replace(".", ","), port >> 8, port & 0xff))
        s.sendall("".join(cmds).encode())
        for _ in cmds:
            expect("200", reply())
            sent += 1
            grown += diff
    s.sendall(b"QUIT\r\n")
    print(json.dumps({"ports": sent, "growth": grown, "seconds": round(time.monotonic() - start, 1)}), flush=True)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as e:
        if e.code not in (None, 0):
            print(e.code, file=sys.stderr)
            sys.exit(1)
        raise
