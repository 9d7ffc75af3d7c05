#!/usr/bin/env bash
# tunstack demo: builds the stack, runs it on a TUN device in a private
# network namespace, and talks to it from the kernel side with real clients.
#
#   scripts/demo.sh          (as root; or: sudo scripts/demo.sh)
#
# Everything happens inside a namespace `tunstack-demo-<pid>` that this script
# creates and deletes: the kernel side of tun0 is 10.0.0.1/24 and fd00::1/64,
# the stack is 10.0.0.2 and fd00::2 (ping -6, curl -6 and UDP over IPv6
# work too). Nothing in your own network configuration is touched.
#
# Then a short TAP part: the stack on a TAP device `tap0` in a second
# namespace `tunstack-demo-tap-<pid>` speaks Ethernet and ARP; ping, `ip
# neigh` and curl over it, and its capture with the Ethernet and ARP layers.
#
# Leaves the captures in pcaps/demo.pcapng (pcapng: each packet carries the
# stack's comment on what it did with it) and pcaps/demo-tap.pcapng. Exits
# non-zero if any step failed. Runs to the end with no questions asked.
#
# Needs root and Rust (cargo is found under sudo too); installs what else it
# uses when missing, on Debian/Ubuntu: iproute2, iputils-ping, python3,
# curl, tshark (for a summary of the capture).

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SCRIPT_NAME=demo
# shellcheck source=scripts/common.sh
source "$REPO/scripts/common.sh"

STACK_ADDR=10.0.0.2
HOST_CIDR=10.0.0.1/24
STACK6=fd00::2
HOST6_CIDR=fd00::1/64
NS="tunstack-demo-$$"
NS_TAP="tunstack-demo-tap-$$"
PCAP="$REPO/pcaps/demo.pcapng"
TAP_PCAP="$REPO/pcaps/demo-tap.pcapng"
TAP_MAC=02:00:00:00:00:02
BIN="$REPO/target/release/tunstack"
UDP_CLIENT="$REPO/tests/netns/udp_client.py"
TCP_TOOL="$REPO/tests/netns/tcp_tool.py"
READY_TIMEOUT=15 # seconds

die() {
    echo "demo: $*" >&2
    exit 1
}

section() {
    printf '\n=== %s ===\n' "$*"
}

# --- preflight ---------------------------------------------------------------

if [[ $EUID -ne 0 ]]; then
    die "must run as root (it creates a network namespace and a TUN device): sudo $0"
fi
find_cargo || exit 1
ensure_tools ip ping python3 curl sha256sum || die "cannot run without the tools above"
# Optional: a summary of the capture.
ensure_tools tshark || true
[[ -e /dev/net/tun ]] || die "/dev/net/tun is missing: this kernel or container has no TUN support"
HAVE_TSHARK=0
command -v tshark >/dev/null 2>&1 && HAVE_TSHARK=1

section "Build (cargo build --release)"
cargo build --release || die "cargo build --release failed (see above)"
[[ -x $BIN ]] || die "build finished but $BIN is missing"

# --- the namespace, the TUN and the stack ---------------------------------------

STACK_PID=""
# The stack's log is kept after the demo (it is also shown at the end).
LOG="$REPO/target/demo/tunstack-demo.log"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
DOWNLOAD="$(mktemp "${TMPDIR:-/tmp}/tunstack-demo-bytes.XXXXXX")"

stop_stack() {
    # SIGINT so the stack prints its counters; SIGKILL if it ignores that.
    local pid=$STACK_PID
    [[ -n $pid ]] || return 0
    STACK_PID=""
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "demo: the stack ignored SIGINT for 5 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_stack >/dev/null 2>&1 || true
    ip netns del "$NS" 2>/dev/null || true
    ip netns del "$NS_TAP" 2>/dev/null || true
    rm -f "$DOWNLOAD"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() {
    ip netns exec "$NS" "$@"
}

section "Network namespace $NS"
ip netns add "$NS"
in_ns ip link set lo up
in_ns ip tuntap add dev tun0 mode tun
in_ns ip addr add "$HOST_CIDR" dev tun0
# IPv6 too (the stack answers ping -6 at the network layer); nodad: the
# address is usable at once.
in_ns ip -6 addr add "$HOST6_CIDR" dev tun0 nodad
in_ns ip link set tun0 up
echo "tun0 inside $NS: kernel side $HOST_CIDR and $HOST6_CIDR, stack $STACK_ADDR and $STACK6"

section "Start tunstack on tun0 as $STACK_ADDR (log: $LOG)"
# tunstack::tcp=debug logs every TCP state transition (shown at the end).
mkdir -p "$(dirname "$PCAP")"
# `ip netns exec` execs the program in place, so $! is the stack's own PID.
# Offload stays on (the default), and --pcap-segmented records the segments
# a wire would carry, so the capture reads like the textbook. Keepalive is
# on for every connection (1 s idle, then every 0.5 s, 3 probes): the
# keepalive step waits long enough to see probes answered.
RUST_LOG=info,tunstack::tcp=debug ip netns exec "$NS" "$BIN" run --tun tun0 --addr "$STACK_ADDR" \
    --addr6 "$STACK6/64" --pcap "$PCAP" --pcap-segmented --keepalive 1000,500,3 >"$LOG" 2>&1 &
STACK_PID=$!
deadline=$((SECONDS + READY_TIMEOUT))
until grep -q "^tunstack: .* up on " "$LOG"; do
    if ! kill -0 "$STACK_PID" 2>/dev/null; then
        wait "$STACK_PID" || true
        STACK_PID=""
        cat "$LOG" >&2
        die "the stack exited before it was ready (its log is above)"
    fi
    if ((SECONDS >= deadline)); then
        cat "$LOG" >&2
        die "the stack did not report ready within ${READY_TIMEOUT}s (its log is above)"
    fi
    sleep 0.1
done
# The kernel activates the link a moment after the stack attaches (in
# deferred work); until its state is UP it drops what it sends to tun0.
until ip -n "$NS" -o link show dev tun0 | grep -q " state UP "; do
    if ((SECONDS >= deadline)); then
        in_ns ip link show dev tun0 >&2
        die "tun0 did not come up within ${READY_TIMEOUT}s of the stack starting"
    fi
    sleep 0.05
done
grep "^tunstack: " "$LOG"
in_ns ip -brief addr show tun0

# --- demo steps ------------------------------------------------------------------
#
# Each step is a function that prints what it does and returns non-zero on
# failure; run_steps runs them all and records the failures. New steps are
# added by writing a function and appending it to DEMO_STEPS.

FAILURES=()

run_step() {
    local step=$1 title=$2
    section "$title"
    if "$step"; then
        echo "--> OK"
    else
        echo "--> FAILED: $title"
        FAILURES+=("$title")
    fi
}

# ping and check for 0% loss; extra arguments go to ping.
# ping_answered RUNNER ARGS...: runs ping ARGS through RUNNER (in_ns or
# in_tap), shows its output, and succeeds if every echo was answered.
ping_answered() {
    local runner=$1 out
    shift
    out="$("$runner" ping -n -W 2 -w 20 "$@" 2>&1)" || true
    echo "$out"
    grep -q " 0% packet loss" <<<"$out"
}

ping_no_loss() {
    ping_answered in_ns "$@" "$STACK_ADDR"
}

step_ping() {
    echo "\$ ping -c 4 $STACK_ADDR"
    ping_no_loss -c 4
}

step_ping_fragmented() {
    echo "\$ ping -c 3 -s 8000 $STACK_ADDR   # 8008-byte ICMP messages: fragmented both ways at MTU 1500"
    ping_no_loss -c 3 -s 8000
}

step_ping6() {
    echo "\$ ping -6 -c 3 $STACK6"
    ping_answered in_ns -6 -c 3 "$STACK6"
}

step_ping6_fragmented() {
    echo "\$ ping -6 -c 3 -s 8000 $STACK6   # IPv6 fragment headers both ways"
    ping_answered in_ns -6 -c 3 -s 8000 "$STACK6"
}

step_udp_echo() {
    local messages=("hello from the kernel side" "tunstack echoes UDP on port 7" "$(printf 'x%.0s' $(seq 1400))")
    echo "\$ python3 tests/netns/udp_client.py $STACK_ADDR 7 'hello from the kernel side' 'tunstack echoes UDP on port 7' <1400 x's>"
    local out rc=0
    out="$(in_ns python3 "$UDP_CLIENT" "$STACK_ADDR" 7 "${messages[@]}" 2>&1)" || rc=$?
    local expected
    expected="$(printf '%s\n' "${messages[@]}")"
    # Show the replies, shortening the long one.
    awk '{ if (length($0) > 80) print substr($0, 1, 40) "... (" length($0) " bytes)"; else print }' <<<"$out"
    [[ $rc -eq 0 && $out == "$expected" ]] || {
        echo "replies differ from what was sent (client exit status $rc)"
        return 1
    }
    echo "all ${#messages[@]} messages came back unchanged"
}

step_udp_time() {
    echo "\$ python3 tests/netns/udp_client.py $STACK_ADDR 9000 '%Y-%m-%d %X' ''   # the empty request asks for the default format"
    local out rc=0
    out="$(in_ns python3 "$UDP_CLIENT" "$STACK_ADDR" 9000 '%Y-%m-%d %X' '' 2>&1)" || rc=$?
    echo "$out"
    echo "(local time here: $(date '+%Y-%m-%d %X'))"
    [[ $rc -eq 0 ]] || return 1
    local shape='^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$'
    [[ $(grep -cE "$shape" <<<"$out") -eq 2 ]] || {
        echo "expected two replies shaped like YYYY-MM-DD HH:MM:SS"
        return 1
    }
}

step_udp_closed_port() {
    echo "\$ python3 tests/netns/udp_client.py --connect $STACK_ADDR 9999 'anyone there?'   # no UDP service on port 9999"
    local out rc=0
    out="$(in_ns python3 "$UDP_CLIENT" --connect --timeout 3 "$STACK_ADDR" 9999 'anyone there?' 2>&1)" || rc=$?
    echo "$out"
    [[ $rc -eq 2 ]] || {
        echo "expected ConnectionRefusedError (the stack's ICMP port unreachable), got exit status $rc"
        return 1
    }
    echo "refused: the stack answered with ICMP port unreachable"
}

step_tcp_http_page() {
    echo "\$ curl http://$STACK_ADDR/   # tunstack's HTTP/1.1 service: a status page with its live TCP connections"
    local out rc=0
    out="$(in_ns curl -sS -m 10 -w '\n%{http_code}' "http://$STACK_ADDR/" 2>&1)" || rc=$?
    local code=${out##*$'\n'} page=${out%$'\n'*}
    echo "HTTP status $code, $(wc -c <<<"$page") bytes of HTML; the page says:"
    grep -o '<h1>[^<]*</h1>' <<<"$page" | sed 's/<[^>]*>//g; s/^/  /'
    echo "  TCP connections (the table on the page):"
    # One <tr> per row; cells become columns.
    grep '^<tr>' <<<"$page" | sed 's/<\/t[dh]><t[dh]>/|/g; s/<[^>]*>//g' |
        awk -F'|' '{ printf "    %-15s %-15s %-12s %6s %6s %7s %6s %6s %11s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
    [[ $rc -eq 0 && $code == 200 ]] || {
        echo "curl failed (exit status $rc, HTTP status $code)"
        return 1
    }
    if ! grep -q tunstack <<<"$page" || ! grep -q ESTABLISHED <<<"$page"; then
        echo "the page does not show tunstack and its own connection"
        return 1
    fi
}

# Downloads /bytes/N from BASE (a URL up to the path) with curl OPTS...,
# and checks its size and SHA-256 against the pattern.
download_pattern() {
    local n=$1 base=$2
    shift 2
    local rc=0 took
    took="$(in_ns curl "$@" -sS -m 20 -o "$DOWNLOAD" -w '%{time_total}' "$base/bytes/$n" 2>&1)" || rc=$?
    [[ $rc -eq 0 ]] || {
        echo "curl failed (exit status $rc): $took"
        return 1
    }
    local size got want
    size=$(stat -c %s "$DOWNLOAD")
    got=$(sha256sum "$DOWNLOAD" | cut -d' ' -f1)
    want=$(python3 -c "import hashlib; b = bytes(range(251)) * ($n // 251 + 1); print(hashlib.sha256(b[:$n]).hexdigest())")
    echo "received $size bytes in ${took}s"
    echo "sha256 received: $got"
    echo "sha256 expected: $want"
    [[ $size -eq $n && $got == "$want" ]] || {
        echo "the download differs from the pattern"
        return 1
    }
    echo "size and SHA-256 match"
}

step_tcp_http_bytes() {
    local n=1000000
    echo "\$ curl -o <file> http://$STACK_ADDR/bytes/$n   # $n bytes of a pattern: byte i is i mod 251"
    download_pattern "$n" "http://$STACK_ADDR"
}

step_curl6() {
    local n=1000000
    echo "\$ curl -6 -o <file> 'http://[$STACK6]/bytes/$n'   # TCP over IPv6: the same service on [::]:80"
    download_pattern "$n" "http://[$STACK6]" -6
}

step_udp6_echo() {
    echo "\$ python3 tests/netns/udp_client.py $STACK6 7 'hello over IPv6'   # an AF_INET6 socket"
    local out rc=0
    out="$(in_ns python3 "$UDP_CLIENT" "$STACK6" 7 'hello over IPv6' 2>&1)" || rc=$?
    echo "$out"
    [[ $rc -eq 0 && $out == "hello over IPv6" ]] || {
        echo "no echo over IPv6 (client exit status $rc)"
        return 1
    }
}

ECHO_CONN=""

step_tcp_echo() {
    echo "\$ python3 tests/netns/tcp_tool.py echo $STACK_ADDR 7 --size 200000   # sends and reads back at the same time"
    local out rc=0
    out="$(in_ns python3 "$TCP_TOOL" echo "$STACK_ADDR" 7 --size 200000 2>&1)" || rc=$?
    echo "$out"
    local port
    port=$(sed -n 's/^local port //p' <<<"$out")
    [[ -n $port ]] && ECHO_CONN="10.0.0.1:$port -> $STACK_ADDR:7"
    [[ $rc -eq 0 ]]
}

step_tcp_state_log() {
    [[ -n $ECHO_CONN ]] || {
        echo "no echo connection to show (the TCP echo step failed)"
        return 1
    }
    echo "\$ grep '$ECHO_CONN' <the stack's log>   # RUST_LOG=tunstack::tcp=debug logs each transition"
    # The last ACK may still be on its way: wait for the close to finish.
    local lines=""
    for _ in $(seq 40); do
        lines="$(grep -F "$ECHO_CONN " "$LOG" || true)"
        grep -q "LAST-ACK -> CLOSED" <<<"$lines" && break
        sleep 0.05
    done
    echo "$lines"
    local want=("LISTEN -> SYN-RCVD" "SYN-RCVD -> ESTABLISHED" "ESTABLISHED -> CLOSE-WAIT" "CLOSE-WAIT -> LAST-ACK" "LAST-ACK -> CLOSED")
    local got
    got="$(awk -v c="$ECHO_CONN " '{ i = index($0, c); if (i) print substr($0, i + length(c)) }' <<<"$lines")"
    [[ $got == "$(printf '%s\n' "${want[@]}")" ]] || {
        echo "expected the transitions: ${want[*]}"
        return 1
    }
    echo "the handshake (passive open) and the four-way close with the client closing first"
}

CLOSE_FIRST_PORT=""

# transitions_of PORT: the state transitions the stack logged for the
# connection from 10.0.0.1:PORT, once they include $2 (waits a moment).
transitions_of() {
    local conn="10.0.0.1:$1 -> " until=$2 lines=""
    for _ in $(seq 60); do
        lines="$(grep -F "$conn" "$LOG" || true)"
        grep -q -- "$until" <<<"$lines" && break
        sleep 0.05
    done
    echo "$lines"
}

step_tcp_stack_closes_first() {
    echo "\$ python3: GET / HTTP/1.1 with 'Connection: close', read to the end, then close   # the stack closes first"
    local out rc=0
    out="$(in_ns python3 - "$STACK_ADDR" <<'PY' 2>&1
import socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=10)
print("local port", s.getsockname()[1])
s.sendall(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
n = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    n += len(b)
print("read", n, "bytes, then EOF: the server closed first")
time.sleep(0.2)   # the client closes a moment later
s.close()
PY
)" || rc=$?
    echo "$out"
    [[ $rc -eq 0 ]] || return 1
    CLOSE_FIRST_PORT=$(sed -n 's/^local port //p' <<<"$out")
    local lines
    lines="$(transitions_of "$CLOSE_FIRST_PORT" "-> TIME-WAIT")"
    echo "$lines" | sed 's/^/  /'
    local want=("ESTABLISHED -> FIN-WAIT-1" "FIN-WAIT-1 -> FIN-WAIT-2" "FIN-WAIT-2 -> TIME-WAIT")
    local w
    for w in "${want[@]}"; do
        grep -qF -- "$w" <<<"$lines" || {
            echo "expected the transition $w"
            return 1
        }
    done
    echo "the active close: FIN-WAIT-1, FIN-WAIT-2, then TIME-WAIT (2 x MSL, 60 s) on the stack's side"
}

step_tcp_keepalive() {
    echo "\$ python3: connect to the echo port and stay idle 3 s   # the stack runs with --keepalive 1000,500,3"
    local out rc=0
    out="$(in_ns python3 - "$STACK_ADDR" <<'PY' 2>&1
import socket, sys, time
s = socket.create_connection((sys.argv[1], 7), timeout=10)
print("local port", s.getsockname()[1])
time.sleep(3)
s.sendall(b"still here")
print("echo after 3 s idle:", s.recv(100).decode())
s.close()
PY
)" || rc=$?
    echo "$out"
    [[ $rc -eq 0 ]] || return 1
    grep -q "still here" <<<"$out" || return 1
    local port probes
    port=$(sed -n 's/^local port //p' <<<"$out")
    probes=$(grep -c "keepalive probe" < <(grep -F "10.0.0.1:$port -> " "$LOG") || true)
    echo "the stack logged $probes keepalive probe(s) for it; each was answered, so the connection stayed up"
    ((probes > 0)) || {
        echo "expected keepalive probes in the stack's log"
        return 1
    }
}

DEMO_STEPS=(
    "step_ping|ICMP echo: ping -c 4"
    "step_ping_fragmented|IP fragmentation: ping -c 3 -s 8000"
    "step_ping6|IPv6: ping -6"
    "step_ping6_fragmented|IPv6 fragmentation: ping -6 -s 8000"
    "step_udp_echo|UDP echo (port 7)"
    "step_udp_time|UDP time (port 9000)"
    "step_udp_closed_port|UDP to a closed port (ICMP port unreachable)"
    "step_tcp_http_page|TCP: HTTP status page (curl)"
    "step_tcp_http_bytes|TCP: 1 MB download (curl), size and SHA-256"
    "step_tcp_echo|TCP echo (port 7), 200 KB both ways at once"
    "step_tcp_state_log|TCP state transitions of the echo connection"
    "step_tcp_stack_closes_first|TCP: the stack closes first (HTTP with Connection: close)"
    "step_tcp_keepalive|TCP keepalive: an idle connection probed and kept"
    "step_curl6|TCP over IPv6: 1 MB download (curl -6), size and SHA-256"
    "step_udp6_echo|UDP over IPv6: echo (port 7)"
)

for entry in "${DEMO_STEPS[@]}"; do
    run_step "${entry%%|*}" "${entry#*|}"
done

# --- stop, counters, capture -------------------------------------------------------

section "Stop the stack (SIGINT) and show its log and counters"
stack_rc=0
stop_stack || stack_rc=$?
cat "$LOG"
if [[ $stack_rc -ne 0 ]]; then
    echo "--> FAILED: the stack exited with status $stack_rc"
    FAILURES+=("clean stop (exit status $stack_rc)")
else
    echo "--> OK: the stack exited cleanly"
fi
ip netns del "$NS"

# A capture made under sudo belongs to the user who ran sudo.
if [[ -n ${SUDO_UID:-} && -n ${SUDO_GID:-} ]]; then
    chown "$SUDO_UID:$SUDO_GID" "$PCAP" 2>/dev/null || true
fi

section "Capture: ${PCAP#"$REPO"/} ($(stat -c %s "$PCAP") bytes)"
if ((HAVE_TSHARK)); then
    tshark_quiet() { tshark "$@" 2> >(grep -v '^Running as user' >&2); }
    echo "\$ tshark -r ${PCAP#"$REPO"/} -q -z io,phs"
    tshark_quiet -n -r "$PCAP" -q -z io,phs
    # Leading fragments (more-fragments bit set) are hidden; tshark shows
    # each fragmented datagram, reassembled, on its last fragment. Of TCP,
    # only the segments that open and close connections (SYN, FIN, RST) and
    # carry HTTP requests and responses are listed; the bulk data and ACKs
    # of the downloads and the echo are summed up below.
    shown='!(ip.flags.mf == 1) && !(tcp && !(tcp.flags.syn == 1 || tcp.flags.fin == 1 || tcp.flags.reset == 1 || http.request || http.response))'
    echo "\$ tshark -r ${PCAP#"$REPO"/} -Y '$shown'"
    tshark_quiet -n -r "$PCAP" -Y "$shown"
    frags="$(tshark_quiet -n -r "$PCAP" -Y 'ip.flags.mf == 1' -T fields -e ip.src)"
    if [[ -n $frags ]]; then
        echo "(hidden: $(grep -c . <<<"$frags") leading fragments:" \
            "$(grep -c '^10.0.0.1$' <<<"$frags" || true) from 10.0.0.1 (kernel)," \
            "$(grep -c '^10.0.0.2$' <<<"$frags" || true) from 10.0.0.2 (tunstack))"
    fi
    bulk="$(tshark_quiet -n -r "$PCAP" -Y "tcp && !($shown)" -T fields -e ip.src)"
    if [[ -n $bulk ]]; then
        echo "(hidden: $(grep -c . <<<"$bulk") TCP data and ACK segments:" \
            "$(grep -c '^10.0.0.1$' <<<"$bulk" || true) from 10.0.0.1 (kernel)," \
            "$(grep -c '^10.0.0.2$' <<<"$bulk" || true) from 10.0.0.2 (tunstack))"
    fi
    echo "(list everything with: tshark -r ${PCAP#"$REPO"/})"
    echo "\$ tshark -r ${PCAP#"$REPO"/} -q -z conv,tcp   # the TCP connections"
    tshark_quiet -n -r "$PCAP" -q -z conv,tcp
else
    echo "tshark is not installed, so no summary here."
    echo "Install it with: sudo apt-get install tshark   (Debian/Ubuntu; scripts/test.sh installs it too)"
fi
echo
echo "Open the capture in Wireshark:  wireshark ${PCAP#"$REPO"/}   (or File > Open; the link type is raw IPv4)"

# The story of one connection, drawn from the capture as the tutorial draws
# it: the handshake, the request, and the close the stack made first.
if [[ -n $CLOSE_FIRST_PORT ]]; then
    section "The ladder of the connection the stack closed first (from the capture)"
    echo "\$ tunstack ladder ${PCAP#"$REPO"/} --conn 10.0.0.1:$CLOSE_FIRST_PORT"
    if ! "$BIN" ladder "$PCAP" --conn "10.0.0.1:$CLOSE_FIRST_PORT"; then
        echo "--> FAILED: tunstack ladder"
        FAILURES+=("ladder of the close-first connection")
    fi
    if ((HAVE_TSHARK)); then
        section "What the stack said about it: the capture's packet comments"
        filter="frame.comment && tcp.port == $CLOSE_FIRST_PORT"
        echo "\$ tshark -r ${PCAP#"$REPO"/} -Y '$filter' -T fields -e frame.number -e ip.src -e frame.comment"
        comments="$(tshark -n -r "$PCAP" -Y "$filter" -T fields -e frame.number -e ip.src -e frame.comment 2>/dev/null)"
        echo "$comments"
        if ! grep -q "ESTABLISHED -> FIN-WAIT-1" <<<"$comments" || ! grep -q "TIME-WAIT until" <<<"$comments"; then
            echo "--> FAILED: no comment on the stack's FIN or on TIME-WAIT"
            FAILURES+=("the capture's comments on the close-first connection")
        fi
    fi
fi

# --- TAP mode: Ethernet and ARP ----------------------------------------------------

section "TAP mode: tunstack on tap0 in $NS_TAP, MAC $TAP_MAC (Ethernet II and ARP)"
in_tap() {
    ip netns exec "$NS_TAP" "$@"
}
TAP_LOG="$REPO/target/demo/tunstack-demo-tap.log"
: >"$TAP_LOG"
ip netns add "$NS_TAP"
in_tap sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
in_tap ip link set lo up
in_tap ip tuntap add dev tap0 mode tap
in_tap ip addr add "$HOST_CIDR" dev tap0
in_tap ip link set tap0 up
echo "\$ tunstack run --tap tap0 --addr $STACK_ADDR --mac $TAP_MAC --pcap ${TAP_PCAP#"$REPO"/}"
RUST_LOG=info ip netns exec "$NS_TAP" "$BIN" run --tap tap0 --addr "$STACK_ADDR" --mac "$TAP_MAC" \
    --pcap "$TAP_PCAP" >"$TAP_LOG" 2>&1 &
STACK_PID=$!
deadline=$((SECONDS + READY_TIMEOUT))
tap_up=1
until grep -q "^tunstack: .* up on " "$TAP_LOG" && ip -n "$NS_TAP" -o link show dev tap0 | grep -q " state UP "; do
    if ! kill -0 "$STACK_PID" 2>/dev/null || ((SECONDS >= deadline)); then
        cat "$TAP_LOG"
        tap_up=0
        break
    fi
    sleep 0.05
done
grep "^tunstack: " "$TAP_LOG" || true

step_tap_ping() {
    echo "\$ ping -c 3 $STACK_ADDR   # the kernel asks for the stack's MAC first (ARP)"
    ping_answered in_tap -c 3 "$STACK_ADDR"
}

step_tap_neigh() {
    echo "\$ ip neigh show dev tap0   # the kernel's ARP cache holds the stack's MAC"
    local out
    out="$(in_tap ip neigh show dev tap0)"
    echo "$out"
    grep -Eq "^$STACK_ADDR lladdr $TAP_MAC (REACHABLE|STALE|DELAY)" <<<"$out"
}

step_tap_curl() {
    local n=100000
    echo "\$ curl -o <file> http://$STACK_ADDR/bytes/$n   # TCP in Ethernet frames"
    local rc=0 size
    in_tap curl -sS -m 20 -o "$DOWNLOAD" "http://$STACK_ADDR/bytes/$n" || rc=$?
    size=$(stat -c %s "$DOWNLOAD")
    echo "received $size bytes (curl exit status $rc)"
    [[ $rc -eq 0 && $size -eq $n ]]
}

TAP_STEPS=(
    "step_tap_ping|TAP: ping over Ethernet, with ARP"
    "step_tap_neigh|TAP: ip neigh shows the stack's MAC"
    "step_tap_curl|TAP: curl over Ethernet"
)
if ((tap_up)); then
    for entry in "${TAP_STEPS[@]}"; do
        run_step "${entry%%|*}" "${entry#*|}"
    done
else
    FAILURES+=("TAP mode: the stack did not come up on tap0")
fi
section "TAP: stop the stack; its counters and capture"
stack_rc=0
stop_stack || stack_rc=$?
grep -E "^(link|drops):|^  " "$TAP_LOG" || true
if [[ $stack_rc -ne 0 ]]; then
    FAILURES+=("TAP: clean stop (exit status $stack_rc)")
fi
ip netns del "$NS_TAP"
if [[ -n ${SUDO_UID:-} && -n ${SUDO_GID:-} ]]; then
    chown "$SUDO_UID:$SUDO_GID" "$TAP_PCAP" 2>/dev/null || true
fi
if ((HAVE_TSHARK)); then
    echo "\$ tshark -r ${TAP_PCAP#"$REPO"/} -Y 'arp || icmp'"
    tshark_quiet -n -r "$TAP_PCAP" -Y 'arp || icmp'
    echo "\$ tshark -r ${TAP_PCAP#"$REPO"/} -T fields -e frame.protocols | sort | uniq -c   # the layers"
    layers="$(tshark_quiet -n -r "$TAP_PCAP" -T fields -e frame.protocols | sort | uniq -c)"
    echo "$layers"
    if grep -q "eth:ethertype:arp" <<<"$layers"; then
        echo "--> OK: Ethernet and ARP layers in the capture"
    else
        echo "--> FAILED: no ARP in the TAP capture"
        FAILURES+=("TAP capture with Ethernet and ARP")
    fi
fi
echo "Open it in Wireshark:  wireshark ${TAP_PCAP#"$REPO"/}   (link type Ethernet: Ethernet II and ARP are shown)"

section "Summary"
if ((${#FAILURES[@]})); then
    echo "FAILED steps:"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "All $((${#DEMO_STEPS[@]} + ${#TAP_STEPS[@]})) demo steps passed (${#TAP_STEPS[@]} of them in TAP mode); the stack stopped cleanly."
