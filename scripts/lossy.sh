#!/usr/bin/env bash
# Goodput over a lossy, delayed path: the kernel's TCP sends to tunstack's
# discard service through tunstack's own fault injection (seeded random loss
# each way, delay on incoming packets), with tunstack's SACK on and off and
# the kernel's sender on BBR and on CUBIC (set per socket with
# TCP_CONGESTION). Everything runs in a private namespace it creates and
# deletes.
#
#   sudo scripts/lossy.sh [--bytes N] [--delay-ms MS] [--loss LIST] [--cc LIST] [--no-build]
#
#   --bytes N      bytes per transfer (default 20 MiB)
#   --delay-ms MS  delay added to every packet reaching tunstack (default 20:
#                  a 20 ms round trip)
#   --loss LIST    loss percentages, each way (default 0,1,5)
#   --cc LIST      the kernel sender's congestion control (default bbr,cubic)
#
# Prints one line per transfer and a table of Mbit/s. Each transfer has a
# 120 s limit; one that does not finish is reported as failed. The kernel ↔
# kernel reference over the same path (a relay between two TUN devices) is
# still to come (issue 12).

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SCRIPT_NAME=lossy
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

BYTES=$((20 << 20))
DELAY=20
LOSSES="0,1,5"
CCS="bbr,cubic"
BUILD=1
while (($#)); do
    case $1 in
    --bytes) BYTES=$2; shift ;;
    --delay-ms) DELAY=$2; shift ;;
    --loss) LOSSES=$2; shift ;;
    --cc) CCS=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) say "unknown argument $1"; exit 2 ;;
    esac
    shift
done

is_root || { say "must run as root (it creates a network namespace and a TUN device): sudo $0"; exit 1; }
ensure_tools ip python3 || exit 1
if ((BUILD)); then
    find_cargo || exit 1
    cargo build --release --bin tunstack >&2
fi
BIN="$REPO/target/release/tunstack"
[[ -x $BIN ]] || { say "no $BIN (build it, or drop --no-build)"; exit 1; }

NS="tunstack-lossy-$$"
PEER_PID=""
cleanup() {
    [[ -n $PEER_PID ]] && kill -INT "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

# transfer CC LOSS SACK_FLAG: prints Mbit/s, or "failed".
transfer() {
    local cc=$1 loss=$2 sack=$3 out
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" tuntap add dev tsl0 mode tun
    ip -n "$NS" addr add 10.0.0.1/24 dev tsl0
    ip -n "$NS" link set dev tsl0 up
    local args=(run --tun tsl0 --addr 10.0.0.2 --http-port 0 --udp-echo-port 0 --udp-time-port 0
        --offload off --rx-delay-ms "$DELAY" --loss "$loss" --fault-seed 3)
    [[ $sack == off ]] && args+=(--no-sack)
    RUST_LOG=warn ip netns exec "$NS" "$BIN" "${args[@]}" </dev/null >/dev/null 2>&1 &
    PEER_PID=$!
    out=$(ip netns exec "$NS" timeout 120 python3 - "$cc" "$BYTES" <<'PY' || echo failed
import socket, sys, time
cc, total = sys.argv[1].encode(), int(sys.argv[2])
deadline = time.time() + 10
while True:
    try:
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc)
        s.connect(("10.0.0.2", 9))
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.05)
buf = b"x" * 65536
sent, start = 0, time.time()
while sent < total:
    n = min(len(buf), total - sent)
    s.sendall(buf[:n])
    sent += n
s.shutdown(socket.SHUT_WR)
s.recv(1)
print("%.1f" % (sent * 8 / (time.time() - start) / 1e6))
PY
    )
    kill -INT "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
    PEER_PID=""
    ip netns del "$NS"
    echo "$out"
}

IFS=',' read -r -a LOSS_LIST <<<"$LOSSES"
IFS=',' read -r -a CC_LIST <<<"$CCS"
declare -A RESULT
total=$((${#LOSS_LIST[@]} * ${#CC_LIST[@]} * 2))
n=0
for cc in "${CC_LIST[@]}"; do
    for loss in "${LOSS_LIST[@]}"; do
        for sack in on off; do
            n=$((n + 1))
            printf '%s: [%d/%d] kernel %s -> tunstack, %s %% loss, SACK %s ... ' \
                "$SCRIPT_NAME" "$n" "$total" "$cc" "$loss" "$sack" >&2
            r=$(transfer "$cc" "$loss" "$sack")
            RESULT[$cc,$loss,$sack]=$r
            echo "$r" >&2
        done
    done
done

echo
echo "Kernel sender -> tunstack, $((BYTES >> 20)) MiB, ${DELAY} ms added delay, loss each way; Mbit/s"
echo
echo "| kernel sender | loss | tunstack, SACK on | SACK off |"
echo "|---|---|---|---|"
for cc in "${CC_LIST[@]}"; do
    for loss in "${LOSS_LIST[@]}"; do
        echo "| $cc | $loss % | ${RESULT[$cc,$loss,on]} | ${RESULT[$cc,$loss,off]} |"
    done
done
