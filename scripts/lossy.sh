#!/usr/bin/env bash
# Goodput over a lossy, delayed path, tunstack against the kernel over the
# same faults. Every transfer runs in fresh private namespaces that the
# script creates and deletes:
#
#   tunstack:        kernel 10.0.0.1 --tun-- tunstack 10.0.0.2 (its own fault
#                    injection: --delay-ms, --loss, --fault-seed)
#   kernel<->kernel: kernel 10.0.0.1 (nsA) --tunA-- tunstack relay --tunB--
#                    kernel 10.0.0.2 (nsB), the relay applying the same faults
#                    with the same seed (the relay sits where tunstack sits)
#
# Directions: "kernel -> tunstack" (the kernel client sends to the discard
# service, port 9) and "tunstack -> kernel" (the kernel client asks the bulk
# source, port 5001, for the bytes); over the relay the same with a python3
# server at 10.0.0.2. The kernel sockets' congestion control is set per
# socket with TCP_CONGESTION (as root, any algorithm the kernel has, even
# one missing from the namespace's tcp_allowed_congestion_control).
#
#   sudo scripts/lossy.sh [--bytes N] [--delay-ms MS] [--loss LIST] [--cc LIST]
#                         [--sack LIST] [--seed N] [--runs N] [--clock first-byte|connect]
#                         [--tunstack-args "ARGS"] [--no-build]
#
#   --bytes N        bytes per transfer (default 20 MiB)
#   --delay-ms MS    delay each way (default 10: a 20 ms round trip)
#   --loss LIST      loss percentages, each way (default 0,1,5)
#   --cc LIST        the kernel sockets' congestion control (default bbr,cubic)
#   --sack LIST      tunstack with SACK on and/or off (default on)
#   --seed N         the faults' seed (default 3)
#   --runs N         run every transfer N times, alternating the setups, and
#                    show the median with the range (default 1): a 20 MiB
#                    transfer with loss is mostly Startup, and single runs
#                    of the same binary and seed can differ by 2x
#   --clock WHEN     when a transfer's clock starts: first-byte (default), when
#                    the first data is delivered (acknowledged, or read), so a
#                    lost request or first segment, which costs a whole
#                    200 ms initial RTO, does not weigh on a transfer of half
#                    a second; or connect, when connect() returns (before
#                    stop 21)
#   --tunstack-args  more arguments for `tunstack run`, e.g. "--busy-poll-us 0"
#   --tunstack-cc LIST tunstack's congestion control(s) (default: the same
#                    as the kernel's sockets of the row, so "tunstack ->
#                    kernel" compares BBR with BBR and CUBIC with CUBIC; for
#                    the kernel's bbr, which is BBR version 1, both of
#                    tunstack's: bbr (version 3) and bbr1). Each sends in a
#                    row of its own; "kernel -> tunstack" runs the first
#                    only (a receiver's congestion control sends nothing).
#
# TUNSTACK_LOSSY_LOG=<RUST_LOG filter> keeps tunstack's log of each transfer
# as lossy-CC-LOSS-DIR-SACK.log in the repository's top directory.
#
# Progress on stderr, a markdown table of Mbit/s on stdout. A transfer that
# has not finished after 120 s is stopped and shown as "N (timeout)": its
# goodput over those 120 s.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SCRIPT_NAME=lossy
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

BYTES=$((20 << 20))
DELAY=10
LOSSES="0,1,5"
CCS="bbr,cubic"
SACKS="on"
SEED=3
EXTRA=""
TUNSTACK_CC=""
BUILD=1
RUNS=1
LIMIT=120
CLOCK=first-byte
while (($#)); do
    case $1 in
    --bytes) BYTES=$2; shift ;;
    --delay-ms) DELAY=$2; shift ;;
    --loss) LOSSES=$2; shift ;;
    --cc) CCS=$2; shift ;;
    --sack) SACKS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --tunstack-args) EXTRA=$2; shift ;;
    --tunstack-cc) TUNSTACK_CC=$2; shift ;;
    --clock) CLOCK=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,49p' "$0"; exit 0 ;;
    *) say "unknown argument $1"; exit 2 ;;
    esac
    shift
done

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { say "--runs: a positive number, not $RUNS"; exit 2; }
[[ $CLOCK == first-byte || $CLOCK == connect ]] || { say "--clock: first-byte or connect, not $CLOCK"; exit 2; }
is_root || { say "must run as root (it creates network namespaces and TUN devices): sudo $0"; exit 1; }
ensure_tools ip python3 timeout || exit 1
if ((BUILD)); then
    find_cargo || exit 1
    cargo build --release --bin tunstack >&2
fi
BIN="${TUNSTACK_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/tunstack}"
[[ -x $BIN ]] || { say "no $BIN (build it, or drop --no-build)"; exit 1; }
read -r -a EXTRA_ARGS <<<"$EXTRA"

TMP=$(mktemp -d)
NS_T="tunstack-lossy-$$" NS_R="tunstack-lossy-r-$$" NS_A="tunstack-lossy-a-$$" NS_B="tunstack-lossy-b-$$"
PIDS=()
OUT=""
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    for ns in "$NS_T" "$NS_R" "$NS_A" "$NS_B"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap 'stop_all; rm -rf "$TMP"' EXIT

# The kernel's end of a transfer. `send`/`fetch` connect (retrying for
# 10 s), move the bytes and print Mbit/s, or "N (timeout)" after the limit;
# `discard`/`source` serve one connection at 10.0.0.2.
cat >"$TMP/peer.py" <<'PY'
import socket, struct, sys, time
mode, cc, total, limit = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), float(sys.argv[4])
clock = sys.argv[5] if len(sys.argv) > 5 else "connect"
port = {"send": 9, "discard": 9, "fetch": 5001, "source": 5001}[mode]

def set_cc(s):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc)
    got = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0")
    assert got == cc, (got, cc)

if mode in ("discard", "source"):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("10.0.0.2", port))
    ls.listen(1)
    s, _ = ls.accept()
    set_cc(s)
    if mode == "source":
        line = b""
        while not line.endswith(b"\n"):
            more = s.recv(32)
            if not more:
                sys.exit(1)
            line += more
        left, buf = int(line), b"x" * 65536
        while left > 0:
            left -= s.send(buf[:min(left, len(buf))])
    else:
        while s.recv(1 << 20):
            pass
    s.close()
    sys.exit(0)

deadline = time.time() + 10
while True:
    try:
        s = socket.socket()
        set_cc(s)
        s.connect(("10.0.0.2", port))
        break
    except ConnectionRefusedError:
        s.close()
        if time.time() > deadline:
            raise
        time.sleep(0.05)
start = time.time()
s.settimeout(1.0)
done = 0
# The clock: from connect() (--clock connect), or from the first data
# delivered (the default): (when, bytes moved by then).
first = (start, 0) if clock == "connect" else None
def acked():
    # Bytes the receiver acknowledged: tcp_info's tcpi_bytes_acked.
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("Q", info, 120)[0]
def report(moved, finished):
    t0, m0 = first or (time.time(), moved)
    rate = (moved - m0) * 8 / max(time.time() - t0, 1e-6) / 1e6
    print("%.1f" % rate if finished else "%.1f (timeout)" % rate)
    sys.exit(0)
try:
    if mode == "send":
        buf = b"x" * 65536
        while done < total:
            if time.time() > start + limit:
                report(acked(), False)
            try:
                done += s.send(buf[:min(len(buf), total - done)])
            except socket.timeout:
                pass
            if first is None and acked() > 0:
                first = (time.time(), acked())
        s.shutdown(socket.SHUT_WR)
        while time.time() < start + limit:
            try:
                if not s.recv(1):  # the receiver read it all and closed
                    report(done, True)
            except socket.timeout:
                pass
        report(done, False)
    else:
        s.sendall(b"%d\n" % total)
        while time.time() < start + limit:
            try:
                n = len(s.recv(1 << 20))
            except socket.timeout:
                continue
            if n == 0:
                break
            if first is None:
                first = (time.time(), done)
            done += n
        report(done, done == total)
except OSError as e:
    print("failed (%s)" % e.strerror)
PY

# tunstack_transfer DIR KERNEL_CC CC LOSS SACK: one transfer with tunstack
# on CC, the kernel's socket on KERNEL_CC; sets OUT to its Mbit/s.
tunstack_transfer() {
    local dir=$1 kcc=$2 cc=$3 loss=$4 sack=$5
    ip netns add "$NS_T"
    ip -n "$NS_T" link set lo up
    ip -n "$NS_T" tuntap add dev tsl0 mode tun
    ip -n "$NS_T" addr add 10.0.0.1/24 dev tsl0
    ip -n "$NS_T" link set dev tsl0 up
    local args=(run --tun tsl0 --addr 10.0.0.2 --http-port 0 --udp-echo-port 0 --udp-time-port 0
        --offload off --delay-ms "$DELAY" --loss "$loss" --fault-seed "$SEED"
        --congestion "$cc" "${EXTRA_ARGS[@]}")
    [[ $sack == off ]] && args+=(--no-sack)
    RUST_LOG=${TUNSTACK_LOSSY_LOG:-warn} ip netns exec "$NS_T" "$BIN" "${args[@]}" </dev/null >"$TMP/stack.log" 2>&1 &
    PIDS+=($!)
    OUT=$(peer "$NS_T" "$dir" "$kcc")
    stop_all
    if [[ -n ${TUNSTACK_LOSSY_LOG:-} ]]; then
        cp "$TMP/stack.log" "lossy-$cc-$loss-$dir-$sack.log"
        say "tunstack's log: lossy-$cc-$loss-$dir-$sack.log"
    fi
}

# tunstack_ccs KERNEL_CC DIR: tunstack's congestion controls for a row.
tunstack_ccs() {
    local list
    if [[ -n $TUNSTACK_CC ]]; then
        list=$TUNSTACK_CC
    elif [[ $1 == bbr ]]; then
        list=bbr,bbr1
    else
        list=$1
    fi
    [[ $2 == up ]] && list=${list%%,*}
    echo "$list"
}

# kernel_transfer DIR CC LOSS: one transfer between two kernels through the
# relay; sets OUT to its Mbit/s.
kernel_transfer() {
    local dir=$1 cc=$2 loss=$3 ns
    for ns in "$NS_R" "$NS_A" "$NS_B"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # The relay opens both devices in its own namespace, then each moves
    # to its kernel's namespace; the relay's fds stay attached.
    RUST_LOG=warn ip netns exec "$NS_R" "$BIN" relay --a tunA --b tunB \
        --delay-ms "$DELAY" --loss "$loss" --fault-seed "$SEED" </dev/null >"$TMP/relay.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        grep -q ready "$TMP/relay.log" && break
        sleep 0.05
    done
    if ! grep -q ready "$TMP/relay.log"; then
        say "the relay did not start: $(cat "$TMP/relay.log")"
        OUT=failed
        stop_all
        return
    fi
    ip -n "$NS_R" link set tunA netns "$NS_A"
    ip -n "$NS_R" link set tunB netns "$NS_B"
    ip -n "$NS_A" addr add 10.0.0.1/24 dev tunA
    ip -n "$NS_A" link set tunA up
    ip -n "$NS_B" addr add 10.0.0.2/24 dev tunB
    ip -n "$NS_B" link set tunB up
    local server=discard
    [[ $dir == down ]] && server=source
    ip netns exec "$NS_B" timeout $((LIMIT + 10)) python3 "$TMP/peer.py" "$server" "$cc" 0 0 >/dev/null 2>&1 &
    PIDS+=($!)
    OUT=$(peer "$NS_A" "$dir" "$cc")
    stop_all
}

# peer NS DIR CC: runs the kernel's client in NS; prints its result.
peer() {
    local mode=send
    [[ $2 == down ]] && mode=fetch
    ip netns exec "$1" timeout $((LIMIT + 10)) python3 "$TMP/peer.py" "$mode" "$3" "$BYTES" "$LIMIT" "$CLOCK" 2>"$TMP/peer.err" ||
        echo "failed ($(tail -n1 "$TMP/peer.err"))"
}

IFS=',' read -r -a LOSS_LIST <<<"$LOSSES"
IFS=',' read -r -a CC_LIST <<<"$CCS"
IFS=',' read -r -a SACK_LIST <<<"$SACKS"
declare -A NAME=([up]="kernel -> tunstack" [down]="tunstack -> kernel")
declare -A REF=([up]="kernel -> kernel" [down]="kernel <- kernel")
declare -A RESULT
total=0
for cc in "${CC_LIST[@]}"; do
    IFS=',' read -r -a t <<<"$(tunstack_ccs "$cc" down)"
    total=$((total + RUNS * ${#LOSS_LIST[@]} * (2 + ${#SACK_LIST[@]} * (1 + ${#t[@]}))))
done
n=0
progress() {
    n=$((n + 1))
    printf '%s: [%d/%d] %s ... ' "$SCRIPT_NAME" "$n" "$total" "$*" >&2
}
for cc in "${CC_LIST[@]}"; do
    for loss in "${LOSS_LIST[@]}"; do
        for dir in up down; do
            IFS=',' read -r -a tccs <<<"$(tunstack_ccs "$cc" "$dir")"
            for ((run = 1; run <= RUNS; run++)); do
                tag=""
                ((RUNS > 1)) && tag=", run $run/$RUNS"
                progress "$cc, $loss % loss, ${REF[$dir]} (relay)$tag"
                kernel_transfer "$dir" "$cc" "$loss"
                RESULT[$cc,$loss,$dir,kernel]+="$OUT;"
                echo "$OUT" >&2
                for tcc in "${tccs[@]}"; do
                    for sack in "${SACK_LIST[@]}"; do
                        progress "$cc, $loss % loss, ${NAME[$dir]}, tunstack $tcc, SACK $sack$tag"
                        tunstack_transfer "$dir" "$cc" "$tcc" "$loss" "$sack"
                        RESULT[$cc,$loss,$dir,$tcc,$sack]+="$OUT;"
                        echo "$OUT" >&2
                    done
                done
            done
        done
    done
done

# summary "R1;R2;...;": one run as it is; several as "median (min–max)"
# of those that gave a figure, with how many timed out or failed.
summary() {
    local runs=$1
    if [[ $runs != *";"*";"* ]]; then
        echo "${runs%;}"
        return
    fi
    awk -v runs="$runs" 'BEGIN {
        n = split(runs, r, ";"); k = 0; bad = 0
        for (i = 1; i <= n; i++) {
            if (r[i] == "") continue
            split(r[i], f, " ")
            if (f[1] ~ /^[0-9.]+$/ && r[i] !~ /timeout/) v[++k] = f[1] + 0; else bad++
        }
        if (k == 0) { print "failed"; exit }
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        med = (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
        out = sprintf("%.1f (%.1f–%.1f)", med, v[1], v[k])
        if (bad) out = out sprintf(", %d timed out or failed", bad)
        print out
    }'
}

# ratio A B: A / B (two places, three below 0.1), or "-" when either is
# not a number.
ratio() {
    local a=${1%% *} b=${2%% *}
    [[ $a =~ ^[0-9.]+$ && $b =~ ^[0-9.]+$ ]] || { echo "-"; return; }
    awk -v a="$a" -v b="$b" 'BEGIN { if (b <= 0) print "-"; else printf (a / b < 0.1 ? "%.3f" : "%.2f"), a / b }'
}

echo
runs="one run"
((RUNS > 1)) && runs="median (min–max) of $RUNS runs"
echo "$((BYTES >> 20)) MiB per transfer, ${DELAY} ms each way, loss each way, seed $SEED; Mbit/s, $runs, timed from the $CLOCK; kernel sockets on the given congestion control (the kernel's bbr is BBR version 1), tunstack on the row's${EXTRA:+; tunstack run $EXTRA}"
echo
head="| kernel cc | loss | direction | tunstack cc | kernel <-> kernel (relay) |"
rule="|---|---|---|---|---|"
for sack in "${SACK_LIST[@]}"; do
    head+=" tunstack, SACK $sack | ratio |"
    rule+="---|---|"
done
echo "$head"
echo "$rule"
for cc in "${CC_LIST[@]}"; do
    for loss in "${LOSS_LIST[@]}"; do
        for dir in up down; do
            ref=$(summary "${RESULT[$cc,$loss,$dir,kernel]}")
            IFS=',' read -r -a tccs <<<"$(tunstack_ccs "$cc" "$dir")"
            for tcc in "${tccs[@]}"; do
                row="| $cc | $loss % | ${NAME[$dir]} | $tcc | $ref |"
                for sack in "${SACK_LIST[@]}"; do
                    r=$(summary "${RESULT[$cc,$loss,$dir,$tcc,$sack]}")
                    row+=" $r | $(ratio "$r" "$ref") |"
                done
                echo "$row"
            done
        done
    done
done
