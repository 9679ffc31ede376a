-- heapdb: DuckDB prelude. Run once per DuckDB session, before schema/003_views.sql and
-- before any canned report (queries/*.sql), so that heapdb's SQL, written for SQLite,
-- gives the same answers on DuckDB over the Parquet lake (`heapdb lake-views DIR`
-- prints it first). Each line makes DuckDB behave as SQLite does where the reports rely
-- on it; the SQL itself is otherwise portable (docs/lake-sql.md). Checked with DuckDB
-- 2.0.1 by scripts/duckdb_reports.py.

-- SQLite divides two integers as integers, truncating toward zero (7 / 2 = 3,
-- -7 / 2 = -3): the reports bucket times and sizes that way. DuckDB's `/` gives a
-- DOUBLE unless told otherwise. (A REAL or DECIMAL operand still divides exactly.)
SET integer_division = true;

-- SQLite sorts NULL before everything in ascending order and after everything in
-- descending order; DuckDB puts NULL last both ways. The reports' ORDER BY (and
-- row_number() windows) break ties on columns that can be NULL (stack_id of rows without
-- a stack, ...).
SET default_null_order = 'nulls_first_on_asc_last_on_desc';

-- strftime(format, seconds, 'unixepoch'): SQLite's form, used by the views for readable
-- UTC times (the third argument is always 'unixepoch' there). DuckDB's strftime takes
-- (timestamp, format); make_timestamp(microseconds) is a plain TIMESTAMP, so the text is
-- UTC whatever the session's TimeZone (to_timestamp would give local time). floor():
-- SQLite drops the fraction of a second; a DuckDB cast to BIGINT would round it. The
-- two-argument form stays DuckDB's own.
CREATE OR REPLACE TEMP MACRO strftime(a, b) AS system.main.strftime(a, b),
    (f, x, m) AS system.main.strftime(make_timestamp(CAST(floor(x * 1000000) AS BIGINT)), f);

-- min(a, b) and max(a, b) with two arguments are SQLite's scalar functions: the smaller
-- (larger) argument, NULL when either is NULL (DuckDB's least/greatest skip NULLs). With
-- one argument they stay DuckDB's aggregates.
CREATE OR REPLACE TEMP MACRO min(a) AS system.main.min(a),
    (a, b) AS CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE least(a, b) END;
CREATE OR REPLACE TEMP MACRO max(a) AS system.main.max(a),
    (a, b) AS CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE greatest(a, b) END;
