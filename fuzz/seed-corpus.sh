#!/usr/bin/env bash
# Seeds fuzz/corpus/etl_reader with the real captures (the small ones whole, the first
# 256 KiB of the big ones) so the fuzzer starts from valid files of every header kind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../../shared/testdata/etl/real}
dst=$here/corpus/etl_reader
mkdir -p "$dst"
for f in "$src"/*.etl; do
  head -c 262144 "$f" > "$dst/$(basename "$f")"
done
echo "seeded $(ls "$dst" | wc -l) files into $dst"
