-- name: heap-inventory
-- description: Heaps per process with their counts by event kind, create/destroy, the sources seen, and what was still live at the end.
-- question: Which heaps exist, how busy is each, which were created or destroyed during the trace, what did they hold at the end?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
--
-- allocs and frees leave out the internal Alloc/Free of moving reallocs. other counts
-- every other heap event kind (Expand, SnapShot, Lock, Subsegment*, ...).
-- live_blocks / live_bytes: blocks started in the trace and live when it ended
-- (outstanding-at-end per heap); from_before_trace: blocks first seen being freed or
-- reallocated (allocated before the trace, or their Alloc was lost).
-- Reads the per-capture summaries written at ingest (heap_event_counts, block_counts),
-- never the event tables: a few hundred rows whatever the capture's size.
WITH cap AS (SELECT capture_id AS id FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
e AS (
    SELECT pid, heap,
           sum(CASE WHEN opcode = 32 THEN events ELSE 0 END) AS creates,
           sum(CASE WHEN opcode = 35 THEN events ELSE 0 END) AS destroys,
           sum(CASE WHEN opcode = 33 AND realloc_internal = 0 THEN events ELSE 0 END) AS allocs,
           sum(CASE WHEN opcode = 34 THEN events ELSE 0 END) AS reallocs,
           sum(CASE WHEN opcode = 36 AND realloc_internal = 0 THEN events ELSE 0 END) AS frees,
           sum(CASE WHEN opcode NOT IN (32, 33, 34, 35, 36) THEN events ELSE 0 END) AS other
    FROM heap_event_counts
    WHERE capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid) AND opcode <> 55
    GROUP BY pid, heap
),
-- The sources of each heap's reallocs, in source order (the ORDER BY in the aggregate:
-- DuckDB does not keep a subquery's order).
r AS (
    SELECT pid, heap, group_concat(name, ',' ORDER BY source) AS sources
    FROM (SELECT DISTINCT c.pid, c.heap, c.source, coalesce(s.name, CAST(c.source AS TEXT)) AS name
          FROM heap_event_counts c LEFT JOIN sources s ON s.source = c.source
          WHERE c.capture_id = (SELECT id FROM cap) AND c.opcode = 34 AND (:pid IS NULL OR c.pid = :pid))
    GROUP BY pid, heap
),
b AS (
    SELECT pid, heap,
           sum(CASE WHEN end_kind = 'live_at_end' AND start_kind IN ('alloc', 'realloc') THEN blocks ELSE 0 END) AS live_blocks,
           sum(CASE WHEN end_kind = 'live_at_end' AND start_kind IN ('alloc', 'realloc') THEN bytes ELSE 0 END) AS live_bytes,
           sum(CASE WHEN start_kind IN ('before_trace', 'lost_alloc') THEN blocks ELSE 0 END) AS from_before_trace
    FROM block_counts
    WHERE capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid)
    GROUP BY pid, heap
)
SELECT e.pid,
       p.name                       AS process,
       e.heap,
       -- CAST: 0/1 on DuckDB too, as in SQLite (a comparison is a BOOLEAN there)
       CAST(e.creates > 0 AS INTEGER)  AS created,
       CAST(e.destroys > 0 AS INTEGER) AS destroyed,
       e.allocs,
       e.reallocs,
       e.frees,
       e.other,
       r.sources                    AS realloc_sources,
       coalesce(b.live_blocks, 0)   AS live_blocks,
       coalesce(b.live_bytes, 0)    AS live_bytes,
       coalesce(b.from_before_trace, 0) AS from_before_trace
FROM e
LEFT JOIN r ON r.pid = e.pid AND r.heap = e.heap
LEFT JOIN b ON b.pid = e.pid AND b.heap = e.heap
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = e.pid
ORDER BY e.pid, e.heap;
