-- Schema version 1 -> 2. Applied in one transaction by `heapdb ingest` or `heapdb repair`
-- to a database written by an older heapdb; a new database gets schema/001_tables.sql
-- directly. tests/schema_migration.rs checks that both give the same schema.

ALTER TABLE captures ADD COLUMN heap_events_undecoded INTEGER;
ALTER TABLE captures ADD COLUMN history INTEGER;
ALTER TABLE processes ADD COLUMN identity TEXT;

-- Every index of the event tables is now led by capture_id (schema/002_indexes.sql
-- says why). The old ones are dropped here; the ingest or `heapdb repair` that runs this
-- upgrade builds the new ones, with progress, right after.
DROP INDEX IF EXISTS reallocs_by_heap;
DROP INDEX IF EXISTS reallocs_by_new_address;
DROP INDEX IF EXISTS reallocs_by_old_address;
DROP INDEX IF EXISTS reallocs_by_source;
DROP INDEX IF EXISTS reallocs_by_time;
DROP INDEX IF EXISTS heap_events_by_address;
DROP INDEX IF EXISTS heap_events_by_heap;

-- The tables of the history across captures (sites, site_frames, capture_stacks, heaps,
-- site_stats, capture_labels) are created from schema/001_tables.sql, which the upgrade
-- runs (idempotently) before this script. Captures stored before this upgrade get their
-- rows from `heapdb repair`, which computes them from the stored events, stacks and
-- images.
