-- Schema version 1 -> 2. Applied in one transaction by `heapdb ingest` or `heapdb repair`
-- to a database written by an older heapdb; a new database gets schema/001_tables.sql
-- directly. tests/schema_migration.rs checks that both give the same schema.

ALTER TABLE captures ADD COLUMN heap_events_undecoded INTEGER;
