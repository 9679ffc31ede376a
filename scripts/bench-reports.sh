#!/usr/bin/env bash
# Times every canned report on a database (default: the one `cargo bench --bench ingest`
# leaves behind, >= 20 M reallocs). Prints seconds and rows per report.
#   scripts/bench-reports.sh [DB]
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:-${TMPDIR:-/tmp}/heapdb-bench-ingest/bench.db}
cargo build --release --quiet
bin=target/release/heapdb
reallocs=$(sqlite3 "$db" 'SELECT count(*) FROM reallocs' 2>/dev/null || "$bin" query --db "$db" --sql 'SELECT count(*) FROM reallocs' --format tsv | tail -1)
echo "database: $db ($reallocs reallocs)"
addr=$("$bin" query --db "$db" --no-hex --format tsv --sql "SELECT new_address FROM reallocs WHERE capture_id = (SELECT max(capture_id) FROM captures) LIMIT 1 OFFSET 1000" | tail -1)
printf '%-20s %8s %6s\n' report seconds rows
for r in $("$bin" reports --format json | python3 -c "import json,sys; print(' '.join(r['name'] for r in json.load(sys.stdin)))"); do
  extra=()
  [ "$r" = address-history ] && extra=(--param "address=$addr")
  start=$(date +%s.%N)
  rows=$("$bin" query --db "$db" "$r" "${extra[@]}" --format csv --timeout 600 | wc -l)
  end=$(date +%s.%N)
  printf '%-20s %8.2f %6d\n' "$r" "$(echo "$end - $start" | bc)" $((rows - 1))
done
