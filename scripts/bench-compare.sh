#!/usr/bin/env bash
# Same-run comparison of heapdb builds (a refactor must not cost speed): each build
# ingests one night of 2 M heap events with stacks into a fresh database, ROUNDS times,
# builds alternating (wall time and peak RSS by /usr/bin/time); then every per-capture
# report runs ROUNDS times per build on the database that build wrote, best time kept.
#   scripts/bench-compare.sh NAME=BINARY [NAME=BINARY ...]
# e.g. build an older revision in a worktree first:
#   git worktree add /tmp/heapdb-old 52eef86 && (cd /tmp/heapdb-old && cargo build --release)
#   scripts/bench-compare.sh old=/tmp/heapdb-old/target/release/heapdb now=target/release/heapdb
# Environment: ROUNDS (3), EVENTS (2000000), DIR (${TMPDIR:-/tmp}/heapdb-bench-compare).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
events=${EVENTS:-2000000}
dir=${DIR:-${TMPDIR:-/tmp}/heapdb-bench-compare}
[[ $# -ge 1 ]] || { sed -n 2,10p "$0" >&2; exit 2; }
names=()
declare -A bin
for a in "$@"; do
  names+=("${a%%=*}")
  bin[${a%%=*}]=$(realpath "${a#*=}")
done
cargo build --release --quiet
mkdir -p "$dir"
night=$dir/night/synth-0000-seed9.etl
[[ -f $night ]] || target/release/heapdb synth --quiet --out "$dir/night" --files 1 \
  --events-per-file "$events" --stacks --seed 9
cat "$night" > /dev/null

echo "ingest of $(basename "$night") into a fresh database (wall s, peak RSS MB):"
for r in $(seq "$rounds"); do
  for n in "${names[@]}"; do
    db=$dir/$n.db
    rm -f "$db" "$db-wal" "$db-shm"
    /usr/bin/time -f '%e %M' "${bin[$n]}" ingest --db "$db" "$night" 2> "$dir/err"
    read -r secs kb < <(tail -1 "$dir/err")
    printf '  round %d %-10s %6.2f s %5d MB\n' "$r" "$n" "$secs" $((kb / 1024))
  done
done

printf '\nreports, best of %d (s):\n%-20s' "$rounds" report
for n in "${names[@]}"; do printf ' %10s' "$n"; done
echo
for rep in top-realloc-sites move-ratio small-increments shrinks size-histogram \
  source-breakdown timeline thread-activity heap-inventory outstanding-at-end \
  growth-chains data-quality; do
  declare -A best=()
  for _ in $(seq "$rounds"); do
    for n in "${names[@]}"; do
      s=$(date +%s.%N)
      "${bin[$n]}" query --db "$dir/$n.db" "$rep" --format csv > /dev/null
      e=$(date +%s.%N)
      t=$(echo "$e - $s" | bc)
      if [[ -z ${best[$n]:-} ]] || (($(echo "$t < ${best[$n]}" | bc))); then best[$n]=$t; fi
    done
  done
  printf '%-20s' "$rep"
  for n in "${names[@]}"; do printf ' %10.3f' "${best[$n]}"; done
  echo
  unset best
done
