#!/usr/bin/env bash
# Runs tunstack's tests: `cargo test --all-targets`.
#
#   scripts/test.sh [extra cargo test arguments]   (as root, or with sudo)
#
# The integration tests in tests/netns.rs run the stack on a TUN device in
# private network namespaces they create and delete themselves, and talk to
# it with ping, python3 and tshark. They need root; without it (or without a
# tool) they print SKIPPED and pass, unless TUNSTACK_REQUIRE_NETNS=1, which
# turns a skip into a failure (CI sets it).
#
# As root on Debian/Ubuntu, installs the missing client tools first
# (iputils-ping, tshark, python3, curl, nmap) with apt-get, and finds cargo
# even under sudo (whose secure_path hides ~/.cargo/bin).
#
# Runs `cargo test --all-targets --all-features`, then `cargo test --doc
# --all-features` (the examples in the API documentation), then the
# offload pass (the netns tests with offload off, the conformance and
# socket tests with it on; see TUNSTACK_OFFLOAD in the README), and ends
# with the run's total.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCRIPT_NAME="test"
# shellcheck source=scripts/common.sh
source scripts/common.sh

TOOLS=(ip ping python3 tshark curl nmap)
missing_tools() {
    local tool
    for tool in "${TOOLS[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || echo "$tool"
    done
}

# Installs what is missing (as root with apt-get); what stays missing makes
# the netns tests skip, or fail under TUNSTACK_REQUIRE_NETNS=1.
ensure_tools "${TOOLS[@]}" ||
    say "warning: the netns tests that need the missing tools will be skipped (or fail under TUNSTACK_REQUIRE_NETNS=1)"
mapfile -t missing < <(missing_tools)

find_cargo || exit 1

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
cargo build --examples --all-features
set +e
cargo test --all-targets --all-features "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Doctests: `--all-targets` skips them.
cargo test --doc --all-features 2>&1 | tee -a "$log"
doc_status=${PIPESTATUS[0]}
((status != 0)) || status=$doc_status
# The offload pass: the suites that touch offload run again the other way
# round. The netns tests ran with offload on (the default where the kernel
# takes it): now with it off. The packet-level conformance suite and the
# in-memory socket tests ran without: now over devices with offload
# (super-segments and partial checksums).
echo "test.sh: offload pass: netns tests with TUNSTACK_OFFLOAD=off, conformance and socket tests with TUNSTACK_OFFLOAD=on"
TUNSTACK_OFFLOAD=off cargo test --all-features --test netns "$@" 2>&1 | tee -a "$log"
off_status=${PIPESTATUS[0]}
((status != 0)) || status=$off_status
TUNSTACK_OFFLOAD=on cargo test --all-features --test conformance --test tcp_sockets "$@" 2>&1 | tee -a "$log"
on_status=${PIPESTATUS[0]}
((status != 0)) || status=$on_status
set -e
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tunstack: %d passed, %d failed, %d ignored\n", p, f, i }' "$log"
exit "$status"
