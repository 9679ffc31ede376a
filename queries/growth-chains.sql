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
WITH cap AS (SELECT coalesce(:capture, (SELECT max(capture_id) FROM captures)) AS id),
-- Every event that produces (kind 1) or consumes (kind 0) a block address. At one
-- instant a consumer sorts before a producer (an in-place ReAlloc does both).
ev AS (
    SELECT id, pid, heap, old_address AS addr, time_ns, 0 AS kind, 'realloc' AS what FROM reallocs
     WHERE capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT id, pid, heap, new_address, time_ns, 1, 'realloc' FROM reallocs
     WHERE capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT id, pid, heap, address, time_ns, 1, 'alloc' FROM heap_events
     WHERE capture_id = (SELECT id FROM cap) AND opcode = 33 AND realloc_internal = 0 AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT id, pid, heap, address, time_ns, 0, 'free' FROM heap_events
     WHERE capture_id = (SELECT id FROM cap) AND opcode = 36 AND realloc_internal = 0 AND (:pid IS NULL OR pid = :pid)
),
-- Chain heads: ReAllocs whose old block was not produced by a ReAlloc (it came from an
-- Alloc, or from before the trace).
heads AS MATERIALIZED (
    SELECT id, prev_what FROM (
        SELECT id, kind, what,
               lag(kind) OVER w AS prev_kind,
               lag(what) OVER w AS prev_what
        FROM ev
        WINDOW w AS (PARTITION BY pid, heap, addr ORDER BY time_ns, kind, id)
    )
    WHERE kind = 0 AND what = 'realloc' AND NOT (prev_kind IS 1 AND prev_what IS 'realloc')
),
-- Walk each chain forward: the next ReAlloc is the first one, in the same process and
-- heap, whose old address is the block this one produced (index on old_address),
-- unless a Free or Alloc at that address comes first (index on heap_events.address).
chain(head, id, pid, heap, addr, time_ns, length, moves) AS (
    SELECT r.id, r.id, r.pid, r.heap, r.new_address, r.time_ns, 1, r.moved
    FROM heads h JOIN reallocs r ON r.id = h.id
    UNION ALL
    SELECT c.head, n.id, c.pid, c.heap, n.new_address, n.time_ns, c.length + 1, c.moves + n.moved
    FROM chain c
    JOIN reallocs n ON n.id = (
        SELECT r.id FROM reallocs r
        WHERE r.old_address = c.addr AND r.capture_id = (SELECT id FROM cap)
          AND r.pid = c.pid AND r.heap = c.heap
          AND (r.time_ns > c.time_ns OR (r.time_ns = c.time_ns AND r.id > c.id))
        ORDER BY r.time_ns, r.id LIMIT 1)
    WHERE NOT EXISTS (
        SELECT 1 FROM heap_events e
        WHERE e.address = c.addr AND e.capture_id = (SELECT id FROM cap)
          -- unary + keeps SQLite on the address index (a heap's time range is wide)
          AND e.pid = c.pid AND +e.heap = c.heap AND e.opcode IN (33, 36) AND e.realloc_internal = 0
          AND +e.time_ns > c.time_ns AND +e.time_ns < n.time_ns)
),
-- SQLite takes the bare columns from the row holding max(length): the chain's end.
chains AS (
    SELECT head, max(length) AS length, id AS last_id, moves FROM chain GROUP BY head
),
destroyed AS (
    SELECT pid, heap, min(time_ns) AS time_ns FROM heap_events
    WHERE capture_id = (SELECT id FROM cap) AND opcode = 35 GROUP BY pid, heap
)
SELECT h.pid,
       p.name                                   AS process,
       h.heap,
       ch.length                                AS reallocs,
       h.old_size                               AS first_size,
       t.new_size                               AS final_size,
       round(1.0 * t.new_size / max(h.old_size, 1), 2) AS growth_ratio,
       ch.moves                                 AS moves,
       t.new_address                            AS final_address,
       round((t.time_ns - h.time_ns) / 1e6, 3)  AS duration_ms,
       CASE WHEN NOT EXISTS (SELECT 1 FROM heap_events e
                             WHERE e.address = t.new_address AND e.capture_id = t.capture_id
                               AND e.pid = t.pid AND +e.heap = t.heap AND e.opcode = 36
                               AND e.realloc_internal = 0 AND +e.time_ns >= t.time_ns)
             AND NOT EXISTS (SELECT 1 FROM reallocs x
                             WHERE x.old_address = t.new_address AND x.capture_id = t.capture_id
                               AND x.pid = t.pid AND x.heap = t.heap
                               AND (x.time_ns > t.time_ns OR (x.time_ns = t.time_ns AND x.id > t.id)))
             AND (d.time_ns IS NULL OR d.time_ns < t.time_ns)
            THEN 1 ELSE 0 END                   AS still_live,
       hd.prev_what IS NOT 'alloc'              AS started_before_trace,
       h.stack_id                               AS first_stack_id
FROM chains ch
JOIN reallocs h ON h.id = ch.head
JOIN reallocs t ON t.id = ch.last_id
JOIN heads hd ON hd.id = ch.head
LEFT JOIN destroyed d ON d.pid = h.pid AND d.heap = h.heap
LEFT JOIN process_names p ON p.capture_id = h.capture_id AND p.pid = h.pid
WHERE ch.length >= :min_length
ORDER BY ch.length DESC, t.new_size DESC, h.id
LIMIT :limit;
