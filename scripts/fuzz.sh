#!/usr/bin/env bash
# Fuzzes tunstack with cargo-fuzz (libFuzzer), one target after another.
# Not part of CI: the default run takes an hour.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 600); TARGETs default to every file in
# fuzz/fuzz_targets/ (ip_input icmp udp tcp_options tcb_listen
# tcb_established ethernet ipv6). Installs cargo-fuzz if it is missing.
#
# Each target runs as ONE libFuzzer process (no -jobs/-fork: one core),
# reading the committed seeds in fuzz/corpus/TARGET/ and keeping what it
# learns in fuzz/work/TARGET/ (git-ignored; delete it to start afresh).
# A crash, panic or failed invariant stops that target, leaves the input
# in fuzz/artifacts/TARGET/, and makes the script exit 1 after the others
# have run. Replay one with
#
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none TARGET ARTIFACT
#
# or, without libFuzzer, by adding its bytes as a regression test to
# tests/properties.rs (the harnesses are shared; see fuzz/src/lib.rs).
#
# Toolchain: cargo-fuzz passes nightly-only rustc flags (-Z...). On a
# stable toolchain the script sets RUSTC_BOOTSTRAP=1, which lets stable
# rustc accept them. The sanitizer is "none" by default: tunstack is
# #![deny(unsafe_code)] and so are its parsers, so AddressSanitizer finds
# nothing that a panic would not, at about half the speed. The build has
# debug assertions and overflow checks on (cargo-fuzz's default), so an
# arithmetic overflow is a crash. Set FUZZ_SANITIZER=address to use ASan
# anyway; FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS=-max_len=65535).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-600}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
shift || true

all_targets=()
for f in fuzz/fuzz_targets/*.rs; do
    all_targets+=("$(basename "$f" .rs)")
done
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
    if [[ ! -f fuzz/fuzz_targets/$t.rs ]]; then
        echo "fuzz.sh: no target '$t' (have: ${all_targets[*]})" >&2
        exit 2
    fi
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
sanitizer=${FUZZ_SANITIZER:-none}
read -r -a extra <<<"${FUZZ_ARGS:-}"

echo "fuzz.sh: building (sanitizer: $sanitizer)"
# `cargo fuzz build` takes one target, or none for all of them.
if ((${#targets[@]} == 1)); then
    cargo fuzz build --sanitizer "$sanitizer" "${targets[0]}"
else
    cargo fuzz build --sanitizer "$sanitizer"
fi

logs=fuzz/work/logs
mkdir -p "$logs"
summary=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
    log="$logs/$t.log"
    echo "fuzz.sh: $t for ${seconds}s (log: $log)"
    start=$(date +%s)
    status=0
    # The first corpus directory receives new inputs; the seeds stay as committed.
    cargo fuzz run --sanitizer "$sanitizer" "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || status=$?
    duration=$(($(date +%s) - start))
    runs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -n 1 || true)
    if [[ -z $runs ]]; then
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    fi
    runs=${runs:-0}
    rate=$((runs / (duration > 0 ? duration : 1)))
    corpus=$(find "fuzz/work/$t" -type f | wc -l)
    artifact=$(grep -oE 'Test unit written to \S+' "$log" | tail -n 1 | awk '{print $5}' || true)
    if ((status != 0)) || [[ -n $artifact ]]; then
        failed=1
        line="$t: runs=$runs (${rate}/s) duration=${duration}s corpus=$corpus crashes: YES"
        summary+=("$line")
        echo "$line"
        grep -m 1 -A 3 -E "panicked at|ERROR: libFuzzer" "$log" || tail -n 20 "$log"
        if [[ -n $artifact ]]; then
            echo "  reproducer: $artifact"
            echo "  replay:     RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $t $artifact"
            echo "  minimize:   RUSTC_BOOTSTRAP=1 cargo fuzz tmin --sanitizer $sanitizer $t $artifact"
        fi
    else
        line="$t: runs=$runs (${rate}/s) duration=${duration}s corpus=$corpus crashes: no"
        summary+=("$line")
        echo "$line"
    fi
done

echo
echo "fuzz.sh: summary (${seconds}s per target)"
printf '  %s\n' "${summary[@]}"
exit "$failed"
