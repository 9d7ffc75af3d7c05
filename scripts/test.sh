#!/usr/bin/env bash
# Runs tunstack's tests: `cargo test --all-targets`.
#
#   sudo scripts/test.sh [extra cargo test arguments]
#
# The integration tests in tests/netns.rs run the stack on a TUN device in
# private network namespaces they create and delete themselves, and talk to
# it with ping, python3 and tshark. They need root; without it (or without a
# tool) they print SKIPPED and pass, unless TUNSTACK_REQUIRE_NETNS=1, which
# turns a skip into a failure (CI sets it).
#
# As root on Debian/Ubuntu, installs the missing client tools first
# (iputils-ping, tshark, python3, curl, nmap) with apt-get.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

is_root() { [[ $EUID -eq 0 ]]; }

# tool -> Debian package
declare -A PACKAGE=([ping]=iputils-ping [tshark]=tshark [python3]=python3 [ip]=iproute2 [curl]=curl [nmap]=nmap)

missing_tools() {
    local tool
    for tool in ip ping python3 tshark curl nmap; do
        command -v "$tool" >/dev/null 2>&1 || echo "$tool"
    done
}

mapfile -t missing < <(missing_tools)
if ((${#missing[@]})); then
    packages=()
    for tool in "${missing[@]}"; do packages+=("${PACKAGE[$tool]}"); done
    if is_root && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${packages[*]} (for: ${missing[*]})"
        export DEBIAN_FRONTEND=noninteractive
        # tshark's package otherwise asks whether non-root users may capture.
        if command -v debconf-set-selections >/dev/null 2>&1; then
            echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        fi
        if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${packages[@]}"; } </dev/null; then
            echo "test.sh: warning: could not install ${packages[*]}; the tests that need them will be skipped (or fail under TUNSTACK_REQUIRE_NETNS=1)" >&2
        fi
        mapfile -t missing < <(missing_tools)
    elif is_root; then
        echo "test.sh: missing ${missing[*]} and no apt-get here; install: ${packages[*]}" >&2
    else
        echo "test.sh: missing ${missing[*]}; install them with: sudo apt-get install ${packages[*]}" >&2
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo not found. Install Rust (https://rustup.rs); under sudo keep your PATH: sudo env \"PATH=\$PATH\" $0" >&2
    exit 1
fi

# Say up front whether the netns tests will run (the tests decide for
# themselves; this mirrors their checks).
why_not=""
if [[ ${TUNSTACK_NETNS_FORCE_SKIP:-} == 1 ]]; then
    why_not="TUNSTACK_NETNS_FORCE_SKIP=1"
elif ! is_root; then
    why_not="not root (run: sudo $0)"
elif [[ ! -e /dev/net/tun ]]; then
    why_not="no /dev/net/tun"
elif ((${#missing[@]})); then
    why_not="missing ${missing[*]}"
fi
if [[ -z $why_not ]]; then
    echo "test.sh: netns integration tests will run (root, /dev/net/tun, ip, ping, python3, tshark present)"
elif [[ ${TUNSTACK_REQUIRE_NETNS:-} == 1 ]]; then
    echo "test.sh: netns integration tests cannot run ($why_not) and TUNSTACK_REQUIRE_NETNS=1: they will FAIL"
else
    echo "test.sh: netns integration tests will be SKIPPED: $why_not (set TUNSTACK_REQUIRE_NETNS=1 to make that a failure)"
fi

export TUNSTACK_REQUIRE_NETNS="${TUNSTACK_REQUIRE_NETNS:-}"
# Run the suite, then add up cargo's per-binary "test result:" lines so the
# last line is the total for the whole run (the last binary cargo runs is
# an example with no tests of its own).
log=$(mktemp "${TMPDIR:-/tmp}/tunstack-test.XXXXXX")
trap 'rm -f "$log"' EXIT
# The netns tests run example programs (the tutorial's chat server) as real
# processes; `cargo test --all-targets` builds examples only as test
# harnesses, so build the runnable ones first.
cargo build --examples
set +e
cargo test --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tunstack: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
