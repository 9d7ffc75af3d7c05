#!/usr/bin/env bash
# Regenerates the reference captures in pcaps/ (see pcaps/README.md).
#
#   sudo scripts/make-pcaps.sh [SCENARIO...]     (default: all of them)
#
# Builds the release binary, then for each scenario creates a private network
# namespace `tunstack-pcaps-<pid>-<n>` with tun0 (kernel side 10.0.0.1/24,
# stack 10.0.0.2), runs tunstack there with --pcap and the scenario's flags,
# drives a real kernel client (python3), stops the stack and deletes the
# namespace. Nothing outside those namespaces is configured.
#
# The captures are pcapng (the stack picks the format from the .pcapng
# extension): each packet carries a comment saying what the stack did with
# it (state transitions, retransmissions, probes, drops), which Wireshark
# shows as the packet comment and `tshark -Y frame.comment` lists.
#
# Each capture is checked with tshark before it replaces pcaps/<name>.pcapng:
# no malformed packets, every IPv4 and TCP checksum verified good, and the
# scenario's feature present (a keep-alive, a retransmission, ...), plus the
# state transitions the stack logged (RUST_LOG=tunstack::tcp=debug). A
# timing-sensitive scenario is retried up to 3 times. Running it again
# replaces the captures with equivalent ones; a failed scenario leaves the
# old capture in place and makes the script exit non-zero.
#
# Needs: root, cargo, ip (iproute2), python3, tshark.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

STACK_ADDR=10.0.0.2
HOST_CIDR=10.0.0.1/24
OUT_DIR="$REPO/pcaps"
BIN="$REPO/target/release/tunstack"
TCP_TOOL="$REPO/tests/netns/tcp_tool.py"
READY_TIMEOUT=15 # seconds
ATTEMPTS=3

ALL_SCENARIOS=(
    handshake-data-close-kernel-closes-first
    handshake-data-close-tunstack-closes-first
    simultaneous-close
    rst-to-closed-port
    keepalive-probes
    retransmission-after-drop
    zero-window-probing
)

die() {
    echo "make-pcaps: $*" >&2
    exit 1
}

section() {
    printf '\n=== %s ===\n' "$*"
}

# --- preflight ---------------------------------------------------------------

if [[ $EUID -ne 0 ]]; then
    die "must run as root (it creates network namespaces and TUN devices): sudo $0"
fi
for tool in cargo ip python3 tshark; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "missing $tool (Debian/Ubuntu: apt-get install iproute2 python3 tshark; cargo: https://rustup.rs)"
done
[[ -e /dev/net/tun ]] || die "/dev/net/tun is missing: this kernel or container has no TUN support"

SCENARIOS=("$@")
((${#SCENARIOS[@]})) || SCENARIOS=("${ALL_SCENARIOS[@]}")
for s in "${SCENARIOS[@]}"; do
    [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || die "unknown scenario $s (known: ${ALL_SCENARIOS[*]})"
done

section "Build (cargo build --release)"
cargo build --release || die "cargo build --release failed (see above)"
[[ -x $BIN ]] || die "build finished but $BIN is missing"

# --- namespaces, the stack, cleanup ----------------------------------------------

NS=""
NS_COUNT=0
SCENARIO_PID=""
STACK_PID=""
BG_PIDS=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tunstack-pcaps.XXXXXX")"
LOG="$WORK/stack.log"
STACK_OUT="$WORK/stack.out"

# Stops a process we started: SIGINT (the stack prints its counters), then
# SIGKILL after 5 s.
stop_pid() {
    local pid=$1
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null
}

stop_stack() {
    local pid=$STACK_PID rc=0
    [[ -n $pid ]] || return 0
    STACK_PID=""
    stop_pid "$pid" || rc=$?
    return "$rc"
}

ns_down() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BG_PIDS=()
    stop_stack >/dev/null 2>&1 || true
    if [[ -n $NS ]]; then
        ip netns del "$NS" 2>/dev/null || true
        NS=""
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # A running scenario (a subshell) stops its own stack and clients.
    if [[ -n $SCENARIO_PID ]]; then
        kill -TERM "$SCENARIO_PID" 2>/dev/null || true
        wait "$SCENARIO_PID" 2>/dev/null || true
    fi
    ns_down
    rm -rf "$WORK"
    rm -f "$OUT_DIR"/*.tmp.pcapng
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() {
    ip netns exec "$NS" "$@"
}

ns_up() {
    NS_COUNT=$((NS_COUNT + 1))
    NS="tunstack-pcaps-$$-$NS_COUNT"
    ip netns add "$NS"
    in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
    in_ns ip link set lo up
    in_ns ip tuntap add dev tun0 mode tun
    in_ns ip addr add "$HOST_CIDR" dev tun0
    in_ns ip link set tun0 up
}

# Waits until the kernel has activated tun0 (it drops what it sends until then).
wait_link_up() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    until ip -n "$NS" -o link show dev tun0 | grep -q " state UP "; do
        ((SECONDS < deadline)) || {
            echo "tun0 did not come up"
            return 1
        }
        sleep 0.05
    done
}

# start_stack PCAP [tunstack run flags...]
start_stack() {
    local pcap=$1
    shift
    : >"$LOG"
    # `ip netns exec` execs the program in place, so $! is the stack's own PID.
    # Offload off: the teaching captures are wire-true, one segment per
    # packet, and --drop-tx counts the segments a wire would carry.
    RUST_LOG=info,tunstack::tcp=debug ip netns exec "$NS" "$BIN" run --tun tun0 --addr "$STACK_ADDR" \
        --offload off --pcap "$pcap" "$@" </dev/null >"$STACK_OUT" 2>"$LOG" &
    STACK_PID=$!
    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q "^tunstack: .* up on " "$STACK_OUT"; do
        if ! kill -0 "$STACK_PID" 2>/dev/null || ((SECONDS >= deadline)); then
            cat "$STACK_OUT" "$LOG"
            echo "the stack did not come up"
            return 1
        fi
        sleep 0.05
    done
    wait_link_up
}

# start_server PORT [tcp_tool.py serve options...]: a kernel-side server on 10.0.0.1.
start_server() {
    local out="$WORK/server.out"
    : >"$out"
    ip netns exec "$NS" python3 "$TCP_TOOL" serve "$@" >"$out" 2>&1 &
    BG_PIDS+=($!)
    local deadline=$((SECONDS + READY_TIMEOUT))
    until grep -q '^listening' "$out"; do
        ((SECONDS < deadline)) || {
            cat "$out"
            echo "the server did not start"
            return 1
        }
        sleep 0.05
    done
}

# The state transitions the stack logged for one connection (`REMOTE -> LOCAL`).
transitions() {
    awk -v c="$1 " '{ i = index($0, c); if (i) print substr($0, i + length(c)) }' "$LOG"
}

# wait_transition CONN REGEX [SECONDS]: until a transition matching the
# extended regular expression REGEX (the whole `FROM -> TO`) is logged.
wait_transition() {
    local deadline=$((SECONDS + ${3:-5}))
    until transitions "$1" | grep -qxE "$2"; do
        ((SECONDS < deadline)) || {
            echo "$1 did not log '$2'; it logged:"
            transitions "$1" | sed 's/^/  /'
            return 1
        }
        sleep 0.05
    done
}

# expect_transitions CONN TRANSITION...: each one was logged.
expect_transitions() {
    local conn=$1 t ok=0
    shift
    for t in "$@"; do
        transitions "$conn" | grep -qxF "$t" || {
            echo "missing transition '$t' for $conn"
            ok=1
        }
    done
    echo "state transitions of $conn:"
    transitions "$conn" | sed 's/^/  /'
    return "$ok"
}

tshark_q() {
    tshark -n "$@" 2> >(grep -v '^Running as user' >&2)
}

# count PCAP FILTER: frames matching a display filter.
count() {
    tshark_q -r "$1" -Y "$2" -T fields -e frame.number | grep -c . || true
}

# expect PCAP FILTER MIN WHAT: at least MIN frames match.
expect() {
    local n
    n=$(count "$1" "$2")
    if ((n >= $3)); then
        echo "ok: $n frames of $4 ($2)"
    else
        echo "FAILED: $n frames of $4, expected at least $3 ($2)"
        return 1
    fi
}

# No malformed packets, no expert errors (bad checksums are errors), and
# every IPv4 and TCP checksum verified good. One allowance, for the kernel's
# segments only: Linux now and then sends a TCP checksum of 0xFFFF where
# 0x0000 is computed; both are zero in ones' complement and verify the same
# (RFC 1624 §3), but tshark marks them bad.
check_capture() {
    local pcap=$1 checks=(-o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE)
    local frames bad
    local negative_zero='(ip.src == 10.0.0.1 && tcp.checksum == 0xffff)'
    frames=$(count "$pcap" "frame")
    # The stack's notes: packet comments.
    if (($(count "$pcap" 'frame.comment') < 1)); then
        echo "FAILED: no packet comments"
        return 1
    fi
    bad="$(tshark_q -r "$pcap" "${checks[@]}" \
        -Y "_ws.malformed || (_ws.expert.severity >= error && !$negative_zero) || ip.checksum.status != 1 || (tcp && tcp.checksum.status != 1 && !$negative_zero)" \
        -T fields -e frame.number -e ip.src -e _ws.expert.message)"
    if [[ -n $bad ]]; then
        echo "FAILED: tshark flags these frames (frame, source, message):"
        echo "$bad"
        return 1
    fi
    local good
    good=$(tshark_q -r "$pcap" "${checks[@]}" -Y 'tcp.checksum.status == 1 && ip.checksum.status == 1' -T fields -e frame.number | grep -c . || true)
    echo "ok: $frames frames, none malformed; IPv4 and TCP checksums good in $good TCP segments"
    ((frames > 0 && good > 0))
}

# conn_of CLIENT_OUTPUT STACK_PORT: the connection as the stack logs it,
# `10.0.0.1:PORT -> 10.0.0.2:STACK_PORT`, from tcp_tool.py's `local port N`.
conn_of() {
    local port
    port=$(sed -n 's/^local port //p' "$1" | head -1)
    [[ -n $port ]] || {
        echo "no 'local port' line in the client's output" >&2
        return 1
    }
    echo "10.0.0.1:$port -> $STACK_ADDR:$2"
}

# --- scenarios -------------------------------------------------------------------
#
# Each takes the capture path, runs in the fresh namespace $NS, and returns
# non-zero if the capture does not show what it should.

scenario_handshake-data-close-kernel-closes-first() {
    local pcap=$1 out="$WORK/client.out"
    start_stack "$pcap"
    echo "\$ python3 tests/netns/tcp_tool.py chat $STACK_ADDR 7 'hello tunstack' 'bye'   # closes first"
    in_ns python3 "$TCP_TOOL" chat "$STACK_ADDR" 7 "hello tunstack" "bye" | tee "$out"
    local conn
    conn=$(conn_of "$out" 7)
    wait_transition "$conn" "LAST-ACK -> CLOSED"
    stop_stack
    expect_transitions "$conn" "LISTEN -> SYN-RCVD" "SYN-RCVD -> ESTABLISHED" \
        "ESTABLISHED -> CLOSE-WAIT" "CLOSE-WAIT -> LAST-ACK" "LAST-ACK -> CLOSED"
    expect "$pcap" "tcp.flags.syn == 1 && tcp.flags.ack == 1 && ip.src == $STACK_ADDR" 1 "SYN-ACK from tunstack"
    expect "$pcap" "tcp.len > 0 && ip.src == $STACK_ADDR" 2 "echoed data from tunstack"
    # The first FIN is the kernel's.
    local first_fin
    first_fin=$(tshark_q -r "$pcap" -Y "tcp.flags.fin == 1" -T fields -e ip.src | head -1)
    [[ $first_fin == 10.0.0.1 ]] || {
        echo "FAILED: the first FIN came from $first_fin, expected the kernel (10.0.0.1)"
        return 1
    }
    echo "ok: the kernel sent the first FIN"
}

scenario_handshake-data-close-tunstack-closes-first() {
    local pcap=$1 out="$WORK/client.out"
    # TIME-WAIT = 2 x MSL = 2 s, over before the stack is stopped.
    start_stack "$pcap" --msl-ms 1000
    echo "\$ python3 tests/netns/tcp_tool.py http $STACK_ADDR 80 /bytes/2000 --http10   # the server closes first"
    in_ns python3 "$TCP_TOOL" http "$STACK_ADDR" 80 /bytes/2000 --http10 | tee "$out"
    local conn
    conn=$(conn_of "$out" 80)
    wait_transition "$conn" "TIME-WAIT -> CLOSED" 6
    stop_stack
    expect_transitions "$conn" "LISTEN -> SYN-RCVD" "SYN-RCVD -> ESTABLISHED" \
        "ESTABLISHED -> FIN-WAIT-1" "TIME-WAIT -> CLOSED"
    transitions "$conn" | grep -q -- "-> TIME-WAIT$" || {
        echo "FAILED: no TIME-WAIT"
        return 1
    }
    local first_fin
    first_fin=$(tshark_q -r "$pcap" -Y "tcp.flags.fin == 1" -T fields -e ip.src | head -1)
    [[ $first_fin == "$STACK_ADDR" ]] || {
        echo "FAILED: the first FIN came from $first_fin, expected tunstack ($STACK_ADDR)"
        return 1
    }
    echo "ok: tunstack sent the first FIN"
    expect "$pcap" "tcp.flags.fin == 1 && ip.src == $STACK_ADDR && frame.comment contains \"ESTABLISHED -> FIN-WAIT-1\"" 1 "tunstack's FIN with its state change"
    expect "$pcap" 'frame.comment contains "TIME-WAIT until"' 1 "the end of TIME-WAIT"
}

scenario_simultaneous-close() {
    local pcap=$1 out="$WORK/connect.out" clog="$WORK/connect.log"
    # The server half-closes as soon as the first byte arrives. tunstack
    # sends that byte once the server has accepted the connection, and its
    # FIN 100 ms later (the end of its stdin). With every incoming packet
    # held 200 ms, the kernel's FIN reaches tunstack after tunstack's FIN has
    # left and before the ACK of it: the FINs cross, and both ends go
    # FIN-WAIT-1 -> CLOSING -> TIME-WAIT.
    start_server 5000 --close-on-first-byte
    echo "\$ (printf x; sleep 0.1) | tunstack connect --rx-delay-ms 200 10.0.0.1:5000   # x once the server has accepted"
    (
        deadline=$((SECONDS + READY_TIMEOUT))
        until grep -q '^accepted' "$WORK/server.out" || ((SECONDS >= deadline)); do
            sleep 0.01
        done
        printf x
        sleep 0.1
    ) | RUST_LOG=info,tunstack::tcp=debug timeout 20 ip netns exec "$NS" "$BIN" connect --tun tun0 \
        --addr "$STACK_ADDR" --pcap "$pcap" --rx-delay-ms 200 --msl-ms 500 --timeout 5 10.0.0.1:5000 \
        >"$out" 2>"$clog" || {
        cat "$clog"
        echo "FAILED: tunstack connect failed"
        return 1
    }
    wait "${BG_PIDS[@]}" 2>/dev/null || true
    BG_PIDS=()
    cp "$clog" "$LOG"
    local conn
    conn=$(grep -o "10\.0\.0\.1:5000 -> $STACK_ADDR:[0-9]*" "$LOG" | head -1)
    expect_transitions "$conn" "SYN-SENT -> ESTABLISHED" "ESTABLISHED -> FIN-WAIT-1" \
        "FIN-WAIT-1 -> CLOSING" "CLOSING -> TIME-WAIT"
    # On the wire: neither FIN acknowledges the other.
    local fins
    fins="$(tshark_q -r "$pcap" -Y "tcp.flags.fin == 1" -T fields -e ip.src -e tcp.seq -e tcp.ack)"
    echo "FINs (source, seq, ack):"
    awk '{ print "  " $0 }' <<<"$fins"
    awk -v stack="$STACK_ADDR" '
        $1 == stack { s_seq = $2; s_ack = $3; s++ }
        $1 != stack { k_seq = $2; k_ack = $3; k++ }
        END { exit !(s == 1 && k == 1 && s_ack <= k_seq && k_ack <= s_seq) }' <<<"$fins" || {
        echo "FAILED: the FINs did not cross"
        return 1
    }
    echo "ok: the FINs crossed (each was sent before the other arrived)"
}

scenario_rst-to-closed-port() {
    local pcap=$1 rc=0
    start_stack "$pcap"
    echo "\$ python3 tests/netns/tcp_tool.py refused $STACK_ADDR 1   # no listener on port 1"
    in_ns python3 "$TCP_TOOL" refused "$STACK_ADDR" 1 || rc=$?
    [[ $rc -eq 2 ]] || {
        echo "FAILED: expected ConnectionRefusedError (exit 2), got exit status $rc"
        return 1
    }
    stop_stack
    expect "$pcap" "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == 1" 1 "SYN to port 1"
    expect "$pcap" "tcp.flags.reset == 1 && tcp.flags.ack == 1 && ip.src == $STACK_ADDR && tcp.srcport == 1" 1 "RST/ACK from tunstack"
    expect "$pcap" 'frame.comment contains "answered with RST"' 1 "the SYN's comment"
}

scenario_keepalive-probes() {
    local pcap=$1 out="$WORK/client.out"
    start_stack "$pcap" --keepalive 1000,500,3
    echo "\$ python3 tests/netns/tcp_tool.py idle $STACK_ADDR 7 3.5   # one byte, then idle 3.5 s"
    in_ns python3 "$TCP_TOOL" idle "$STACK_ADDR" 7 3.5 | tee "$out"
    local conn
    conn=$(conn_of "$out" 7)
    wait_transition "$conn" "LAST-ACK -> CLOSED"
    stop_stack
    expect "$pcap" "tcp.analysis.keep_alive && ip.src == $STACK_ADDR" 3 "keep-alive probes from tunstack"
    expect "$pcap" 'frame.comment contains "keepalive probe 1 of 3"' 3 "the probes' comments (each answered: the count restarts)"
    expect "$pcap" 'frame.comment contains "answered keepalive probe"' 2 "the answers' comments"
    expect "$pcap" "tcp.analysis.keep_alive_ack && ip.src == 10.0.0.1" 2 "ACKs to them from the kernel"
}

scenario_retransmission-after-drop() {
    local pcap=$1 out="$WORK/client.out"
    # Outgoing packet 4 is a data segment of the response (1: SYN-ACK).
    start_stack "$pcap" --drop-tx 4
    echo "\$ python3 tests/netns/tcp_tool.py bytes $STACK_ADDR 80 30000   # tunstack drops its 4th outgoing packet"
    in_ns python3 "$TCP_TOOL" bytes "$STACK_ADDR" 80 30000 | tee "$out"
    local conn
    conn=$(conn_of "$out" 80)
    wait_transition "$conn" ".* -> TIME-WAIT"
    stop_stack
    grep "fault: dropped outgoing packet #4" "$LOG"
    expect "$pcap" "frame.number >= 1 && ip.src == $STACK_ADDR && tcp.len > 0" 20 "data segments from tunstack"
    expect "$pcap" "(tcp.analysis.retransmission || tcp.analysis.fast_retransmission) && ip.src == $STACK_ADDR" 1 "retransmissions"
    expect "$pcap" 'frame.comment contains "retransmi" || frame.comment contains "tail loss probe"' 1 "a comment on the repair"
}

scenario_zero-window-probing() {
    local pcap=$1 out="$WORK/client.out"
    start_stack "$pcap"
    echo "\$ python3 tests/netns/tcp_tool.py bytes $STACK_ADDR 80 100000 --rcvbuf 4096 --pause 3   # reads nothing for 3 s"
    in_ns python3 "$TCP_TOOL" bytes "$STACK_ADDR" 80 100000 --rcvbuf 4096 --pause 3 | tee "$out"
    local conn
    conn=$(conn_of "$out" 80)
    wait_transition "$conn" ".* -> TIME-WAIT"
    stop_stack
    expect "$pcap" "tcp.analysis.zero_window && ip.src == 10.0.0.1" 1 "zero-window advertisements from the kernel"
    expect "$pcap" "tcp.analysis.zero_window_probe && ip.src == $STACK_ADDR" 2 "zero-window probes from tunstack"
    expect "$pcap" 'frame.comment contains "zero-window probe"' 2 "the probes' comments"
    expect "$pcap" "tcp.analysis.window_update && ip.src == 10.0.0.1" 1 "window updates once the client reads"
}

# --- run them ----------------------------------------------------------------------

FAILURES=()
mkdir -p "$OUT_DIR"
for name in "${SCENARIOS[@]}"; do
    final="$OUT_DIR/$name.pcapng"
    tmp="$OUT_DIR/$name.tmp.pcapng"
    ok=0
    for attempt in $(seq "$ATTEMPTS"); do
        section "$name (attempt $attempt)"
        rm -f "$tmp"
        ns_up
        echo "namespace $NS: tun0 kernel side $HOST_CIDR, tunstack $STACK_ADDR"
        rc=0
        # A subshell of its own, waited for, so that `set -e` stops the
        # scenario at its first failing step (it would be ignored in a
        # function called as a condition). It tears its namespace down itself.
        (
            trap ns_down EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            "scenario_$name" "$tmp"
        ) &
        SCENARIO_PID=$!
        wait "$SCENARIO_PID" || rc=$?
        SCENARIO_PID=""
        ns_down
        if ((rc == 0)) && check_capture "$tmp"; then
            ok=1
            break
        fi
        echo "--> attempt $attempt failed; stack log:"
        sed 's/^/  /' "$LOG" | tail -30
    done
    if ((ok)); then
        mv -f "$tmp" "$final"
        if [[ -n ${SUDO_UID:-} && -n ${SUDO_GID:-} ]]; then
            chown "$SUDO_UID:$SUDO_GID" "$final" 2>/dev/null || true
        fi
        echo "--> OK: ${final#"$REPO"/} ($(stat -c %s "$final") bytes, $(count "$final" frame) frames)"
    else
        echo "--> FAILED: $name (kept the previous ${final#"$REPO"/}, if any)"
        FAILURES+=("$name")
    fi
done

section "Summary"
if ((${#FAILURES[@]})); then
    echo "FAILED scenarios:"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "All ${#SCENARIOS[@]} captures written to ${OUT_DIR#"$REPO"/}/ and checked with tshark."
