#!/usr/bin/env python3
"""hostile: an FTP client that feeds the control connection hostile input.

Modes (--mode):
  garbage     N KiB of random bytes without CR/LF, then checks the session is
              still alive (answers NOOP after a CRLF) or was closed cleanly (FIN).
  portburst   login, COUNT PORT commands (own address, all different ports) in a
              burst, then one real active-mode (PORT) transfer on the same session.
  privport    login, PORT to its own address, port 22 (--target-port); with
              --trigger also LIST so the server tries to connect there.
  thirdparty  login, PORT to another host (--third-party 10.9.9.9); never
              connects there itself; --trigger as above.
  tls         AUTH TLS; on 234 sends would-be ciphertext (random bytes containing
              'PORT 10,0,1,2,4,1\\r\\n', see --embed), then closes.

Result: one JSON line on stdout with "ok" and mode-specific fields.
"""

import argparse
import os
import select
import socket
import time

import ftppeer as fp

NAME = "hostile"


def rand_no_newline(n):
    b = bytearray(os.urandom(n))
    for i, c in enumerate(b):
        if c in (10, 13):
            b[i] = 0x41 + (c & 7)
    return bytes(b)


def announce(ctl, addr, port, use_eprt):
    if use_eprt or ":" in addr:
        return "EPRT " + fp.eprt_arg(addr, port)
    return "PORT " + fp.port_arg(addr, port)


def mode_garbage(a, dl):
    """Send a long line of junk, end it, probe with NOOP; classify what follows.

    A server that refuses the line and closes (vsftpd: "500 Input line too
    long.", then FIN) exits with our unread junk still in its receive buffer,
    so its kernel also sends a reset (RFC 1122 4.2.2.13). Whether that reset
    arrives before or after our last send() is a race, and a send() after it
    fails with EPIPE or ECONNRESET. What the server sent before the reset (its
    reply and FIN) is still in our receive queue, so a failed send is not the
    outcome: the outcome is what we then read.
      alive   the NOOP got its 200;
      closed  end of stream (FIN) after the junk, maybe with a reply first;
      reset   a reset with no FIN before it: fails unless --allow-reset.
    """
    ctl = fp.Control(a.server, a.port, dl, a.op_timeout)
    code, text = ctl.reply()
    fp.check("greeting", code, text, 220)
    junk = rand_no_newline(a.kib * 1024)
    sent = 0
    send_error = None
    try:
        ctl.sock.settimeout(dl.left(a.op_timeout))
        ctl.sock.sendall(junk)
        sent = len(junk)
        # terminate the junk line and probe with NOOP
        ctl.send_raw(b"\r\nNOOP\r\n", log=False)
    except (BrokenPipeError, ConnectionResetError) as e:
        send_error = str(e)
    except socket.timeout:
        raise fp.PeerError("send of %d KiB garbage stalled (peer not reading)" % a.kib)
    replies = []
    outcome = None
    reset_error = None
    try:
        while outcome is None:
            code, text = ctl.reply()
            replies.append(code)
            if text.startswith("200") and send_error is None:
                outcome = "alive"
            elif len(replies) > 50:
                raise fp.PeerError("no 200 reply to NOOP among 50 replies after garbage")
    except fp.PeerError as e:
        msg = str(e)
        if "closed by peer" in msg:
            outcome = "closed"
        elif "timeout" in msg:
            raise fp.PeerError("no NOOP reply and no close within %gs after garbage" % a.op_timeout)
        else:
            raise
    except (BrokenPipeError, ConnectionResetError) as e:
        outcome, reset_error = "reset", str(e)
    ctl.close()
    res = {"mode": "garbage", "sent": sent, "outcome": outcome, "replies": replies}
    if send_error is not None:
        res["send_error"] = send_error
    if outcome == "reset":
        res["reset_error"] = reset_error
        if not a.allow_reset:
            res["ok"] = False
            raise fp.PeerError("connection reset after garbage, without a close before it (%s; replies %s); "
                               "--allow-reset to accept" % (reset_error, replies))
    return res


def burst(ctl, lines, dl, each, op_timeout):
    """Send all lines while reading replies concurrently (no deadlock on full buffers)."""
    out = b"".join(l.encode() + b"\r\n" for l in lines)
    chunks = [l.encode() + b"\r\n" for l in lines] if each else [out]
    want = len(lines)
    codes = {}
    got = 0
    s = ctl.sock
    s.setblocking(False)
    pending = b""
    try:
        while got < want:
            if not pending and chunks:
                pending = chunks.pop(0)
            wl = [s] if pending else []
            r, w, _ = select.select([s], wl, [], dl.left(op_timeout))
            if not r and not w:
                raise fp.PeerError("portburst stalled: %d/%d replies" % (got, want))
            if w:
                try:
                    n = s.send(pending)
                    pending = pending[n:]
                except BlockingIOError:
                    pass
            if r:
                d = s.recv(1 << 16)
                if not d:
                    raise fp.PeerError("server closed the connection after %d/%d replies" % (got, want))
                ctl.buf += d
                while b"\n" in ctl.buf:
                    line, _, ctl.buf = ctl.buf.partition(b"\n")
                    c = line[:3].decode("latin-1")
                    if line[3:4] == b"-":
                        continue  # multi-line continuation (not expected here)
                    if c.isdigit() and line[3:4] in (b" ", b"\r", b""):
                        codes[c] = codes.get(c, 0) + 1
                        got += 1
                    # else: continuation line of a multi-line reply
    finally:
        s.setblocking(True)
    return codes


def mode_portburst(a, dl):
    ctl = fp.Control(a.server, a.port, dl, a.op_timeout, keep=20)
    fp.login(ctl, a.user, a.password)
    local = ctl.local_addr()
    base = a.base_port
    lines = [announce(ctl, local, base + i, a.eprt) for i in range(a.count)]
    t0 = time.monotonic()
    codes = burst(ctl, lines, dl, a.each, a.op_timeout)
    dt = time.monotonic() - t0
    # the real transfer on the same session (active mode)
    ctl.cmd("TYPE I", 200)
    ls = fp.data_listener(local, 0, dl.left(a.op_timeout))
    lport = ls.getsockname()[1]
    ctl.cmd(announce(ctl, local, lport, a.eprt), 200)
    xfer = ("RETR " + a.file) if a.file else "LIST"
    code, text = ctl.cmd(xfer, 1)
    n, digest, _, peer = fp.finish_transfer(ctl, xfer, fp.accept_data(ls, dl, a.op_timeout), dl, a.op_timeout)
    res = {"mode": "portburst", "count": a.count, "replies_200": codes.get("200", 0), "reply_codes": codes,
           "burst_seconds": round(dt, 3), "transfer_bytes": n, "sha256": digest,
           "data_peer": peer}
    if a.expect_sha256 and digest != a.expect_sha256.lower():
        raise fp.PeerError("final transfer sha256 mismatch: got %s want %s" % (digest, a.expect_sha256))
    if a.min_200 is not None and res["replies_200"] < a.min_200:
        raise fp.PeerError("only %d of %d PORT commands got 200 (want >= %d)" % (
            res["replies_200"], a.count, a.min_200))
    return res


def mode_announce(a, dl, addr, port, label):
    ctl = fp.Control(a.server, a.port, dl, a.op_timeout)
    fp.login(ctl, a.user, a.password)
    line = announce(ctl, addr, port, a.eprt)
    code, text = ctl.cmd(line)
    res = {"mode": label, "announced": line, "port_reply": code, "port_reply_text": text}
    if a.trigger and code == 200:
        # ask the server to connect: the harness checks that this fails
        ctl.send_raw(b"LIST\r\n")
        c2, t2 = ctl.reply()
        res["trigger_reply"] = c2
        res["trigger_reply_text"] = t2
        if c2 in (125, 150):
            res["data_connected"] = True
            try:
                c3, t3 = ctl.reply()
                res["final_reply"] = c3
            except fp.PeerError:
                pass
        else:
            res["data_connected"] = False
    fp.goodbye(ctl)
    if a.expect_refused and res.get("data_connected"):
        raise fp.PeerError("%s: the server reached %s port %d (%s)" % (label, addr, port, res.get("trigger_reply_text")))
    return res


def mode_tls(a, dl):
    ctl = fp.Control(a.server, a.port, dl, a.op_timeout)
    code, text = ctl.reply()
    fp.check("greeting", code, text, 220)
    code, text = ctl.cmd("AUTH TLS")
    res = {"mode": "tls", "auth_reply": code, "auth_reply_text": text, "tls_sent": 0}
    if code == 234:
        embed = a.embed.encode().decode("unicode_escape").encode("latin-1")
        # a TLS-record-looking header, random bytes ending in CRLF (so the next
        # segment starts "after a newline"), then a segment starting with the
        # embedded command, then one with it in the middle.
        segs = [b"\x16\x03\x01\x02\x00" + os.urandom(200) + b"\r\n",
                embed + os.urandom(300),
                os.urandom(100) + b"\r\n" + embed + os.urandom(100)]
        for i, s in enumerate(segs):
            if i:
                time.sleep(min(a.pause, dl.left()))
            try:
                ctl.sock.settimeout(dl.left(a.op_timeout))
                ctl.sock.sendall(s)
                res["tls_sent"] += len(s)
            except (BrokenPipeError, ConnectionResetError) as e:
                res["send_error"] = str(e)
                break
        res["embedded"] = a.embed
    elif a.require_234:
        raise fp.PeerError("server did not accept AUTH TLS: %r" % text)
    ctl.close()
    return res


def main():
    ap = argparse.ArgumentParser(description="FTP client sending hostile input on the control connection.")
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--mode", required=True, choices=["garbage", "portburst", "privport", "thirdparty", "tls"])
    ap.add_argument("--kib", type=int, default=64, help="garbage: KiB of random bytes (default 64)")
    ap.add_argument("--allow-reset", action="store_true", help="garbage: a TCP reset counts as success")
    ap.add_argument("--count", type=int, default=5000, help="portburst: number of PORT commands (default 5000)")
    ap.add_argument("--base-port", type=int, default=20000, help="portburst: first announced port (default 20000)")
    ap.add_argument("--each", action="store_true", help="portburst: one send() per command instead of one stream")
    ap.add_argument("--min-200", type=int, default=None, help="portburst: fail if fewer 200 replies")
    ap.add_argument("--file", default=None, help="portburst: file to RETR at the end (default: LIST)")
    ap.add_argument("--expect-sha256", default=None, help="portburst: sha256 of --file")
    ap.add_argument("--target-port", type=int, default=22, help="privport: announced port (default 22)")
    ap.add_argument("--third-party", default="10.9.9.9", help="thirdparty: announced address (default 10.9.9.9)")
    ap.add_argument("--third-party-port", type=int, default=2049, help="thirdparty: announced port (default 2049)")
    ap.add_argument("--eprt", action="store_true", help="announce with EPRT instead of PORT")
    ap.add_argument("--trigger", action="store_true",
                    help="privport/thirdparty: if PORT got 200, send LIST so the server tries to connect")
    ap.add_argument("--expect-refused", action="store_true",
                    help="privport/thirdparty: fail if the triggered data connection succeeded")
    ap.add_argument("--embed", default="PORT 10,0,1,2,4,1\\r\\n", help="tls: text hidden in the ciphertext")
    ap.add_argument("--require-234", action="store_true", help="tls: fail unless AUTH TLS gets 234")
    ap.add_argument("--pause", type=float, default=0.2, help="tls: pause between segments (default 0.2)")
    ap.add_argument("--user", default="anonymous")
    ap.add_argument("--password", default="ftpct@example.org")
    ap.add_argument("--op-timeout", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="overall limit in seconds (default 60)")
    a = ap.parse_args()
    if a.count < 1 or a.kib < 0:
        ap.error("--count must be >= 1 and --kib >= 0")
    if a.count + a.base_port > 65535 or a.base_port <= 1024:
        ap.error("--base-port must be > 1024 and --base-port + --count <= 65535")

    fp.install_hard_timeout(NAME, a.timeout)
    dl = fp.Deadline(a.timeout)

    def run():
        if a.mode == "garbage":
            return mode_garbage(a, dl)
        if a.mode == "portburst":
            return mode_portburst(a, dl)
        if a.mode == "tls":
            return mode_tls(a, dl)
        if a.mode == "privport":
            return mode_announce_own(a, dl)
        return mode_announce(a, dl, a.third_party, a.third_party_port, "thirdparty")

    fp.run_main(NAME, run)


def mode_announce_own(a, dl):
    # connect once to learn our own address as the server sees the route
    fam = socket.AF_INET6 if ":" in a.server else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.connect((a.server, a.port))  # UDP connect: no packet is sent
        own = fp.strip_scope(s.getsockname()[0])
    finally:
        s.close()
    return mode_announce(a, dl, own, a.target_port, "privport")


if __name__ == "__main__":
    main()
