#!/bin/bash
# dnsight against the peer lab in ../shared/bench (read its README first): starts the lab's
# authoritative nsd and peers in the lab's private network namespace, starts dnsight variants
# beside them (forwarding to the same nsd, pinned to the same CPU as the peers), runs
# bench.sh cells and prints the summary. Nothing is copied from the lab; it is driven.
#
#   bench/dnsight-bench.sh start        # lab peers + dnsight variants
#   bench/dnsight-bench.sh run [CELLS]  # measured cells (default: the set in docs/performance.md)
#   bench/dnsight-bench.sh summary      # Markdown tables (lab's summarize.py)
#   bench/dnsight-bench.sh stop
#
# Variants (ports inside the lab namespace):
#   dnsight      5390  defaults, events go to the analysis consumer (no file)
#   dnsight-log  5391  + every query written as a JSON-lines event (run/logs/dnsight-log.log)
#   dnsight-block 5392 + a 1,000,000-domain block list (the lab's 100k list + 900k synthetic)
#   dnsight-state 5393 + --state (triage store, API on 127.0.0.1:8093) and 1,000 dynamic blocks
#                      taken through the API (the resolver's overrides, checked before the cache)
#   dnsight-qlog  5396 --state with the query log on (the default: every query a SQLite row)
#   dnsight-noqlog 5397 the same with `[querylog] enabled = false` (A/B for the query log)
#   dnsight-qlograw 5398 the query log on with `[querylog] coalesce = false` (a row per query)
# Env: BIN (default target/release/dnsight), LAB_WORK (default /tmp/dnsight-lab-E), REPS (3),
# QUIET (machine-quiet threshold %, default 10 here: other engineers share the box), VARIANTS
# (the dnsight variants `start` starts, default all; e.g. "dnsight-qlog dnsight-noqlog").
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LABDIR=${LABDIR:-$(cd "$ROOT/../shared/bench" && pwd)}
export LAB_WORK=${LAB_WORK:-/tmp/dnsight-lab-E}
export QUIET=${QUIET:-10}
BIN=${BIN:-$ROOT/target/release/dnsight}
R=$LAB_WORK/run D=$LAB_WORK/data
PEERS=${PEERS:-"nsd unbound unbound-log unbound-block dnsmasq dnsmasq-log"}
REPS=${REPS:-3}
CPU_FWD=${CPU_FWD:-0}
VARIANTS=${VARIANTS:-"dnsight dnsight-log dnsight-block dnsight-state dnsight-qlog dnsight-noqlog dnsight-qlograw"}
want() { case " $VARIANTS " in *" $1 "*) return 0 ;; esac; return 1; }

ready() {  # port: poll with dig until it answers (bounded)
  for _ in $(seq 100); do
    "$LABDIR/lab.sh" exec dig +time=1 +tries=1 +short -p "$1" @127.0.0.1 h00001.lab.test A 2>/dev/null | grep -q '^127\.' && return 0
    sleep 0.2
  done
  return 1
}

big_list() {  # 1M domains: the lab's 100k block list + 900k synthetic names
  [ -s "$D/block-1m.txt" ] && return
  { cat "$D/blocklist.txt"; python3 -c '
import random
r = random.Random(7)
for i in range(900000):
    print(f"{r.getrandbits(40):x}-{i}.blk{r.randrange(5000)}.example")
'; } > "$D/block-1m.txt"
}

start_one() {  # name port args...
  local n=$1 p=$2; shift 2
  if [ -s "$R/$n.pid" ] && kill -0 "$(cat "$R/$n.pid")" 2>/dev/null; then echo "$n already running"; return; fi
  ( exec "$LABDIR/lab.sh" exec taskset -c "$CPU_FWD" "$BIN" serve --listen "127.0.0.1:$p" --upstream 127.0.0.1:5300 "$@" ) \
    </dev/null >"$R/logs/$n.out" 2>&1 &
  echo $! > "$R/$n.pid"
  if ready "$p"; then echo "$n ready on 127.0.0.1:$p (pid $(cat "$R/$n.pid"))"; else echo "$n not answering; see $R/logs/$n.out" >&2; tail -5 "$R/logs/$n.out" >&2; fi
}

stop_one() {
  local n=$1 pid
  [ -s "$R/$n.pid" ] || return 0
  pid=$(cat "$R/$n.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $n (pid $pid): $(grep -ho 'dnsight serve: queries=.*' "$R/logs/$n.out" | tail -1 | cut -c1-200)"
  fi
  rm -f "$R/$n.pid"
}

overrides() {  # 1,000 blocks (scope all, names the workloads never ask) through the API
  local tok
  tok=$("$BIN" token create --role analyst --name bench --state "$R/state-5393" | tail -1)
  "$LABDIR/lab.sh" exec python3 - "$tok" <<'PY'
import json, sys, urllib.request
tok = sys.argv[1]
for i in range(1000):
    req = urllib.request.Request("http://127.0.0.1:8093/api/v1/blocks",
        data=json.dumps({"name": f"ovr{i}.blocked.example", "note": "bench"}).encode(),
        headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
print("1000 overrides in force")
PY
}

cell() {  # label port workload mode
  local pid=""
  case $1 in dnsight*) pid=$(cat "$R/$1.pid") ;; esac
  "$LABDIR/bench.sh" "$1" "$2" "$3" "$4" "$REPS" $pid
}

case ${1:-} in
  start)
    "$LABDIR/lab.sh" start $PEERS
    mkdir -p "$R/logs"
    want dnsight && start_one dnsight 5390
    want dnsight-log && start_one dnsight-log 5391 --events-out "$R/logs/dnsight-log.log"
    want dnsight-block && { big_list; start_one dnsight-block 5392 --blocklist "$D/block-1m.txt"; }
    if want dnsight-state; then
      rm -rf "$R/state-5393"; mkdir -p "$R/state-5393"
      start_one dnsight-state 5393 --state "$R/state-5393" --api 127.0.0.1:8093
      overrides
    fi
    for v in 5396:qlog 5397:noqlog 5398:qlograw; do
      p=${v%%:*} n=dnsight-${v##*:}
      want "$n" || continue
      rm -rf "$R/state-$p"; mkdir -p "$R/state-$p"
      case $n in
        dnsight-noqlog) printf '[querylog]\nenabled = false\n' > "$R/noqlog.toml"; cfg=(--config "$R/noqlog.toml") ;;
        dnsight-qlograw) printf '[querylog]\ncoalesce = false\n' > "$R/qlograw.toml"; cfg=(--config "$R/qlograw.toml") ;;
        *) cfg=() ;;
      esac
      start_one "$n" "$p" --state "$R/state-$p" --api "127.0.0.1:$((p + 2700))" "${cfg[@]}"
    done ;;
  stop)
    for n in dnsight dnsight-log dnsight-block dnsight-state dnsight-qlog dnsight-noqlog dnsight-qlograw; do stop_one $n; done
    "$LABDIR/lab.sh" stop ;;
  run)
    shift
    cells=${*:-"dnsight:5390:hit:max unbound:5301:hit:max dnsight-state:5393:hit:max dnsight-log:5391:hit:max unbound-log:5302:hit:max dnsmasq:5311:hit:max dnsmasq-log:5312:hit:max
      dnsight-log:5391:mixed:max unbound-log:5302:mixed:max
      dnsight-block:5392:mixblock:max unbound-block:5303:mixblock:max
      dnsight-log:5391:hit:rate:50000 unbound-log:5302:hit:rate:50000"}
    for c in $cells; do
      IFS=: read -r label port wl mode rate <<<"$c"
      [ -n "$rate" ] && mode="$mode:$rate"
      echo "== $label $wl $mode"; cell "$label" "$port" "$wl" "$mode" | tail -2
    done ;;
  summary) python3 "$LABDIR/summarize.py" ;;
  *) sed -n 2,20p "$0"; exit 2 ;;
esac
