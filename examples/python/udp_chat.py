"""The tutorial's QQ-style UDP chat (kernel side), for udp_chat: one thread
sends typed lines to the peer, another prints what arrives; 'bye' from
either side ends it. When stdin ends, it keeps receiving until 'bye'.

    python3 udp_chat.py [PORT] [PEER_HOST] [PEER_PORT]   (default 9002 10.0.0.2 9001)
"""
import sys
import threading
from socket import socket, AF_INET, SOCK_DGRAM

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9002
peer = (sys.argv[2] if len(sys.argv) > 2 else '10.0.0.2',
        int(sys.argv[3]) if len(sys.argv) > 3 else 9001)
s = socket(AF_INET, SOCK_DGRAM)
s.bind(('', port))
done = threading.Event()


def send():
    while not done.is_set():
        try:
            msg = input()
        except EOFError:
            return
        s.sendto(msg.encode(), peer)
        if msg == 'bye':
            done.set()
            return


def receive():
    s.settimeout(0.2)
    while not done.is_set():
        try:
            data, addr = s.recvfrom(1024)
        except OSError:
            continue
        print('%s:%s:' % addr, data.decode(), flush=True)
        if data.decode() == 'bye':
            done.set()


threading.Thread(target=send, daemon=True).start()
receive()
print('chat over', flush=True)
