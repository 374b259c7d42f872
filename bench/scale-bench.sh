#!/bin/bash
# The distributed shape end to end on this machine (docs/performance.md "Scale-out"): a real
# nats-server -js and PostgreSQL (fsync on) in temporary directories on loopback, N events
# from D simulated devices published into JetStream, read by 1 and then 2 `dnsight worker`
# processes (fresh servers, group and state for each run), alerts written to PostgreSQL.
# Prints events/s end to end, the CPU seconds of nats-server, postgres and the workers, and
# the publish -> alert latency; `uptime` before each run (the machine is shared).
#
#   bench/scale-bench.sh [EVENTS] [DEVICES] [WORKER COUNTS] [SAMPLES]
#   bench/scale-bench.sh 2000000 100000 "1 2" 50        # the defaults
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EVENTS=${1:-2000000} DEVICES=${2:-100000} COUNTS=${3:-1 2} SAMPLES=${4:-50}
timeout 900 cargo build --release -q -p dnsight --bin dnsight --example scale_bench
for w in $COUNTS; do
    echo "== $w worker(s): $(date -u +%FT%TZ) $(uptime)"
    timeout 900 target/release/examples/scale_bench "$EVENTS" "$DEVICES" "$w" "$SAMPLES"
done
