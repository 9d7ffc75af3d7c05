#!/usr/bin/env python3
"""A plain UDP client, written like the tutorial's udp_client.py.

Sends each message to HOST:PORT and prints each reply on its own line.

    python3 udp_client.py HOST PORT MESSAGE...

Options (before HOST):
    --connect     connect() the socket first, so an ICMP port unreachable
                  from the peer surfaces as ConnectionRefusedError
    --timeout S   seconds to wait for each reply (default 3)

Exit status: 0 when every message got a reply; 1 on a timeout; 2 when the
peer refused (ICMP port unreachable); 64 on a usage error.
"""

import socket
import sys


def main(argv):
    connect = False
    timeout = 3.0
    args = list(argv[1:])
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--connect":
            connect = True
        elif opt == "--timeout" and args:
            timeout = float(args.pop(0))
        else:
            print(f"usage error: unknown option {opt}", file=sys.stderr)
            return 64
    if len(args) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    host, port, messages = args[0], int(args[1]), args[2:]

    # AF_INET6 for an IPv6 address such as fd00::2.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client = socket.socket(family, socket.SOCK_DGRAM)
    client.settimeout(timeout)
    try:
        if connect:
            client.connect((host, port))
        for msg in messages:
            if connect:
                client.send(msg.encode("utf-8"))
            else:
                client.sendto(msg.encode("utf-8"), (host, port))
            # The tutorial reads 1024 bytes; the stack also echoes fragmented
            # datagrams, so read up to the largest UDP payload.
            data, addr = client.recvfrom(65535)
            print(data.decode("utf-8"), flush=True)
    except ConnectionRefusedError as e:
        print(f"ConnectionRefusedError: {e}", file=sys.stderr)
        return 2
    except socket.timeout:
        print(f"timeout: no reply from {host}:{port} within {timeout}s", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
