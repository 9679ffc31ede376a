#!/usr/bin/env bash
# Times `heapdb report` (the HTML page) on a 2 M-heap-event capture: wall and CPU time,
# peak memory, page size; best and median of ROUNDS (5) runs. Then the same with
# --compare (two such captures) and with --pid (the busiest process).
#   scripts/bench-report.sh [DIR]
#       DIR (default ${TMPDIR:-/tmp}/heapdb-bench-report) keeps the synthesized
#       captures and the database between runs: delete it to rebuild them.
# EVENTS (default 2000000) sets the heap events per capture.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
events=${EVENTS:-2000000}
dir=${1:-${TMPDIR:-/tmp}/heapdb-bench-report}
cargo build --release --quiet
h=$PWD/target/release/heapdb
mkdir -p "$dir"
if [ ! -f "$dir/bench.db" ]; then
  "$h" synth -q --out "$dir/caps" --stacks --files 2 --events-per-file "$events" --seed 7
  "$h" ingest -q --db "$dir/bench.db" --symbols fixtures/symbols/x64 "$dir/caps"
fi
db=$dir/bench.db
"$h" query --db "$db" --format tsv --sql "SELECT capture_id, events_decoded AS heap_events, (SELECT count(*) FROM reallocs r WHERE r.capture_id = c.capture_id) AS reallocs, (SELECT count(*) FROM blocks b WHERE b.capture_id = c.capture_id) AS blocks FROM captures c"
pid=$("$h" query --db "$db" --format tsv --sql "SELECT pid FROM reallocs WHERE capture_id = 2 GROUP BY pid ORDER BY count(*) DESC LIMIT 1" | tail -1)
echo "cores: $(nproc); rounds: $rounds"
# Peak anonymous memory (heap, stacks) of a command, sampled every 10 ms: the peak RSS
# /usr/bin/time reports also counts the database pages the reports read through a
# memory map (file pages of the page cache, shared and reclaimable).
peak_anon() {
  "$@" & local p=$! max=0 a
  while kill -0 "$p" 2>/dev/null; do
    a=$(awk '/^RssAnon/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    [ -n "$a" ] && [ "$a" -gt "$max" ] && max=$a
    sleep 0.01
  done
  wait "$p"
  echo "$max"
}
run() {
  local name=$1; shift
  local walls=() line
  for i in $(seq "$rounds"); do
    line=$( { /usr/bin/time -f "%e %U %S %M" "$h" report -q --db "$db" --out "$dir/$name.html" "$@" ; } 2>&1 | tail -1)
    walls+=("$line")
  done
  local anon
  anon=$(peak_anon "$h" report -q --db "$db" --out "$dir/$name.html" "$@")
  printf '%s\n' "${walls[@]}" | sort -n | awk -v name="$name" -v anon="$anon" -v size="$(stat -c %s "$dir/$name.html")" '
    { w[NR]=$1; u[NR]=$2; s[NR]=$3; m[NR]=$4 }
    END { mid=int((NR+1)/2);
          printf "%-10s best %.2f s  median %.2f s  (median run: user %.2f s, sys %.2f s, peak RSS %d MB, of it anonymous %d MB)  page %.0f KiB\n",
                 name, w[1], w[mid], u[mid], s[mid], m[mid]/1024, anon/1024, size/1024 }'
}
run capture --capture 2
run compare --capture 2 --compare 1
run pid --capture 2 --pid "$pid"
echo "per report (one run of the capture page, each on its own connection, two at a time):"
"$h" report --db "$db" --capture 2 --out "$dir/capture.html" --timings 2>&1 | sed 's/^heapdb: /  /'
