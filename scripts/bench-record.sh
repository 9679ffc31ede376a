#!/usr/bin/env bash
# The live recorder's benchmark (docs/performance.md, "Live recording"): the same
# synthesized captures loaded by `heapdb ingest` and recorded by `heapdb record --replay`
# (the recorder's whole path, as fast as it takes the events, committing a part every
# --commit-every seconds), for two capture sizes: wall time, rows/s, peak RSS
# (/usr/bin/time), parts committed; and the longest commit of a part seen by a reader.
#   scripts/bench-record.sh
# Environment: DIR (${TMPDIR:-/tmp}/heapdb-bench-record), SIZES ("1000000 4000000" heap
# events per capture), COMMIT_EVERY (1).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${DIR:-${TMPDIR:-/tmp}/heapdb-bench-record}
sizes=${SIZES:-"1000000 4000000"}
every=${COMMIT_EVERY:-1}
cargo build --release --quiet
bin=$PWD/target/release/heapdb
mkdir -p "$dir"
timed() { # label, command...: wall s, peak RSS MB, heapdb's own summary line
  local label=$1; shift
  /usr/bin/time -f '%e %M' "$@" 2> "$dir/err" > /dev/null || { cat "$dir/err" >&2; exit 1; }
  read -r secs kb < <(tail -1 "$dir/err")
  printf '  %-24s %8.2f s %6d MB   %s\n' "$label" "$secs" $((kb / 1024)) "$(grep -E 'reallocs' "$dir/err" | head -1 | cut -c1-160)"
}
for n in $sizes; do
  caps=$dir/c$n
  if [[ ! -f $caps/manifest.json ]]; then
    "$bin" synth --quiet --out "$caps" --events-per-file "$n" --stacks --processes 4 --seed 5
  fi
  etl=$(ls "$caps"/*.etl)
  cat "$etl" > /dev/null
  echo "capture of $n heap events ($(du -h "$etl" | cut -f1)):"
  rm -f "$dir"/i.db* "$dir"/r.db*
  timed "ingest" "$bin" ingest --db "$dir/i.db" "$etl"
  timed "record --replay" "$bin" record --db "$dir/r.db" --replay "$etl" --commit-every "$every"
  rows=$("$bin" query --db "$dir/r.db" --format csv --sql "SELECT events_decoded FROM captures" | tail -1)
  echo "  rows: $rows"
done
