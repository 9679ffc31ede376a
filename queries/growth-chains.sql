-- name: growth-chains
-- description: Blocks followed through successive reallocs (new <- old) per heap: length, first and final size, growth ratio, still live at the end.
-- question: Which logical buffers are grown again and again, and are they still alive when the capture ends?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: min_length = 2 : only chains of at least this many reallocs
-- param: limit = 20 : rows to return
--
-- A chain starts at an Alloc (or at a ReAlloc whose old block was never seen: allocated
-- before the trace) and continues through every ReAlloc whose old address is the
-- block the previous event produced, in the same process and heap. A Free ends it.
-- The internal Alloc/Free that a moving ReAlloc logs with itself are not chain events.
-- still_live: the final block was not freed (nor its heap destroyed) before the end.
-- Step 1: for every ReAlloc of the capture, the ReAlloc that produced its old block (if
-- any), from one sort of the capture's block events, kept in a TEMP table with an index
-- so that step 2 can walk the chains. (TEMP tables live beside the read-only database.)
DROP TABLE IF EXISTS temp.chain_links;
CREATE TEMP TABLE chain_links (
    realloc_id INTEGER PRIMARY KEY,   -- a ReAlloc of the capture
    prev_id    INTEGER,               -- the ReAlloc that produced its old block, or NULL
    from_alloc INTEGER                -- 1 when an Alloc produced its old block
);
INSERT INTO chain_links
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
-- Every event that produces (kind 1) or consumes (kind 0) a block address. At one
-- instant a consumer sorts before a producer (an in-place ReAlloc does both).
ev AS (
    SELECT id, pid, heap, old_address AS addr, time_ns, 0 AS kind, 'realloc' AS what FROM reallocs
     WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT id, pid, heap, new_address, time_ns, 1, 'realloc' FROM reallocs
     WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT id, pid, heap, address, time_ns, 1, 'alloc' FROM heap_events
     WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND opcode = 33 AND realloc_internal = 0
       AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT id, pid, heap, address, time_ns, 0, 'free' FROM heap_events
     WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND opcode = 36 AND realloc_internal = 0
       AND (:pid IS NULL OR pid = :pid)
)
SELECT id AS realloc_id,
       CASE WHEN prev_kind = 1 AND prev_what = 'realloc' THEN prev_id END AS prev_id,
       prev_kind = 1 AND prev_what = 'alloc' AS from_alloc
FROM (
    SELECT id, kind, what,
           lag(id)   OVER w AS prev_id,
           lag(kind) OVER w AS prev_kind,
           lag(what) OVER w AS prev_what
    FROM ev
    WINDOW w AS (PARTITION BY pid, heap, addr ORDER BY time_ns, kind, id)
)
WHERE kind = 0 AND what = 'realloc';
CREATE INDEX temp.chain_links_prev ON chain_links (prev_id);

-- Step 2: walk each chain from its head (a ReAlloc whose old block no ReAlloc produced:
-- it came from an Alloc, or from before the trace), keep the chains of at least
-- min_length, and report the longest.
WITH RECURSIVE
chain(head, id, length, moves) AS (
    SELECT l.realloc_id, l.realloc_id, 1, r.moved
    FROM chain_links l CROSS JOIN reallocs r ON r.id = l.realloc_id
    WHERE l.prev_id IS NULL
    UNION ALL
    SELECT c.head, l.realloc_id, c.length + 1, c.moves + r.moved
    -- CROSS JOIN fixes the join order: SQLite has no statistics on the TEMP table.
    FROM chain c
    CROSS JOIN chain_links l ON l.prev_id = c.id
    CROSS JOIN reallocs r ON r.id = l.realloc_id
),
-- SQLite takes the bare columns from the row holding max(length): the chain's end.
chains AS (
    SELECT head, max(length) AS length, id AS last_id, moves FROM chain GROUP BY head
),
top AS (
    SELECT ch.*, t.new_size AS final_size, h.id AS head_id
    FROM chains ch
    JOIN reallocs h ON h.id = ch.head
    JOIN reallocs t ON t.id = ch.last_id
    WHERE ch.length >= :min_length
    ORDER BY ch.length DESC, t.new_size DESC, h.id
    LIMIT :limit
)
SELECT h.pid,
       p.name                                   AS process,
       h.heap,
       top.length                               AS reallocs,
       h.old_size                               AS first_size,
       t.new_size                               AS final_size,
       round(1.0 * t.new_size / max(h.old_size, 1), 2) AS growth_ratio,
       top.moves                                AS moves,
       t.new_address                            AS final_address,
       round((t.time_ns - h.time_ns) / 1e6, 3)  AS duration_ms,
       -- Live: no later Free or ReAlloc consumed the final block, and its heap was not
       -- destroyed (unary + keeps SQLite on the address indexes).
       CASE WHEN NOT EXISTS (SELECT 1 FROM heap_events e
                             WHERE e.address = t.new_address AND e.capture_id = t.capture_id
                               AND e.pid = t.pid AND +e.heap = t.heap AND e.opcode = 36
                               AND e.realloc_internal = 0 AND +e.time_ns >= t.time_ns)
             AND NOT EXISTS (SELECT 1 FROM reallocs x
                             WHERE x.old_address = t.new_address AND x.capture_id = t.capture_id
                               AND x.pid = t.pid AND +x.heap = t.heap
                               AND (x.time_ns > t.time_ns OR (x.time_ns = t.time_ns AND x.id > t.id)))
             AND NOT EXISTS (SELECT 1 FROM heap_events d
                             WHERE d.capture_id = t.capture_id AND d.opcode = 35
                               AND d.pid = t.pid AND d.heap = t.heap)
            THEN 1 ELSE 0 END                   AS still_live,
       NOT (SELECT from_alloc FROM chain_links WHERE realloc_id = top.head) AS started_before_trace,
       h.stack_id                               AS first_stack_id
FROM top
JOIN reallocs h ON h.id = top.head
JOIN reallocs t ON t.id = top.last_id
LEFT JOIN process_names p ON p.capture_id = h.capture_id AND p.pid = h.pid
ORDER BY top.length DESC, t.new_size DESC, h.id;
