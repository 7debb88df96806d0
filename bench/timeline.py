#!/usr/bin/env python3
"""Where a session's time goes at the gateway: bench/sidebyside.sh --timeline.

Reads two captures taken on the lab gateway, of the LAN side (client 10.0.1.2)
and of the WAN side (server 203.0.113.2, masqueraded to 203.0.113.1), matches
every packet seen entering on one side with the same packet leaving on the
other (same direction, IP ID and server-side port: NAT and ftpct change
neither), and prints the gateway's transit time per kind of packet, per session.

    timeline.py LAN.pcap WAN.pcap SESSIONS

Only the Python standard library: pcap files of Ethernet frames (veth).
"""
import statistics
import struct
import sys

SERVER = "203.0.113.2"


def packets(path):
    """Yield (time, src, dst, ipid, sport, dport, flags, payload_len, first word)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            end = "<"
        else:
            end = ">"
            magic = struct.unpack(">I", head[:4])[0]
        scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
        link = struct.unpack(end + "I", head[20:24])[0]
        if link != 1:
            sys.exit(f"{path}: link type {link}, want Ethernet (1)")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _ = struct.unpack(end + "IIII", rec)
            data = f.read(incl)
            if len(data) < 14 + 20 or data[12:14] != b"\x08\x00":
                continue
            ip = data[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6 or len(ip) < ihl + 20:
                continue
            total = struct.unpack(">H", ip[2:4])[0]
            ipid = struct.unpack(">H", ip[4:6])[0]
            src = ".".join(str(b) for b in ip[12:16])
            dst = ".".join(str(b) for b in ip[16:20])
            tcp = ip[ihl:]
            sport, dport = struct.unpack(">HH", tcp[:4])
            doff = (tcp[12] >> 4) * 4
            flags = tcp[13]
            word = tcp[doff:doff + 4].split(b" ")[0].split(b"\r")[0].decode("ascii", "replace")
            yield sec + frac * scale, src, dst, ipid, sport, dport, flags, total - ihl - doff, word


def kind(srvport, flags, plen, to_server, word):
    conn = "control" if srvport == 21 else "data"
    d = "c→s" if to_server else "s→c"
    if flags & 0x02:
        what = "SYN-ACK" if flags & 0x10 else "SYN"
    elif flags & 0x01:
        what = "FIN"
    elif flags & 0x04:
        what = "RST"
    elif plen > 0:
        what = word if srvport == 21 and word else "payload"
    else:
        what = "pure ACK"
    return f"{conn} {d} {what}"


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: timeline.py LAN.pcap WAN.pcap SESSIONS")
    lan, wan, sessions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Entering packets: client→server seen on the LAN side, server→client on the WAN side.
    ins, outs = [], {}
    for side, path in (("lan", lan), ("wan", wan)):
        for t, src, dst, ipid, sport, dport, flags, plen, word in packets(path):
            to_server = dst == SERVER
            if not to_server and src != SERVER:
                continue
            srvport = dport if to_server else sport
            key = (to_server, ipid, srvport, flags)
            entering = (side == "lan") == to_server
            if entering:
                ins.append((t, key, kind(srvport, flags, plen, to_server, word)))
            else:
                outs.setdefault(key, []).append(t)
    per = {}
    unmatched = 0
    for t, key, k in ins:
        cand = [o for o in outs.get(key, []) if t <= o < t + 1.0]
        if not cand:
            unmatched += 1
            continue
        o = min(cand)
        outs[key].remove(o)
        per.setdefault(k, []).append((o - t) * 1e6)
    total = 0.0
    print(f"| packet kind | per session | transit p50 (µs) | p99 (µs) | per session (ms) |")
    print("|---|---|---|---|---|")
    for k in sorted(per, key=lambda k: -sum(per[k])):
        v = sorted(per[k])
        p99 = v[min(len(v) - 1, int(0.99 * len(v)))]
        ms = sum(v) / sessions / 1000
        total += ms
        print(f"| {k} | {len(v) / sessions:.1f} | {statistics.median(v):.0f} | {p99:.0f} | {ms:.2f} |")
    print(f"| **all** | {sum(len(v) for v in per.values()) / sessions:.1f} | | | **{total:.2f}** |")
    if unmatched:
        print(f"\n{unmatched} entering packets not seen leaving (dropped, or lost by the capture).")


if __name__ == "__main__":
    main()
