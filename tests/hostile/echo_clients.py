#!/usr/bin/env python3
"""Real kernel clients of the stack's TCP echo, for the hostile-traffic tests.

    python3 echo_clients.py HOST PORT [--total N] [--parallel P] [--timeout S]
                            [--seconds D]

Opens N connections in all (default 300), P at a time (default 4; each of P
threads opens one connection after another). Each connection sends a short
message, reads its echo back, half-closes, reads to EOF and closes; the
whole exchange must finish within S seconds (default 4) from the start of
connect(), else it counts as failed. With --seconds, the N connections are
spread over about D seconds (each thread waits between its connections), so
they keep coming for the length of a flood rather than finishing early.

Prints `clients started` first, then one line per failure on stderr, and at
the end:

    ok K/N failed F connect-ms median M p99 Q max X elapsed E s

Exit 0 whatever the outcome (the caller judges the success rate); 64 on a
usage error. Run it inside the test's network namespace only.
"""

import socket
import sys
import threading
import time


def one(host, port, index, timeout):
    """One echo exchange. Returns (ok, connect seconds, error text)."""
    msg = f"hostile test client {index}\n".encode()
    start = time.monotonic()
    connected = None
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        connected = time.monotonic() - start
        try:
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    raise socket.timeout("echo not back in time")
                s.settimeout(left)
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            if got != msg:
                return False, connected, f"echo differs: {got!r}"
            s.shutdown(socket.SHUT_WR)
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise socket.timeout("no EOF in time")
            s.settimeout(left)
            if s.recv(4096) != b"":
                return False, connected, "data after the echo"
        finally:
            s.close()
    except OSError as e:
        return False, connected, f"{e!r} (connected: {connected is not None})"
    return True, connected, ""


def main(argv):
    opts = {"--total": "300", "--parallel": "4", "--timeout": "4", "--seconds": "0"}
    rest = []
    it = iter(argv[1:])
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
    host, port = rest[0], int(rest[1])
    total, parallel = int(opts["--total"]), max(1, int(opts["--parallel"]))
    timeout, spread = float(opts["--timeout"]), float(opts["--seconds"])

    lock = threading.Lock()
    next_index = [0]
    results = []
    start = time.monotonic()
    # Connection i is due at start + i * gap (when spreading).
    gap = spread / total if spread > 0 else 0.0

    def worker():
        while True:
            with lock:
                i = next_index[0]
                if i >= total:
                    return
                next_index[0] += 1
            due = start + i * gap
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            ok, connect_s, err = one(host, port, i, timeout)
            with lock:
                results.append((ok, connect_s))
                if not ok:
                    at = time.monotonic() - start
                    print(f"client {i} failed at {at:.2f} s: {err}", file=sys.stderr, flush=True)

    print("clients started", flush=True)
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    ok = sum(1 for r in results if r[0])
    times = sorted(r[1] * 1000 for r in results if r[1] is not None)

    def pct(p):
        return times[min(len(times) - 1, int(p * len(times)))] if times else float("nan")

    print(f"ok {ok}/{total} failed {total - ok} connect-ms median {pct(0.5):.1f} p99 {pct(0.99):.1f} "
          f"max {times[-1] if times else float('nan'):.1f} elapsed {elapsed:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
