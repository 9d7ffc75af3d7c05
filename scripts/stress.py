#!/usr/bin/env python3
"""tunstack's load tests, run inside a private network namespace by
scripts/stress.sh (never call it in the root namespace: it adds addresses to
the TUN and sets sysctls).

It starts the `tunstack` binary on a TUN, drives it with the kernel's own TCP
(python sockets, several worker processes: one process may hold at most
RLIMIT_NOFILE sockets), and reads the stack's counters through its `stats`
command and its memory through /proc. Each scenario prints progress to stderr
and adds rows to a Markdown table: what was measured, the figure, the bound
it is held to, and PASS/FAIL. The exit status is 1 if any row failed.

Scenarios (`--quick` scales them down for CI):
  burst    N connects, 250 in flight, one echo each, held, then closed
  many     N idle connections from several source addresses, held, then one
           echo on each (c10k / c100k)
  killed   a client killed with open connections and unread data, half of
           its RSTs lost: the services' keepalive must reap the rest
  flood    forged out-of-window ACKs with a live transfer's 4-tuple
  stalled  HTTP clients that stop reading: every response completes or is
           reset, none is cut short with a normal FIN
  soak     connect/echo/close in a loop, memory sampled
"""

import argparse
import errno
import json
import os
import random
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

TARGET = "10.0.0.2"
HOST = "10.0.0.1"
TUN = "tun0"
ECHO, SOURCE, HTTP = 7, 5001, 80
# Extra kernel-side addresses (inside 10.0.0.0/24) so that more than ~64k
# connections to one port have distinct 4-tuples.
EXTRA_SOURCES = [f"10.0.0.{i}" for i in range(11, 19)]
PATTERN_PERIOD = 251  # the source and HTTP services' test pattern: byte i = i % 251


def log(msg):
    print(f"[stress {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


# --------------------------------------------------------------------------
# The stack under test


class Stack:
    """The tunstack binary, its stdin (for `stats`) and its stdout lines."""

    def __init__(self, binary, extra_args, log_path):
        args = [binary, "run", "--tun", TUN, "--host-addr", f"{HOST}/24"] + extra_args
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env
        )
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_line(lambda l: " up on " in l, 15)
        # The stack created the TUN; give its kernel side the extra source
        # addresses.
        for src in EXTRA_SOURCES:
            subprocess.run(["ip", "addr", "add", f"{src}/24", "dev", TUN], capture_output=True)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def _wait_line(self, pred, timeout, start=0):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    if pred(self.lines[i]):
                        return i
                left = deadline - time.time()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(
                        "tunstack did not print the expected line; last lines:\n"
                        + "\n".join(self.lines[-20:])
                    )
                self.cond.wait(left)

    def stats(self):
        """The counters as a dict: tcp connections, kernel drops, ..."""
        with self.cond:
            start = len(self.lines)
        self.proc.stdin.write(b"stats\n")
        self.proc.stdin.flush()
        end = self._wait_line(lambda l: l.startswith("drops:"), 10, start)
        with self.cond:
            block = self.lines[start : end + 1]
        out = {}
        for line in block:
            if line.startswith("tcp:"):
                for key, label in [
                    ("connections", "connections"),
                    ("resets_sent", "resets sent"),
                    ("listen_overflow", "listen overflows"),
                    ("syn_cookies_sent", "SYN cookies sent"),
                    ("challenge_acks", "challenge ACKs"),
                    ("oow_acks_limited", "out-of-window ACKs limited"),
                    ("segments_out", "out"),
                    ("timeouts", "timeouts"),
                ]:
                    m = re.search(r"(\d+) " + re.escape(label), line)
                    if m:
                        out[key] = int(m.group(1))
                m = re.search(r"\((\d+) limited\)", line)
                if m:
                    out["challenge_acks_limited"] = int(m.group(1))
            elif line.startswith("dev:"):
                m = re.search(r"kernel dropped (\d+) on the way", line)
                out["kernel_drops"] = int(m.group(1)) if m else 0
        return out

    def rss_mib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return float("nan")

    def wait_connections(self, target, timeout, poll=0.1):
        """Seconds until the table holds at most `target` connections, or None."""
        start = time.time()
        while time.time() - start < timeout:
            if self.stats().get("connections", -1) <= target:
                return time.time() - start
            time.sleep(poll)
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------------
# Worker processes: each holds up to RLIMIT_NOFILE connections


class Conn:
    __slots__ = ("sock", "msg", "got", "t0", "state")


class Worker:
    """Connections from one source address, driven by epoll."""

    def __init__(self, src, port, count, inflight, timeout):
        self.src, self.port, self.count = src, port, count
        self.inflight, self.timeout = inflight, timeout
        self.sel = selectors.DefaultSelector()
        self.held = []

    def _msg(self, i, round_):
        return f"{self.src}/{i}/{round_}/".ljust(47, "x").encode() + b"\n"

    def connect(self, echo):
        """Opens `count` connections (and with `echo`, one echo on each as
        soon as it is up), at most `inflight` unfinished at a time."""
        res = {"ok": 0, "reset": 0, "refused": 0, "timeout": 0, "other": 0, "mismatch": 0}
        lat = []
        started = 0
        active = 0
        deadline = time.time() + self.timeout
        while (started < self.count or active) and time.time() < deadline:
            while started < self.count and active < self.inflight:
                c = Conn()
                c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.sock.setblocking(False)
                c.sock.setsockopt(socket.SOL_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
                c.sock.bind((self.src, 0))
                c.msg = self._msg(started, 0)
                c.got = b""
                c.t0 = time.time()
                c.state = "connecting"
                err = c.sock.connect_ex((TARGET, self.port))
                if err not in (0, errno.EINPROGRESS):
                    res["other"] += 1
                    c.sock.close()
                else:
                    self.sel.register(c.sock, selectors.EVENT_WRITE, c)
                    active += 1
                started += 1
            for key, _ in self.sel.select(0.2):
                c = key.data
                done = self._step(c, echo, res)
                if done:
                    active -= 1
                    if c.state == "held":
                        lat.append(time.time() - c.t0)
        for key in list(self.sel.get_map().values()):
            res["timeout"] += 1
            self.sel.unregister(key.fileobj)
            key.fileobj.close()
        return {"result": res, "latencies": lat}

    def _fail(self, c, res, e):
        name = {errno.ECONNRESET: "reset", errno.ECONNREFUSED: "refused", errno.ETIMEDOUT: "timeout"}
        res[name.get(e, "other")] += 1
        self.sel.unregister(c.sock)
        c.sock.close()
        c.state = "failed"
        return True

    def _step(self, c, echo, res):
        if c.state == "connecting":
            e = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                return self._fail(c, res, e)
            if not echo:
                self.sel.unregister(c.sock)
                c.state = "held"
                self.held.append(c)
                res["ok"] += 1
                return True
            c.state = "echo"
            try:
                c.sock.send(c.msg)
            except OSError as ex:
                return self._fail(c, res, ex.errno)
            self.sel.modify(c.sock, selectors.EVENT_READ, c)
            return False
        if c.state == "echo":
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                return False
            except OSError as ex:
                return self._fail(c, res, ex.errno)
            if not data:
                res["other"] += 1
                self.sel.unregister(c.sock)
                c.sock.close()
                c.state = "failed"
                return True
            c.got += data
            if len(c.got) >= len(c.msg):
                self.sel.unregister(c.sock)
                if c.got != c.msg:
                    res["mismatch"] += 1
                    c.sock.close()
                    c.state = "failed"
                    return True
                c.state = "held"
                self.held.append(c)
                res["ok"] += 1
                return True
        return False

    def echo_all(self, round_):
        """One echo on every held connection, `inflight` at a time."""
        res = {"ok": 0, "reset": 0, "refused": 0, "timeout": 0, "other": 0, "mismatch": 0}
        lat = []
        todo = list(self.held)
        self.held = []
        active = 0
        deadline = time.time() + self.timeout
        i = 0
        while (i < len(todo) or active) and time.time() < deadline:
            while i < len(todo) and active < self.inflight:
                c = todo[i]
                c.msg = self._msg(i, round_)
                c.got = b""
                c.t0 = time.time()
                c.state = "echo"
                i += 1
                try:
                    c.sock.send(c.msg)
                except OSError as ex:
                    self.sel.register(c.sock, selectors.EVENT_READ, c)
                    self._fail(c, res, ex.errno)
                    continue
                self.sel.register(c.sock, selectors.EVENT_READ, c)
                active += 1
            for key, _ in self.sel.select(0.2):
                c = key.data
                if self._step(c, True, res):
                    active -= 1
                    if c.state == "held":
                        lat.append(time.time() - c.t0)
        for key in list(self.sel.get_map().values()):
            res["timeout"] += 1
            self.sel.unregister(key.fileobj)
            key.fileobj.close()
        return {"result": res, "latencies": lat}

    def send_unread(self, size):
        """Sends `size` bytes on every held connection and never reads the
        echo: closing (or dying) with unread data makes the kernel send RST."""
        sent = 0
        for c in self.held:
            try:
                c.sock.send(b"u" * size)
                sent += 1
            except OSError:
                pass
        return {"sent": sent}

    def close_all(self):
        n = len(self.held)
        for c in self.held:
            c.sock.close()
        self.held = []
        return {"closed": n}


def worker_main(args):
    raise_nofile()
    w = Worker(args.src, args.port, args.count, args.inflight, args.timeout)
    out = sys.stdout
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "connect":
            r = w.connect(echo=cmd[1] == "echo")
        elif cmd[0] == "echo":
            r = w.echo_all(int(cmd[1]))
        elif cmd[0] == "unread":
            r = w.send_unread(int(cmd[1]))
        elif cmd[0] == "close":
            r = w.close_all()
        else:
            break
        out.write(json.dumps(r) + "\n")
        out.flush()


class Workers:
    """A set of worker processes, commanded together."""

    def __init__(self, script, port, counts_by_src, inflight, timeout):
        self.procs = []
        for src, count in counts_by_src:
            cmd = [sys.executable, script, "worker", "--src", src, "--port", str(port)]
            cmd += ["--count", str(count), "--inflight", str(inflight), "--timeout", str(timeout)]
            self.procs.append(
                subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            )

    def command(self, cmd, procs=None):
        procs = self.procs if procs is None else procs
        for p in procs:
            p.stdin.write((cmd + "\n").encode())
            p.stdin.flush()
        return [json.loads(p.stdout.readline() or b"{}") for p in procs]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.stdin.write(b"quit\n")
                    p.stdin.flush()
                except OSError:
                    pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def merge(results):
    total = {}
    lat = []
    for r in results:
        for k, v in r.get("result", {}).items():
            total[k] = total.get(k, 0) + v
        lat.extend(r.get("latencies", []))
    return total, lat


# --------------------------------------------------------------------------
# Report


class Report:
    def __init__(self):
        self.rows = []
        self.failed = False

    def row(self, scenario, what, value, bound=None, ok=None):
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        if ok is False:
            self.failed = True
        self.rows.append((scenario, what, value, bound or "", verdict))
        tail = f" [{bound}: {verdict}]" if bound else ""
        log(f"{scenario}: {what}: {value}{tail}")

    def markdown(self):
        out = ["| scenario | measured | value | bound | |", "|---|---|---|---|---|"]
        for r in self.rows:
            out.append("| " + " | ".join(str(x) for x in r) + " |")
        return "\n".join(out)


def fmt_ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds == seconds else "-"


# --------------------------------------------------------------------------
# Scenarios


def scenario_burst(ctx, count):
    """Connects with 250 in flight, one echo each, all held; then closed."""
    name = f"burst {count}"
    stack = ctx.start_stack([])
    log(f"{name}: connecting {count} clients to echo, 250 in flight")
    per = min(count, ctx.per_worker)
    plan = []
    left = count
    srcs = [HOST] + EXTRA_SOURCES
    while left > 0:
        plan.append((srcs[len(plan) % len(srcs)], min(per, left)))
        left -= per
    inflight = max(1, 250 // len(plan))
    ws = Workers(ctx.script, ECHO, plan, inflight, 120)
    try:
        t0 = time.time()
        res, lat = merge(ws.command("connect echo"))
        took = time.time() - t0
        st = stack.stats()
        held_rss = stack.rss_mib()
        r = ctx.report
        r.row(name, "established and echoed", f"{res.get('ok', 0)} / {count}", f"= {count}", res.get("ok", 0) == count)
        r.row(name, "client resets", res.get("reset", 0), "= 0", res.get("reset", 0) == 0)
        r.row(name, "other failures (refused, timeout, wrong echo)",
              res.get("refused", 0) + res.get("timeout", 0) + res.get("other", 0) + res.get("mismatch", 0), "= 0",
              res.get("refused", 0) + res.get("timeout", 0) + res.get("other", 0) + res.get("mismatch", 0) == 0)
        r.row(name, "connect + echo latency p50 / p99 / max",
              f"{fmt_ms(percentile(lat, 50))} / {fmt_ms(percentile(lat, 99))} / {fmt_ms(max(lat) if lat else float('nan'))}",
              "max < 5 s", bool(lat) and max(lat) < 5.0)
        r.row(name, "time for all", f"{took:.1f} s ({count / took:.0f} conn/s)")
        r.row(name, "stack: listen overflows / SYN cookies / resets sent",
              f"{st.get('listen_overflow', 0)} / {st.get('syn_cookies_sent', 0)} / {st.get('resets_sent', 0)}")
        r.row(name, "kernel drops toward the stack", st.get("kernel_drops", 0))
        r.row(name, "connections in the stack while held", st.get("connections", 0), f"= {count}",
              st.get("connections", 0) == count)
        r.row(name, "stack RSS while held", f"{held_rss:.1f} MiB",
              "< 100 MiB" if count >= 10000 else None, (held_rss < 100) if count >= 10000 else None)
        t_close = time.time()
        ws.command("close")
        empty = stack.wait_connections(0, 30)
        r.row(name, "table empty after close", f"{empty:.1f} s" if empty is not None else "not in 30 s",
              "< 5 s", empty is not None and empty < 5)
        rss_after = sample_rss_until(stack, t_close + 10, below=50)
        r.row(name, "stack RSS 10 s after close", f"{rss_after:.1f} MiB", "< 50 MiB", rss_after < 50)
    finally:
        ws.close()
        stack.stop()


def sample_rss_until(stack, until, below):
    """Waits until `until` (or RSS under `below`, checked a moment later
    too), returning the last RSS."""
    rss = stack.rss_mib()
    while time.time() < until:
        rss = stack.rss_mib()
        if rss < below:
            break
        time.sleep(0.25)
    return rss


def scenario_many(ctx, count, hold):
    """`count` idle connections from several source addresses, held for
    `hold` s, then one echo on each."""
    name = f"{count // 1000}k idle"
    stack = ctx.start_stack([])
    workers = max(1, -(-count // ctx.per_worker))
    srcs = [HOST] + EXTRA_SOURCES
    per, extra = divmod(count, workers)
    plan = [(srcs[i % len(srcs)], per + (1 if i < extra else 0)) for i in range(workers)]
    log(f"{name}: {count} connections from {workers} processes on {len({s for s, _ in plan})} source addresses")
    ws = Workers(ctx.script, ECHO, plan, max(1, 500 // workers), 300)
    r = ctx.report
    try:
        rss0 = stack.rss_mib()
        t0 = time.time()
        res, _ = merge(ws.command("connect idle"))
        took = time.time() - t0
        ok = res.get("ok", 0)
        r.row(name, "established", f"{ok} / {count}", f"= {count}", ok == count)
        r.row(name, "time to connect all", f"{took:.1f} s ({count / took:.0f} conn/s)")
        log(f"{name}: holding {hold} s")
        peak = stack.rss_mib()
        end = time.time() + hold
        while time.time() < end:
            time.sleep(min(1.0, max(0.0, end - time.time())))
            peak = max(peak, stack.rss_mib())
        st = stack.stats()
        r.row(name, f"connections in the stack after {hold} s", st.get("connections", 0), f"= {count}",
              st.get("connections", 0) == count)
        log(f"{name}: one echo on each")
        t1 = time.time()
        res, lat = merge(ws.command("echo 1"))
        took = time.time() - t1
        r.row(name, "echoed after the hold", f"{res.get('ok', 0)} / {count}", f"= {count}", res.get("ok", 0) == count)
        r.row(name, "echo latency p50 / p99 / max",
              f"{fmt_ms(percentile(lat, 50))} / {fmt_ms(percentile(lat, 99))} / {fmt_ms(max(lat) if lat else float('nan'))}")
        r.row(name, "time for all echoes", f"{took:.1f} s")
        peak = max(peak, stack.rss_mib())
        per_conn = (peak - rss0) * 1024 / max(count, 1)
        r.row(name, "stack RSS peak", f"{peak:.1f} MiB ({per_conn:.1f} KiB per connection)",
              "< 1024 MiB", peak < 1024)
        st = stack.stats()
        r.row(name, "kernel drops toward the stack", st.get("kernel_drops", 0))
        ws.command("close")
        # Closing 100,000 at once sends 100,000 FINs in a burst: those the
        # TUN queue or the kernel's orphan limits lose are reaped by the
        # services' keepalive, so the bound is the keepalive bound.
        bound = 130 if ctx.full else 60
        empty = stack.wait_connections(0, bound, poll=0.5)
        st = stack.stats()
        r.row(name, "table empty after close",
              f"{empty:.1f} s" if empty is not None
              else f"not in {bound} s: {st.get('connections', 0)} left",
              f"< {bound} s (keepalive bound)", empty is not None)
        r.row(name, "kernel drops toward the stack, after the close", st.get("kernel_drops", 0))
    finally:
        ws.close()
        stack.stop()


def scenario_killed(ctx, count, keepalive):
    """A client with `count` open connections and unread data is killed;
    the RSTs of half of them are lost (the link is down when that half
    dies). The services' keepalive must reap what is left."""
    idle_ms, interval_ms, probes = keepalive
    bound = (idle_ms + interval_ms * probes) / 1000.0
    name = f"killed {count}"
    args = [] if ctx.full else ["--service-keepalive", f"{idle_ms},{interval_ms},{probes}"]
    stack = ctx.start_stack(args)
    half = count // 2
    ws = Workers(ctx.script, ECHO, [(HOST, half), (HOST, count - half)], 100, 60)
    r = ctx.report
    try:
        res, _ = merge(ws.command("connect idle"))
        r.row(name, "connected", f"{res.get('ok', 0)} / {count}", f"= {count}", res.get("ok", 0) == count)
        ws.command("unread 1000")
        time.sleep(1.0)  # the echoes arrive and sit unread
        a, b = ws.procs
        a.kill()
        a.wait()
        log(f"{name}: first half killed with the link up (its RSTs arrive)")
        time.sleep(0.5)
        subprocess.run(["ip", "link", "set", TUN, "down"], check=True)
        b.kill()
        b.wait()
        time.sleep(0.2)
        subprocess.run(["ip", "link", "set", TUN, "up"], check=True)
        for src in EXTRA_SOURCES:
            subprocess.run(["ip", "addr", "replace", f"{src}/24", "dev", TUN], capture_output=True)
        t0 = time.time()
        log(f"{name}: second half killed with the link down (its RSTs lost)")
        left = stack.stats().get("connections", 0)
        r.row(name, "connections left after the RSTs that arrived", left)
        log(f"{name}: waiting for keepalive to reap them (bound {bound:.0f} s)")
        empty = stack.wait_connections(0, bound + 30, poll=0.5)
        r.row(name, "table empty after the kill",
              f"{empty:.1f} s" if empty is not None else f"not in {bound + 30:.0f} s",
              f"<= keepalive bound {bound:.0f} s", empty is not None and empty <= bound + 1)
    finally:
        ws.close()
        stack.stop()


def tcp_checksum(src, dst, segment):
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(segment))
    data = pseudo + segment
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def forged_ack(src, sport, dst, dport, seq, ack):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x10, 65535, 0, 0)
    csum = tcp_checksum(src, dst, tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def netstat_counter(name):
    """A TcpExt counter of this namespace (the kernel client's view)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            d = dict(zip(head.split()[1:], vals.split()[1:]))
            return int(d.get(name, 0))
    return 0


def scenario_flood(ctx, seconds):
    """Forged out-of-window ACKs carrying a live transfer's 4-tuple."""
    name = f"flood {seconds} s"
    stack = ctx.start_stack([])
    r = ctx.report
    sock = socket.create_connection((TARGET, SOURCE), timeout=10)
    sock.sendall(b"1000000000000\n")
    sport = sock.getsockname()[1]
    pattern = bytes(i % PATTERN_PERIOD for i in range(PATTERN_PERIOD * 600))
    state = {"bytes": 0, "bad": False, "error": None, "stop": False}
    marks = {}

    def reader():
        off = 0
        try:
            while not state["stop"]:
                data = sock.recv(65536)
                if not data:
                    if not state["stop"]:
                        state["error"] = "EOF"
                    return
                start = off % PATTERN_PERIOD
                if data != pattern[start : start + len(data)]:
                    state["bad"] = True
                off += len(data)
                state["bytes"] = off
        except OSError as e:
            if not state["stop"]:
                state["error"] = str(e)

    t = threading.Thread(target=reader)
    t.start()
    try:
        time.sleep(1.0)
        before = dict(stack.stats())
        b0 = state["bytes"]
        acks0 = netstat_counter("TCPPureAcks") + netstat_counter("TCPHPAcks")
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        rng = random.Random(7)
        packets = [forged_ack(HOST, sport, TARGET, SOURCE, rng.getrandbits(32), rng.getrandbits(32))
                   for _ in range(4096)]
        log(f"{name}: flooding forged ACKs at {HOST}:{sport} -> {TARGET}:{SOURCE}")
        sent = 0
        t0 = time.time()
        while time.time() - t0 < seconds:
            for p in packets[:512]:
                try:
                    raw.sendto(p, (TARGET, 0))
                    sent += 1
                except OSError:
                    pass
            packets = packets[512:] + packets[:512]
        flood_time = time.time() - t0
        raw.close()
        time.sleep(0.3)
        b1 = state["bytes"]
        acks1 = netstat_counter("TCPPureAcks") + netstat_counter("TCPHPAcks")
        after = stack.stats()
        replies = acks1 - acks0
        limited = after.get("oow_acks_limited", 0) - before.get("oow_acks_limited", 0)
        limited += after.get("challenge_acks_limited", 0) - before.get("challenge_acks_limited", 0)
        r.row(name, "forged segments sent", f"{sent} ({sent / flood_time:.0f}/s)")
        r.row(name, "pure ACKs the client's kernel received meanwhile", replies,
              f"< {sent // 10} (1 per 10 forged)", replies * 10 < sent)
        r.row(name, "replies the stack suppressed (its counters)", limited)
        time.sleep(0.5)
        state["stop"] = True
        sock.shutdown(socket.SHUT_RDWR)
        t.join(10)
        intact = not state["bad"] and state["error"] is None
        r.row(name, "transfer during the flood",
              f"{(b1 - b0) / flood_time / 1e6:.0f} MB/s, {b1 - b0} bytes"
              + ("" if intact else f" (error: {state['error'] or 'wrong bytes'})"),
              "> 0, every byte right, no error", (b1 - b0) > 0 and intact)
    finally:
        sock.close()
        stack.stop()


def scenario_stalled(ctx, count, stall, idle_timeout, body):
    """HTTP clients that stop reading for longer than the service's idle
    timeout: each response completes or is reset, none ends in a FIN early."""
    name = f"stalled {count}"
    stack = ctx.start_stack(["--http-idle-timeout", str(idle_timeout)])
    r = ctx.report
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.connect((TARGET, HTTP))
            s.sendall(f"GET /bytes/{body} HTTP/1.1\r\nHost: {TARGET}\r\n\r\n".encode())
            socks.append(s)
        log(f"{name}: {count} clients asked for {body} bytes each and stopped reading for {stall} s")
        time.sleep(stall)
        outcome = {"complete": 0, "reset": 0, "truncated": 0, "timeout": 0}
        for s in socks:
            s.settimeout(20)
            buf = b""
            length = None
            got = 0
            try:
                while True:
                    data = s.recv(262144)
                    if not data:
                        outcome["complete" if length is not None and got >= length else "truncated"] += 1
                        break
                    if length is None:
                        buf += data
                        if b"\r\n\r\n" in buf:
                            head, rest = buf.split(b"\r\n\r\n", 1)
                            m = re.search(rb"content-length:\s*(\d+)", head, re.I)
                            length = int(m.group(1)) if m else 0
                            got = len(rest)
                    else:
                        got += len(data)
                    if length is not None and got >= length:
                        outcome["complete"] += 1
                        break
            except ConnectionResetError:
                outcome["reset"] += 1
            except socket.timeout:
                outcome["timeout"] += 1
        r.row(name, "responses complete / reset / timed out",
              f"{outcome['complete']} / {outcome['reset']} / {outcome['timeout']}",
              "none timed out", outcome["timeout"] == 0)
        r.row(name, "responses cut short with a normal FIN", outcome["truncated"], "= 0",
              outcome["truncated"] == 0)
        r.row(name, "stack RSS with them open", f"{stack.rss_mib():.1f} MiB")
    finally:
        for s in socks:
            s.close()
        stack.stop()


def scenario_soak(ctx, seconds, clients):
    """Connect, echo, close in a loop from `clients` at a time."""
    name = f"soak {seconds} s"
    stack = ctx.start_stack([])
    r = ctx.report
    samples = []
    cycles = errors = 0
    t0 = time.time()
    next_sample = t0
    next_progress = t0 + 10
    # Several source addresses: the client closes first, so each connection
    # leaves a kernel TIME-WAIT that holds its port for 60 s.
    srcs = ([HOST] + EXTRA_SOURCES)[:5]
    per = max(1, clients // len(srcs))
    ws = Workers(ctx.script, ECHO, [(s, per) for s in srcs], per, 30)
    try:
        while time.time() - t0 < seconds:
            res, _ = merge(ws.command("connect echo"))
            ws.command("close")
            cycles += res.get("ok", 0)
            errors += sum(v for k, v in res.items() if k != "ok")
            now = time.time()
            if now >= next_sample:
                samples.append(stack.rss_mib())
                next_sample = now + 1
            if now >= next_progress:
                log(f"{name}: {now - t0:.0f} s, {cycles} connections, RSS {samples[-1]:.1f} MiB")
                next_progress = now + 10
        samples.append(stack.rss_mib())
        r.row(name, "connections (connect, echo, close)", f"{cycles} ({cycles / seconds:.0f}/s)")
        r.row(name, "failures", errors, "= 0", errors == 0)
        third = max(1, len(samples) // 3)
        early = max(samples[:third])
        late = max(samples[-third:])
        r.row(name, "stack RSS first third / last third (max)", f"{early:.1f} / {late:.1f} MiB",
              "last <= first + 10 MiB", late <= early + 10)
    finally:
        ws.close()
        stack.stop()


class Ctx:
    def __init__(self, args):
        self.args = args
        self.full = not args.quick
        self.script = os.path.abspath(__file__)
        self.report = Report()
        nofile = raise_nofile()
        self.per_worker = max(100, min(16000, nofile - 200))
        self.log_path = os.path.join(args.out_dir, "stack.log")

    def start_stack(self, extra):
        return Stack(self.args.stack, extra + self.args.stack_arg, self.log_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode")
    w = sub.add_parser("worker")
    w.add_argument("--src", required=True)
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--count", type=int, required=True)
    w.add_argument("--inflight", type=int, default=250)
    w.add_argument("--timeout", type=float, default=120)
    run = sub.add_parser("run")
    run.add_argument("--stack", required=True, help="the tunstack binary")
    run.add_argument("--quick", action="store_true", help="the small version CI runs")
    run.add_argument("--only", default="", help="comma-separated scenarios")
    run.add_argument("--out-dir", required=True)
    run.add_argument("--stack-arg", action="append", default=[], help="extra argument for tunstack run")
    args = ap.parse_args()
    if args.mode == "worker":
        return worker_main(args)
    if args.mode != "run":
        ap.print_help()
        return 2
    ctx = Ctx(args)
    q = args.quick
    scenarios = {
        "burst": lambda: scenario_burst(ctx, 2000 if q else 10000),
        "many": lambda: scenario_many(ctx, 5000 if q else 100000, 2 if q else 60),
        "killed": lambda: scenario_killed(ctx, 200 if q else 1000, (2000, 1000, 3) if q else (60000, 10000, 6)),
        "flood": lambda: scenario_flood(ctx, 2 if q else 3),
        "stalled": lambda: scenario_stalled(ctx, 30 if q else 300, 4 if q else 8, 2 if q else 5, 8_000_000),
        "soak": lambda: scenario_soak(ctx, 5 if q else 120, 50),
    }
    only = [s for s in args.only.split(",") if s]
    for s in only:
        if s not in scenarios:
            print(f"unknown scenario {s}; known: {', '.join(scenarios)}", file=sys.stderr)
            return 2
    t0 = time.time()
    for key, run_it in scenarios.items():
        if only and key not in only:
            continue
        try:
            run_it()
        except Exception as e:  # a scenario that breaks fails, the rest still run
            ctx.report.row(key, "scenario ran", f"error: {e}", "no error", False)
    md = ctx.report.markdown()
    print(md)
    with open(os.path.join(args.out_dir, "stress.md"), "w") as f:
        f.write(md + "\n")
    log(f"done in {time.time() - t0:.0f} s: {'FAILED' if ctx.report.failed else 'all bounds held'}")
    return 1 if ctx.report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
