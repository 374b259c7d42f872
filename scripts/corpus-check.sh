#!/usr/bin/env bash
# Corpus checks that run the built binary over the real third-party data (CI runs this when
# ../shared/data exists). The per-file tshark parity and dnstap ground-truth checks live in the
# ingest test suite (crates/ingest/tests/it); this script checks the user-facing command:
# every capture and log is analyzed without a crash, and the whole corpus in one run.
set -euo pipefail
bin=${1:?usage: corpus-check.sh DNSIGHT_BIN DATA_DIR}
data=${2:?usage: corpus-check.sh DNSIGHT_BIN DATA_DIR}
fail=0; n=0
while IFS= read -r -d '' f; do
  n=$((n+1))
  # exit code 0 (read) or 1 (unrecognised format, reported clearly) are fine; a crash is not
  set +e
  "$bin" analyze --no-progress --report json "$f" >/tmp/dnsight-corpus.out 2>/tmp/dnsight-corpus.err
  rc=$?
  set -e
  if [ $rc -gt 1 ]; then
    echo "CRASH ($rc): $f"; sed -n 1,20p /tmp/dnsight-corpus.err; fail=$((fail+1))
  fi
done < <(find "$data/captures" -type f -print0)
echo "corpus: $n files analyzed, $fail crashed"

# Time is robust: a Zeek JSON log written with times relative to the start of its capture
# (Slips; seconds from 1970-01-01) must be read whole, say so, and raise the same alerts as
# the same events at absolute times.
rel="$data/captures/zeek_dns_logs/slips_test9_json.dns.log"
if [ -f "$rel" ]; then
  tmp=$(mktemp -d)
  awk '{ if (match($0, /"ts":[0-9.]+/)) { v = substr($0, RSTART+5, RLENGTH-5);
         $0 = substr($0, 1, RSTART+4) sprintf("%.6f", v + 1600000000) substr($0, RSTART+RLENGTH) } print }' \
    "$rel" >"$tmp/absolute.log"
  "$bin" analyze --no-progress --alerts-out "$tmp/rel.jsonl" "$rel" >"$tmp/rel.txt" 2>&1
  "$bin" analyze --no-progress --alerts-out "$tmp/abs.jsonl" "$tmp/absolute.log" >"$tmp/abs.txt" 2>&1
  shape() { grep -o '"kind":"[a-z_]*","severity":"[a-z]*"' "$1" | sort || true; }
  if ! grep -q "timestamps are relative" "$tmp/rel.txt"; then
    echo "RELATIVE TIME: no note that $rel has relative timestamps"; fail=$((fail+1))
  elif grep -q "timestamp_out_of_range" "$tmp/rel.txt"; then
    echo "RELATIVE TIME: events of $rel skipped as out of range"; fail=$((fail+1))
  elif [ "$(shape "$tmp/rel.jsonl")" != "$(shape "$tmp/abs.jsonl")" ]; then
    echo "RELATIVE TIME: alerts differ from the same events at absolute times"
    diff <(shape "$tmp/rel.jsonl") <(shape "$tmp/abs.jsonl") || true; fail=$((fail+1))
  else
    echo "relative timestamps: $(grep -c . "$tmp/rel.jsonl" || true) alerts, the same as at absolute times"
  fi
  rm -rf "$tmp"
fi
[ $fail -eq 0 ]
