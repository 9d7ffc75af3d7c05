"""The tutorial's TCP chat server (kernel side), for tcp_chat_client.

Waits for one client, then: receive a message, print it, reply with a line
typed here. Either side ends the conversation by sending 'bye'.
--auto-reply answers 'echo: <msg>' instead of reading replies (for scripts).

    python3 tcp_server.py [--auto-reply] [HOST] [PORT]    (default '' 8888)
"""
import sys
from socket import socket, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR

args = [a for a in sys.argv[1:] if a != '--auto-reply']
auto = '--auto-reply' in sys.argv
host = args[0] if args else ''
port = int(args[1]) if len(args) > 1 else 8888

s = socket(AF_INET, SOCK_STREAM)
s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(5)
print('waiting for a connection on %s:%d' % (host or '*', port), flush=True)
conn, addr = s.accept()
print('connected by', addr, flush=True)
while True:
    data = conn.recv(1024).decode()
    if not data:
        break
    print('client:', data, flush=True)
    if data == 'bye':
        break
    msg = ('echo: ' + data) if auto else input('> ')
    conn.send(msg.encode())
    if msg == 'bye':
        break
conn.close()
s.close()
