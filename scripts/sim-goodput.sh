#!/usr/bin/env bash
# The simulation's goodput table (tests/sim/goodput.rs, docs/SIM-GOODPUT.md):
# one bulk transfer per run over 10 ms each way, a 100 Mbit/s bottleneck with
# a queue of about one BDP, and 0/1/5/10 % random loss both ways; every
# tunstack congestion control (and CUBIC without SACK) into tunstack and into
# smoltcp, and smoltcp into tunstack. Virtual clock: the figures are the same
# on any machine. Prints a markdown table.
#
#   scripts/sim-goodput.sh              the table of this tree (release build)
#   scripts/sim-goodput.sh --rev REV    the same table on commit REV ("before"):
#                                       a temporary worktree gets this tree's
#                                       harness (tests/sim/goodput.rs and the
#                                       files it changed), senders REV lacks
#                                       are left out; built in its own target
#                                       directory (a first build takes minutes)
#
# Environment:
#   TUNSTACK_GOODPUT_SEEDS=<n>  seeds per cell (default 5; the median is shown)
#   TUNSTACK_GOODPUT_MIB=<n>    MiB per transfer (default 4)
# Replay one run with a per-packet trace (and TUNSTACK_SIM_PROBE_MS=50 for the
# sender's cwnd, pacing rate and BBR model every 50 virtual ms):
#   TUNSTACK_GOODPUT_REPLAY=bbr,tunstack,1,3 cargo test --release \
#       --test simulation goodput_replay -- --nocapture

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

rev=
case "${1:-}" in
    "") ;;
    --rev)
        rev="${2:?--rev needs a commit}"
        ;;
    *)
        sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac

run() {
    # libtest's own lines around the table out.
    cargo test --release --test simulation goodput_table -- --nocapture --ignored --test-threads=1 |
        sed -e 's/^test goodput_table \.\.\. //' -e '/^running 1 test$/d' -e '/^ok$/d' -e '/^test result: /d'
}

if [[ -z $rev ]]; then
    run
    exit
fi

here=$(pwd)
target="${CARGO_TARGET_DIR:-$here/target}/goodput-rev"
tree=$(mktemp -d /tmp/tunstack-goodput-XXXXXX)
cleanup() {
    git -C "$here" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
}
trap cleanup EXIT
git worktree add --detach --quiet "$tree" "$rev"
# The harness: the goodput module, the files it changed (a run's last read,
# smoltcp's keep-alive off), and this tree's simulation.rs up to the tests
# that may name what REV lacks.
for f in goodput.rs app.rs world.rs smol.rs; do
    cp "tests/sim/$f" "$tree/tests/sim/$f"
done
sed '/^\/\/ ---- goodput floors ----/,$d' tests/simulation.rs >"$tree/tests/simulation.rs"
grep -q '^pub mod goodput;' "$tree/tests/sim/mod.rs" ||
    sed -i 's/^pub mod check;$/pub mod check;\npub mod goodput;/' "$tree/tests/sim/mod.rs"
echo "commit $(git -C "$tree" log --oneline -1)"
echo
cd "$tree"
CARGO_TARGET_DIR="$target" run
