"""The tutorial's UDP client (kernel side), for udp_server: sends each typed
line, prints the reply; an empty line or 'bye' ends it.

    python3 udp_client.py [HOST] [PORT]    (default 10.0.0.2 9999)
"""
import sys
from socket import socket, AF_INET, SOCK_DGRAM

host = sys.argv[1] if len(sys.argv) > 1 else '10.0.0.2'
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9999
s = socket(AF_INET, SOCK_DGRAM)
s.settimeout(2)
while True:
    try:
        msg = input('> ')
    except EOFError:
        break
    if not msg or msg == 'bye':
        break
    s.sendto(msg.encode(), (host, port))
    data, addr = s.recvfrom(1024)
    print(data.decode(), flush=True)
s.close()
