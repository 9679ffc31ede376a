#!/usr/bin/env bash
# Fetches a real MSVC-built DLL/PDB pair for the symbolization tests: debugpy's
# attach_amd64.dll/.pdb and attach_x86.dll/.pdb, shipped in its win_amd64 wheel on PyPI.
#
#   scripts/fetch-debugpy-pdb.sh [DEST]     # default DEST: target/test-cache/debugpy
#
# The wheel is pinned by version and sha256; a mismatch is an error. Idempotent: does
# nothing when DEST already holds the four files. Needs pip and network access to PyPI;
# tests/symbols_real.rs runs it and skips (saying why) when it fails.
set -euo pipefail
VERSION=1.8.14
WHEEL=debugpy-1.8.14-cp311-cp311-win_amd64.whl
SHA256=7816acea4a46d7e4e50ad8d09d963a680ecc814ae31cdef3622eb05ccacf7b01
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$repo/target/test-cache/debugpy}"
files=(attach_amd64.dll attach_amd64.pdb attach_x86.dll attach_x86.pdb)

have_all() {
    for f in "${files[@]}"; do [[ -s "$dest/$f" ]] || return 1; done
}
if have_all; then
    exit 0
fi

mkdir -p "$dest"
if [[ ! -f "$dest/$WHEEL" ]]; then
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --platform win_amd64 --python-version 3.11 \
        -d "$dest" "debugpy==$VERSION"
fi
echo "$SHA256  $dest/$WHEEL" | sha256sum --check --quiet - || {
    echo "fetch-debugpy-pdb: $WHEEL does not have the pinned sha256" >&2
    rm -f "$dest/$WHEEL"
    exit 1
}
python3 - "$dest/$WHEEL" "$dest" "${files[@]}" <<'PY'
import os, sys, zipfile
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
prefix = "debugpy/_vendored/pydevd/pydevd_attach_to_process/"
with zipfile.ZipFile(wheel) as z:
    for n in names:
        tmp = os.path.join(dest, "." + n + ".partial")
        with z.open(prefix + n) as src, open(tmp, "wb") as out:
            out.write(src.read())
        os.replace(tmp, os.path.join(dest, n))
PY
have_all
