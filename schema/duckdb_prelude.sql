-- DuckDB prelude: SQLite's semantics where heapdb's reports rely on them.
SET integer_division = true;
SET default_null_order = 'nulls_first_on_asc_last_on_desc';
CREATE OR REPLACE TEMP MACRO strftime(a, b) AS system.main.strftime(a, b), (f, x, m) AS system.main.strftime(to_timestamp(x), f);
CREATE OR REPLACE TEMP MACRO min(a) AS system.main.min(a), (a, b) AS CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE least(a, b) END;
CREATE OR REPLACE TEMP MACRO max(a) AS system.main.max(a), (a, b) AS CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE greatest(a, b) END;
