#!/usr/bin/env bash
# Bounded fuzzing of Runnel's decoders: installs cargo-fuzz if missing, builds
# every target in fuzz/, then runs each for FUZZ_SECONDS (default 30) starting
# from the checked-in corpus (fuzz/corpus/<target>) and the regression inputs
# (fuzz/regressions/<target>). Exits non-zero if any target crashed, hung or
# ran out of memory; the input that did it lands in fuzz/artifacts/<target>/.
#
# Settings (environment):
#   FUZZ_SECONDS      seconds per target (default 30)
#   FUZZ_TARGETS      space-separated targets (default: all of `cargo fuzz list`)
#   FUZZ_SANITIZER    none (default) or address; see docs/fuzzing.md
#   FUZZ_TARGET_DIR   build directory (default fuzz/target); an inherited
#                     CARGO_TARGET_DIR is ignored on purpose, because the
#                     instrumented build would evict the workspace's own.
#
# Inputs found along the way go to a temporary directory, not to the
# checked-in corpus. See docs/fuzzing.md for longer runs.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
SANITIZER="${FUZZ_SANITIZER:-none}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}"
# cargo-fuzz passes nightly-only flags (-Z, sanitizer coverage); the stable
# toolchain accepts them with this switch.
export RUSTC_BOOTSTRAP=1

start=$SECONDS
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked || exit 1
fi

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 1
fi

echo "fuzz-smoke: building ${targets[*]} (sanitizer: $SANITIZER)"
if ! cargo fuzz build --sanitizer "$SANITIZER"; then
    echo "fuzz-smoke: build failed" >&2
    exit 1
fi
build_seconds=$((SECONDS - start))

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

declare -a summary=()
failed=0
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    dirs=("$work/$target" "fuzz/corpus/$target")
    if [[ -d "fuzz/regressions/$target" ]]; then
        dirs+=("fuzz/regressions/$target")
    fi
    log="$work/$target.log"
    echo "fuzz-smoke: $target for ${FUZZ_SECONDS}s"
    cargo fuzz run --sanitizer "$SANITIZER" "$target" "${dirs[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    runs="$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -1)"
    coverage="$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
    if [[ $status -eq 0 ]]; then
        summary+=("fuzz-smoke: $target: ok, ${runs:-?} runs in ${FUZZ_SECONDS}s, ${coverage:-cov: ?}")
    else
        failed=1
        tail -n 60 "$log" >&2
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
        summary+=("fuzz-smoke: $target: FAILED (exit $status), input: ${artifact:-none written}")
    fi
done

echo "fuzz-smoke: build ${build_seconds}s, total $((SECONDS - start))s"
printf '%s\n' "${summary[@]}"
exit "$failed"
