-- Schema version 2 -> 3. Applied in one transaction by `heapdb ingest` or `heapdb repair`
-- to a database written by an older heapdb; a new database gets schema/001_tables.sql
-- directly. tests/schema_migration.rs checks that both give the same schema.

ALTER TABLE captures ADD COLUMN first_block_id INTEGER;
ALTER TABLE captures ADD COLUMN last_block_id INTEGER;
ALTER TABLE captures ADD COLUMN events_out_of_order INTEGER;
ALTER TABLE site_stats ADD COLUMN live_blocks INTEGER;
ALTER TABLE site_stats ADD COLUMN live_bytes INTEGER;

-- The lifetime tables (blocks, block_counts, process_usage) are created from
-- schema/001_tables.sql, which the upgrade runs (idempotently) before this script.
-- Captures stored before this upgrade get their lifetimes from `heapdb repair`, which
-- computes them from the stored events (captures.first_block_id stays NULL until then).

-- The reports that used heap_events' index by opcode read the lifetimes and the
-- summaries now (schema/002_indexes.sql says why it went).
DROP INDEX IF EXISTS heap_events_by_capture_opcode;
