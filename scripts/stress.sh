#!/usr/bin/env bash
# tunstack's load tests: many clients at once, dead peers, forged floods,
# stalled readers and a soak, each against the release binary on a TUN in a
# private network namespace, driven by the kernel's own TCP
# (scripts/stress.py). Prints a table of figures and the bound each is held
# to, and writes it to target/stress/stress-YYYYmmdd-HHMMSS.md.
#
#   sudo scripts/stress.sh [--quick] [--only LIST] [--no-build] [-- TUNSTACK-ARGS...]
#
#   --quick       the small version CI runs (about a minute): 2,000 burst
#                 connects, 5,000 held, 200 killed with 2 s keepalive, a
#                 2 s flood, 30 stalled readers, a 5 s soak
#   --only LIST   comma-separated of burst,many,killed,flood,stalled,soak
#   --no-build    use target/release/tunstack as it is
#   -- ARGS       extra arguments for `tunstack run`
#
# The full run holds the bounds of issue 10 (10,000 burst connects with 250
# in flight; 100,000 idle connections from 7 source addresses for 60 s; a
# client killed with 1,000 connections, reaped by the services' default
# keepalive within 2 minutes; a 3 s flood; 300 stalled readers; a 2-minute
# soak) and takes about 8 minutes.
#
# Everything runs in one namespace, tunstack-stress-<pid>, deleted on exit
# (also on Ctrl-C); every scenario has its own timeout. Exits non-zero if a
# bound was not held.
#
# Needs: root, /dev/net/tun, cargo (unless --no-build), iproute2, python3.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SCRIPT_NAME=stress
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

QUICK=()
ONLY=""
BUILD=1
STACK_ARGS=()
while (($#)); do
    case $1 in
    --quick) QUICK=(--quick) ;;
    --only)
        ONLY=$2
        shift
        ;;
    --no-build) BUILD=0 ;;
    --)
        shift
        STACK_ARGS=("$@")
        break
        ;;
    -h | --help)
        sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        say "unknown option $1 (see --help)"
        exit 2
        ;;
    esac
    shift
done

is_root || {
    say "needs root (network namespaces and a TUN device)"
    exit 1
}
ensure_tools ip python3 || exit 1
if ((BUILD)); then
    find_cargo || exit 1
    say "building the release binary"
    "$CARGO" build --release --quiet --bin tunstack
fi
BIN="$REPO/target/release/tunstack"
[[ -x $BIN ]] || {
    say "$BIN is missing (build it, or drop --no-build)"
    exit 1
}

NS="tunstack-stress-$$"
OUT_DIR="$REPO/target/stress/stress-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT_DIR"

cleanup() {
    trap - EXIT INT TERM
    # Only what this script started lives in the namespace.
    local pids
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

ip netns add "$NS"
ip -n "$NS" link set lo up
# In the namespace only: the whole port range for the clients, and IPv6
# off so router solicitations do not show up in the drop counters.
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" \
    net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

args=(run --stack "$BIN" --out-dir "$OUT_DIR" "${QUICK[@]}")
[[ -n $ONLY ]] && args+=(--only "$ONLY")
for a in "${STACK_ARGS[@]}"; do
    args+=("--stack-arg=$a")
done
say "namespace $NS; results in $OUT_DIR"
status=0
ip netns exec "$NS" python3 "$REPO/scripts/stress.py" "${args[@]}" || status=$?
cp "$OUT_DIR/stress.md" "$OUT_DIR.md" 2>/dev/null || true
((status == 0)) && say "all bounds held ($OUT_DIR.md)" || say "FAILED: a bound was not held (see $OUT_DIR.md and $OUT_DIR/stack.log)"
exit "$status"
