"""The tutorial's UDP server (kernel side), for udp_client: echoes each
datagram back as-is.

    python3 udp_server.py [PORT]    (default 9999)
"""
import sys
from socket import socket, AF_INET, SOCK_DGRAM

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
s = socket(AF_INET, SOCK_DGRAM)
s.bind(('', port))
print('udp server on port', port, flush=True)
while True:
    data, addr = s.recvfrom(1024)
    print('received from %s:%s:' % addr, data.decode(), flush=True)
    s.sendto(data, addr)
