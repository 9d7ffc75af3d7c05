#!/usr/bin/env bash
# tunstack's deterministic simulation (tests/simulation.rs): two stacks on an
# in-memory link with a virtual clock and a seeded fault model.
#
#   scripts/sim.sh                   full sweep, release mode (every pairing,
#                                    TUNSTACK_SIM_SEEDS seeds each, default 2000)
#   scripts/sim.sh <seed> [pairing]  replay one seed with a per-packet trace
#                                    (debug build; pairing: tunstack,
#                                    smoltcp-server, smoltcp-client; default all)
#
# Environment (see tests/sim/mod.rs):
#   TUNSTACK_SIM_SEEDS=<n>      seeds per pairing in a sweep
#   TUNSTACK_SIM_SEED_BASE=<n>  first seed of a sweep (default 0)
#   TUNSTACK_SIM_LOG=<level>    the stacks' log level in a replay (default debug;
#                               trace adds every segment the TCP layer parses)
#
# A replay's trace goes to stderr; pipe it to a file or `less`:
#   scripts/sim.sh 42 tunstack 2>&1 | less
# A release sweep is fast: TUNSTACK_SIM_SEEDS=50000 scripts/sim.sh takes a
# minute or two on two cores.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -gt 2 || ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
fi

if [[ $# -ge 1 ]]; then
    if ! [[ $1 =~ ^[0-9]+$ ]]; then
        echo "sim.sh: seed must be a number, got '$1'" >&2
        exit 2
    fi
    export TUNSTACK_SIM_SEED="$1"
    export TUNSTACK_SIM_PAIR="${2:-all}"
    exec cargo test --test simulation -- --nocapture --test-threads=1 replay_seed_from_env
fi

exec cargo test --release --test simulation -- --nocapture
