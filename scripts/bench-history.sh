#!/usr/bin/env bash
# A season of nights: appends N nights of one program (one capture each, EVENTS heap
# events, stacks, a planted regression) to one database, one `heapdb ingest` per night,
# and prints per night the append time, peak RSS, the phase timings and the database size;
# after nights 1, 4, 16 and N it times the cross-night reports (capture-diff, trend) and
# two per-capture reports. This is the capacity table of docs/performance.md.
#   scripts/bench-history.sh [NIGHTS=30] [EVENTS=2000000] [DIR=${TMPDIR:-/tmp}/heapdb-bench-history]
# Needs /usr/bin/time. The captures take ~150 bytes per event on disk, the database ~170.
set -euo pipefail
cd "$(dirname "$0")/.."
nights=${1:-30}
events=${2:-2000000}
dir=${3:-${TMPDIR:-/tmp}/heapdb-bench-history}
cargo build --release --quiet
bin=$PWD/target/release/heapdb
mkdir -p "$dir"
db=$dir/history.db
rm -f "$db" "$db-wal" "$db-shm"
if [[ ! -f $dir/caps/manifest.json ]] || [[ $(ls "$dir"/caps/*.etl | wc -l) -ne $nights ]]; then
  rm -rf "$dir/caps"
  "$bin" synth --quiet --out "$dir/caps" --files "$nights" --events-per-file "$events" \
    --stacks --seed 11 --regression 1:4=1.05
fi
mapfile -t caps < <(ls "$dir"/caps/*.etl | sort)

report() { # name args... -> "seconds rows"
  local start end rows
  start=$(date +%s.%N)
  rows=$("$bin" query --db "$db" "$@" --format csv --timeout 600 | wc -l)
  end=$(date +%s.%N)
  printf '%.3f %d' "$(echo "$end - $start" | bc)" $((rows - 1))
}

printf 'night append_s rss_mb db_mb summary\n'
n=0
for f in "${caps[@]}"; do
  n=$((n + 1))
  start=$(date +%s.%N)
  /usr/bin/time -v "$bin" ingest --db "$db" "$f" 2> "$dir/ingest.err"
  end=$(date +%s.%N)
  rss=$(awk -F: '/Maximum resident/ {print int($2/1024)}' "$dir/ingest.err")
  size=$(( $(stat -c %s "$db") / 1048576 ))
  summary=$(grep -o '([^()]*insert[^()]*)' "$dir/ingest.err" | tail -1)
  printf '%d %.2f %d %d %s\n' "$n" "$(echo "$end - $start" | bc)" "$rss" "$size" "$summary"
  if [[ $n -eq 1 || $n -eq 4 || $n -eq 16 || $n -eq $nights ]]; then
    echo "  reports at $n nights (seconds rows):"
    echo "    capture-diff        $(report capture-diff)"
    echo "    capture-diff module $(report capture-diff --param group=module)"
    echo "    trend               $(report trend)"
    echo "    trend last=30       $(report trend --param last=30)"
    echo "    trend only_rising   $(report trend --param last=30 --param only_rising=1)"
    echo "    top-realloc-sites   $(report top-realloc-sites)"
    echo "    move-ratio          $(report move-ratio)"
  fi
done
