#!/usr/bin/env python3
"""Kernel-side TCP programs for the netns tests, the demo and make-pcaps.sh.

    python3 tcp_tool.py echo HOST PORT [--size N] [--clients K] [--timeout S]
        K clients at once (threads), each sending N bytes of a pattern while
        it reads the echo back, then half-closing and reading to EOF. Exit 0
        when every client got exactly its bytes back. Prints one summary
        line; with one client it also prints its local port.

    python3 tcp_tool.py chat HOST PORT MESSAGE... [--timeout S]
        Sends each message and reads its echo back, then closes first (the
        kernel's FIN goes out before the stack's). Prints the local port.

    python3 tcp_tool.py idle HOST PORT SECONDS
        Connects, sends one byte, reads its echo, then stays idle for SECONDS
        before closing. Prints the local port.

    python3 tcp_tool.py refused HOST PORT
        Connects to a port with no listener: exit 2 on ConnectionRefusedError
        (the peer's RST), 1 on anything else (also when it connected).

    python3 tcp_tool.py http HOST PORT PATH [--http10] [--timeout S]
        One GET, then reads to EOF (HTTP/1.0, or HTTP/1.1 with
        `Connection: close`: the server closes first). Prints the local port
        once connected, then the status line and the body length; exit 1
        unless the status is 200 and the body's length matches Content-Length.

    python3 tcp_tool.py bytes HOST PORT N [--rcvbuf B] [--pause S]
        GETs /bytes/N (HTTP/1.1, `Connection: close`) and checks the body is
        the pattern (byte i is i % 251). With --rcvbuf the socket's receive
        buffer is B bytes; with --pause it reads nothing for S seconds first,
        so a small buffer fills and the window closes (zero window). Exit 0
        when all N bytes arrived intact.

    python3 tcp_tool.py serve PORT [--upper] [--close-on-first-byte] [--timeout S]
        A server on 10.0.0.1:PORT for one client. Prints `listening` once it
        accepts connections, `accepted IP:PORT` once the client is connected.
        Default (and --upper): reads to EOF, sends back
        what it read (uppercased with --upper), closes. With
        --close-on-first-byte it half-closes (shutdown SHUT_WR) as soon as
        the first byte arrives, then reads to EOF. Prints what it received.

Exit status 64 on a usage error; 3 on a timeout.
"""

import socket
import sys
import threading
import time


def family(host):
    """AF_INET6 for an IPv6 address such as fd00::2, else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET

PATTERN_MOD = 251


def pattern(n, seed=0):
    """n bytes of the echo test pattern (differs per client via seed)."""
    return bytes((i * 7 + seed) % 256 for i in range(n))


def bytes_pattern(n):
    """The HTTP service's /bytes/N body: byte i is i % 251."""
    block = bytes(range(PATTERN_MOD))
    return (block * (n // PATTERN_MOD + 1))[:n]


def options(args, flags, valued):
    """Splits --flag / --key VALUE options out of args."""
    opts = {}
    rest = []
    it = iter(args)
    for a in it:
        if a in flags:
            opts[a] = True
        elif a in valued:
            try:
                opts[a] = next(it)
            except StopIteration:
                raise SystemExit(usage(f"{a} needs a value"))
        elif a.startswith("--"):
            raise SystemExit(usage(f"unknown option {a}"))
        else:
            rest.append(a)
    return opts, rest


def usage(msg):
    print(f"usage error: {msg}\n\n{__doc__.strip()}", file=sys.stderr)
    return 64


def echo_one(host, port, size, seed, timeout, results, index):
    data = pattern(size, seed)
    got = bytearray()
    err = []
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        s.settimeout(timeout)

        def send():
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                err.append(f"send: {e!r}")

        sender = threading.Thread(target=send)
        sender.start()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got.extend(chunk)
        sender.join()
        port_here = s.getsockname()[1]
        s.close()
    except OSError as e:
        results[index] = (False, f"client {index}: {e!r} after {len(got)} bytes", None)
        return
    if err:
        results[index] = (False, f"client {index}: {err[0]}", port_here)
    elif bytes(got) != data:
        first = next((i for i, (a, b) in enumerate(zip(got, data)) if a != b), min(len(got), len(data)))
        results[index] = (
            False,
            f"client {index}: got {len(got)} of {size} bytes, first difference at offset {first}",
            port_here,
        )
    else:
        results[index] = (True, "", port_here)


def cmd_echo(args):
    opts, rest = options(args, set(), {"--size", "--clients", "--timeout"})
    if len(rest) != 2:
        return usage("echo HOST PORT")
    host, port = rest[0], int(rest[1])
    size = int(opts.get("--size", 100000))
    clients = int(opts.get("--clients", 1))
    timeout = float(opts.get("--timeout", 20))
    results = [None] * clients
    threads = [
        threading.Thread(target=echo_one, args=(host, port, size, i, timeout, results, i))
        for i in range(clients)
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    failures = [r[1] for r in results if r is None or not r[0]]
    for f in failures:
        print(f, file=sys.stderr)
    ok = clients - len(failures)
    print(f"echo: {ok}/{clients} clients got their {size} bytes back intact in {elapsed:.2f}s")
    if clients == 1 and results[0] and results[0][2]:
        print(f"local port {results[0][2]}")
    return 0 if not failures else 1


def cmd_chat(args):
    opts, rest = options(args, set(), {"--timeout"})
    if len(rest) < 3:
        return usage("chat HOST PORT MESSAGE...")
    host, port, messages = rest[0], int(rest[1]), rest[2:]
    s = socket.create_connection((host, port), timeout=float(opts.get("--timeout", 10)))
    print(f"local port {s.getsockname()[1]}", flush=True)
    for msg in messages:
        data = msg.encode()
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        print(got.decode(errors="replace"), flush=True)
        if got != data:
            print(f"echo differs: sent {data!r}, got {got!r}", file=sys.stderr)
            return 1
    # We close first: FIN from the kernel; the stack answers with its own.
    s.shutdown(socket.SHUT_WR)
    rest_data = s.recv(65536)
    s.close()
    if rest_data:
        print(f"unexpected data after close: {rest_data!r}", file=sys.stderr)
        return 1
    return 0


def cmd_idle(args):
    if len(args) != 3:
        return usage("idle HOST PORT SECONDS")
    host, port, seconds = args[0], int(args[1]), float(args[2])
    s = socket.create_connection((host, port), timeout=10)
    print(f"local port {s.getsockname()[1]}", flush=True)
    s.sendall(b"k")
    if s.recv(1) != b"k":
        print("no echo of the first byte", file=sys.stderr)
        return 1
    time.sleep(seconds)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    return 0


def cmd_refused(args):
    if len(args) != 2:
        return usage("refused HOST PORT")
    host, port = args[0], int(args[1])
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
    except ConnectionRefusedError as e:
        print(f"ConnectionRefusedError: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"expected ConnectionRefusedError, got {e!r}", file=sys.stderr)
        return 1
    print(f"connected to {host}:{port}, expected a refusal", file=sys.stderr)
    return 1


def cmd_http(args):
    opts, rest = options(args, {"--http10"}, {"--timeout"})
    if len(rest) != 3:
        return usage("http HOST PORT PATH")
    host, port, path = rest[0], int(rest[1]), rest[2]
    s = socket.create_connection((host, port), timeout=float(opts.get("--timeout", 10)))
    local_port = s.getsockname()[1]
    print(f"local port {local_port}", flush=True)
    if "--http10" in opts:
        req = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"
    else:
        req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    s.sendall(req.encode())
    data = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data.extend(chunk)
    s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = lines[0] if lines else ""
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    print(status)
    print(f"body {len(body)} bytes")
    if " 200 " not in status + " " or (length is not None and length != len(body)):
        print(f"bad response: {status!r}, Content-Length {length}, body {len(body)}", file=sys.stderr)
        return 1
    return 0


def cmd_bytes(args):
    opts, rest = options(args, set(), {"--rcvbuf", "--pause", "--timeout"})
    if len(rest) != 3:
        return usage("bytes HOST PORT N")
    host, port, n = rest[0], int(rest[1]), int(rest[2])
    pause = float(opts.get("--pause", 0))
    s = socket.socket(family(host), socket.SOCK_STREAM)
    if "--rcvbuf" in opts:
        # Before connect(), so the window scale and the first window follow it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(opts["--rcvbuf"]))
    s.settimeout(float(opts.get("--timeout", 20)))
    s.connect((host, port))
    print(f"local port {s.getsockname()[1]}", flush=True)
    s.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    time.sleep(pause)
    data = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data.extend(chunk)
    s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    print(status)
    print(f"body {len(body)} bytes")
    if len(body) != n or body != bytes_pattern(n):
        print(f"expected {n} bytes of the pattern, got {len(body)} bytes", file=sys.stderr)
        return 1
    print("body is the expected pattern")
    return 0


def cmd_serve(args):
    opts, rest = options(args, {"--upper", "--close-on-first-byte"}, {"--timeout"})
    if len(rest) != 1:
        return usage("serve PORT")
    port = int(rest[0])
    timeout = float(opts.get("--timeout", 20))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("10.0.0.1", port))
    srv.listen(1)
    srv.settimeout(timeout)
    print("listening", flush=True)
    conn, peer = srv.accept()
    print(f"accepted {peer[0]}:{peer[1]}", flush=True)
    conn.settimeout(timeout)
    got = bytearray()
    if "--close-on-first-byte" in opts:
        got.extend(conn.recv(65536))
        conn.shutdown(socket.SHUT_WR)
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        got.extend(chunk)
    if "--close-on-first-byte" not in opts:
        reply = bytes(got).upper() if "--upper" in opts else bytes(got)
        conn.sendall(reply)
    conn.close()
    srv.close()
    print(f"received {len(got)} bytes from {peer[0]}:{peer[1]}: {bytes(got)[:200]!r}", flush=True)
    return 0


COMMANDS = {
    "echo": cmd_echo,
    "chat": cmd_chat,
    "idle": cmd_idle,
    "refused": cmd_refused,
    "http": cmd_http,
    "bytes": cmd_bytes,
    "serve": cmd_serve,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        return usage("no command" if len(argv) < 2 else f"unknown command {argv[1]}")
    try:
        return COMMANDS[argv[1]](argv[2:])
    except socket.timeout as e:
        print(f"timeout: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
