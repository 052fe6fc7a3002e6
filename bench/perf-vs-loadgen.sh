#!/usr/bin/env bash
# `runnel perf` (our client) beside bench/loadgen (librdkafka) against one
# `runnel server`, same machine, same settings, same run — to show that the
# CLI's figures agree with a third-party client's. Prints a markdown table.
#
# Usage: bash bench/perf-vs-loadgen.sh   (RECORDS=2000000 by default; RUNS=3;
#        KIB_RECORDS for the 1 KiB rows, RECORDS/3 by default: shorter runs
#        are dominated by start-up costs)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RECORDS=${RECORDS:-2000000}
RUNS=${RUNS:-3}
# Records in the 1 KiB rows.
KIB_RECORDS=${KIB_RECORDS:-$((RECORDS / 3))}
WORK=$(mktemp -d)
BROKER_PID=

stop() {
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop EXIT

echo "== building runnel and loadgen (release)" >&2
cargo build --release -q -p runnel-cli -p runnel-bench-loadgen
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUNNEL=$TARGET/release/runnel
LOADGEN=$TARGET/release/loadgen

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$RUNNEL" server --data-dir "$WORK/data" --listeners "PLAINTEXT://127.0.0.1:$PORT" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
B=127.0.0.1:$PORT
OUT=$WORK/rows.jsonl

# loadgen_row LABEL ARGS...: loadgen's JSON line, labelled.
loadgen_row() {
    local label=$1
    shift
    "$LOADGEN" --bootstrap "$B" --label loadgen "$@" | sed -n 's/^JSON //p' |
        python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps({"row":sys.argv[1],"tool":"loadgen","rps":d["records_per_sec"]}))' "$label" >>"$OUT"
}

# perf_row LABEL ARGS...: runnel perf's JSON report, labelled.
perf_row() {
    local label=$1
    shift
    "$RUNNEL" -b "$B" -o json perf "$@" 2>/dev/null |
        python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps({"row":sys.argv[1],"tool":"runnel perf","rps":d["records_per_sec"]}))' "$label" >>"$OUT"
}

for run in $(seq "$RUNS"); do
    echo "== run $run" >&2
    # Same settings on both sides: 100-byte values, acks=1, linger.ms=5, batches up
    # to 1 MB (librdkafka's default batch.size), no compression, one partition.
    "$LOADGEN" --bootstrap "$B" create --topic "lg$run" --partitions 1
    loadgen_row "produce 100 B, acks=1" produce --topic "lg$run" --partitions 1 --acks 1 \
        --records "$RECORDS" --duration-secs 60
    perf_row "produce 100 B, acks=1" produce "rp$run" --partitions 1 --acks 1 --records "$RECORDS" \
        --record-size 100 --linger-ms 5 --batch-size 1000000
    # Catch-up reads of the topics just written, from offset 0.
    loadgen_row "consume catch-up 100 B" consume --topic "lg$run" --timeout-secs 30 \
        --consumer-config fetch.queue.backoff.ms=10
    perf_row "consume catch-up 100 B" consume "rp$run" --records "$RECORDS"
    # The same with 1 KiB values, KIB_RECORDS of them.
    "$LOADGEN" --bootstrap "$B" create --topic "lgk$run" --partitions 1
    loadgen_row "produce 1 KiB, acks=1" produce --topic "lgk$run" --partitions 1 --acks 1 \
        --record-bytes 1024 --records "$KIB_RECORDS" --duration-secs 60
    perf_row "produce 1 KiB, acks=1" produce "rpk$run" --partitions 1 --acks 1 \
        --records "$KIB_RECORDS" --record-size 1024 --linger-ms 5 --batch-size 1000000
    loadgen_row "consume catch-up 1 KiB" consume --topic "lgk$run" --timeout-secs 30 \
        --consumer-config fetch.queue.backoff.ms=10
    perf_row "consume catch-up 1 KiB" consume "rpk$run" --records "$KIB_RECORDS"
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| row | loadgen (librdkafka) | runnel perf | runnel perf / loadgen |")
print("|---|---|---|---|")
for row in dict.fromkeys(r["row"] for r in rows):
    med = {t: statistics.median(r["rps"] for r in rows if r["row"] == row and r["tool"] == t)
           for t in ("loadgen", "runnel perf")}
    runs = {t: ", ".join(f"{r['rps']/1e6:.2f}" for r in rows if r["row"] == row and r["tool"] == t)
            for t in med}
    print(f"| {row} | {med['loadgen']/1e6:.2f} M/s ({runs['loadgen']}) | "
          f"{med['runnel perf']/1e6:.2f} M/s ({runs['runnel perf']}) | {med['runnel perf']/med['loadgen']:.2f} |")
PY
