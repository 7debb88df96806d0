#!/usr/bin/env python3
"""An FTP client driven one step at a time, for the restart tests.

Reads one command per line on stdin and answers each with one JSON line on
stdout ({"ok": true, ...} or {"ok": false, "error": ...}):

  login                     connect to --server and log in (anonymous)
  noop                      NOOP; answers with the reply
  send-noop                 send NOOP without waiting; "reply" reads its answer
  reply                     read one reply
  get MODE FILE OUT         PORT|EPRT|PASV|EPSV, download FILE into OUT
  announce MODE             announce a data connection (PORT/EPRT: listen and
                            send it; PASV/EPSV: send it and read the reply)
                            but open nothing yet
  finish FILE OUT           RETR FILE over the announced data connection
  quit                      QUIT and exit

Every socket operation has a timeout (--op-timeout).
"""
import argparse
import ftplib
import hashlib
import json
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--op-timeout", type=float, default=20)
    a = ap.parse_args()
    f = ftplib.FTP(timeout=a.op_timeout)
    pending = None  # ("active", listening socket) or ("passive", (host, port))

    def out(**kv):
        kv.setdefault("ok", True)
        print(json.dumps(kv), flush=True)

    def save(conn, path):
        h, n = hashlib.sha256(), 0
        with open(path, "wb") as w:
            while True:
                b = conn.recv(65536)
                if not b:
                    break
                h.update(b)
                n += len(b)
                w.write(b)
        conn.close()
        return h.hexdigest(), n

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        try:
            if cmd == "login":
                f.connect(a.server, a.port)
                f.login()
                f.voidcmd("TYPE I")
                out(local=f.sock.getsockname()[:2])
            elif cmd == "noop":
                out(reply=f.voidcmd("NOOP"))
            elif cmd == "send-noop":
                f.putcmd("NOOP")
                out()
            elif cmd == "reply":
                out(reply=f.getresp())
            elif cmd in ("get", "announce"):
                mode = words[1].upper()
                if mode in ("PORT", "EPRT"):
                    f.af = socket.AF_INET6 if mode == "EPRT" and ":" in f.sock.getsockname()[0] else socket.AF_INET
                    if mode == "EPRT":
                        # ftplib sends EPRT only for IPv6; send it ourselves.
                        ls = socket.create_server((f.sock.getsockname()[0], 0), backlog=1)
                        ls.settimeout(a.op_timeout)
                        host, port = ls.getsockname()[:2]
                        af = 2 if ":" in host else 1
                        resp = f.voidcmd("EPRT |%d|%s|%d|" % (af, host, port))
                    else:
                        ls = f.makeport()
                        ls.settimeout(a.op_timeout)
                        resp = None
                    pending = ("active", ls)
                else:
                    if mode == "EPSV":
                        resp = f.sendcmd("EPSV")
                        host, port = f.sock.getpeername()[0], ftplib.parse229(resp, f.sock.getpeername())[1]
                    else:
                        resp = f.sendcmd("PASV")
                        host, port = ftplib.parse227(resp)
                    pending = ("passive", (host, port))
                if cmd == "announce":
                    out(reply=resp, pending=list(pending[1]) if pending[0] == "passive" else None)
                    continue
                words = ["finish"] + words[2:]
            if words[0] == "finish":
                kind, what = pending
                pending = None
                if kind == "passive":
                    conn = socket.create_connection(what, timeout=a.op_timeout)
                    f.sendcmd("RETR " + words[1])
                else:
                    f.sendcmd("RETR " + words[1])
                    conn, _ = what.accept()
                    what.close()
                    conn.settimeout(a.op_timeout)
                digest, n = save(conn, words[2])
                done = f.voidresp()
                out(sha256=digest, bytes=n, reply=done)
            elif cmd == "quit":
                try:
                    f.quit()
                finally:
                    out()
                return 0
            elif cmd not in ("login", "noop", "send-noop", "reply", "get", "announce"):
                out(ok=False, error="unknown command %r" % cmd)
        except Exception as e:  # one JSON line per step, whatever failed
            out(ok=False, error="%s: %s" % (type(e).__name__, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
