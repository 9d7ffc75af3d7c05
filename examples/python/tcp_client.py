"""The tutorial's TCP chat client (kernel side), for tcp_chat_server.

Connect, then loop: send a typed line, receive the reply, print it. Stops
after sending or receiving 'bye'. Reads lines from stdin, so it can be
scripted: printf 'hello\\nbye\\n' | python3 tcp_client.py

    python3 tcp_client.py [HOST] [PORT]    (default 10.0.0.2 8888)
"""
import sys
from socket import socket, AF_INET, SOCK_STREAM

host = sys.argv[1] if len(sys.argv) > 1 else '10.0.0.2'
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8888

s = socket(AF_INET, SOCK_STREAM)
s.connect((host, port))
while True:
    msg = input('> ')
    s.send(msg.encode())
    if msg == 'bye':
        break
    data = s.recv(1024).decode()
    print(data, flush=True)
    if data == 'bye':
        break
s.close()
