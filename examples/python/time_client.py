"""The tutorial's UDP time client (kernel side), for time_server: sends each
typed strftime format (empty: the server's default), prints the answer.
'bye', 'quit' or the end of input stops it.

    python3 time_client.py [HOST] [PORT]    (default 10.0.0.2 9000)
"""
import sys
from socket import socket, AF_INET, SOCK_DGRAM

host = sys.argv[1] if len(sys.argv) > 1 else '10.0.0.2'
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
s = socket(AF_INET, SOCK_DGRAM)
s.settimeout(2)
while True:
    try:
        fmt = input('format> ')
    except EOFError:
        break
    if fmt in ('bye', 'quit'):
        break
    s.sendto(fmt.encode(), (host, port))
    data, addr = s.recvfrom(1024)
    print(data.decode(), flush=True)
s.close()
