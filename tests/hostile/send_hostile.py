#!/usr/bin/env python3
"""Hostile IPv4 packets for the stack: TTL 0, overlapping fragments, and
fragments that never complete.

    python3 send_hostile.py IFACE ttl0 N
        N each of an ICMP echo request, a UDP datagram to the echo port and a
        TCP SYN to the echo port, all from 10.0.0.1 with TTL 0 (3N packets).
        Every one must be dropped (RFC 791 §3.2), none answered.

    python3 send_hostile.py IFACE overlap
        Three ICMP echo requests from 10.0.0.1, each in two fragments where
        the second overlaps the first, arranged so that a reassembler that
        tolerated the overlap would hold a complete datagram and answer it:
          tail:     [0, 24) MF, then [16, 48) last (starts inside the first)
          reversed: [16, 48) last, then [0, 24) MF (ends inside the first)
          covering: [0, 24) MF, then [0, 32) MF (same start, longer), then
                    [32, 48) last
        Each datagram must be discarded whole at its second fragment (the
        third fragment of `covering` then starts a new datagram that never
        completes). No fragment here has offset 0 with MF clear: that is
        a whole datagram, not a fragment, for any IPv4 host.

    python3 send_hostile.py IFACE too-many N
        One datagram from 10.0.0.3 sent as N 8-byte middle fragments (MF set,
        offsets 8, 16, ...): it never completes, and past the stack's limit
        of fragments per datagram it is discarded.

    python3 send_hostile.py IFACE endless N [--rate PPS]
        N first fragments (offset 0, MF set, 1480 bytes of an ICMP echo
        request) from the phantom peer 10.0.0.3, each with its own IP
        identification, so N datagrams are started and none ever completes.
        Paced to PPS packets a second (default 2000).

Packets are written straight onto the TUN device IFACE with an AF_PACKET
socket (see tests/netns/send_malformed.py), checksums correct. Prints one
line per kind: `sent K NAME packets in S s`. Run it inside the test's network
namespace only.
"""

import socket
import struct
import sys
import time

HOST = "10.0.0.1"
PHANTOM = "10.0.0.3"
STACK = "10.0.0.2"
ECHO_PORT = 7


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_packet(src, proto, payload, ident, ttl=64, offset=0, more=False):
    """An IPv4 packet; offset in bytes (a multiple of 8)."""
    flags_frag = (0x2000 if more else 0) | (offset // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_frag, ttl, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(STACK))
    csum = checksum(hdr)
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + payload


def icmp_echo(ident, seq, data):
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = checksum(hdr + data)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq) + data


def pseudo(src, proto, length):
    return socket.inet_aton(src) + socket.inet_aton(STACK) + struct.pack("!BBH", 0, proto, length)


def udp(src, sport, dport, data):
    length = 8 + len(data)
    csum = checksum(pseudo(src, 17, length) + struct.pack("!HHHH", sport, dport, length, 0) + data) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, csum) + data


def tcp_syn(src, sport, dport, seq):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    csum = checksum(pseudo(src, 6, len(hdr)) + hdr)
    return hdr[:16] + struct.pack("!H", csum) + hdr[18:]


class Sender:
    def __init__(self, iface):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        self.sock.bind((iface, 0))

    def send(self, pkt):
        self.sock.send(pkt)


def cmd_ttl0(tx, args):
    n = int(args[0])
    start = time.monotonic()
    for i in range(n):
        tx.send(ip_packet(HOST, 1, icmp_echo(0x7770, i, b"ttl zero"), 0x1000 + i, ttl=0))
        tx.send(ip_packet(HOST, 17, udp(HOST, 41000 + i, ECHO_PORT, b"ttl zero"), 0x2000 + i, ttl=0))
        tx.send(ip_packet(HOST, 6, tcp_syn(HOST, 42000 + i, ECHO_PORT, 1000 * i), 0x3000 + i, ttl=0))
    print(f"sent {3 * n} ttl0 packets in {time.monotonic() - start:.2f} s", flush=True)


def cmd_overlap(tx, args):
    start = time.monotonic()
    # (name, [(offset, end, more)...]) over a 48-byte ICMP message.
    cases = [
        ("tail", [(0, 24, True), (16, 48, False)]),
        ("reversed", [(16, 48, False), (0, 24, True)]),
        ("covering", [(0, 24, True), (0, 32, True), (32, 48, False)]),
    ]
    sent = 0
    for i, (_, frags) in enumerate(cases):
        msg = icmp_echo(0x0F0F, i, bytes(range(40)))  # 8 + 40 = 48 bytes
        assert len(msg) == 48
        for offset, end, more in frags:
            tx.send(ip_packet(HOST, 1, msg[offset:end], 0x4000 + i, offset=offset, more=more))
            sent += 1
    print(f"sent {sent} overlap packets in {time.monotonic() - start:.2f} s", flush=True)


def cmd_too_many(tx, args):
    n = int(args[0])
    start = time.monotonic()
    for k in range(n):
        tx.send(ip_packet(PHANTOM, 1, bytes([k % 256]) * 8, 0x5000, offset=8 * (k + 1), more=True))
    print(f"sent {n} too-many packets in {time.monotonic() - start:.2f} s", flush=True)


def cmd_endless(tx, args):
    n = int(args[0])
    rate = 2000.0
    if len(args) >= 3 and args[1] == "--rate":
        rate = float(args[2])
    data = bytes(i % 256 for i in range(1472))
    msg = icmp_echo(0x0E0E, 1, data)  # 1480 bytes: a full first fragment at MTU 1500
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        tx.send(ip_packet(PHANTOM, 1, msg, (0x6000 + i) & 0xFFFF, offset=0, more=True))
    print(f"sent {n} endless packets in {time.monotonic() - start:.2f} s", flush=True)


COMMANDS = {"ttl0": cmd_ttl0, "overlap": cmd_overlap, "too-many": cmd_too_many, "endless": cmd_endless}
ARGS = {"ttl0": 1, "overlap": 0, "too-many": 1, "endless": 1}


def main(argv):
    if len(argv) < 3 or argv[2] not in COMMANDS or len(argv) - 3 < ARGS[argv[2]]:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    tx = Sender(argv[1])
    COMMANDS[argv[2]](tx, argv[3:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
