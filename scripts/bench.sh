#!/usr/bin/env bash
# tunstack's benchmark: tunstack, smoltcp and the kernel's own TCP, measured
# by one client in the same run, everything in private network namespaces.
#
#   sudo scripts/bench.sh [--quick] [--runs N] [--bytes N] [--mtu LIST]
#                         [--rivals LIST] [--out FILE] [--hold N] [--no-build]
#
#   --quick         smoke run: 1 run, 32 MiB transfers, 1000 exchanges,
#                   0.5 s connect tests, 500 held connections
#   --runs N        runs per rival and MTU (default 3); medians, min and max
#   --bytes N       bytes per transfer (default 1 GiB; K/M/G suffixes)
#   --mtu LIST      MTUs, comma-separated (default 1500,65535)
#   --rivals LIST   of tunstack,tunstack-off,tunstack-2q,smoltcp,kernel,
#                   tunstack6,kernel6 (default: the first five; the IPv6
#                   rivals tunstack6 and kernel6 run only when listed: two
#                   more rivals make the default run about a third longer)
#   --rr-count K    timed request/response exchanges (default 10000)
#   --crr-secs S    duration of each connect/close test (default 2; it
#                   also stops at 30,000 connections, see CRR_MAX)
#   --hold N        idle connections held on tunstack (default 10000; 0: skip)
#   --out FILE      results: FILE.md (the table) and FILE.json (raw results);
#                   default target/bench/bench-YYYYmmdd-HHMMSS.{md,json}
#   --no-build      use the binaries already in target/release
#
# The rivals, each serving TCP discard (9), echo (7) and the bulk source
# (5001: the client sends "N\n", gets N bytes of i % 251, then EOF):
#   tunstack  target/release/tunstack run --offload on, on a TUN device
#             (TSO and checksum offload: super-segments both ways)
#   tunstack-off  the same with --offload off (one read or write per
#             segment, checksums in software)
#   tunstack-2q  the same as tunstack with --queues 2 on a multi-queue TUN
#             (two shards, one per queue)
#   smoltcp   examples/bench_smoltcp.rs (smoltcp 0.14), on a TUN device
#   kernel    examples/bench_kernel_server.rs (tokio, kernel sockets) in a
#             server namespace, reached over a veth pair
#   tunstack6 tunstack over IPv6: the same as tunstack with --addr6
#             fd00::2/64, the kernel side also fd00::1/64 (nodad); every
#             figure (send, receive, rr, crr, 50-client crr) to [fd00::2]
#   kernel6   kernel over IPv6: the same veth pair with fd00::1/64 and
#             fd00::2/64 (nodad), the server on fd00::2
# The client is examples/bench_client.rs on kernel sockets, in the namespace
# of the kernel side (10.0.0.1, fd00::1); the peer is 10.0.0.2 (fd00::2 for
# the IPv6 rivals). The table's ratios are tunstack / rival, and
# tunstack6 / kernel6 in place of tunstack / kernel6 when both are run.
#
# For each MTU, rival and run: a fresh namespace (two for kernel and
# kernel6), the peer pinned to CPU 0, the client to CPU 1 (request/response
# also with the client on CPU 0, "same CPU"). The 50-client connect test gets a fresh
# namespace and peer of its own, and each connect test stops at 30,000
# connections, so the client's TIME-WAIT ports never run out. Figures:
# send and receive Gbit/s, request/response p50/p99 latency, sequential and
# 50-client connections/s; once (MTU 1500, tunstack), the peer's memory with
# --hold idle connections open.
#
# Every step has a timeout; a failed or hung step fails that figure only.
# Exits non-zero if any figure was not produced. On exit (also on Ctrl-C) it
# kills only the processes it started and deletes its namespaces.
#
# Needs: root, /dev/net/tun, cargo, iproute2, util-linux (taskset),
# coreutils, awk; installs the missing Debian packages when it can.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SCRIPT_NAME=bench
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

die() {
    say "$*"
    exit 1
}

# --- options -------------------------------------------------------------------

QUICK=0
RUNS=""
BYTES=""
MTUS="1500,65535"
RIVALS="tunstack,tunstack-off,tunstack-2q,smoltcp,kernel"
RR_COUNT=""
RR_SIZE=64
CRR_SECS=""
CRR_CONC=50
# A connect test stops after this many connections even before its time is
# up. Each one leaves a TIME-WAIT connection on a client port for 60 s;
# Linux hands out the even ports of the range (32,256 of 1024-65535) to
# connect() first, and once they are all taken each connect() searches the
# whole range and the rate collapses (to ~300/s): the client, not the peer,
# would be measured. Below 30,000 a connect costs the same as the first.
CRR_MAX=30000
HOLD_COUNT=""
HOLD_INFLIGHT=250
OUT=""
BUILD=1

usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# A byte count with an optional K/M/G (binary) suffix.
parse_bytes() {
    local v=$1 n unit
    [[ $v =~ ^([0-9]+)([KkMmGg]?)(i?B)?$ ]] || return 1
    n=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2]}
    case $unit in
    K | k) n=$((n << 10)) ;;
    M | m) n=$((n << 20)) ;;
    G | g) n=$((n << 30)) ;;
    esac
    echo "$n"
}

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) need_value "$@"; RUNS=$2; shift ;;
    --bytes) need_value "$@"; BYTES=$(parse_bytes "$2") || die "--bytes: not a byte count: $2"; shift ;;
    --mtu | --mtus) need_value "$@"; MTUS=$2; shift ;;
    --rivals) need_value "$@"; RIVALS=$2; shift ;;
    --rr-count) need_value "$@"; RR_COUNT=$2; shift ;;
    --crr-secs) need_value "$@"; CRR_SECS=$2; shift ;;
    --hold) need_value "$@"; HOLD_COUNT=$2; shift ;;
    --out) need_value "$@"; OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

if ((QUICK)); then
    : "${RUNS:=1}" "${BYTES:=$((32 << 20))}" "${RR_COUNT:=1000}" "${CRR_SECS:=0.5}" "${HOLD_COUNT:=500}"
else
    : "${RUNS:=3}" "${BYTES:=$((1 << 30))}" "${RR_COUNT:=10000}" "${CRR_SECS:=2}" "${HOLD_COUNT:=10000}"
fi
RR_WARMUP=$((RR_COUNT / 10 < 100 ? 100 : RR_COUNT / 10))

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: expected a positive number, got $RUNS"
[[ $RR_COUNT =~ ^[1-9][0-9]*$ ]] || die "--rr-count: expected a positive number, got $RR_COUNT"
[[ $HOLD_COUNT =~ ^[0-9]+$ ]] || die "--hold: expected a number, got $HOLD_COUNT"
[[ $CRR_SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--crr-secs: expected seconds, got $CRR_SECS"
((BYTES > 0)) || die "--bytes must be positive"
IFS=', ' read -r -a MTU_LIST <<<"$MTUS"
IFS=', ' read -r -a RIVAL_LIST <<<"$RIVALS"
for mtu in "${MTU_LIST[@]}"; do
    if ! [[ $mtu =~ ^[0-9]+$ ]] || ((mtu < 576 || mtu > 65535)); then
        die "--mtu: $mtu is not an MTU in 576..65535"
    fi
done
for rival in "${RIVAL_LIST[@]}"; do
    case $rival in tunstack | tunstack-off | tunstack-2q | smoltcp | kernel | tunstack6 | kernel6) ;; *) die "--rivals: unknown rival $rival (tunstack, tunstack-off, tunstack-2q, smoltcp, kernel, tunstack6, kernel6)" ;; esac
    # IPv6 needs a link MTU of at least 1280 (RFC 8200 §5).
    if [[ $rival == *6 ]]; then
        for mtu in "${MTU_LIST[@]}"; do
            ((mtu >= 1280)) || die "--mtu: $mtu is below IPv6's minimum MTU (1280), needed by $rival"
        done
    fi
done
((${#MTU_LIST[@]})) || die "--mtu: no MTU"
((${#RIVAL_LIST[@]})) || die "--rivals: no rival"

STAMP=$(date +%Y%m%d-%H%M%S)
if [[ -z $OUT ]]; then
    OUT="$REPO/target/bench/bench-$STAMP"
fi
OUT=${OUT%.md}
OUT=${OUT%.json}
OUT_MD="$OUT.md"
OUT_JSON="$OUT.json"

# --- preflight -----------------------------------------------------------------

is_root || die "must run as root (it creates network namespaces, TUN and veth devices): sudo $0"
[[ -e /dev/net/tun ]] || die "/dev/net/tun is missing: this kernel or container has no TUN support"
ensure_tools ip taskset timeout awk sed mkfifo nproc getent || die "missing tools (see above)"
find_cargo || exit 1

CPU_PEER=0
CPU_CLIENT=1
if (($(nproc) < 2)); then
    say "warning: only one CPU: the peer and the client share CPU 0"
    CPU_CLIENT=0
fi

# Open files: the hold test's client has one socket per connection.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((HOLD_COUNT + 256 > NOFILE)); then
    say "warning: open-file limit $NOFILE: holding $((NOFILE - 256)) connections instead of $HOLD_COUNT"
    HOLD_COUNT=$((NOFILE - 256))
fi

# TUNSTACK_BIN=PATH measures another tunstack binary (an older build, to
# compare against); it must serve the same ports.
BIN_TUNSTACK="${TUNSTACK_BIN:-$REPO/target/release/tunstack}"
BIN_SMOLTCP="$REPO/target/release/examples/bench_smoltcp"
BIN_KERNEL="$REPO/target/release/examples/bench_kernel_server"
BIN_CLIENT="$REPO/target/release/examples/bench_client"

if ((BUILD)); then
    say "building: cargo build --release --bin tunstack --example bench_client --example bench_smoltcp --example bench_kernel_server"
    "$CARGO" build --release --bin tunstack --example bench_client --example bench_smoltcp --example bench_kernel_server ||
        die "cargo build failed (see above)"
fi
for bin in "$BIN_TUNSTACK" "$BIN_SMOLTCP" "$BIN_KERNEL" "$BIN_CLIENT"; do
    [[ -x $bin ]] || die "$bin is missing (run without --no-build)"
done

# --- cleanup: only what this script started ------------------------------------

PIDS=()       # processes started in the background
NAMESPACES=() # namespaces created
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tunstack-bench.XXXXXX")
KEEP_WORK=0
NS_SEQ=0
HOLD_FD=""

forget_pid() {
    local pid=$1 i
    for i in "${!PIDS[@]}"; do
        [[ ${PIDS[$i]} == "$pid" ]] && unset 'PIDS[i]'
    done
    return 0
}

# stop_pid PID: SIGTERM, up to 3 s to exit, then SIGKILL; reaps it.
stop_pid() {
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

delete_ns() {
    local ns=$1 i
    ip netns del "$ns" 2>/dev/null || true
    for i in "${!NAMESPACES[@]}"; do
        [[ ${NAMESPACES[$i]} == "$ns" ]] && unset 'NAMESPACES[i]'
    done
    return 0
}

cleanup() {
    local rc=$? pid ns
    trap - EXIT INT TERM
    if [[ -n $HOLD_FD ]]; then
        exec {HOLD_FD}>&- || true
    fi
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    for ns in "${NAMESPACES[@]}"; do
        delete_ns "$ns"
    done
    if ((KEEP_WORK)); then
        say "logs of the failed steps are in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# --- namespaces and peers ------------------------------------------------------

# ns_sysctl NS KEY VALUE: a sysctl inside a namespace.
ns_sysctl() {
    local path="/proc/sys/${2//.//}"
    ip netns exec "$1" sh -c "echo '$3' > '$path'" 2>/dev/null
}

# new_ns [SUFFIX]: creates a namespace tsbench-<pid>-<n>[-SUFFIX], named in
# NEW_NS (not echoed: the list of namespaces to delete must be updated in
# this shell, not in a command substitution's).
NEW_NS=""
new_ns() {
    NS_SEQ=$((NS_SEQ + 1))
    NEW_NS="tsbench-$$-$NS_SEQ${1:+-$1}"
    ip netns add "$NEW_NS" || return 1
    NAMESPACES+=("$NEW_NS")
    ip -n "$NEW_NS" link set lo up || return 1
    # No IPv6 chatter (router solicitations, MLD) on the test link.
    ns_sysctl "$NEW_NS" net.ipv6.conf.all.disable_ipv6 1 || true
    ns_sysctl "$NEW_NS" net.ipv6.conf.default.disable_ipv6 1 || true
}

# ipv6_on NS: IPv6 back on in a namespace (for the IPv6 rivals), still
# without router solicitations or advertisements taken, and without
# duplicate address detection (the addresses get nodad too).
ipv6_on() {
    local conf
    for conf in all default; do
        ns_sysctl "$1" "net.ipv6.conf.$conf.disable_ipv6" 0 &&
            ns_sysctl "$1" "net.ipv6.conf.$conf.accept_ra" 0 &&
            ns_sysctl "$1" "net.ipv6.conf.$conf.router_solicitations" 0 &&
            ns_sysctl "$1" "net.ipv6.conf.$conf.accept_dad" 0 || return 1
    done
}

# The client side of a namespace: every local port. (TIME-WAIT is left as
# it is, 60 s without reuse, the same for every rival: see CRR_MAX.)
client_sysctls() {
    ns_sysctl "$1" net.ipv4.ip_local_port_range "1024 65535"
}

# Set by start_rival: the client's namespace, the peer's PID and log, and
# the peer's address as the client names it (10.0.0.2 or [fd00::2]).
CLIENT_NS=""
PEER_HOST=10.0.0.2
PEER_NS=""
PEER_PID=""
PEER_LOG=""

# start_rival RIVAL MTU: fresh namespace(s), the peer pinned to CPU 0, and
# waits until it accepts connections.
start_rival() {
    local rival=$1 mtu=$2 ns srv
    PEER_LOG="$WORK/peer-$rival-$mtu-$((NS_SEQ + 1)).log"
    PEER_HOST=10.0.0.2
    [[ $rival == *6 ]] && PEER_HOST="[fd00::2]"
    case $rival in
    tunstack | tunstack-off | tunstack-2q | tunstack6 | smoltcp)
        new_ns || return 1
        ns=$NEW_NS
        CLIENT_NS=$ns
        PEER_NS=$ns
        local mq=() queues=1 v6=()
        [[ $rival == tunstack-2q ]] && mq=(multi_queue) queues=2
        if [[ $rival == tunstack6 ]]; then
            ipv6_on "$ns" || return 1
            v6=(--addr6 fd00::2/64)
        fi
        ip -n "$ns" tuntap add dev tsb0 mode tun "${mq[@]}" &&
            ip -n "$ns" addr add 10.0.0.1/24 dev tsb0 &&
            ip -n "$ns" link set dev tsb0 mtu "$mtu" up || return 1
        if [[ $rival == tunstack6 ]]; then
            ip -n "$ns" addr add fd00::1/64 dev tsb0 nodad || return 1
        fi
        client_sysctls "$ns" || return 1
        if [[ $rival == tunstack* ]]; then
            local offload=on
            [[ $rival == tunstack-off ]] && offload=off
            RUST_LOG=${TUNSTACK_LOG:-warn} ip netns exec "$ns" taskset -c "$CPU_PEER" \
                "$BIN_TUNSTACK" run --tun tsb0 --addr 10.0.0.2 "${v6[@]}" --offload "$offload" --queues "$queues" \
                --http-port 0 --udp-echo-port 0 --udp-time-port 0 \
                </dev/null >"$PEER_LOG" 2>&1 &
        else
            ip netns exec "$ns" taskset -c "$CPU_PEER" \
                "$BIN_SMOLTCP" --tun tsb0 --addr 10.0.0.2/24 --gateway 10.0.0.1 \
                </dev/null >"$PEER_LOG" 2>&1 &
        fi
        ;;
    kernel | kernel6)
        new_ns cli || return 1
        ns=$NEW_NS
        CLIENT_NS=$ns
        new_ns srv || return 1
        srv=$NEW_NS
        PEER_NS=$srv
        local listen=10.0.0.2
        if [[ $rival == kernel6 ]]; then
            ipv6_on "$ns" && ipv6_on "$srv" || return 1
            listen=fd00::2
        fi
        ip -n "$ns" link add tsb0 type veth peer name tsb1 netns "$srv" &&
            ip -n "$ns" addr add 10.0.0.1/24 dev tsb0 &&
            ip -n "$ns" link set dev tsb0 mtu "$mtu" up &&
            ip -n "$srv" addr add 10.0.0.2/24 dev tsb1 &&
            ip -n "$srv" link set dev tsb1 mtu "$mtu" up || return 1
        if [[ $rival == kernel6 ]]; then
            ip -n "$ns" addr add fd00::1/64 dev tsb0 nodad &&
                ip -n "$srv" addr add fd00::2/64 dev tsb1 nodad || return 1
        fi
        client_sysctls "$ns" || return 1
        ip netns exec "$srv" taskset -c "$CPU_PEER" "$BIN_KERNEL" --addr "$listen" \
            </dev/null >"$PEER_LOG" 2>&1 &
        ;;
    esac
    PEER_PID=$!
    PIDS+=("$PEER_PID")
    if ! client_json "$WORK/wait.json" 25 "$CPU_CLIENT" wait "$PEER_HOST:9" --timeout 20; then
        say "$rival (mtu $mtu) did not come up; its log:"
        tail -n 20 "$PEER_LOG" >&2 || true
        return 1
    fi
    if ! kill -0 "$PEER_PID" 2>/dev/null; then
        say "$rival (mtu $mtu) exited right after starting; its log:"
        tail -n 20 "$PEER_LOG" >&2 || true
        return 1
    fi
}

stop_rival() {
    [[ -n $PEER_PID ]] && stop_pid "$PEER_PID"
    [[ -n $CLIENT_NS ]] && delete_ns "$CLIENT_NS"
    [[ -n $PEER_NS && $PEER_NS != "$CLIENT_NS" ]] && delete_ns "$PEER_NS"
    PEER_PID="" CLIENT_NS="" PEER_NS="" PEER_STUCK=0
}

peer_alive() {
    [[ -n $PEER_PID ]] && kill -0 "$PEER_PID" 2>/dev/null
}

# Set when the peer stopped answering: the run's remaining steps fail at
# once instead of each waiting for its timeout.
PEER_STUCK=0


# client_json OUT TIMEOUT CPU ARGS...: runs the client in $CLIENT_NS on CPU,
# killed after TIMEOUT seconds; its JSON line goes to OUT, its errors to
# OUT.err. Runs in the background and waits, so Ctrl-C is handled at once.
client_json() {
    local out=$1 limit=$2 cpu=$3 pid rc=0
    shift 3
    timeout -k 5 "$limit" ip netns exec "$CLIENT_NS" taskset -c "$cpu" "$BIN_CLIENT" "$@" \
        </dev/null >"$out" 2>"$out.err" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    if ((rc == 124 || rc == 137)); then
        echo "bench_client $*: killed after the step's ${limit} s timeout" >>"$out.err"
    fi
    ((rc == 0)) && [[ -s $out ]]
}

# --- results -------------------------------------------------------------------

RESULTS_TSV="$WORK/results.tsv" # mtu rival figure run value
RESULTS_JSON="$WORK/results.jsonl"
: >"$RESULTS_TSV"
: >"$RESULTS_JSON"
FAILURES=0
STEP=0

json_escape() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/ }
    s=${s//$'\r'/}
    s=${s//$'\n'/\\n}
    printf '%s' "$s"
}

# json_field JSON KEY: a number field of a JSON line.
json_field() {
    sed -n "s/.*\"$2\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" <<<"$1"
}

record() { # mtu rival figure run value
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS_TSV"
}

record_json() { # mtu rival run step cpu json|"" error
    local result=${6:-null} error="null"
    [[ -n ${7:-} ]] && error="\"$(json_escape "$7")\""
    printf '{"mtu":%s,"rival":"%s","run":%s,"step":"%s","client_cpu":%s,"result":%s,"error":%s}\n' \
        "$1" "$2" "$3" "$4" "$5" "$result" "$error" >>"$RESULTS_JSON"
}

# step MTU RIVAL RUN NAME CPU TIMEOUT ARGS...: one client step; records
# its JSON and the figures it yields; prints progress.
step() {
    local mtu=$1 rival=$2 run=$3 name=$4 cpu=$5 limit=$6 out json err line
    shift 6
    out="$WORK/$rival-$mtu-$run-$name.json"
    STEP=$((STEP + 1))
    printf '%s: [%d/%d] mtu %s, %s, run %d/%d: %-9s ... ' "$SCRIPT_NAME" "$STEP" "$TOTAL_STEPS" \
        "$mtu" "$rival" "$run" "$RUNS" "$name" >&2
    if ! peer_alive; then
        err="the peer is not running"
    elif ((PEER_STUCK)); then
        err="skipped: the peer stopped accepting connections"
    elif client_json "$out" "$limit" "$cpu" "$@"; then
        json=$(head -n 1 "$out")
        record_json "$mtu" "$rival" "$run" "$name" "$cpu" "$json" ""
        case $name in
        send | recv | send-x* | recv-x*)
            record "$mtu" "$rival" "${name//-/_}_gbps" "$run" "$(json_field "$json" gbps)"
            line="$(json_field "$json" gbps) Gbit/s"
            ;;
        rr-other | rr-same)
            record "$mtu" "$rival" "${name/-/_p50_}" "$run" "$(json_field "$json" p50_us)"
            record "$mtu" "$rival" "${name/-/_p99_}" "$run" "$(json_field "$json" p99_us)"
            line="p50 $(json_field "$json" p50_us) µs, p99 $(json_field "$json" p99_us) µs"
            ;;
        crr1 | crr50)
            record "$mtu" "$rival" "${name}_cps" "$run" "$(json_field "$json" cps)"
            line="$(json_field "$json" cps) connections/s ($(json_field "$json" connections) in $(json_field "$json" secs) s"
            [[ $json == *'"capped":true'* ]] && line+=", stopped at --max-connections"
            line+=")"
            ;;
        esac
        echo "$line" >&2
        return 0
    else
        err=$(tail -n 6 "$out.err" 2>/dev/null)
        [[ -n $err ]] || err="bench_client failed without a message"
    fi
    echo "FAILED" >&2
    echo "    ${err//$'\n'/$'\n'    }" >&2
    if ((!PEER_STUCK)) && peer_alive &&
        ! client_json "$WORK/probe.json" 10 "$CPU_CLIENT" wait "$PEER_HOST:9" --timeout 3; then
        echo "    the peer no longer accepts connections: skipping the rest of this run" >&2
        PEER_STUCK=1
    fi
    if ! peer_alive && [[ -n $PEER_LOG ]]; then
        echo "    the peer is gone; the end of its log:" >&2
        tail -n 10 "$PEER_LOG" 2>/dev/null | sed 's/^/      /' >&2 || true
    fi
    record_json "$mtu" "$rival" "$run" "$name" "$cpu" "" "$err"
    FAILURES=$((FAILURES + 1))
    KEEP_WORK=1
    return 1
}

# Seconds a transfer may take: 30 s plus 40 MB/s.
TRANSFER_TIMEOUT=$((30 + BYTES / 40000000))
RR_TIMEOUT=$((30 + RR_COUNT / 500))
CRR_TIMEOUT=$(awk -v s="$CRR_SECS" 'BEGIN { printf "%d", s + 30 }')

# run_rival MTU RIVAL RUN: one run: every figure, on fresh namespaces.
run_rival() {
    local mtu=$1 rival=$2 run=$3 name
    if start_rival "$rival" "$mtu"; then
        step "$mtu" "$rival" "$run" send "$CPU_CLIENT" "$TRANSFER_TIMEOUT" \
            send "$PEER_HOST:9" --bytes "$BYTES" --timeout $((TRANSFER_TIMEOUT - 5)) || true
        step "$mtu" "$rival" "$run" recv "$CPU_CLIENT" "$TRANSFER_TIMEOUT" \
            recv "$PEER_HOST:5001" --bytes "$BYTES" --timeout $((TRANSFER_TIMEOUT - 5)) || true
        # Parallel streams: the same bytes over 2 and 4 connections at once.
        for n in 2 4; do
            step "$mtu" "$rival" "$run" "send-x$n" "$CPU_CLIENT" "$TRANSFER_TIMEOUT" \
                send "$PEER_HOST:9" --bytes "$BYTES" --streams "$n" --timeout $((TRANSFER_TIMEOUT - 5)) || true
            step "$mtu" "$rival" "$run" "recv-x$n" "$CPU_CLIENT" "$TRANSFER_TIMEOUT" \
                recv "$PEER_HOST:5001" --bytes "$BYTES" --streams "$n" --timeout $((TRANSFER_TIMEOUT - 5)) || true
        done
        step "$mtu" "$rival" "$run" rr-other "$CPU_CLIENT" "$RR_TIMEOUT" \
            rr "$PEER_HOST:7" --size "$RR_SIZE" --count "$RR_COUNT" --warmup "$RR_WARMUP" --timeout $((RR_TIMEOUT - 5)) || true
        step "$mtu" "$rival" "$run" rr-same "$CPU_PEER" "$RR_TIMEOUT" \
            rr "$PEER_HOST:7" --size "$RR_SIZE" --count "$RR_COUNT" --warmup "$RR_WARMUP" --timeout $((RR_TIMEOUT - 5)) || true
        step "$mtu" "$rival" "$run" crr1 "$CPU_CLIENT" "$CRR_TIMEOUT" \
            crr "$PEER_HOST:9" --duration "$CRR_SECS" --concurrency 1 --max-connections "$CRR_MAX" \
            --timeout $((CRR_TIMEOUT - 5)) || true
    else
        for name in send recv send-x2 recv-x2 send-x4 recv-x4 rr-other rr-same crr1; do
            STEP=$((STEP + 1))
            record_json "$mtu" "$rival" "$run" "$name" "$CPU_CLIENT" "" "the peer did not start"
        done
        FAILURES=$((FAILURES + 1))
        KEEP_WORK=1
    fi
    stop_rival
    # The concurrent connect test on a fresh namespace and peer: the
    # client's TIME-WAIT connections from the tests above must not use up
    # its ports.
    if start_rival "$rival" "$mtu"; then
        step "$mtu" "$rival" "$run" crr50 "$CPU_CLIENT" "$CRR_TIMEOUT" \
            crr "$PEER_HOST:9" --duration "$CRR_SECS" --concurrency "$CRR_CONC" --max-connections "$CRR_MAX" \
            --timeout $((CRR_TIMEOUT - 5)) || true
    else
        STEP=$((STEP + 1))
        record_json "$mtu" "$rival" "$run" crr50 "$CPU_CLIENT" "" "the peer did not start"
        FAILURES=$((FAILURES + 1))
        KEEP_WORK=1
    fi
    stop_rival
}

# VmRSS / VmHWM of a process, in KiB.
proc_kib() {
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null
}

kib_to_mib() {
    awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

# hold_test: tunstack at MTU 1500 with HOLD_COUNT idle connections; the
# peer's RSS before and while they are held.
HOLD_SUMMARY=""
hold_test() {
    local out="$WORK/hold.json" pid rc=0 json i base_rss rss hwm established
    printf '%s: [%d/%d] mtu 1500, tunstack: hold %d connections ... ' "$SCRIPT_NAME" \
        $((STEP + 1)) "$TOTAL_STEPS" "$HOLD_COUNT" >&2
    STEP=$((STEP + 1))
    if ! start_rival tunstack 1500; then
        echo "FAILED (the peer did not start)" >&2
        record_json 1500 tunstack 1 hold "$CPU_CLIENT" "" "the peer did not start"
        FAILURES=$((FAILURES + 1))
        KEEP_WORK=1
        stop_rival
        return 1
    fi
    base_rss=$(proc_kib "$PEER_PID" VmRSS)
    mkfifo "$WORK/hold.in"
    exec {HOLD_FD}<>"$WORK/hold.in"
    timeout -k 5 400 ip netns exec "$CLIENT_NS" taskset -c "$CPU_CLIENT" "$BIN_CLIENT" \
        hold "$PEER_HOST:7" --count "$HOLD_COUNT" --inflight "$HOLD_INFLIGHT" \
        --timeout 240 --hold-secs 120 \
        <"$WORK/hold.in" >"$out" 2>"$out.err" &
    pid=$!
    PIDS+=("$pid")
    # Until the client reports what it established (or gives up).
    for ((i = 0; i < 2600; i++)); do
        [[ -s $out ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    json=$(head -n 1 "$out" 2>/dev/null || true)
    if [[ -n $json ]] && peer_alive; then
        sleep 1 # let the last handshakes and echoes settle
        rss=$(proc_kib "$PEER_PID" VmRSS)
        hwm=$(proc_kib "$PEER_PID" VmHWM)
    fi
    # Release the connections, let the client close them.
    echo release >&"$HOLD_FD" || true
    exec {HOLD_FD}>&-
    HOLD_FD=""
    wait "$pid" || rc=$?
    forget_pid "$pid"
    established=$(json_field "$json" established)
    if [[ -n $json && -n ${rss:-} && -n $established ]]; then
        json="${json%\}},\"peer_rss_kib_idle\":${base_rss:-null},\"peer_rss_kib\":$rss,\"peer_hwm_kib\":$hwm}"
        record_json 1500 tunstack 1 hold "$CPU_CLIENT" "$json" ""
        record 1500 tunstack hold_established 1 "$established"
        record 1500 tunstack hold_rss_mib 1 "$(kib_to_mib "$rss")"
        record 1500 tunstack hold_hwm_mib 1 "$(kib_to_mib "$hwm")"
        record 1500 tunstack hold_idle_rss_mib 1 "$(kib_to_mib "${base_rss:-0}")"
        HOLD_SUMMARY="$established of $HOLD_COUNT established; peer RSS $(kib_to_mib "$rss") MiB (VmHWM $(kib_to_mib "$hwm") MiB; $(kib_to_mib "${base_rss:-0}") MiB before)"
        echo "$HOLD_SUMMARY" >&2
        if ((established < HOLD_COUNT)); then
            say "warning: only $established of $HOLD_COUNT connections were established:"
            sed 's/^/    /' "$out.err" | head -n 6 >&2
        fi
    else
        echo "FAILED" >&2
        {
            tail -n 6 "$out.err" 2>/dev/null
            ((rc == 124 || rc == 137)) && echo "bench_client hold: killed after the step's timeout"
            peer_alive || echo "the peer is gone"
        } | sed 's/^/    /' >&2
        record_json 1500 tunstack 1 hold "$CPU_CLIENT" "" "$(tail -n 6 "$out.err" 2>/dev/null)"
        FAILURES=$((FAILURES + 1))
        KEEP_WORK=1
    fi
    stop_rival
}

# --- the run -------------------------------------------------------------------

HOLD=0
if ((HOLD_COUNT > 0)) && [[ " ${RIVAL_LIST[*]} " == *" tunstack "* ]]; then
    HOLD=1
fi
TOTAL_STEPS=$((${#MTU_LIST[@]} * ${#RIVAL_LIST[@]} * RUNS * 10 + HOLD))
START_SECS=$SECONDS
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "rivals ${RIVAL_LIST[*]}; MTUs ${MTU_LIST[*]}; $RUNS run(s); transfers of $BYTES bytes;" \
    "rr $RR_COUNT x $RR_SIZE B; connect tests ${CRR_SECS} s; hold $HOLD_COUNT; peer on CPU $CPU_PEER, client on CPU $CPU_CLIENT"

for mtu in "${MTU_LIST[@]}"; do
    for ((run = 1; run <= RUNS; run++)); do
        for rival in "${RIVAL_LIST[@]}"; do
            run_rival "$mtu" "$rival" "$run"
        done
    done
done
if ((HOLD)); then
    hold_test || true
fi
ELAPSED=$((SECONDS - START_SECS))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the table -----------------------------------------------------------------

# Medians, minima and maxima per MTU, figure and rival, and the ratios
# tunstack / rival of the medians (tunstack6 / kernel6 instead of
# tunstack / kernel6 when tunstack6 is run: the IPv6 pair).
make_table() {
    awk -F'\t' -v mtus="${MTU_LIST[*]}" -v rivals="${RIVAL_LIST[*]}" -v runs="$RUNS" '
    function fmt(x, unit) {
        if (unit == "Gbit/s") return sprintf("%.2f", x)
        if (unit == "µs") return sprintf("%.1f", x)
        if (unit == "MiB") return sprintf("%.1f", x)
        return sprintf("%.0f", x)
    }
    # Sorts a[1..n] in place (insertion sort; mawk has no asort).
    function sort(a, n,    i, j, t) {
        for (i = 2; i <= n; i++) {
            t = a[i]
            for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
            a[j + 1] = t
        }
    }
    function stats(key,    n, i, a) {
        n = cnt[key]
        if (n == 0) { MED = ""; return 0 }
        for (i = 1; i <= n; i++) a[i] = val[key, i] + 0
        sort(a, n)
        MED = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        MIN = a[1]; MAX = a[n]
        return n
    }
    function cell(key, unit,    n) {
        n = stats(key)
        if (n == 0) return "—"
        if (n == 1) return fmt(MED, unit)
        return fmt(MED, unit) " (" fmt(MIN, unit) "–" fmt(MAX, unit) ")"
    }
    function ratio(mtu, fig, num, rival,    a, b) {
        if (!stats(mtu SUBSEP num SUBSEP fig)) return "—"
        a = MED
        if (!stats(mtu SUBSEP rival SUBSEP fig) || MED == 0) return "—"
        b = MED
        return sprintf("%.2f×", a / b)
    }
    {
        key = $1 SUBSEP $2 SUBSEP $3
        cnt[key]++
        val[key, cnt[key]] = $5
    }
    END {
        nf = split("send_gbps recv_gbps send_x2_gbps send_x4_gbps recv_x2_gbps recv_x4_gbps rr_p50_other rr_p99_other rr_p50_same rr_p99_same crr1_cps crr50_cps", figs, " ")
        label["send_x2_gbps"] = "Send, 2 streams at once (Gbit/s, total) ↑"; unit["send_x2_gbps"] = "Gbit/s"
        label["send_x4_gbps"] = "Send, 4 streams at once (Gbit/s, total) ↑"; unit["send_x4_gbps"] = "Gbit/s"
        label["recv_x2_gbps"] = "Receive, 2 streams at once (Gbit/s, total) ↑"; unit["recv_x2_gbps"] = "Gbit/s"
        label["recv_x4_gbps"] = "Receive, 4 streams at once (Gbit/s, total) ↑"; unit["recv_x4_gbps"] = "Gbit/s"
        label["send_gbps"] = "Send, client → peer (Gbit/s) ↑"; unit["send_gbps"] = "Gbit/s"
        label["recv_gbps"] = "Receive, peer → client (Gbit/s) ↑"; unit["recv_gbps"] = "Gbit/s"
        label["rr_p50_other"] = "Request/response p50, other CPU (µs) ↓"; unit["rr_p50_other"] = "µs"
        label["rr_p99_other"] = "Request/response p99, other CPU (µs) ↓"; unit["rr_p99_other"] = "µs"
        label["rr_p50_same"] = "Request/response p50, same CPU (µs) ↓"; unit["rr_p50_same"] = "µs"
        label["rr_p99_same"] = "Request/response p99, same CPU (µs) ↓"; unit["rr_p99_same"] = "µs"
        label["crr1_cps"] = "Sequential connect/close (conn/s) ↑"; unit["crr1_cps"] = "conn/s"
        label["crr50_cps"] = "50 concurrent clients (conn/s) ↑"; unit["crr50_cps"] = "conn/s"
        nm = split(mtus, m, " ")
        nr = split(rivals, r, " ")
        has_tunstack = has_tunstack6 = 0
        for (j = 1; j <= nr; j++) {
            if (r[j] == "tunstack") has_tunstack = 1
            if (r[j] == "tunstack6") has_tunstack6 = 1
        }
        # The ratio columns, numerator / denominator: tunstack / each other
        # rival, but tunstack6 / kernel6 (the IPv6 pair) when both are run.
        nq = 0
        for (j = 1; j <= nr; j++) {
            if (r[j] == "kernel6" && has_tunstack6) { nq++; qa[nq] = "tunstack6"; qb[nq] = r[j] }
            else if (has_tunstack && r[j] != "tunstack") { nq++; qa[nq] = "tunstack"; qb[nq] = r[j] }
        }
        for (i = 1; i <= nm; i++) {
            header = "| MTU " m[i] " |"
            rule = "|---|"
            for (j = 1; j <= nr; j++) { header = header " " r[j] " |"; rule = rule "---|" }
            for (q = 1; q <= nq; q++) { header = header " " qa[q] "/" qb[q] " |"; rule = rule "---|" }
            print header
            print rule
            for (f = 1; f <= nf; f++) {
                fig = figs[f]
                line = "| " label[fig] " |"
                for (j = 1; j <= nr; j++) line = line " " cell(m[i] SUBSEP r[j] SUBSEP fig, unit[fig]) " |"
                for (q = 1; q <= nq; q++) line = line " " ratio(m[i], fig, qa[q], qb[q]) " |"
                print line
            }
            print ""
        }
        if (cnt["1500" SUBSEP "tunstack" SUBSEP "hold_established"] > 0) {
            print "| Idle connections (MTU 1500, tunstack) | |"
            print "|---|---|"
            print "| Established | " cell("1500" SUBSEP "tunstack" SUBSEP "hold_established", "n") " |"
            print "| Peer RSS while holding them (MiB) ↓ | " cell("1500" SUBSEP "tunstack" SUBSEP "hold_rss_mib", "MiB") " |"
            print "| Peer VmHWM (MiB) ↓ | " cell("1500" SUBSEP "tunstack" SUBSEP "hold_hwm_mib", "MiB") " |"
            print "| Peer RSS before (MiB) | " cell("1500" SUBSEP "tunstack" SUBSEP "hold_idle_rss_mib", "MiB") " |"
            print ""
        }
    }' "$RESULTS_TSV"
}

# Figures expected but not produced.
missing_figures() {
    local mtu rival fig
    for mtu in "${MTU_LIST[@]}"; do
        for rival in "${RIVAL_LIST[@]}"; do
            for fig in send_gbps recv_gbps send_x2_gbps send_x4_gbps recv_x2_gbps recv_x4_gbps rr_p50_other rr_p99_other rr_p50_same rr_p99_same crr1_cps crr50_cps; do
                awk -F'\t' -v m="$mtu" -v r="$rival" -v f="$fig" \
                    '$1 == m && $2 == r && $3 == f && $5 != "" { found = 1 } END { exit !found }' \
                    "$RESULTS_TSV" || echo "mtu $mtu $rival $fig"
            done
        done
    done
    if ((HOLD)); then
        awk -F'\t' '$3 == "hold_rss_mib" && $5 != "" { found = 1 } END { exit !found }' "$RESULTS_TSV" ||
            echo "mtu 1500 tunstack hold"
    fi
}

# The version of a crate in Cargo.lock.
lock_version() {
    awk -v n="$1" '$1 == "name" && $3 == "\"" n "\"" { getline; gsub(/"/, "", $3); print $3; exit }' "$REPO/Cargo.lock"
}

GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1) ]]; then
    GIT_REV="$GIT_REV (with uncommitted changes)"
fi
[[ -n ${TUNSTACK_BIN:-} ]] && GIT_REV="binary $TUNSTACK_BIN"
TABLE=$(make_table)
IPV6_RATIO_NOTE=""
if [[ " ${RIVAL_LIST[*]} " == *" tunstack6 "* && " ${RIVAL_LIST[*]} " == *" kernel6 "* ]]; then
    IPV6_RATIO_NOTE=", and tunstack6 / kernel6 for kernel6"
fi
mapfile -t MISSING < <(missing_figures)

mkdir -p "$(dirname "$OUT_MD")"
{
    echo "# tunstack benchmark, $(date '+%Y-%m-%d %H:%M:%S')"
    echo
    echo "- tunstack $GIT_REV; $(uname -sr); $(nproc) CPUs; the peer on CPU $CPU_PEER, the client on CPU $CPU_CLIENT"
    echo "- $RUNS run(s) per rival and MTU, each on fresh namespaces; cells: median (min–max)"
    echo "- transfers of $BYTES bytes; request/response: $RR_COUNT exchanges of $RR_SIZE B after $RR_WARMUP warm-up ones, TCP_NODELAY;" \
        "connect/close tests: ${CRR_SECS} s or $CRR_MAX connections each (connect, shutdown(Write), read to EOF, close)"
    echo "- ↑ higher is better, ↓ lower is better; ratios are tunstack / rival of the medians${IPV6_RATIO_NOTE}" \
        "(above 1 is better for ↑, below 1 is better for ↓)"
    echo "- tunstack (TSO and checksum offload on), tunstack-off (offload off), tunstack-2q (offload on, 2 queues) and smoltcp run on a TUN device; kernel is kernel TCP over a veth pair between two namespaces" \
        "(servers: tunstack run; examples/bench_smoltcp.rs on smoltcp $(lock_version smoltcp);" \
        "examples/bench_kernel_server.rs on tokio $(lock_version tokio))"
    if [[ " ${RIVAL_LIST[*]} " == *" tunstack6 "* || " ${RIVAL_LIST[*]} " == *" kernel6 "* ]]; then
        echo "- tunstack6 and kernel6 are tunstack and kernel over IPv6 (fd00::1 to fd00::2, every figure); the other rivals use IPv4"
    fi
    echo "- measuring took $((ELAPSED / 60)) min $((ELAPSED % 60)) s; load average $LOAD_BEFORE before, $LOAD_AFTER after" \
        "(anything else running on the machine makes the figures noisy)"
    echo
    echo "$TABLE"
    if ((${#MISSING[@]})); then
        echo
        echo "Not produced:"
        printf -- '- %s\n' "${MISSING[@]}"
    fi
} >"$OUT_MD"
{
    printf '{"date":"%s","git":"%s","kernel":"%s","cpus":%s,"cpu_peer":%s,"cpu_client":%s,' \
        "$(date -Iseconds)" "$(json_escape "$GIT_REV")" "$(json_escape "$(uname -sr)")" "$(nproc)" "$CPU_PEER" "$CPU_CLIENT"
    printf '"params":{"quick":%s,"runs":%s,"bytes":%s,"mtus":[%s],"rivals":["%s"],"rr_count":%s,"rr_size":%s,"rr_warmup":%s,"crr_secs":%s,"crr_concurrency":%s,"crr_max_connections":%s,"hold":%s,"hold_inflight":%s},' \
        "$( ((QUICK)) && echo true || echo false)" "$RUNS" "$BYTES" "$(
            IFS=,
            echo "${MTU_LIST[*]}"
        )" "$(
            IFS=,
            list="${RIVAL_LIST[*]}"
            echo "${list//,/\",\"}"
        )" "$RR_COUNT" "$RR_SIZE" "$RR_WARMUP" "$CRR_SECS" "$CRR_CONC" "$CRR_MAX" "$HOLD_COUNT" "$HOLD_INFLIGHT"
    printf '"elapsed_secs":%s,"loadavg_before":"%s","loadavg_after":"%s","failures":%s,"results":[\n' \
        "$ELAPSED" "$LOAD_BEFORE" "$LOAD_AFTER" "$FAILURES"
    sed '$!s/$/,/' "$RESULTS_JSON"
    printf ']}\n'
} >"$OUT_JSON"

echo
echo "$TABLE"
echo "Results: $OUT_MD, $OUT_JSON ($((ELAPSED / 60)) min $((ELAPSED % 60)) s)"
if ((${#MISSING[@]})); then
    say "FAILED: ${#MISSING[@]} figure(s) not produced:"
    printf '    %s\n' "${MISSING[@]}" >&2
    exit 1
fi
if ((FAILURES)); then
    say "warning: $FAILURES step(s) failed (the other runs produced their figures)"
fi
