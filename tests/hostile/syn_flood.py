#!/usr/bin/env python3
"""A bounded SYN flood from the phantom peer 10.0.0.3 to the stack.

    python3 syn_flood.py IFACE PORT[,PORT...] [--count N] [--seconds S] [--rate PPS]

Writes TCP SYNs from 10.0.0.3 (random source ports and initial sequence
numbers, an MSS option, good checksums) to 10.0.0.2:PORT (taking the ports
in turn when there are several) straight onto the TUN device IFACE with an
AF_PACKET socket, as send_malformed.py does: the packets reach the stack
exactly as built, and the stack's SYN-ACKs to the phantom peer go back into
the kernel, which drops them (nothing is 10.0.0.3 in the namespace;
forwarding is off).

Stops by itself after N SYNs (default 200000) or S seconds (default 8),
whichever comes first. With --rate it paces itself to at most PPS SYNs per
second, in small bursts (default: as fast as python manages, about 350,000
a second). When the TUN's queue (500 packets) is full, the kernel drops a
SYN silently and counts it in tun0's TX dropped counter; a send that fails
with ENOBUFS is counted as a send error and the SYN skipped.

Prints `flooding` once the socket is open, then on exit one line:
`sent N SYNs in S s (R/s), E send errors`. Run it inside the test's network
namespace only.
"""

import errno
import random
import socket
import struct
import sys
import time

SRC = "10.0.0.3"
DST = "10.0.0.2"


def checksum_words(data):
    """The 32-bit sum of the big-endian 16-bit words of data (not folded)."""
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ip_header(payload_len):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0x4000, 64, 6, 0,
                      socket.inet_aton(SRC), socket.inet_aton(DST))
    csum = ~fold(checksum_words(hdr)) & 0xFFFF
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:]


def main(argv):
    args = argv[1:]
    opts = {"--count": "200000", "--seconds": "8", "--rate": "0"}
    rest = []
    it = iter(args)
    for a in it:
        if a in opts:
            opts[a] = next(it, None)
            if opts[a] is None:
                print(f"{a} needs a value\n\n{__doc__.strip()}", file=sys.stderr)
                return 64
        else:
            rest.append(a)
    if len(rest) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    iface, ports = rest[0], [int(p) for p in rest[1].split(",")]
    count, seconds, rate = int(opts["--count"]), float(opts["--seconds"]), float(opts["--rate"])

    # TCP header: sport, dport, seq, ack, offset 6 words, SYN, window, csum, urg;
    # then MSS 1460. The checksum is the fixed part's sum (pseudo-header
    # included) plus the words that change per SYN: sport, dport and seq.
    ip = ip_header(24)
    pseudo = socket.inet_aton(SRC) + socket.inet_aton(DST) + struct.pack("!BBH", 0, 6, 24)
    fixed = struct.pack("!HHIIBBHHH", 0, 0, 0, 0, 6 << 4, 0x02, 64240, 0, 0) + b"\x02\x04\x05\xb4"
    base = checksum_words(pseudo + fixed)
    pack = struct.Struct("!HHI").pack
    csum_pack = struct.Struct("!H").pack
    head = ip
    mid = fixed[8:16]  # ack, offset, flags, window
    tail = fixed[18:]  # urgent pointer, MSS option

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((iface, 0))
    send = sock.send
    rand = random.getrandbits
    print("flooding", flush=True)

    start = time.monotonic()
    deadline = start + seconds
    sent = errors = 0
    # Unpaced: 256 SYNs between clock reads. Paced: bursts of at most ~2 ms
    # worth, so the flood is smooth (a burst of more SYNs than the backlog
    # would evict every half-open connection at once, whatever the rate).
    batch = 256 if rate <= 0 else max(1, min(256, int(rate / 500)))
    while sent + errors < count:
        now = time.monotonic()
        if now >= deadline:
            break
        if rate > 0:
            ahead = (sent + errors) / rate - (now - start)
            if ahead > 0:
                time.sleep(min(ahead, deadline - now))
                continue
        for _ in range(min(batch, count - sent - errors)):
            r = rand(48)
            sport = (r >> 32) & 0xFFFF or 1024
            seq = r & 0xFFFFFFFF
            port = ports[(sent + errors) % len(ports)]
            total = base + sport + port + (seq >> 16) + (seq & 0xFFFF)
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            pkt = head + pack(sport, port, seq) + mid + csum_pack(~total & 0xFFFF) + tail
            try:
                send(pkt)
                sent += 1
            except OSError as e:
                if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
                errors += 1
    elapsed = time.monotonic() - start
    sock.close()
    print(f"sent {sent} SYNs in {elapsed:.2f} s ({sent / max(elapsed, 1e-9):.0f}/s), {errors} send errors",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
