-- heapdb schema, version 4: tables.
--
-- One SQLite database holds the heap history of many captures (.etl files). heapdb
-- applies this file when it creates a database and records the schema version in
-- PRAGMA user_version; a database of an older version is upgraded by the scripts of
-- schema/migrations/ (any ingest, or `heapdb repair`, does it). Any SQLite client can
-- read the database.
--
-- Conventions
--   * Times: `time_ns` is UTC nanoseconds since 1970-01-01 (INTEGER); `ts_raw` is the
--     event's raw timestamp in the capture's session clock (QPC ticks, usually 100 ns).
--     The views format times as RFC 3339 text.
--   * Addresses and sizes (heap handles, block addresses, image bases) are stored as
--     INTEGER holding the unsigned 64-bit value. User-mode heap addresses are always
--     below 2^63, so `=`, BETWEEN, < and ORDER BY work on them in plain SQL; a value of
--     2^63 or more (a kernel address, only in stacks and images) reads back as its
--     two's-complement negative, and printf('0x%016x', x) still prints it right. The
--     views show every address in hex (`*_hex` columns).
--   * Source: where the heap manager served the block (see `sources`).
--   * pid/tid: Windows process and thread ids as logged.

-- One row per ingested capture (.etl file).
CREATE TABLE IF NOT EXISTS captures (
    capture_id      INTEGER PRIMARY KEY,   -- id used by every other table
    path            TEXT NOT NULL,         -- path given to `heapdb ingest` (first seen)
    file_name       TEXT NOT NULL,         -- last component of path
    size_bytes      INTEGER NOT NULL,      -- file size
    fingerprint     TEXT NOT NULL UNIQUE,  -- BLAKE3 of the whole file, hex: the same capture under another path is skipped
    os_version      TEXT,                  -- Windows version of the traced machine, e.g. '10.0'
    os_build        INTEGER,               -- Windows build number, e.g. 22631
    pointer_size    INTEGER,               -- session pointer size in bytes (4 or 8); records can differ (WOW64)
    cpu_count       INTEGER,               -- logical processors of the traced machine
    clock_type      TEXT,                  -- raw timestamp clock: 'qpc', 'system_time', 'cpu_cycle', 'raw'
    perf_freq       INTEGER,               -- QPC ticks per second
    buffer_size     INTEGER,               -- session buffer size in bytes
    logger_name     TEXT,                  -- ETW session name ('Relogger' for merged files)
    start_time_ns   INTEGER,               -- session start (logfile header StartTime), UTC ns
    end_time_ns     INTEGER,               -- session end, UTC ns; NULL when the session was never closed
    first_event_ns  INTEGER,               -- time of the first heap event
    last_event_ns   INTEGER,               -- time of the last heap event
    events_lost     INTEGER,               -- events the session lost (logfile header): > 0 means incomplete data
    buffers_lost    INTEGER,               -- buffers the session lost (logfile header)
    events_seen     INTEGER,               -- records read (all providers)
    events_decoded  INTEGER,               -- heap events decoded and stored
    events_skipped  INTEGER,               -- records of other providers (rundown, stacks, ...) not stored as heap events
    events_bad      INTEGER,               -- corrupt or undecodable records (see ingest_errors)
    unknown_versions INTEGER,              -- heap events with a version not seen in the OS manifest (decoded by known prefix)
    records_32bit   INTEGER,               -- heap events with 32-bit pointers (WOW64 processes in a 64-bit capture)
    stacks_matched  INTEGER,               -- heap events that got a stack
    stacks_orphan   INTEGER,               -- StackWalk records whose event was not found
    moving_reallocs_linked INTEGER,        -- moving ReAllocs logged with their internal Alloc + Free (linked)
    first_event_id  INTEGER,               -- ids of this capture's rows in reallocs and heap_events run from
    last_event_id   INTEGER,               -- first_event_id to last_event_id: reports scan that rowid range
    ingest_started  TEXT NOT NULL,         -- when this capture's ingest began (RFC 3339)
    ingest_finished TEXT,                  -- when it was committed
    heapdb_version  TEXT NOT NULL,         -- heapdb version that ingested it
    status          TEXT NOT NULL,         -- 'complete', or 'complete_with_errors' when some records were bad; for `heapdb record`: 'recording' while it runs (rows committed in parts; or its recorder was killed), 'incomplete' once `heapdb repair` finished a killed recording from what was committed
    -- Added in schema 2 (columns added by a migration come last, in every database):
    heap_events_undecoded INTEGER,         -- heap-provider events (in any header form) that could not be decoded: > 0 means the numbers are incomplete (see ingest_errors)
    history         INTEGER,               -- 1 when its rows of heaps, sites and site_stats are computed (NULL: stored before schema 2, until `heapdb repair`)
    -- Added in schema 3:
    first_block_id  INTEGER,               -- ids of this capture's rows in blocks run from first_block_id
    last_block_id   INTEGER,               -- to last_block_id (NULL: stored before schema 3, until `heapdb repair`)
    events_out_of_order INTEGER            -- Alloc/ReAlloc/Free events that reached the lifetime pass after a later one (a CPU's buffer held back longer than the reorder window): > 0 means some lifetimes may be wrong (see data-quality)
);

-- Source values of Alloc/ReAlloc/Free (ntwmi MEMORY_FROM_*).
CREATE TABLE IF NOT EXISTS sources (
    source      INTEGER PRIMARY KEY,       -- value in the event
    name        TEXT NOT NULL,             -- short name used by the views and reports
    description TEXT NOT NULL              -- what the value means
);
INSERT OR IGNORE INTO sources VALUES
    (1, 'lookaside', 'lookaside list (pre-LFH front end)'),
    (2, 'lfh',       'low-fragmentation heap'),
    (3, 'main',      'main (back-end) code path'),
    (4, 'slow',      'slow path'),
    (5, 'invalid',   'invalid'),
    (6, 'segment',   'segment heap');

-- Heap event kinds (HeapTraceProvider opcodes, and HeapRange 100-104).
CREATE TABLE IF NOT EXISTS heap_opcodes (
    opcode INTEGER PRIMARY KEY,            -- event type / opcode
    name   TEXT NOT NULL                   -- PerfView's event name
);
INSERT OR IGNORE INTO heap_opcodes VALUES
    (32, 'Create'),
    (33, 'Alloc'),
    (34, 'ReAlloc'),
    (35, 'Destroy'),
    (36, 'Free'),
    (37, 'Expand'),
    (38, 'SnapShot'),
    (39, 'CreateSnapshot'),
    (40, 'DestroySnapshot'),
    (41, 'ExtendSnapshot'),
    (42, 'Contract'),
    (43, 'Lock'),
    (44, 'Unlock'),
    (45, 'Validate'),
    (46, 'Walk'),
    (47, 'SubsegmentAlloc'),
    (48, 'SubsegmentFree'),
    (49, 'SubsegmentAllocCached'),
    (50, 'SubsegmentFreeCached'),
    (51, 'Commit'),
    (52, 'Decommit'),
    (53, 'SubsegmentInit'),
    (54, 'AffinityManagerEnable'),
    (55, 'AffinitySlotAssigned'),
    (56, 'SubSegmentActivated'),
    (57, 'AffinitySlotChanged'),
    (58, 'SubsegmentReuseThresholdActivated'),
    (100, 'RangeRundown'),
    (101, 'RangeCreate'),
    (102, 'RangeReserve'),
    (103, 'RangeRelease'),
    (104, 'RangeDestroy');

-- One row per heap ReAlloc: the core fact table.
CREATE TABLE IF NOT EXISTS reallocs (
    id            INTEGER PRIMARY KEY,     -- event id; shares one sequence with heap_events.id
    capture_id    INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture it came from
    time_ns       INTEGER NOT NULL,        -- when it happened, UTC ns
    ts_raw        INTEGER NOT NULL,        -- raw session-clock timestamp
    pid           INTEGER NOT NULL,        -- process id
    tid           INTEGER NOT NULL,        -- thread id
    cpu           INTEGER NOT NULL,        -- CPU whose buffer held the event
    heap          INTEGER NOT NULL,        -- HeapHandle
    new_address   INTEGER NOT NULL,        -- NewAddress: the block after the call
    old_address   INTEGER NOT NULL,        -- OldAddress: the block passed in
    new_size      INTEGER NOT NULL,        -- NewSize in bytes
    old_size      INTEGER NOT NULL,        -- OldSize in bytes
    source        INTEGER NOT NULL,        -- Source (see sources); unknown values kept as numbers
    moved         INTEGER NOT NULL,        -- 1 when new_address <> old_address (the data was copied)
    pointer_size  INTEGER NOT NULL,        -- 4 or 8: pointer width of this record
    stack_id      INTEGER,                 -- stacks.stack_id, NULL when no stack was collected
    alloc_id      INTEGER,                 -- heap_events.id of the internal Alloc of the new block, when logged
    free_id       INTEGER,                 -- heap_events.id of the internal Free of the old block, when logged
    file_offset   INTEGER NOT NULL         -- byte offset of the record in the capture (of its buffer, if compressed)
);

-- Every other heap event: Alloc, Free, Create, Destroy, Expand, SnapShot, ... and the
-- HeapRange events. Same keys as reallocs.
CREATE TABLE IF NOT EXISTS heap_events (
    id            INTEGER PRIMARY KEY,     -- event id (same sequence as reallocs.id)
    capture_id    INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture it came from
    time_ns       INTEGER NOT NULL,        -- when it happened, UTC ns
    ts_raw        INTEGER NOT NULL,        -- raw session-clock timestamp
    pid           INTEGER NOT NULL,        -- process id
    tid           INTEGER NOT NULL,        -- thread id
    cpu           INTEGER NOT NULL,        -- CPU whose buffer held the event
    opcode        INTEGER NOT NULL,        -- heap_opcodes.opcode (33 Alloc, 36 Free, 32 Create, 35 Destroy, ...)
    heap          INTEGER NOT NULL,        -- HeapHandle (0 for AffinitySlotAssigned, which has none)
    address       INTEGER,                 -- block (Alloc, Free), subsegment, committed range, ...; NULL if none
    size          INTEGER,                 -- block size (Alloc), range size, reserve size (Create v3), ...
    source        INTEGER,                 -- Alloc/Free Source; NULL for other kinds
    pointer_size  INTEGER NOT NULL,        -- 4 or 8: pointer width of this record
    stack_id      INTEGER,                 -- stacks.stack_id when collected (usually Alloc and Create)
    realloc_internal INTEGER NOT NULL DEFAULT 0, -- 1 when this Alloc/Free was logged inside a moving ReAlloc (see reallocs.alloc_id/free_id): count the operation once
    extra         TEXT,                    -- JSON of the fields of rarer kinds (Create flags, SnapShot counters, ...)
    file_offset   INTEGER NOT NULL         -- byte offset of the record in the capture (of its buffer, if compressed)
);

-- Call stacks, deduplicated across captures. stack_id is a hash of the frames, the same
-- in every database.
CREATE TABLE IF NOT EXISTS stacks (
    stack_id   INTEGER PRIMARY KEY,        -- hash of the frames (63 bits)
    depth      INTEGER NOT NULL,           -- number of frames
    leaf       INTEGER,                    -- innermost frame (frame 0)
    -- Added in schema 4:
    site_id    INTEGER                     -- the call site this stack was first seen as (sites.site_id; capture_stacks has it per capture): what stack_frames_v names the frames by
);

-- Frames of each stack, innermost first.
CREATE TABLE IF NOT EXISTS stack_frames (
    stack_id   INTEGER NOT NULL REFERENCES stacks(stack_id), -- the stack
    depth      INTEGER NOT NULL,           -- 0 = innermost
    address    INTEGER NOT NULL,           -- return address
    PRIMARY KEY (stack_id, depth)
) WITHOUT ROWID;

-- Processes seen in the kernel rundown (present when the heap trace was merged with a
-- kernel trace) or only through their heap events.
CREATE TABLE IF NOT EXISTS processes (
    process_row  INTEGER PRIMARY KEY,       -- row id
    capture_id   INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture it came from
    pid          INTEGER NOT NULL,         -- process id
    name         TEXT,                     -- image file name, e.g. 'devenv.exe'; NULL when no rundown named it
    command_line TEXT,                      -- command line from the rundown
    parent_pid   INTEGER,                  -- parent process id
    session_id   INTEGER,                  -- Windows session
    unique_key   INTEGER,                  -- kernel UniqueProcessKey
    start_ns     INTEGER,                  -- process start, NULL when it started before the trace
    end_ns       INTEGER,                  -- process end, NULL when still running at the end
    seen_as      TEXT NOT NULL,            -- 'rundown' (running when the trace started), 'start' (started during it) or 'heap_events_only'
    -- Added in schema 2:
    identity     TEXT                      -- the same process on another night: lowercase image name; when the name repeats in the capture, name + ' ' + command-line arguments (digits as '#'); then ' #1', ' #2'... by start (docs/history.md)
);

-- Threads seen in the rundown.
CREATE TABLE IF NOT EXISTS threads (
    thread_row INTEGER PRIMARY KEY,         -- row id
    capture_id INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture it came from
    pid        INTEGER NOT NULL,           -- process id
    tid        INTEGER NOT NULL,           -- thread id
    start_ns   INTEGER,                    -- NULL when started before the trace
    end_ns     INTEGER                     -- NULL when still running at the end
);

-- Loaded images (DLLs, EXEs) per process, with PDB identity for symbolization.
CREATE TABLE IF NOT EXISTS images (
    image_row     INTEGER PRIMARY KEY,     -- row id
    capture_id    INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture it came from
    pid           INTEGER NOT NULL,        -- process id (0: kernel images)
    base          INTEGER NOT NULL,        -- load address
    size          INTEGER NOT NULL,        -- bytes mapped
    path          TEXT NOT NULL,           -- kernel (device) path
    name          TEXT NOT NULL,           -- file name, lowercase, e.g. 'ntdll.dll'
    checksum      INTEGER,                 -- PE checksum
    timedatestamp INTEGER,                 -- PE TimeDateStamp
    pdb_guid      TEXT,                    -- RSDS GUID, from KernelTraceControl DbgID_RSDS
    pdb_age       INTEGER,                 -- RSDS age
    pdb_path      TEXT,                    -- PDB file name recorded in the image
    load_ns       INTEGER,                 -- NULL when loaded before the trace
    unload_ns     INTEGER,                 -- NULL when still loaded at the end
    -- Added in schema 4:
    pdb_id        INTEGER                  -- pdbs.pdb_id of (pdb_path, pdb_guid, pdb_age); NULL without an RSDS record, or until `heapdb symbolize` (or `ingest --symbols`) has run
);

-- Everything that was bad: unreadable files, corrupt buffers and records.
CREATE TABLE IF NOT EXISTS ingest_errors (
    error_id    INTEGER PRIMARY KEY,       -- row id
    capture_id  INTEGER REFERENCES captures(capture_id), -- NULL when the whole file was refused
    path        TEXT NOT NULL,             -- file as given to the ingest
    fingerprint TEXT NOT NULL,             -- '' when the file could not be read
    byte_offset INTEGER,                   -- where in the file; NULL when not applicable
    message     TEXT NOT NULL,             -- what was wrong
    UNIQUE (fingerprint, path, byte_offset, message)
);

-- ---------------------------------------------------------------------------------
-- History across captures (schema 2). Everything the OS chooses changes between two
-- nights (image bases under ASLR, pids, thread ids, heap handles); these tables name
-- what does not: frames by module + RVA, call sites by their frames, processes by
-- image name, heaps by what they are. They are computed when a capture is ingested.
-- docs/history.md gives the rules.
-- ---------------------------------------------------------------------------------

-- Call sites, shared by captures: a stack's frames as (module, RVA). site_id is a hash
-- of those frames (the first 63 bits of BLAKE3 over each frame's module name and RVA,
-- or its address when it is outside every image), the same in every database, so the
-- same code gives the same site_id every night of one build. A rebuild moves RVAs:
-- symbolization (`heapdb symbolize`, `heapdb ingest --symbols`) fills function_site_id
-- (a hash of the frames as module!function) and call_function, and reports group by
-- coalesce(function_site_id, site_id), so the same function matches across builds.
CREATE TABLE IF NOT EXISTS sites (
    site_id          INTEGER PRIMARY KEY,  -- hash of the (module, RVA) frames (63 bits)
    depth            INTEGER NOT NULL,     -- number of frames
    call_depth       INTEGER NOT NULL,     -- depth of the call-site frame: the first outside the heap manager, the C/C++ runtimes and the kernel (once symbolized, also outside the allocator functions: malloc, realloc, operator new, ... docs/symbols.md)
    call_site        TEXT NOT NULL,        -- that frame as 'module+0xRVA' (or '0xADDRESS' outside every image), e.g. 'game.exe+0x1a2b3'
    caller_module    TEXT,                 -- its module, lowercase; NULL outside every image
    function_site_id INTEGER,              -- hash of the frames as module!function (module+RVA for frames without a name); NULL while no frame has a name
    call_function    TEXT,                 -- the call site as 'module!function' (WinDbg's spelling: no argument list), e.g. 'heapdemo.dll!JsonWriter::Grow'; NULL until its PDB was found
    -- Added in schema 4:
    symbolized       INTEGER               -- 1 once symbolization named what it could of this site's frames; NULL before
);

-- Frames of each site, innermost first.
CREATE TABLE IF NOT EXISTS site_frames (
    site_id  INTEGER NOT NULL REFERENCES sites(site_id), -- the site
    depth    INTEGER NOT NULL,             -- 0 = innermost
    module   TEXT,                         -- image file name, lowercase; NULL: the frame is outside every image of the process and the kernel
    rva      INTEGER,                      -- offset in the module; NULL with module
    address  INTEGER,                      -- the address, only when module is NULL (an absolute address: it will not match another night)
    -- Added in schema 4:
    pdb_id   INTEGER,                      -- pdbs.pdb_id of the module's PDB (from the image of the capture that first stored the site); NULL when the image names none, or until symbolization
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
    bytes_grown   INTEGER NOT NULL,        -- bytes added by growing ReAllocs
    -- Added in schema 3:
    live_blocks   INTEGER,                 -- blocks this site allocated (or last reallocated) in the trace and still live at its end (outstanding-at-end); NULL until the capture's lifetimes are computed
    live_bytes    INTEGER                  -- their bytes
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

-- ---------------------------------------------------------------------------------
-- Block lifetimes (schema 3): WPA's heap model, computed while a capture is loaded, in
-- time order across CPUs. One row per lifetime of a block: from its start (an Alloc, a
-- ReAlloc that produced it, or its first sighting when it was allocated before the
-- trace) to its end (a Free, the ReAlloc that moved or resized it, its heap's Destroy,
-- its process's exit, a lost Free, or the end of the trace). A moving ReAlloc logged
-- with its internal Alloc and Free is one transition (the internal pair plays no part).
-- docs/lifetimes.md gives the rules and how WPA's AIFI/AIFO/AOFI/AOFO classes map.
-- ---------------------------------------------------------------------------------

-- How a lifetime starts: the codes of blocks.start_kind (a capture has about as many
-- lifetimes as heap events, so blocks keeps small integers rather than names; the view
-- blocks_v and the table block_counts show the names).
CREATE TABLE IF NOT EXISTS block_start_kinds (
    kind        INTEGER PRIMARY KEY,       -- blocks.start_kind
    name        TEXT NOT NULL,             -- its name, as block_counts and blocks_v show it
    description TEXT NOT NULL              -- what it means
);
INSERT OR IGNORE INTO block_start_kinds VALUES
    (1, 'alloc',        'an Alloc'),
    (2, 'realloc',      'produced by a ReAlloc (prev_block_id is the block before it in its chain)'),
    (3, 'before_trace', 'first seen being freed or reallocated, at an address the capture had not used: allocated before the trace (start and, for a Free, size unknown)'),
    (4, 'lost_alloc',   'first seen being freed or reallocated, at an address the capture had used and freed: its Alloc was lost, or a double free');

-- How a lifetime ends: the codes of blocks.end_kind.
CREATE TABLE IF NOT EXISTS block_end_kinds (
    kind        INTEGER PRIMARY KEY,       -- blocks.end_kind
    name        TEXT NOT NULL,             -- its name, as block_counts and blocks_v show it
    description TEXT NOT NULL              -- what it means
);
INSERT OR IGNORE INTO block_end_kinds VALUES
    (1, 'free',             'a Free'),
    (2, 'realloc_moved',    'a ReAlloc copied it to another address (the next block of its chain)'),
    (3, 'realloc_in_place', 'a ReAlloc resized it where it is (the next block has the same address)'),
    (4, 'heap_destroyed',   'its heap was destroyed while it was live'),
    (5, 'process_exited',   'its process exited while it was live (end time: the process end)'),
    (6, 'lost_free',        'a new block started at its address while it was live: its Free was lost (end time: that start, an upper bound)'),
    (7, 'live_at_end',      'still live when the trace ended (no end time)');

-- One row per block lifetime. A capture's rows are the id range
-- captures.first_block_id..last_block_id (reports scan that range).
CREATE TABLE IF NOT EXISTS blocks (
    block_id       INTEGER PRIMARY KEY,    -- lifetime id (ids are given when a lifetime ends; live_at_end ones last)
    capture_id     INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    pid            INTEGER NOT NULL,       -- process id
    heap           INTEGER NOT NULL,       -- heap handle
    address        INTEGER NOT NULL,       -- the block's address
    size           INTEGER,                -- bytes requested; NULL when unknown (a block first seen being freed: a Free carries no size)
    source         INTEGER,                -- Source of the event that started it (see sources); for a block first seen being freed, the Free's; NULL when unknown
    start_kind     INTEGER NOT NULL,       -- block_start_kinds.kind: 1 alloc, 2 realloc (produced by a ReAlloc), 3 before_trace (first seen being freed or reallocated at an address not used before in the capture: allocated before the trace), 4 lost_alloc (first seen being freed or reallocated at an address used and freed before: its Alloc was lost, or a double free). <= 2: started in the trace
    start_ns       INTEGER,                -- when it started (UTC ns); NULL for before_trace and lost_alloc
    start_event_id INTEGER,                -- the Alloc (heap_events.id) or ReAlloc (reallocs.id) that started it; NULL when unseen
    start_stack_id INTEGER,                -- stacks.stack_id of that event: who allocated it
    end_kind       INTEGER NOT NULL,       -- block_end_kinds.kind: 1 free, 2 realloc_moved (copied to a new block: the next of its chain), 3 realloc_in_place (resized where it is: the next block has the same address), 4 heap_destroyed, 5 process_exited, 6 lost_free (a new block started at its address while it was live: its Free was lost), 7 live_at_end
    end_ns         INTEGER,                -- when it ended (UTC ns): the Free, ReAlloc or Destroy; the process's end for process_exited; the next block's start for lost_free (an upper bound); NULL for live_at_end
    end_event_id   INTEGER,                -- the event that ended it (heap_events.id or reallocs.id); NULL for process_exited and live_at_end
    end_stack_id   INTEGER,                -- stacks.stack_id of that event, when collected
    prev_block_id  INTEGER,                -- the block it was reallocated from (NULL: the first of its chain)
    chain_id       INTEGER NOT NULL,       -- block_id of the first block of its realloc chain (its own id when it was never reallocated into): a buffer grown 40 times is 41 rows of one chain_id
    chain_index    INTEGER NOT NULL        -- its position in the chain: 0 for the first, n for the block the n-th ReAlloc produced
);

-- Lifetimes of each capture counted by process, heap, the stack that started them and
-- kind: what the whole-capture lifetime reports, outstanding-at-end, data-quality and
-- heap-inventory read instead of scanning blocks (thousands of rows, not millions).
CREATE TABLE IF NOT EXISTS block_counts (
    capture_id     INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    pid            INTEGER NOT NULL,       -- process id
    heap           INTEGER NOT NULL,       -- heap handle
    start_stack_id INTEGER,                -- blocks.start_stack_id (NULL: no stack, or a block from before the trace)
    start_kind     TEXT NOT NULL,          -- block_start_kinds.name: 'alloc', 'realloc', 'before_trace', 'lost_alloc'
    end_kind       TEXT NOT NULL,          -- block_end_kinds.name: 'free', 'realloc_moved', 'realloc_in_place', 'heap_destroyed', 'process_exited', 'lost_free', 'live_at_end'
    blocks         INTEGER NOT NULL,       -- lifetimes of that kind
    bytes          INTEGER NOT NULL,       -- sum of their known sizes
    min_start_ns   INTEGER,                -- the earliest start among them (UTC ns); NULL when none is known
    timed_blocks   INTEGER NOT NULL,       -- those with both start and end known
    lifetime_ns    REAL NOT NULL           -- the sum of their lifetimes (end_ns - start_ns), ns
);

-- Outstanding bytes of each process of each capture: the bytes of its blocks that
-- started in the trace (start_kind 'alloc' or 'realloc') and were still live, after
-- every event, in time order. Blocks from before the trace have no known start and
-- are not counted (as in WPA's outstanding-size graph).
CREATE TABLE IF NOT EXISTS process_usage (
    capture_id    INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    pid           INTEGER NOT NULL,        -- process id
    peak_bytes    INTEGER NOT NULL,        -- highest outstanding bytes
    peak_blocks   INTEGER NOT NULL,        -- outstanding blocks at that moment
    peak_ns       INTEGER,                 -- when the peak was first reached (UTC ns)
    peak_event_id INTEGER,                 -- the event that reached it
    end_bytes     INTEGER NOT NULL,        -- outstanding bytes when the trace ended (0 when the process exited)
    end_blocks    INTEGER NOT NULL,        -- outstanding blocks when the trace ended
    PRIMARY KEY (capture_id, pid)
) WITHOUT ROWID;

-- Heap events of each capture counted by process, heap, kind and source: what the
-- per-heap and per-source summaries read instead of scanning the event tables.
-- (Source is NULL for kinds without one; a NULL in a key column is still one row.)
CREATE TABLE IF NOT EXISTS heap_event_counts (
    capture_id       INTEGER NOT NULL REFERENCES captures(capture_id), -- the capture
    pid              INTEGER NOT NULL,     -- process id
    heap             INTEGER NOT NULL,     -- heap handle (0 for AffinitySlotAssigned, which has none)
    opcode           INTEGER NOT NULL,     -- heap_opcodes.opcode
    source           INTEGER,              -- Source of Alloc/ReAlloc/Free; NULL for other kinds
    realloc_internal INTEGER NOT NULL,     -- 1: Allocs/Frees logged inside a moving ReAlloc (heap_events.realloc_internal)
    events           INTEGER NOT NULL,     -- how many
    bytes            INTEGER NOT NULL      -- sum of their size column (Alloc size, ReAlloc new size, ...; 0 where none)
);

-- ---------------------------------------------------------------------------------
-- Symbols (schema 4): function names, source lines and inline frames from PDB files,
-- found along a symbol path (`heapdb symbolize --symbols PATH`, `heapdb ingest
-- --symbols PATH`, or _NT_SYMBOL_PATH). Each distinct (PDB, RVA) is resolved once; the
-- views stack_frames_v and site_frames_v show frames as module!function+0xOFF with
-- file:line. docs/symbols.md gives the rules.
-- ---------------------------------------------------------------------------------

-- The PDBs the images of the captures name (their RSDS record), and what the last
-- symbolization found for each.
CREATE TABLE IF NOT EXISTS pdbs (
    pdb_id     INTEGER PRIMARY KEY,        -- row id
    name       TEXT NOT NULL COLLATE NOCASE, -- PDB file name as the image records it (its directory dropped), e.g. 'chrome.pdb'
    guid       TEXT NOT NULL,              -- RSDS GUID, as images.pdb_guid
    age        INTEGER NOT NULL,           -- RSDS age
    status     TEXT NOT NULL DEFAULT 'pending', -- 'pending' (not looked for yet), 'loaded', 'not_found', 'mismatch' (a PDB of another build was found), 'error' (found but unreadable)
    path       TEXT,                       -- the file used ('loaded'), or the one that did not match / could not be read
    found_by   TEXT,                       -- how it was found: 'directory D', 'store D', 'downloaded from URL'
    message    TEXT,                       -- why not, naming the file ('not_found', 'mismatch', 'error')
    rvas       INTEGER NOT NULL DEFAULT 0, -- distinct addresses resolved from it
    updated_ns INTEGER,                    -- when it was last looked for (UTC ns)
    UNIQUE (name, guid, age)
);

-- What each code address is, per PDB: one row per (PDB, RVA, inline level). The RVA is
-- the one looked up: for a return address (every stack frame but the innermost) the
-- address minus one, so the call, not the next line, is named.
CREATE TABLE IF NOT EXISTS symbols (
    pdb_id       INTEGER NOT NULL REFERENCES pdbs(pdb_id), -- the PDB
    rva          INTEGER NOT NULL,         -- the RVA looked up
    inline_depth INTEGER NOT NULL,         -- 0: the function the code belongs to; 1, 2...: functions inlined into it, the innermost last
    name         TEXT,                     -- the function without its argument list, e.g. 'JsonWriter::Grow' (as WinDbg prints frames); NULL: no symbol covers the address
    function     TEXT,                     -- the full demangled name, e.g. 'JsonWriter::Grow(unsigned __int64)'
    function_rva INTEGER,                  -- where the function starts (inline_depth 0): a frame's offset is its RVA minus this
    file         TEXT,                     -- source file of that level: for level 0 the line of the call into the inlined code, for the innermost the line executing
    line         INTEGER,                  -- source line
    PRIMARY KEY (pdb_id, rva, inline_depth)
) WITHOUT ROWID;
