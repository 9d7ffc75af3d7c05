#!/usr/bin/env bash
# Profiles one benchmark figure: the peer runs under `perf record -g`
# (pinned to CPU 0) while examples/bench_client.rs drives it from CPU 1,
# in a private namespace created and removed here; then prints the top of
# `perf report`.
#
#   sudo scripts/profile.sh [--rival tunstack|smoltcp] [--mtu N] [--top N]
#                           [--streams N] [--bin PATH] FIGURE
#
# FIGURE: send | recv | rr | crr1 | crr50; --streams N runs send or recv
# over N connections at once (the bench's "N streams" rows); --bin PATH
# profiles another tunstack binary (an older build, for A/B runs). The
# client's JSON line gives the figure itself. The recording is left in
# target/profile/perf-RIVAL-FIGURE-MTU.data (open it with `perf report -i`).
# Build first: scripts/bench.sh builds the release binaries, or
#   cargo build --release --bin tunstack --example bench_client --example bench_smoltcp

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SCRIPT_NAME=profile
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

RIVAL=tunstack
MTU=1500
TOP=40
STREAMS=1
FIGURE=""
BIN_TUNSTACK=target/release/tunstack
while (($#)); do
    case $1 in
    --rival) RIVAL=$2; shift 2 ;;
    --mtu) MTU=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --bin) BIN_TUNSTACK=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) FIGURE=$1; shift ;;
    esac
done
[[ -n $FIGURE ]] || { say "usage: scripts/profile.sh [--rival R] [--mtu N] [--streams N] [--bin PATH] FIGURE"; exit 2; }
[[ $STREAMS =~ ^[1-9][0-9]*$ ]] || { say "--streams: expected a count, got $STREAMS"; exit 2; }
is_root || { say "needs root (network namespaces, perf)"; exit 1; }
ensure_tools perf ip taskset || exit 1

BIN_SMOLTCP=target/release/examples/bench_smoltcp
BIN_CLIENT=target/release/examples/bench_client
for b in "$BIN_TUNSTACK" "$BIN_CLIENT"; do
    [[ -x $b ]] || { say "$b is missing: build it first (see --help)"; exit 1; }
done

NS="tsprof-$$"
PEER_PID=""
cleanup() {
    [[ -n $PEER_PID ]] && kill -INT "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev tsb0 mode tun
ip -n "$NS" addr add 10.0.0.1/24 dev tsb0
ip -n "$NS" link set dev tsb0 mtu "$MTU" up
ip netns exec "$NS" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6' || true
# Every local port for the client, as scripts/bench.sh gives it: with the
# default range (32768-60999) the connect/close figures measure the
# kernel's search for a free port (a few thousand connections a second).
ip netns exec "$NS" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"

mkdir -p target/profile
DATA="target/profile/perf-$RIVAL-$FIGURE-x$STREAMS-$MTU.data"
case $RIVAL in
tunstack) PEER=("$BIN_TUNSTACK" run --tun tsb0 --addr 10.0.0.2 --http-port 0 --udp-echo-port 0 --udp-time-port 0) ;;
smoltcp) PEER=("$BIN_SMOLTCP" --tun tsb0 --addr 10.0.0.2/24 --gateway 10.0.0.1) ;;
*) say "unknown rival $RIVAL"; exit 2 ;;
esac
RUST_LOG=warn ip netns exec "$NS" taskset -c 0 perf record -q -g -o "$DATA" -- "${PEER[@]}" \
    </dev/null >/dev/null 2>&1 &
PEER_PID=$!

client() { ip netns exec "$NS" taskset -c 1 "$BIN_CLIENT" "$@"; }
client wait 10.0.0.2:9 --timeout 20 >/dev/null
case $FIGURE in
send) client send 10.0.0.2:9 --bytes $((4 << 30)) --streams "$STREAMS" ;;
recv) client recv 10.0.0.2:5001 --bytes $((4 << 30)) --streams "$STREAMS" ;;
rr) client rr 10.0.0.2:7 --size 64 --count 100000 ;;
crr1) client crr 10.0.0.2:9 --duration 3 --concurrency 1 --max-connections 30000 ;;
crr50) client crr 10.0.0.2:9 --duration 3 --concurrency 50 --max-connections 30000 ;;
*) say "unknown figure $FIGURE"; exit 2 ;;
esac
kill -INT "$PEER_PID"
wait "$PEER_PID" 2>/dev/null || true
PEER_PID=""
perf report -i "$DATA" --stdio --no-children --percent-limit 0.5 -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -n "$TOP"
say "recording: $DATA"
