#!/usr/bin/env python3
"""Sends deliberately malformed IPv4 packets from the kernel side to the stack.

    python3 send_malformed.py IFACE NAME...

Each NAME below is one crafted packet, from 10.0.0.1 to 10.0.0.2, written
straight onto the TUN device IFACE (tun0) with an AF_PACKET socket. A packet
socket is used rather than a raw IP socket with IP_HDRINCL because for the
latter the kernel always fills in the IP header checksum and total length
(raw(7)), so those malformations would never reach the stack. Well-formed
parts are correct (checksums included), so each packet has exactly one fault.

Prints the name and length of each packet sent. Run it inside the test's
network namespace only.
"""

import socket
import struct
import sys

SRC = "10.0.0.1"
DST = "10.0.0.2"
ECHO_PORT = 7


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_header(payload_len, proto, total_len=None, version_ihl=0x45, bad_checksum=False):
    total = 20 + payload_len if total_len is None else total_len
    hdr = struct.pack("!BBHHHBBH4s4s", version_ihl, 0, total, 0x7A11, 0, 64, proto, 0,
                      socket.inet_aton(SRC), socket.inet_aton(DST))
    csum = checksum(hdr)
    if bad_checksum:
        csum ^= 0x00FF
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:]


def udp_datagram(payload, length=None, bad_checksum=False):
    length = 8 + len(payload) if length is None else length
    pseudo = socket.inet_aton(SRC) + socket.inet_aton(DST) + struct.pack("!BBH", 0, 17, 8 + len(payload))
    hdr = struct.pack("!HHHH", 40000, ECHO_PORT, 8 + len(payload), 0)
    csum = checksum(pseudo + hdr + payload) or 0xFFFF
    if bad_checksum:
        csum = csum ^ 0x00FF
    return struct.pack("!HHHH", 40000, ECHO_PORT, length, csum) + payload


def icmp_echo(payload, bad_checksum=False):
    hdr = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1)
    csum = checksum(hdr + payload)
    if bad_checksum:
        csum ^= 0x00FF
    return struct.pack("!BBHHH", 8, 0, csum, 0x4242, 1) + payload


def packets():
    udp = udp_datagram(b"malformed?")
    good_udp = ip_header(len(udp), 17) + udp
    icmp = icmp_echo(b"malformed?")
    return {
        "ip-bad-checksum": ip_header(len(udp), 17, bad_checksum=True) + udp,
        "ip-total-length-past-end": ip_header(len(udp), 17, total_len=20 + len(udp) + 100) + udp,
        "ip-total-length-below-header": ip_header(len(udp), 17, total_len=10) + udp,
        "ip-ihl-below-5": bytes([0x43]) + good_udp[1:],
        "ip-version-6": bytes([0x65]) + good_udp[1:],
        "ip-truncated": good_udp[:12],
        "udp-header-truncated": ip_header(4, 17) + udp[:4],
        "udp-length-past-end": ip_header(len(udp), 17) + udp_datagram(b"malformed?", length=200),
        "udp-bad-checksum": ip_header(len(udp), 17) + udp_datagram(b"malformed?", bad_checksum=True),
        "icmp-bad-checksum": ip_header(len(icmp), 1) + icmp_echo(b"malformed?", bad_checksum=True),
        "icmp-truncated": ip_header(2, 1) + icmp[:2],
    }


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        print("packets: " + " ".join(packets()), file=sys.stderr)
        return 64
    iface, names = argv[1], argv[2:]
    table = packets()
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"unknown packet names: {unknown}; known: {list(table)}", file=sys.stderr)
        return 64
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((iface, 0))
    for name in names:
        sock.send(table[name])
        print(f"sent {name} ({len(table[name])} bytes)", flush=True)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
