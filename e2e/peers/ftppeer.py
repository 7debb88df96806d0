"""Shared helpers for the awkward FTP peers in this directory (stdlib only).

Not a program: imported by splitclient.py, splitserver.py and hostile.py
(Python puts the script's own directory on sys.path, so `import ftppeer`
works however the scripts are exec'd).

Conventions shared by every peer:
  * exit 0 = success, 1 = test failure (protocol / verification), 2 = usage
    (argparse), 3 = overall timeout;
  * exactly one JSON result line on stdout ({"ok": true|false, ...});
  * on failure also one line "NAME: error: ..." on stderr;
  * every socket operation has a timeout bounded by the overall deadline, and
    SIGALRM is a hard backstop in case something blocks anyway.
"""

import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import time

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


class PeerError(Exception):
    """A test failure with a one-line explanation."""

    def __init__(self, msg, code=EXIT_FAIL):
        super().__init__(msg)
        self.code = code


class Deadline:
    def __init__(self, total):
        self.total = total
        self.end = time.monotonic() + total

    def left(self, cap=None):
        r = self.end - time.monotonic()
        if r <= 0:
            raise PeerError("overall timeout of %gs exceeded" % self.total, EXIT_TIMEOUT)
        return min(r, cap) if cap else r


def emit(result):
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


def fail(name, msg, code=EXIT_FAIL, extra=None):
    """Print the failure result + stderr line and exit (safe from signal handlers)."""
    res = {"ok": False, "error": msg, "peer": name}
    try:
        if callable(extra):
            extra = extra()
        if extra:
            res.update(extra)
    except Exception:
        pass
    try:
        emit(res)
        sys.stderr.write("%s: error: %s\n" % (name, msg))
        sys.stderr.flush()
    finally:
        os._exit(code)


def install_hard_timeout(name, total, extra=None):
    """SIGALRM backstop a little after the overall deadline."""

    def handler(signum, frame):
        fail(name, "hard timeout: still running %gs after start" % total, EXIT_TIMEOUT, extra)

    signal.signal(signal.SIGALRM, handler)
    signal.alarm(int(total) + 2)


def run_main(name, fn, extra=None):
    """Run fn() -> result dict; turn every exception into one clean failure."""
    try:
        res = fn()
    except PeerError as e:
        fail(name, str(e), e.code, extra)
    except socket.timeout as e:
        fail(name, "socket timeout: %s" % (e or "timed out"), EXIT_FAIL, extra)
    except OSError as e:
        fail(name, "socket error: %s" % e, EXIT_FAIL, extra)
    except KeyboardInterrupt:
        fail(name, "interrupted", EXIT_FAIL, extra)
    res.setdefault("ok", True)
    res.setdefault("peer", name)
    emit(res)
    sys.exit(EXIT_OK if res["ok"] else EXIT_FAIL)


def strip_scope(addr):
    return addr.split("%", 1)[0]


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def port_arg(addr, port):
    ip = ipaddress.ip_address(strip_scope(addr))
    if ip.version != 4:
        raise PeerError("PORT needs an IPv4 address, got %s (use EPRT)" % addr)
    return ",".join(str(b) for b in ip.packed) + ",%d,%d" % (port >> 8, port & 255)


def eprt_arg(addr, port):
    ip = ipaddress.ip_address(strip_scope(addr))
    return "|%d|%s|%d|" % (1 if ip.version == 4 else 2, ip, port)


_RE227 = re.compile(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)")
_RE229 = re.compile(r"\((.)\1\1(\d+)\1\)")


def parse_227(text):
    """227 reply: scan for the first h1,h2,h3,h4,p1,p2 (parentheses optional)."""
    m = _RE227.search(text[4:] if text[:4] == "227 " else text)
    if not m:
        raise PeerError("cannot parse 227 reply: %r" % text)
    n = [int(x) for x in m.groups()]
    if any(x > 255 for x in n):
        raise PeerError("number > 255 in 227 reply: %r" % text)
    return "%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5]


def parse_229(text):
    m = _RE229.search(text)
    if not m:
        raise PeerError("cannot parse 229 reply: %r" % text)
    port = int(m.group(2))
    if not 0 < port < 65536:
        raise PeerError("bad port in 229 reply: %r" % text)
    return port


def nodelay(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Control:
    """Client side of a control connection with bounded, line-buffered replies."""

    MAX_BUF = 1 << 20

    def __init__(self, host, port, deadline, op_timeout=10.0, keep=200):
        self.dl = deadline
        self.op = op_timeout
        self.transcript = []
        self.keep = keep
        try:
            self.sock = socket.create_connection((host, port), timeout=deadline.left(op_timeout))
        except socket.timeout:
            raise PeerError("timeout connecting to %s port %d" % (host, port))
        except OSError as e:
            raise PeerError("cannot connect to %s port %d: %s" % (host, port, e))
        nodelay(self.sock)
        self.buf = b""

    def _log(self, direction, text):
        if len(self.transcript) < self.keep:
            self.transcript.append([direction, text])

    def local_addr(self):
        return strip_scope(self.sock.getsockname()[0])

    def peer_addr(self):
        return strip_scope(self.sock.getpeername()[0])

    def _recv(self, cap=None):
        self.sock.settimeout(self.dl.left(cap or self.op))
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            self.dl.left()  # raises the overall-timeout error (exit 3) if that is what expired
            raise PeerError("timeout waiting for a reply (buffered: %r)" % self.buf[:80])
        if not d:
            raise PeerError("control connection closed by peer (buffered: %r)" % self.buf[:80])
        return d

    def readline(self):
        while b"\n" not in self.buf:
            self.buf += self._recv()
            if len(self.buf) > self.MAX_BUF:
                raise PeerError("reply line longer than %d bytes" % self.MAX_BUF)
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")

    def reply(self):
        """Read one (possibly multi-line) reply -> (code, full text)."""
        first = self.readline()
        m = re.match(r"^(\d{3})([ -]|$)", first)
        if not m:
            raise PeerError("malformed reply line: %r" % first)
        lines = [first]
        if m.group(2) == "-":
            end = m.group(1) + " "
            while True:
                line = self.readline()
                lines.append(line)
                if line.startswith(end) or line == m.group(1):
                    break
        text = "\n".join(lines)
        self._log("<", text)
        return int(m.group(1)), text

    def send_raw(self, data, log=True):
        self.sock.settimeout(self.dl.left(self.op))
        self.sock.sendall(data)
        if log:
            self._log(">", data.decode("latin-1"))

    def send_pieces(self, pieces, pause):
        """One send() call per piece (TCP_NODELAY is on), sleeping between."""
        for i, p in enumerate(pieces):
            if i:
                time.sleep(min(pause, self.dl.left()))
            self.sock.settimeout(self.dl.left(self.op))
            self.sock.sendall(p)
        self._log(">", "|".join(p.decode("latin-1") for p in pieces))

    def cmd(self, line, expect=None):
        """Send one command line, read its reply, optionally check the code's first digit(s)."""
        self.send_raw(line.encode("latin-1") + b"\r\n")
        code, text = self.reply()
        check(line, code, text, expect)
        return code, text

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def check(what, code, text, expect):
    if expect is None:
        return
    if isinstance(expect, (int, str)):
        expect = (expect,)
    if not any(str(code).startswith(str(e)) for e in expect):
        raise PeerError("%s: unexpected reply %r (wanted %s)" % (
            what.split(" ")[0] if what else "reply", text.replace("\n", " | "),
            "/".join(str(e) for e in expect)))


def login(ctl, user="anonymous", password="ftpct@example.org"):
    code, text = ctl.reply()
    while 100 <= code < 200:  # 120 "service ready in nnn minutes"
        code, text = ctl.reply()
    check("greeting", code, text, 220)
    code, text = ctl.cmd("USER " + user, (230, 331))
    if code == 331:
        ctl.cmd("PASS " + password, 230)


def data_listener(addr, port=0, timeout=10.0):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4)
    s.settimeout(timeout)
    return s


def recv_all(sock, deadline, op_timeout, limit=1 << 34):
    """Read a data connection to EOF -> (bytes, sha256 hex, first 64 KiB)."""
    h = hashlib.sha256()
    n = 0
    head = b""
    while True:
        sock.settimeout(deadline.left(op_timeout))
        try:
            d = sock.recv(1 << 16)
        except socket.timeout:
            raise PeerError("timeout reading the data connection after %d bytes" % n)
        if not d:
            break
        h.update(d)
        if len(head) < 65536:
            head += d[: 65536 - len(head)]
        n += len(d)
        if n > limit:
            raise PeerError("data connection exceeded %d bytes" % limit)
    return n, h.hexdigest(), head


def accept_data(listener, deadline, op_timeout):
    """Wait for the server's data connection (active mode); close the listener."""
    addr, port = listener.getsockname()[:2]
    listener.settimeout(deadline.left(op_timeout))
    try:
        data, _ = listener.accept()
    except socket.timeout:
        raise PeerError("no data connection arrived at %s port %d" % (addr, port))
    listener.close()
    return data


def finish_transfer(ctl, xfer, data, deadline, op_timeout, last=True):
    """Read the data connection to EOF, check xfer's final reply and, if
    last, end the session -> (bytes, sha256 hex, first 64 KiB, data peer
    [addr, port])."""
    peer = list(data.getpeername()[:2])
    n, digest, head = recv_all(data, deadline, op_timeout)
    data.close()
    code, text = ctl.reply()
    check(xfer, code, text, 2)
    if last:
        goodbye(ctl)
    return n, digest, head, peer


def goodbye(ctl):
    """QUIT if the server still answers, then close the control connection."""
    try:
        ctl.cmd("QUIT")
    except (PeerError, OSError):
        pass
    ctl.close()


def cut_inside_number(line, start, end):
    """Index in line[start:end] between two digits, as close to the middle as possible."""
    mid = (start + end) // 2
    best = None
    for i in range(start + 1, end):
        if line[i - 1:i].isdigit() and line[i:i + 1].isdigit():
            if best is None or abs(i - mid) < abs(best - mid):
                best = i
    return best if best is not None else mid
