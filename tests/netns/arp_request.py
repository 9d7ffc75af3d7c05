#!/usr/bin/env python3
"""Asks for an IPv4 address with one ARP request on a raw AF_PACKET socket
(arping without arping) and prints the reply:

    arp_request.py IFACE SENDER_IP TARGET_IP

prints `reply from TARGET_IP at MAC to MAC` and exits 0, or exits 1 after
3 seconds without a reply."""

import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806


def main():
    iface, sender_ip, target_ip = sys.argv[1:4]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((iface, ETH_P_ARP))
    our_mac = s.getsockname()[4][:6]
    spa, tpa = socket.inet_aton(sender_ip), socket.inet_aton(target_ip)
    # RFC 826: htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, op 1.
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, our_mac, spa, b"\0" * 6, tpa)
    frame = b"\xff" * 6 + our_mac + struct.pack("!H", ETH_P_ARP) + arp
    s.send(frame)
    s.settimeout(0.2)
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        if len(data) < 42:
            continue
        htype, ptype, hlen, plen, op, sha, sip, tha, tip = struct.unpack(
            "!HHBBH6s4s6s4s", data[14:42]
        )
        if op == 2 and sip == tpa and tip == spa:
            mac = ":".join(f"{b:02x}" for b in sha)
            dst = ":".join(f"{b:02x}" for b in tha)
            print(f"reply from {target_ip} at {mac} to {dst}", flush=True)
            return 0
    print(f"no ARP reply from {target_ip}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
