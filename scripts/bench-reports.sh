#!/usr/bin/env bash
# Times every canned report with its defaults, best of ROUNDS (3) runs, builds
# alternating, side by side.
#   scripts/bench-reports.sh [DB]
#       this build on DB (default: the database `cargo bench --bench ingest` leaves,
#       >= 20 M reallocs)
#   scripts/bench-reports.sh NAME=BINARY=DB [NAME=BINARY=DB ...]
#       several builds, each on a database it wrote (an older heapdb cannot read a
#       newer schema): build the older revision in a git worktree first, e.g.
#       git worktree add /tmp/heapdb-old f045f4f && (cd /tmp/heapdb-old && cargo build --release)
# address-history gets an address with events; data-quality runs over every capture
# (its default), every other report on the latest capture.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
cargo build --release --quiet
names=()
declare -A bin db
if [[ $# -eq 0 || $1 != *=* ]]; then
  names=(now)
  bin[now]=target/release/heapdb
  db[now]=${1:-${TMPDIR:-/tmp}/heapdb-bench-ingest/bench.db}
else
  for a in "$@"; do
    n=${a%%=*}; rest=${a#*=}
    names+=("$n")
    bin[$n]=$(realpath "${rest%%=*}")
    db[$n]=${rest#*=}
  done
fi
for n in "${names[@]}"; do
  r=$("${bin[$n]}" query --db "${db[$n]}" --format tsv --sql 'SELECT count(*) FROM reallocs' | tail -1)
  echo "$n: ${bin[$n]} on ${db[$n]} ($r reallocs)"
done
first=${names[0]}
addr=$("${bin[$first]}" query --db "${db[$first]}" --no-hex --format tsv --sql "SELECT new_address FROM reallocs WHERE capture_id = (SELECT max(capture_id) FROM captures) LIMIT 1 OFFSET 1000" | tail -1)
all=()
for n in "${names[@]}"; do
  all+=($("${bin[$n]}" reports --format json | python3 -c "import json,sys; print(' '.join(r['name'] for r in json.load(sys.stdin)))"))
done
reports=$(printf '%s\n' "${all[@]}" | awk '!seen[$0]++')
printf '%-20s' report; for n in "${names[@]}"; do printf ' %10s %6s' "$n s" rows; done; echo
for r in $reports; do
  extra=()
  [ "$r" = address-history ] && extra=(--param "address=$addr")
  declare -A best=() rows=()
  for i in $(seq "$rounds"); do
    for n in "${names[@]}"; do
      if ! "${bin[$n]}" reports --format json | grep -q "\"name\": *\"$r\""; then
        best[$n]=-; rows[$n]=-; continue
      fi
      start=$(date +%s.%N)
      k=$("${bin[$n]}" query --db "${db[$n]}" "$r" "${extra[@]}" --format csv --timeout 600 | wc -l)
      end=$(date +%s.%N)
      t=$(echo "$end - $start" | bc)
      if [[ -z ${best[$n]:-} ]] || (( $(echo "$t < ${best[$n]}" | bc) )); then best[$n]=$t; fi
      rows[$n]=$((k - 1))
    done
  done
  printf '%-20s' "$r"
  for n in "${names[@]}"; do
    if [[ ${best[$n]} == - ]]; then printf ' %10s %6s' - -; else printf ' %10.3f %6d' "${best[$n]}" "${rows[$n]}"; fi
  done
  echo
  unset best rows
done
