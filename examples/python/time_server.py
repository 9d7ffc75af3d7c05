"""The tutorial's UDP time server (kernel side), for time_client: replies
the local time in the strftime format received ('' means '%Y-%m-%d %X').

    python3 time_server.py [PORT]    (default 9000)
"""
import sys
import time
from socket import socket, AF_INET, SOCK_DGRAM

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
s = socket(AF_INET, SOCK_DGRAM)
s.bind(('', port))
print('time server on port', port, flush=True)
while True:
    data, addr = s.recvfrom(1024)
    fmt = data.decode().strip() or '%Y-%m-%d %X'
    print('%s:%s asked' % addr, repr(fmt), flush=True)
    s.sendto(time.strftime(fmt).encode(), addr)
