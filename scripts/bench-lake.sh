#!/usr/bin/env bash
# The Parquet lake's benchmark (docs/performance.md, "Parquet lake"): the 20 M-ReAlloc
# batch (8 captures, --realloc-share 0.9, as `cargo bench --bench ingest`) ingested into
# SQLite and into a lake in the same run (wall time and peak RSS by /usr/bin/time), their
# sizes, `heapdb export` of the database, and every canned report on DuckDB over the lake
# vs heapdb on SQLite (scripts/bench_lake_reports.py).
#   scripts/bench-lake.sh
# Environment: DIR (${TMPDIR:-/tmp}/heapdb-bench-lake), EVENTS_PER_FILE (4200000: 20.6 M ReAllocs),
# ROUNDS (1: ingest rounds; reports run best of 3), DUCKDB_PY (a python with duckdb;
# default: the venv tests/lake_duckdb.rs makes, ~/.cache/heapdb-duckdb-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${DIR:-${TMPDIR:-/tmp}/heapdb-bench-lake}
per=${EVENTS_PER_FILE:-4200000}
rounds=${ROUNDS:-1}
py=${DUCKDB_PY:-$HOME/.cache/heapdb-duckdb-venv/bin/python}
cargo build --release --quiet
bin=$PWD/target/release/heapdb
caps=$dir/captures
mkdir -p "$dir"
if [[ ! -f $caps/manifest.json ]]; then
  "$bin" synth --quiet --out "$caps" --files 8 --events-per-file "$per" \
    --realloc-share 0.9 --processes 8 --seed 77
fi
reallocs=$(python3 -c "import json,sys; print(sum(f['reallocs']['total'] for f in json.load(open(sys.argv[1]))['files']))" "$caps/manifest.json")
echo "captures: $(du -sh "$caps" | cut -f1), $reallocs ReAllocs"
cat "$caps"/*.etl > /dev/null

timed() { # label, command...: prints wall s and peak RSS MB
  local label=$1; shift
  /usr/bin/time -f '%e %M' "$@" 2> "$dir/err" > /dev/null || { cat "$dir/err" >&2; exit 1; }
  read -r secs kb < <(tail -1 "$dir/err")
  printf '  %-28s %8.2f s %6d MB   %s\n' "$label" "$secs" $((kb / 1024)) "$(grep -o '[0-9.]* M rows/s' "$dir/err" | head -1)"
}
echo "ingest (wall, peak RSS, rows/s as heapdb reports it):"
for r in $(seq "$rounds"); do
  rm -f "$dir/heap.db" "$dir/heap.db-wal" "$dir/heap.db-shm"; rm -rf "$dir/lake"
  timed "round $r ingest --db" "$bin" ingest --db "$dir/heap.db" "$caps"
  timed "round $r ingest --parquet" "$bin" ingest --parquet "$dir/lake" "$caps"
done
rm -rf "$dir/lake-export"
timed "export --db --parquet" "$bin" export --db "$dir/heap.db" --parquet "$dir/lake-export"
echo "sizes:"
printf '  %-28s %s\n' "captures" "$(du -sb "$caps" | cut -f1)"
printf '  %-28s %s\n' "database" "$(du -cb "$dir"/heap.db* | tail -1 | cut -f1)"
printf '  %-28s %s\n' "lake (ingest --parquet)" "$(du -sb "$dir/lake" | cut -f1)"
printf '  %-28s %s\n' "  of which the catalog" "$(du -cb "$dir"/lake/_heapdb/catalog.sqlite* | tail -1 | cut -f1)"
printf '  %-28s %s\n' "lake (export)" "$(du -sb "$dir/lake-export" | cut -f1)"
echo "reports (latest capture, defaults):"
"$py" scripts/bench_lake_reports.py --heapdb "$bin" --db "$dir/heap.db" --lake "$dir/lake" --rounds 3
