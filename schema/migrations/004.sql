-- Schema version 3 -> 4: symbols. Applied in one transaction by `heapdb ingest`,
-- `heapdb symbolize` or `heapdb repair` to a database written by an older heapdb; a
-- new database gets schema/001_tables.sql directly. tests/schema_migration.rs checks
-- that both give the same schema. The new tables (pdbs, symbols) come from
-- schema/001_tables.sql, which the upgrade runs (idempotently) before this script.

ALTER TABLE stacks ADD COLUMN site_id INTEGER;
ALTER TABLE images ADD COLUMN pdb_id INTEGER;
ALTER TABLE sites ADD COLUMN symbolized INTEGER;
ALTER TABLE site_frames ADD COLUMN pdb_id INTEGER;

-- The site each stored stack was first seen as (the lowest capture id that has it).
UPDATE stacks SET site_id = first.site_id
FROM (SELECT stack_id, site_id, min(capture_id) FROM capture_stacks GROUP BY stack_id) AS first
WHERE first.stack_id = stacks.stack_id;
