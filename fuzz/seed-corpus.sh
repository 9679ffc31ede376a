#!/usr/bin/env bash
# Seeds the fuzz corpora from a clean clone:
#   fuzz/corpus/etl_reader, fuzz/corpus/heap_capture: the real captures of the shared test
#     data (the small ones whole, the first 256 KiB of the big ones) and synthesized heap
#     captures of every pointer size, with plain stacks, stack keys, compression and every
#     header form (small, so the fuzzer mutates whole files);
#   fuzz/corpus/heap_records: heap payloads cut out of those synthesized captures;
#   fuzz/corpus/params: parameter lines and SQL text of the canned reports;
#   fuzz/corpus/pe_info: the PE images of fixtures/symbols.
# The shared test data is found where the tests find it: $HEAPDB_TESTDATA, else
# ../shared/testdata next to the repository, else /work/shared/testdata.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
testdata=${HEAPDB_TESTDATA:-}
for cand in "$testdata" "$repo/../shared/testdata" /work/shared/testdata; do
  if [[ -n $cand && -d $cand/etl/real ]]; then testdata=$cand; break; fi
done
[[ -d $testdata/etl/real ]] || { echo "seed-corpus: shared test data not found (set HEAPDB_TESTDATA)" >&2; exit 1; }

corpus=$here/corpus
mkdir -p "$corpus"/{etl_reader,heap_capture,heap_records,params}
for f in "$testdata"/etl/real/*.etl; do
  head -c 262144 "$f" > "$corpus/etl_reader/$(basename "$f")"
done

# Synthesized heap captures (4 KiB buffers, a few hundred events each).
heapdb=$repo/target/release/heapdb
[[ -x $heapdb ]] || cargo build --release --manifest-path "$repo/Cargo.toml" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for ptr in 32 64 mixed; do
  for form in "" "--stacks" "--stack-keys" "--compress --stacks" "--heap-header classic --stacks" "--heap-header event --stacks"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    "$heapdb" synth --quiet --out "$tmp/$n" --events-per-file 300 --buffer-kib 4 --cpus 2 \
      --pointer-size "$ptr" --seed "$n" $form
    for f in "$tmp/$n"/*.etl; do
      cp "$f" "$corpus/heap_capture/synth-$n.etl"
      cp "$f" "$corpus/etl_reader/synth-$n.etl"
    done
  done
done
cp "$corpus"/etl_reader/*.etl "$corpus/heap_capture/" 2>/dev/null || true

# Heap payloads: [group, opcode, version, pointer-size selector] + payload, cut from the
# heap records of a synthesized capture with `heapdb dump --payload`.
"$heapdb" synth --quiet --out "$tmp/rec" --events-per-file 3000 --pointer-size mixed --seed 99
"$heapdb" dump --payload --format jsonl --provider 222962ab-6180-4b88-a825-346b75f2a24a "$tmp/rec"/*.etl |
  python3 -c '
import json, sys, os
out = sys.argv[1]
seen = set()
for line in sys.stdin:
    e = json.loads(line)
    key = (e["opcode"], e["version"], e["pointer_size"])
    if key in seen:
        continue
    seen.add(key)
    sel = 0 if e["pointer_size"] == 4 else 1
    blob = bytes([0, e["opcode"], e["version"], sel]) + bytes.fromhex(e["payload"])
    with open(os.path.join(out, "op%d-v%d-p%d" % key), "wb") as f:
        f.write(blob)
' "$corpus/heap_records"

# Parameters and SQL: each report's parameter defaults as NAME=VALUE lines, and its SQL.
i=0
for q in "$repo"/queries/*.sql; do
  i=$((i + 1))
  grep -E '^-- param:' "$q" | sed -E 's/^-- param: *([a-z_]+) *= *([^:]*) *:.*/\1=\2/' > "$corpus/params/params-$i"
  cp "$q" "$corpus/params/sql-$i"
done
printf 'limit=99999999999999999999\naddress=0xffffffffffffffff\ncapture=latest\n' > "$corpus/params/edge"

# PE images: the symbol fixtures (x64, its rebuild, x86).
mkdir -p "$corpus/pe_info"
for a in x64 x64-build2 x86; do
  cp "$repo/fixtures/symbols/$a/heapdemo.dll" "$corpus/pe_info/heapdemo-$a.dll"
done

for d in etl_reader heap_capture heap_records params pe_info; do
  echo "seeded $(ls "$corpus/$d" | wc -l) files into fuzz/corpus/$d"
done
