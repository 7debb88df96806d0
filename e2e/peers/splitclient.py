#!/usr/bin/env python3
"""splitclient: an FTP client that sends its data-connection command split
across several TCP segments (or pipelined behind other commands), then
downloads a file (or a LIST) and verifies it.

Result line (stdout, JSON):
  {"ok":true,"bytes":N,"sha256":HEX,"mode":..,"split":..,"pipeline":..,
   "announced":"PORT ..."|null,"data_peer":[addr,port],"data_target":[addr,port]|null,
   "transcript":[[">"|"<", text], ...]}
"""

import argparse
import socket
import sys

import ftppeer as fp

NAME = "splitclient"


def cut(line, how):
    """Split one command line (bytes, with CRLF) into pieces for separate send()s."""
    if how == "none":
        return [line]
    if how == "bytes":
        return [line[i:i + 1] for i in range(len(line))]
    sp = line.find(b" ")
    if sp < 0 or how == "command":
        # cut inside the command name ("PO" | "RT ...")
        return [line[:2], line[2:]]
    arg_end = len(line) - 2  # before CRLF
    a = fp.cut_inside_number(line, sp + 1, arg_end)
    if how == "address":
        return [line[:a], line[a:]]
    # both: inside the command name and inside the address
    return [line[:2], line[2:a], line[a:]]


def main():
    ap = argparse.ArgumentParser(description="FTP client that splits/pipelines its PORT/EPRT/PASV/EPSV command.")
    ap.add_argument("--server", required=True, help="server address (IPv4 or IPv6)")
    ap.add_argument("--port", type=int, default=21, help="control port (default 21)")
    ap.add_argument("--mode", choices=["port", "eprt", "pasv", "epsv"], default="port")
    ap.add_argument("--split", choices=["none", "command", "address", "both", "bytes"], default="none",
                    help="where to cut the data command: inside the command name, inside the address "
                         "argument, both, or one byte per segment (passive modes: address/both = command)")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between the pieces (default 0.2)")
    ap.add_argument("--pipeline", action="store_true",
                    help="send 'NOOP\\r\\n<data cmd>\\r\\nRETR f\\r\\n' in ONE send() (combined with --split: "
                         "NOOP glued to the first piece, RETR to the last)")
    ap.add_argument("--file", default=None, help="file to RETR (or path to LIST with --list)")
    ap.add_argument("--list", action="store_true", help="do a LIST instead of RETR")
    ap.add_argument("--expect-sha256", default=None, help="fail unless the data has this sha256")
    ap.add_argument("--expect-bytes", type=int, default=None, help="fail unless exactly N bytes arrive")
    ap.add_argument("--eprt-af", choices=["auto", "1", "2"], default="auto",
                    help="EPRT address family (auto = that of the control connection)")
    ap.add_argument("--data-port", type=int, default=0,
                    help="active modes: local data port to listen on (default: ephemeral, > 1024)")
    ap.add_argument("--data-addr", default=None,
                    help="active modes: address to listen on and announce (default: control socket's local address)")
    ap.add_argument("--user", default="anonymous")
    ap.add_argument("--password", default="ftpct@example.org")
    ap.add_argument("--op-timeout", type=float, default=10.0, help="per socket operation (default 10)")
    ap.add_argument("--timeout", type=float, default=30.0, help="overall limit in seconds (default 30)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="announce and transfer N times on the one control connection (default 1); the result is the last's")
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    if not a.list and not a.file:
        ap.error("--file is required unless --list is given")
    if a.data_port and not 1024 < a.data_port < 65536:
        ap.error("--data-port must be in 1025..65535")

    state = {}
    fp.install_hard_timeout(NAME, a.timeout, lambda: {"transcript": state["ctl"].transcript} if "ctl" in state else {})
    dl = fp.Deadline(a.timeout)

    def run():
        ctl = fp.Control(a.server, a.port, dl, a.op_timeout)
        state["ctl"] = ctl
        fp.login(ctl, a.user, a.password)
        ctl.cmd("TYPE A" if a.list else "TYPE I", 200)
        for _ in range(a.repeat - 1):
            transfer(ctl, False)
        return transfer(ctl, True)

    def transfer(ctl, last):
        local = a.data_addr or ctl.local_addr()
        active = a.mode in ("port", "eprt")
        listener = None
        announced = None
        if active:
            listener = fp.data_listener(local, a.data_port, dl.left(a.op_timeout))
            lport = listener.getsockname()[1]
            if a.mode == "port":
                announced = "PORT " + fp.port_arg(local, lport)
            else:
                arg = fp.eprt_arg(local, lport)
                if a.eprt_af != "auto" and arg[1] != a.eprt_af:
                    raise fp.PeerError("--eprt-af %s does not match local address %s" % (a.eprt_af, local))
                announced = "EPRT " + arg
            datacmd = announced
        else:
            datacmd = a.mode.upper()
        how = a.split
        if not active and how in ("address", "both"):
            how = "command"
        xfer = ("LIST" + (" " + a.file if a.file else "")) if a.list else "RETR " + a.file
        pieces = cut(datacmd.encode() + b"\r\n", how)
        if a.pipeline:
            pieces[0] = b"NOOP\r\n" + pieces[0]
            pieces[-1] = pieces[-1] + xfer.encode() + b"\r\n"
        ctl.send_pieces(pieces, a.pause)
        if a.pipeline:
            code, text = ctl.reply()
            fp.check("NOOP", code, text, 200)
        code, text = ctl.reply()
        target = None
        data = None
        if a.mode == "port" or a.mode == "eprt":
            fp.check(datacmd, code, text, 200)
        elif a.mode == "pasv":
            fp.check("PASV", code, text, 227)
            target = fp.parse_227(text)
        else:
            fp.check("EPSV", code, text, 229)
            target = (ctl.peer_addr(), fp.parse_229(text))
        if target:
            try:
                data = socket.create_connection(target, timeout=dl.left(a.op_timeout))
            except OSError as e:
                raise fp.PeerError("cannot connect to announced %s port %d: %s" % (target[0], target[1], e))
        if not a.pipeline:
            ctl.send_raw(xfer.encode() + b"\r\n")
        code, text = ctl.reply()
        fp.check(xfer, code, text, 1)
        if active:
            data = fp.accept_data(listener, dl, a.op_timeout)
        n, digest, head, peer = fp.finish_transfer(ctl, xfer, data, dl, a.op_timeout, last)
        res = {"ok": True, "bytes": n, "sha256": digest, "mode": a.mode, "split": a.split,
               "pipeline": a.pipeline, "announced": announced, "data_peer": peer,
               "data_target": list(target) if target else None, "transcript": ctl.transcript}
        if a.list:
            res["lines"] = head.count(b"\n")
        if a.expect_sha256 and digest != a.expect_sha256.lower():
            raise fp.PeerError("sha256 mismatch: got %s want %s (%d bytes)" % (digest, a.expect_sha256, n))
        if a.expect_bytes is not None and n != a.expect_bytes:
            raise fp.PeerError("size mismatch: got %d bytes want %d" % (n, a.expect_bytes))
        return res

    def extra():
        return {"transcript": state["ctl"].transcript} if "ctl" in state else {}

    fp.run_main(NAME, run, extra)


if __name__ == "__main__":
    main()
