#!/usr/bin/env bash
# Cross-check the Windows build from Linux: clippy and the test suite for
# x86_64-pc-windows-gnu, built with Debian's rustc-web and run under Wine.
#
# rustup here has no Windows target (and cannot download one), but Debian ships a
# complete Rust toolchain (rustc-web, cargo-web, rust-web-clippy) together with the
# standard library's source (rust-web-src), so std is built for the target with
# `-Z build-std` (unstable, hence RUSTC_BOOTSTRAP=1) and linked with mingw-w64.
#
# Idempotent: installs only missing packages, reuses the Wine prefix and the build in
# target/windows (a target dir of its own, so the Linux build is never touched). Any
# failure exits non-zero and names the step: if a new rustc-web breaks the build, this
# fails rather than skipping. Details and timings: docs/windows.md.
#
# Environment: WINDOWS_CHECK_PROFILE (default "windows-check", see Cargo.toml) selects
# the cargo profile of the clippy and test builds.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

target=x86_64-pc-windows-gnu
packages=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64 wine64)
profile=${WINDOWS_CHECK_PROFILE:-windows-check}

say() { printf 'windows-check: %s\n' "$*" >&2; }

# Step bookkeeping: every step prints its duration, and a failure names its step.
step_name=""
step_t0=0
script_t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
end_step() {
    if [[ -n $step_name ]]; then
        say "-- $step_name: $(elapsed "$step_t0") s"
        step_name=""
    fi
}
step() {
    end_step
    step_name=$1
    step_t0=$(date +%s.%N)
    say "== $step_name"
}
wine_used=""
on_exit() {
    local rc=$?
    if [[ -n $wine_used ]]; then
        # Stop the wineserver of our own WINEPREFIX (and the Wine services it runs)
        # rather than leaving it to linger after the last test.
        "$wineserver" -k >/dev/null 2>&1 || true
    fi
    if [[ $rc -ne 0 ]]; then
        say "FAILED in step '${step_name:-setup}' (exit $rc) after $(elapsed "$script_t0") s"
    fi
    exit "$rc"
}
trap on_exit EXIT
die() {
    say "error: $*"
    exit 1
}

# --- packages -------------------------------------------------------------------------
step "packages"
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo)
    fi
    # update first: rustc-web moves through bookworm-security, and stale lists would
    # install the older compiler from bookworm itself.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "all installed: ${packages[*]}"
fi

# --- toolchain: Debian's, by path, never rustup's proxies in ~/.cargo/bin --------------
step "toolchain"
pkg_file() { # package, regex of the path: the first matching file it installed
    dpkg-query -L "$1" | grep -E "$2" | head -n1
}
rustc=$(pkg_file rustc-web '^/usr/bin/rustc$|/bin/rustc$')
rustdoc=$(pkg_file rustc-web '/bin/rustdoc$')
cargo=$(pkg_file cargo-web '^/usr/bin/cargo$|/bin/cargo$')
clippy_driver=$(pkg_file rust-web-clippy '/bin/clippy-driver$')
wine64=$(pkg_file wine64 '/wine64$')
wineserver=$(pkg_file wine64 '/wineserver64$')
for f in rustc rustdoc cargo clippy_driver wine64 wineserver; do
    [[ -x ${!f} ]] || die "cannot find $f in the installed packages"
done
sysroot=$("$rustc" --print sysroot)
[[ -d $sysroot/lib/rustlib/src/rust/library/std ]] ||
    die "rust-web-src does not provide the std source under $sysroot/lib/rustlib/src"

export RUSTC=$rustc RUSTDOC=$rustdoc CARGO=$cargo
# cargo looks for `cargo-clippy` on PATH (and in ~/.cargo/bin unless PATH lists it):
# put Debian's first so rustup's proxy is not picked up.
export PATH="$(dirname "$cargo"):$(dirname "$clippy_driver"):$PATH"
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_TARGET
# .ci/run makes the Linux run require Chromium (tests/report_html) and DuckDB
# (tests/lake_duckdb); a Windows test under Wine cannot start Linux programs, so there
# those tests skip and say why.
unset HEAPDB_REQUIRE_BROWSER HEAPDB_REQUIRE_DUCKDB
# -Z build-std is unstable; this is the documented way to use it on a stable compiler.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$root/target/windows
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$wine64
export WINEPREFIX=$root/target/wine-prefix
export WINEDEBUG=-all
# No Mono or Gecko download prompts while the prefix is created (neither is needed).
export WINEDLLOVERRIDES="mscoree,mshtml="

say "compiler: $("$rustc" --version) [$rustc, package rustc-web $(dpkg-query -W -f='${Version}' rustc-web)]"
say "cargo:    $("$cargo" --version) [$cargo]"
say "clippy:   $("$clippy_driver" --version) [$clippy_driver]"
say "wine:     $("$wine64" --version) [$wine64]"
say "linker:   $(x86_64-w64-mingw32-gcc --version | head -n1)"

# --- Wine prefix with the ProcessPrng shim ----------------------------------------------
step "wine prefix"
mkdir -p "$CARGO_TARGET_DIR/shim"
wine_used=1
if [[ ! -f $WINEPREFIX/system.reg ]]; then
    "$wine64" wineboot --init >/dev/null 2>&1 || die "wineboot failed for $WINEPREFIX"
    # The registry files are written when the wineserver exits: wait for that.
    "$wineserver" -w
fi
shim=$CARGO_TARGET_DIR/shim/bcryptprimitives.dll
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$shim" scripts/windows/bcryptprimitives.c -ladvapi32
system32=$WINEPREFIX/drive_c/windows/system32
[[ -d $system32 ]] || die "no $system32 after wineboot"
cp "$shim" "$system32/bcryptprimitives.dll"

# --- clippy and tests ----------------------------------------------------------------
# --locked: this check never rewrites Cargo.lock. One profile for clippy and the tests,
# so both share the build-script runs (SQLite's C compile) and the proc macros.
cargo_args=(--locked --target "$target" -Z build-std=std,panic_abort --profile "$profile")

step "clippy (all targets, -D warnings)"
"$cargo" clippy "${cargo_args[@]}" --all-targets -- -D warnings

step "test build ($profile profile)"
"$cargo" test "${cargo_args[@]}" --no-run

step "tests under Wine"
# --no-fail-fast: report every failing test binary, still exiting non-zero.
"$cargo" test "${cargo_args[@]}" --no-fail-fast

end_step
say "OK: clippy and tests pass for $target with $("$rustc" --version) under $("$wine64" --version), $(elapsed "$script_t0") s in all"
