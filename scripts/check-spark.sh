#!/usr/bin/env bash
# Check that heapdb's canned reports return the same rows with Spark SQL (PySpark, local
# mode) over a Parquet lake as `heapdb query` on the SQLite database of the same captures.
#
# Usage: scripts/check-spark.sh LAKE_DIR DB [spark_reports.py options...]
#        scripts/check-spark.sh --self-test
#
#   LAKE_DIR  a lake written by `heapdb ingest --parquet` or `heapdb export`
#   DB        the database holding the same captures (same capture ids)
#
# Environment:
#   HEAPDB             the heapdb binary (default: heapdb on PATH, else target/release/heapdb)
#   HEAPDB_SPARK_VENV  the Python venv with pyspark (default ~/.cache/heapdb-spark-venv;
#                      created with pip when missing)
#   JAVA_HOME          a Java 17+ runtime (default /usr/lib/jvm/java-17-openjdk-amd64;
#                      installed with apt-get, openjdk-17-jre-headless, when missing)
#   PYSPARK_VERSION    the pyspark to pip-install into a new venv (default: 4.*)
#
# Exit codes: 0 every report matched, 1 a mismatch, 2 usage or setup error.
# Not run by CI (Spark and a JVM are heavy); see docs/scale-out.md.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
die() { echo "check-spark: $*" >&2; exit 2; }

if [ "${1:-}" != "--self-test" ]; then
    [ $# -ge 2 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
    lake="$1"; db="$2"; shift 2
    [ -f "$lake/_heapdb/lake.json" ] || die "$lake: not a heapdb lake (no _heapdb/lake.json)"
    [ -f "$db" ] || die "$db: no such database"
fi

# heapdb
if [ -z "${HEAPDB:-}" ]; then
    if command -v heapdb >/dev/null; then HEAPDB="$(command -v heapdb)"
    elif [ -x "$repo/target/release/heapdb" ]; then HEAPDB="$repo/target/release/heapdb"
    else HEAPDB=heapdb; fi
fi
export HEAPDB
if [ "${1:-}" != "--self-test" ]; then
    "$HEAPDB" --version >/dev/null 2>&1 || die "no heapdb binary (set HEAPDB=/path/to/heapdb)"
fi

# Java: Spark 4 needs 17 or newer.
java_ok() { [ -x "$1/bin/java" ] && "$1/bin/java" -version >/dev/null 2>&1; }
if [ -z "${JAVA_HOME:-}" ] || ! java_ok "$JAVA_HOME"; then
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
    if ! java_ok "$JAVA_HOME"; then
        echo "check-spark: no Java 17 in $JAVA_HOME: installing openjdk-17-jre-headless with apt-get" >&2
        sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
        $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq openjdk-17-jre-headless >/dev/null \
            || die "could not install openjdk-17-jre-headless (set JAVA_HOME to a Java 17+ runtime)"
        java_ok "$JAVA_HOME" || die "openjdk-17-jre-headless installed, but $JAVA_HOME/bin/java does not run"
    fi
fi
export JAVA_HOME PATH="$JAVA_HOME/bin:$PATH"

# Python venv with pyspark (reused when it has it).
venv="${HEAPDB_SPARK_VENV:-$HOME/.cache/heapdb-spark-venv}"
if ! "$venv/bin/python" -c 'import pyspark' >/dev/null 2>&1; then
    echo "check-spark: creating $venv with pyspark (pip)" >&2
    python3 -m venv "$venv" || die "python3 -m venv $venv failed (apt-get install python3-venv?)"
    "$venv/bin/pip" install -q "pyspark==${PYSPARK_VERSION:-4.*}" pyarrow \
        || die "pip install pyspark into $venv failed"
fi
export PYSPARK_PYTHON="$venv/bin/python"

if [ "${1:-}" = "--self-test" ]; then
    exec "$venv/bin/python" "$here/spark_reports.py" --self-test --heapdb "$HEAPDB"
fi

start=$(date +%s)
# Spark's JVM logs its start-up warnings to stderr; the verdicts go to stdout.
"$venv/bin/python" "$here/spark_reports.py" "$lake" "$db" --heapdb "$HEAPDB" "$@"
rc=$?
echo "check-spark: exit $rc after $(( $(date +%s) - start )) s" >&2
case $rc in 0|1|2) exit $rc ;; *) exit 2 ;; esac
