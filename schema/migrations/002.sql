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

-- ---------------------------------------------------------------------------------
-- History across captures (schema 2). Captures stored before this upgrade get their
-- rows from `heapdb repair`, which computes them from the stored events, stacks and
-- images. Everything the OS chooses changes between two
-- nights (image bases under ASLR, pids, thread ids, heap handles); these tables name
-- what does not: frames by module + RVA, call sites by their frames, processes by
-- image name, heaps by what they are. They are computed when a capture is ingested.
-- docs/history.md gives the rules.
-- ---------------------------------------------------------------------------------

-- Call sites, shared by captures: a stack's frames as (module, RVA). site_id is a hash
-- of those frames (the first 63 bits of BLAKE3 over each frame's module name and RVA,
-- or its address when it is outside every image), the same in every database, so the
-- same code gives the same site_id every night of one build. A rebuild moves RVAs:
-- `heapdb symbolize` fills function_site_id (a hash of the frames as module!function)
-- and call_function, and reports group by coalesce(function_site_id, site_id), so the
-- same function matches across builds once symbols exist.
CREATE TABLE IF NOT EXISTS sites (
    site_id          INTEGER PRIMARY KEY,  -- hash of the (module, RVA) frames (63 bits)
    depth            INTEGER NOT NULL,     -- number of frames
    call_depth       INTEGER NOT NULL,     -- depth of the call-site frame: the first outside the heap manager, the C/C++ runtimes and the kernel
    call_site        TEXT NOT NULL,        -- that frame as 'module+0xRVA' (or '0xADDRESS' outside every image), e.g. 'game.exe+0x1a2b3'
    caller_module    TEXT,                 -- its module, lowercase; NULL outside every image
    function_site_id INTEGER,              -- hash of the frames as module!function; NULL until symbolized
    call_function    TEXT                  -- the call site as 'module!function'; NULL until symbolized
);

-- Frames of each site, innermost first.
CREATE TABLE IF NOT EXISTS site_frames (
    site_id  INTEGER NOT NULL REFERENCES sites(site_id), -- the site
    depth    INTEGER NOT NULL,             -- 0 = innermost
    module   TEXT,                         -- image file name, lowercase; NULL: the frame is outside every image of the process and the kernel
    rva      INTEGER,                      -- offset in the module; NULL with module
    address  INTEGER,                      -- the address, only when module is NULL (an absolute address: it will not match another night)
    PRIMARY KEY (site_id, depth)
) WITHOUT ROWID;

-- Which site each stack of a capture is (the same stack_id can be another site in
-- another capture: the image bases differ).
CREATE TABLE IF NOT EXISTS capture_stacks (
    capture_id INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    pid        INTEGER NOT NULL,           -- the process the stack was seen in
    stack_id   INTEGER NOT NULL,           -- stacks.stack_id
    site_id    INTEGER NOT NULL,           -- sites.site_id
    PRIMARY KEY (capture_id, pid, stack_id)
) WITHOUT ROWID;

-- Heaps of each capture, named so that the same heap can be found on another night.
CREATE TABLE IF NOT EXISTS heaps (
    capture_id     INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    pid            INTEGER NOT NULL,       -- process id
    heap           INTEGER NOT NULL,       -- heap handle
    process        TEXT NOT NULL,          -- the process's identity (processes.identity)
    identity       TEXT NOT NULL,          -- 'default' (the process heap), 'private@<call site of its HeapCreate>', 'private#n' (created without a stack), 'preexisting#n' (existed before the trace, not the busiest); ' #2'... when a name repeats
    kind           TEXT NOT NULL,          -- 'default', 'private' or 'preexisting'
    created_ns     INTEGER,                -- its Create event; NULL when it existed before the trace
    destroyed_ns   INTEGER,                -- its Destroy event; NULL when it outlived the trace
    create_site_id INTEGER,                -- the site of its Create (sites.site_id), when stacks were collected
    events         INTEGER NOT NULL,       -- heap events of this heap in the capture
    PRIMARY KEY (capture_id, pid, heap)
) WITHOUT ROWID;

-- What each call site did in each heap of each capture: the numbers `trend` and
-- `capture-diff` compare. One row per (capture, process, heap, site); site_id is NULL
-- for the events without a stack.
CREATE TABLE IF NOT EXISTS site_stats (
    capture_id    INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    pid           INTEGER NOT NULL,        -- process id
    heap          INTEGER NOT NULL,        -- heap handle
    process       TEXT NOT NULL,           -- the process's identity
    heap_identity TEXT NOT NULL,           -- the heap's identity (heaps.identity)
    site_id       INTEGER,                 -- sites.site_id; NULL: events without a stack
    allocs        INTEGER NOT NULL,        -- Allocs (not counting the internal Alloc of a moving ReAlloc)
    alloc_bytes   INTEGER NOT NULL,        -- bytes they asked for
    reallocs      INTEGER NOT NULL,        -- ReAllocs
    moves         INTEGER NOT NULL,        -- ReAllocs that moved the block
    bytes_copied  INTEGER NOT NULL,        -- bytes copied by those moves
    bytes_grown   INTEGER NOT NULL         -- bytes added by growing ReAllocs
);

-- Labels of captures: `heapdb ingest --label build=26100.1234` or
-- `--label-from-path REGEX`, and `heapdb label`. Reports select captures by label
-- (--param label.build=26100.1234) and `trend` groups by one.
CREATE TABLE IF NOT EXISTS capture_labels (
    capture_id INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    key        TEXT NOT NULL,              -- e.g. 'build', 'host', 'branch'
    value      TEXT NOT NULL,              -- e.g. '26100.1234'
    PRIMARY KEY (capture_id, key)
) WITHOUT ROWID;
