#!/usr/bin/env bash
# Replication cost on a local 3-node cluster (`runnel cluster up --nodes 3`, every
# node on this machine): librdkafka (bench/loadgen) producing to a topic with
# replication.factor=3 and min.insync.replicas=2 with acks=1 and acks=all, beside
# a replication.factor=1 topic on the same cluster; then the produce-to-consume
# latency at a fixed rate with acks=all. Prints a markdown table; raw JSON lines go
# to bench/.cache/replication-last-run.jsonl.
#
# Usage: bash bench/replication.sh      (ROW_SECS=8 by default; every row is bounded)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/bench/.cache
ROW_SECS=${ROW_SECS:-8}
LATENCY_RATE=${LATENCY_RATE:-10000}
mkdir -p "$CACHE"
printf '*\n' > "$CACHE/.gitignore"
OUT=$CACHE/replication-last-run.jsonl
: > "$OUT"

echo "== building runnel and loadgen (release)" >&2
cargo build --release -q -p runnel-cli -p runnel-bench-loadgen
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUNNEL=$TARGET/release/runnel
LOADGEN=$TARGET/release/loadgen

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-bench-repl-XXXXXX")
# Client ports BASE..BASE+2, controller ports BASE+100..BASE+102: pick a base
# whose six ports are all free.
while :; do
    BASE=$(( $(free_port) % 20000 + 20000 ))
    ok=1
    for p in $BASE $((BASE + 1)) $((BASE + 2)) $((BASE + 100)) $((BASE + 101)) $((BASE + 102)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ok=0
    done
    [ "$ok" = 1 ] && break
done
stop_cluster() { "$RUNNEL" cluster down --dir "$WORK/cluster" >/dev/null 2>&1 || true; }
trap 'stop_cluster; rm -rf "$WORK"' EXIT

echo "== a 3-node cluster from 127.0.0.1:$BASE" >&2
"$RUNNEL" cluster up --nodes 3 --dir "$WORK/cluster" --base-port "$BASE" >&2
BOOTSTRAP=127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))

create() {
    "$LOADGEN" --bootstrap "$BOOTSTRAP" create --topic "$1" --partitions "$2" --replication-factor "$3" \
        --config min.insync.replicas="$4"
}
create rf1 1 1 1
create rf3a1 1 3 2
create rf3aall 1 3 2
create rf3p3aall 3 3 2
create rf3lat 1 3 2
create rf3lat0 1 3 2
create rf1lat 1 1 1
# Let the followers join before measuring.
sleep 3

row() {
    local label=$1 limit=$2
    shift 2
    echo "-- $label" >&2
    local output line
    output=$(timeout "$limit" "$LOADGEN" --bootstrap "$BOOTSTRAP" --label runnel "$@") || true
    printf '%s\n' "$output" | grep -v '^JSON ' >&2 || true
    line=$(printf '%s\n' "$output" | sed -n 's/^JSON //p')
    if [ -n "$line" ]; then
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["row"]=sys.argv[2]; print(json.dumps(d))' \
            "$line" "$label" >>"$OUT"
    else
        printf '{"row":"%s","error":"failed or timed out"}\n' "$label" >>"$OUT"
    fi
}

produce=(produce --duration-secs "$ROW_SECS")
row "produce 100 B, RF=1, acks=1" 40 "${produce[@]}" --topic rf1 --acks 1
row "produce 100 B, RF=3, acks=1" 40 "${produce[@]}" --topic rf3a1 --acks 1
row "produce 100 B, RF=3, min.insync=2, acks=all" 40 "${produce[@]}" --topic rf3aall --acks all
row "produce 100 B, RF=3, 3 partitions, acks=all" 40 "${produce[@]}" --topic rf3p3aall --partitions 3 --acks all
# Produce-to-consume latency: with librdkafka's default linger.ms=5 beside RF=1; then
# with linger.ms=0, where every record starts its own request and a connection's
# requests are served one at a time (as Kafka does), each waiting one replication
# round: below the rate those rounds sustain, and above it.
row "latency at $LATENCY_RATE records/s, RF=1, acks=all, linger.ms=5" 40 latency --topic rf1lat \
    --acks all --linger-ms 5 --rate "$LATENCY_RATE" --duration-secs 10
row "latency at $LATENCY_RATE records/s, RF=3, acks=all, linger.ms=5" 40 latency --topic rf3lat \
    --acks all --linger-ms 5 --rate "$LATENCY_RATE" --duration-secs 10
row "latency at 3000 records/s, RF=3, acks=all, linger.ms=0" 40 latency --topic rf3lat0 \
    --acks all --linger-ms 0 --rate 3000 --duration-secs 10
row "latency at $LATENCY_RATE records/s, RF=3, acks=all, linger.ms=0" 60 latency --topic rf3lat0 \
    --acks all --linger-ms 0 --rate "$LATENCY_RATE" --duration-secs 10

python3 - "$OUT" <<'PY'
import json, sys
print("| row | runnel, 3 local nodes |")
print("|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "error" in r:
        text = r["error"]
    elif r.get("mode") == "latency":
        text = f'p50 {r["e2e_p50_ms"]} / p99 {r["e2e_p99_ms"]} / p99.9 {r["e2e_p999_ms"]} ms ({r["received"]}/{r["sent"]} recv)'
    else:
        text = f'{r["records_per_sec"]:,.0f} rec/s, {r["mb_per_sec"]} MB/s'
        if "ack_p99_ms" in r:
            text += f'; ack p50/p99/p99.9 {r["ack_p50_ms"]}/{r["ack_p99_ms"]}/{r["ack_p999_ms"]} ms'
    print(f'| {r["row"]} | {text} |')
PY
