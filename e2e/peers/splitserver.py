#!/usr/bin/env python3
"""splitserver: a minimal anonymous FTP server (read-only, one thread per
session) that can write its 227/229 replies split into several TCP segments
and uses multi-line 220/230 replies whose last line comes in a later segment.

stdout: one line {"ready":true,"addr":A,"port":P,"pid":N} once listening, then
at exit (SIGTERM/SIGINT, --lifetime, --max-sessions) one result line
{"ok":true,"sessions":..,"transfers":..,"bytes_sent":..,"port_ok":..,
 "port_refused":..,"pasv":..,"tls_bytes":..,"errors":[..]}.
"""

import argparse
import ipaddress
import os
import posixpath
import re
import signal
import socket
import stat
import threading
import time

import ftppeer as fp

NAME = "splitserver"
MAX_LINE = 8192


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.d = {"sessions": 0, "transfers": 0, "bytes_sent": 0, "port_ok": 0, "port_refused": 0,
                  "pasv": 0, "tls_bytes": 0, "commands": 0, "long_lines": 0, "early_connects": 0, "errors": []}

    def add(self, k, n=1):
        with self.lock:
            self.d[k] += n

    def err(self, msg):
        with self.lock:
            if len(self.d["errors"]) < 20:
                self.d["errors"].append(msg)


class Session:
    def __init__(self, conn, args, stats, log):
        self.c = conn
        self.a = args
        self.st = stats
        self.log = log
        self.buf = b""
        self.cwd = "/"
        self.logged_in = False
        self.user = None
        self.pasv = None      # listening socket
        self.active = None    # (addr, port)
        self.early = None     # data connection made on PORT (--connect-on-port)
        self.closed = False
        self.local = fp.strip_scope(conn.getsockname()[0])
        self.peer = fp.strip_scope(conn.getpeername()[0])
        self.v6 = ":" in self.local

    # ---- output -------------------------------------------------------
    def send(self, data):
        self.c.settimeout(self.a.op_timeout)
        self.c.sendall(data)

    def pieces(self, parts):
        """parts: list of bytes, one send() each, pausing between when splitting."""
        for i, p in enumerate(parts):
            if i and self.a.split_replies:
                time.sleep(self.a.pause)
            self.send(p)

    def reply(self, code, text):
        self.send(("%d %s\r\n" % (code, text)).encode("latin-1"))

    def split_reply(self, line):
        """Cut a 227/229 reply line according to --split-replies."""
        how = self.a.split_replies
        if not how:
            return [line]
        if how == "bytes":
            return [line[i:i + 1] for i in range(len(line))]
        start = line.find(b"(")
        start = start if start >= 0 else 4
        end = line.rfind(b")")
        end = end if end > start else len(line) - 2
        cuts = []
        if how in ("code", "both"):
            cuts.append(2)  # "22" | "7 Entering ..."
        if how in ("address", "both"):
            body = line[start:end]
            if line.startswith(b"227"):
                # inside the first octet and inside the last port number
                nums = [m.span() for m in re.finditer(rb"\d+", body)]
                for span in (nums[0], nums[-1]) if nums else ():
                    s, e = span[0] + start, span[1] + start
                    cuts.append(s + max(1, (e - s) // 2) if e - s > 1 else s)
            else:
                cuts.append(fp.cut_inside_number(line, start, end))
        cuts = sorted(set(c for c in cuts if 0 < c < len(line)))
        out, prev = [], 0
        for c in cuts:
            out.append(line[prev:c])
            prev = c
        out.append(line[prev:])
        return out

    def multiline(self, code, lines, last):
        """All continuation lines in one segment, the final line in another."""
        head = "".join("%d-%s\r\n" % (code, l) for l in lines).encode("latin-1")
        self.pieces([head, ("%d %s\r\n" % (code, last)).encode("latin-1")])

    # ---- input --------------------------------------------------------
    def readline(self):
        discarding = False
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                if discarding:
                    return None  # too long: caller answers 500
                return line.rstrip(b"\r").decode("latin-1")
            if len(self.buf) > MAX_LINE:
                if not discarding:
                    self.st.add("long_lines")
                discarding = True
                self.buf = b""
            self.c.settimeout(self.a.idle_timeout)
            d = self.c.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    # ---- paths --------------------------------------------------------
    def fs(self, arg):
        p = posixpath.normpath(posixpath.join(self.cwd, arg or "."))
        if not p.startswith("/"):
            p = "/" + p
        real = os.path.realpath(os.path.join(self.a.root, p.lstrip("/")))
        root = os.path.realpath(self.a.root)
        if real != root and not real.startswith(root + os.sep):
            return p, None
        return p, real

    # ---- data connections ---------------------------------------------
    def clear_data(self):
        if self.pasv:
            self.pasv.close()
        self.pasv = None
        self.active = None
        self.early = None

    def connect_active(self):
        """Connects to the PORT target now (--connect-on-port); None after a 425."""
        try:
            d = socket.create_connection(self.active, timeout=self.a.data_timeout)
        except OSError as e:
            self.st.err("data connection failed: %s" % e)
            self.clear_data()
            self.reply(425, "Failed to establish connection.")
            return None
        self.st.add("early_connects")
        return d

    def open_data(self):
        try:
            if self.early:
                d = self.early
            elif self.pasv:
                self.pasv.settimeout(self.a.data_timeout)
                d, _ = self.pasv.accept()
            elif self.active:
                fam = fp.family_of(self.active[0])
                d = socket.socket(fam, socket.SOCK_STREAM)
                d.settimeout(self.a.data_timeout)
                if self.a.port20:
                    d.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        d.bind((self.local, 20))
                    except OSError as e:
                        self.log("port 20 not available (%s), using an ephemeral port" % e)
                        d.close()
                        d = socket.socket(fam, socket.SOCK_STREAM)
                        d.settimeout(self.a.data_timeout)
                d.connect(self.active)
            else:
                self.reply(425, "Use PORT or PASV first.")
                return None
        except OSError as e:
            self.st.err("data connection failed: %s" % e)
            self.clear_data()
            self.reply(425, "Failed to establish connection.")
            return None
        self.clear_data()
        d.settimeout(self.a.data_timeout)
        return d

    def transfer(self, opening, payload_iter):
        d = self.open_data()
        if d is None:
            return
        self.reply(150, opening)
        n = 0
        try:
            for chunk in payload_iter:
                d.sendall(chunk)
                n += len(chunk)
            d.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.st.err("data send failed: %s" % e)
            d.close()
            self.reply(426, "Connection closed; transfer aborted.")
            return
        d.close()
        self.st.add("transfers")
        self.st.add("bytes_sent", n)
        self.reply(226, "Transfer complete.")

    # ---- commands ------------------------------------------------------
    def parse_port(self, arg):
        m = re.fullmatch(r"\s*(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})\s*", arg)
        if not m:
            return None
        n = [int(x) for x in m.groups()]
        if any(x > 255 for x in n):
            return None
        return "%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5]

    def parse_eprt(self, arg):
        if len(arg) < 4:
            return None
        parts = arg.split(arg[0])
        if len(parts) != 5 or parts[0] or parts[4]:
            return None
        try:
            ip = ipaddress.ip_address(parts[2])
            port = int(parts[3])
        except ValueError:
            return None
        if not ((parts[1] == "1" and ip.version == 4) or (parts[1] == "2" and ip.version == 6)):
            return None
        return str(ip), port

    def set_active(self, target, cmd):
        if target is None or not 0 < target[1] < 65536:
            self.st.add("port_refused")
            return self.reply(500, "Illegal %s command." % cmd)
        addr = target[0]
        peer = self.peer
        if peer.startswith("::ffff:"):
            peer = peer[7:]
        if not self.a.promiscuous and (addr != peer or target[1] < 1024):
            self.st.add("port_refused")
            return self.reply(500, "Illegal %s command." % cmd)
        if fp.family_of(addr) != fp.family_of(self.local) and not self.local.startswith("::ffff:"):
            self.st.add("port_refused")
            return self.reply(522, "Network protocol not supported, use (%s)" % ("1" if not self.v6 else "2"))
        self.clear_data()
        self.active = target
        self.st.add("port_ok")
        if self.a.connect_on_port:
            # Connect the instant the PORT is read, before answering it:
            # a firewall that lets the PORT through before its hole is
            # open loses this race.
            self.early = self.connect_active()
            if self.early is None:
                return
        self.reply(200, "%s command successful. Consider using PASV." % cmd)

    def open_pasv(self):
        self.clear_data()
        s = fp.data_listener(self.local, 0, self.a.data_timeout)
        self.pasv = s
        self.st.add("pasv")
        return s.getsockname()[1]

    def handle(self, cmd, arg):
        a = self.a
        if cmd == "QUIT":
            self.reply(221, "Goodbye.")
            self.closed = True
            return
        if cmd == "USER":
            self.user = arg
            return self.reply(331, "Please specify the password.")
        if cmd == "PASS":
            if self.user is None:
                return self.reply(503, "Login with USER first.")
            self.logged_in = True
            lines = ["Welcome to splitserver.", "This is a multi-line 230 reply."]
            if a.decoy:
                lines.append("227 Entering Passive Mode (10,9,9,9,4,1)")
                lines.append("229 Entering Extended Passive Mode (|||1025|)")
            return self.multiline(230, lines, "Login successful.")
        if cmd == "AUTH":
            if a.auth_tls and arg.upper() in ("TLS", "SSL", "TLS-C"):
                self.reply(234, "Proceed with negotiation.")
                self.swallow_tls()
                return
            return self.reply(502, "AUTH not supported.")
        if cmd == "NOOP":
            return self.reply(200, "NOOP ok.")
        if cmd == "FEAT":
            return self.send(b"211-Features:\r\n EPRT\r\n EPSV\r\n PASV\r\n SIZE\r\n UTF8\r\n211 End\r\n")
        if cmd == "SYST":
            return self.reply(215, "UNIX Type: L8")
        if cmd == "OPTS":
            return self.reply(200, "Always in UTF8 mode.")
        if not self.logged_in:
            return self.reply(530, "Please login with USER and PASS.")
        if cmd == "TYPE":
            t = arg.upper()[:1]
            if t in ("I", "L"):
                return self.reply(200, "Switching to Binary mode.")
            if t == "A":
                return self.reply(200, "Switching to ASCII mode.")
            return self.reply(500, "Unrecognised TYPE command.")
        if cmd in ("MODE", "STRU"):
            return self.reply(200, "OK.") if arg.upper() in ("S", "F") else self.reply(504, "Bad mode.")
        if cmd in ("PWD", "XPWD"):
            return self.reply(257, '"%s" is the current directory' % self.cwd)
        if cmd in ("CWD", "CDUP", "XCWD"):
            p, real = self.fs(".." if cmd == "CDUP" else arg)
            if real and os.path.isdir(real):
                self.cwd = p
                return self.reply(250, "Directory successfully changed.")
            return self.reply(550, "Failed to change directory.")
        if cmd == "PASV":
            if self.v6 and not self.local.startswith("::ffff:"):
                return self.reply(500, "PASV not available on an IPv6 connection, use EPSV.")
            port = self.open_pasv()
            addr = a.pasv_address or self.local.replace("::ffff:", "")
            line = ("227 Entering Passive Mode (%s).\r\n" % fp.port_arg(addr, port)).encode()
            return self.pieces(self.split_reply(line))
        if cmd == "EPSV":
            if arg.upper() == "ALL":
                return self.reply(200, "EPSV ALL ok.")
            port = self.open_pasv()
            line = ("229 Entering Extended Passive Mode (|||%d|)\r\n" % port).encode()
            return self.pieces(self.split_reply(line))
        if cmd == "PORT":
            return self.set_active(self.parse_port(arg), "PORT")
        if cmd == "EPRT":
            return self.set_active(self.parse_eprt(arg), "EPRT")
        if cmd == "SIZE":
            p, real = self.fs(arg)
            if real and os.path.isfile(real):
                return self.reply(213, str(os.path.getsize(real)))
            return self.reply(550, "Could not get file size.")
        if cmd == "MDTM":
            p, real = self.fs(arg)
            if real and os.path.isfile(real):
                return self.reply(213, time.strftime("%Y%m%d%H%M%S", time.gmtime(os.path.getmtime(real))))
            return self.reply(550, "Could not get file modification time.")
        if cmd == "REST":
            return self.reply(350, "Restart position accepted (0).") if arg.strip() == "0" else \
                self.reply(504, "REST not supported.")
        if cmd == "RETR":
            p, real = self.fs(arg)
            if not real or not os.path.isfile(real):
                self.clear_data()
                return self.reply(550, "Failed to open file.")
            size = os.path.getsize(real)

            def chunks():
                with open(real, "rb") as f:
                    while True:
                        b = f.read(1 << 16)
                        if not b:
                            return
                        yield b
            return self.transfer("Opening BINARY mode data connection for %s (%d bytes)." % (arg, size), chunks())
        if cmd in ("LIST", "NLST"):
            words = [w for w in arg.split() if not w.startswith("-")]
            p, real = self.fs(words[0] if words else None)
            if not real or not os.path.exists(real):
                names = []
            elif os.path.isdir(real):
                names = sorted(os.listdir(real))
            else:
                names = [os.path.basename(real)]
                real = os.path.dirname(real)
            out = []
            for n in names:
                if cmd == "NLST":
                    out.append(n)
                    continue
                try:
                    s = os.stat(os.path.join(real, n))
                except OSError:
                    continue
                out.append("%s    1 ftp      ftp      %8d %s %s" % (
                    stat.filemode(s.st_mode), s.st_size,
                    time.strftime("%b %d %H:%M", time.gmtime(s.st_mtime)), n))
            body = "".join(l + "\r\n" for l in out).encode("utf-8", "replace")
            return self.transfer("Here comes the directory listing.", [body])
        return self.reply(500, "Unknown command.")

    def swallow_tls(self):
        """After 234: no real TLS; read and count whatever comes until EOF/idle."""
        n = len(self.buf)
        self.buf = b""
        try:
            while True:
                self.c.settimeout(min(self.a.idle_timeout, 10))
                d = self.c.recv(65536)
                if not d:
                    break
                n += len(d)
        except OSError:
            pass
        self.st.add("tls_bytes", n)
        self.closed = True

    def run(self):
        self.st.add("sessions")
        try:
            nodelay(self.c)
            if self.a.split_replies:
                self.multiline(220, ["splitserver ready.", "Multi-line greeting, last line follows."], "ready.")
            else:
                self.reply(220, "splitserver ready.")
            while not self.closed:
                line = self.readline()
                if line is None:
                    self.reply(500, "Input line too long.")
                    continue
                self.st.add("commands")
                cmd, _, arg = line.strip().partition(" ")
                self.log("%s > %s" % (self.peer, line))
                self.handle(cmd.upper(), arg.strip())
        except EOFError:
            pass
        except OSError as e:
            self.st.err("session %s: %s" % (self.peer, e))
        finally:
            self.clear_data()
            try:
                self.c.close()
            except OSError:
                pass


def nodelay(s):
    fp.nodelay(s)


def main():
    ap = argparse.ArgumentParser(description="Minimal anonymous FTP server that splits its 227/229 replies.")
    ap.add_argument("--listen", default="127.0.0.1", help="address to listen on (IPv4 or IPv6; default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=2121, help="control port (0 = ephemeral; default 2121)")
    ap.add_argument("--root", required=True, help="directory to serve (read-only)")
    ap.add_argument("--split-replies", nargs="?", const="address", default=None,
                    choices=["address", "code", "both", "bytes"],
                    help="write 227/229 in several segments: cut inside the address numbers (default), "
                         "inside the reply code, both, or one byte each; also sends 220/230 multi-line "
                         "replies with the last line in its own segment")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between split segments (default 0.2)")
    ap.add_argument("--pasv-address", default=None, help="IPv4 address to announce in 227 (default: own local address)")
    ap.add_argument("--connect-on-port", action="store_true",
                    help="active mode: connect to the announced address the instant the PORT/EPRT is read, before replying")
    ap.add_argument("--port20", action="store_true", help="active mode: connect from port 20 if permitted")
    ap.add_argument("--promiscuous", action="store_true",
                    help="accept PORT/EPRT to other addresses and to ports < 1024 (default: refuse, like vsftpd)")
    ap.add_argument("--decoy", action="store_true",
                    help="put '227 ...(10,9,9,9,4,1)' and '229 ...' text lines inside the multi-line 230 reply")
    ap.add_argument("--auth-tls", action="store_true",
                    help="answer AUTH TLS with 234, then swallow (count) the bytes without doing TLS")
    ap.add_argument("--idle-timeout", type=float, default=60.0, help="control idle timeout (default 60)")
    ap.add_argument("--data-timeout", type=float, default=10.0, help="data accept/connect/send timeout (default 10)")
    ap.add_argument("--op-timeout", type=float, default=10.0, help="control send timeout (default 10)")
    ap.add_argument("--lifetime", type=float, default=0, help="exit after N seconds (0 = until SIGTERM)")
    ap.add_argument("--max-sessions", type=int, default=0, help="exit after N sessions have ended (0 = unlimited)")
    ap.add_argument("--verbose", action="store_true", help="log commands to stderr")
    a = ap.parse_args()
    if not os.path.isdir(a.root):
        ap.error("--root %s is not a directory" % a.root)

    stats = Stats()
    stop = threading.Event()

    def log(msg):
        if a.verbose:
            import sys
            sys.stderr.write("%s: %s\n" % (NAME, msg))
            sys.stderr.flush()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def run():
        fam = fp.family_of(a.listen)
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            ls.bind((a.listen, a.port))
        except OSError as e:
            raise fp.PeerError("cannot listen on %s port %d: %s" % (a.listen, a.port, e))
        ls.listen(64)
        ls.settimeout(0.2)
        fp.emit({"ready": True, "addr": a.listen, "port": ls.getsockname()[1], "pid": os.getpid()})
        start = time.monotonic()
        threads = []
        ended = [0]

        def worker(conn):
            try:
                Session(conn, a, stats, log).run()
            finally:
                with stats.lock:
                    ended[0] += 1

        while not stop.is_set():
            if a.lifetime and time.monotonic() - start > a.lifetime:
                break
            if a.max_sessions and ended[0] >= a.max_sessions:
                break
            try:
                conn, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError as e:
                stats.err("accept: %s" % e)
                time.sleep(0.05)
                continue
            t = threading.Thread(target=worker, args=(conn,), daemon=True)
            t.start()
            threads = [x for x in threads if x.is_alive()] + [t]
        ls.close()
        for t in threads:
            t.join(timeout=1.0)
        res = dict(stats.d)
        res["ok"] = True
        return res

    fp.run_main(NAME, run)


if __name__ == "__main__":
    main()
