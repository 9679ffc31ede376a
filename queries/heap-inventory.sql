-- name: heap-inventory
-- description: Heaps per process with their counts by event kind, create/destroy, and the sources seen.
-- question: Which heaps exist, how busy is each, which were created or destroyed during the trace?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
--
-- allocs and frees leave out the internal Alloc/Free of moving reallocs. other counts
-- every other heap event kind (Expand, SnapShot, Lock, Subsegment*, ...).
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
e AS (
    SELECT pid, heap,
           sum(opcode = 32) AS creates,
           sum(opcode = 35) AS destroys,
           sum(opcode = 33 AND realloc_internal = 0) AS allocs,
           sum(opcode = 36 AND realloc_internal = 0) AS frees,
           sum(opcode NOT IN (32, 33, 35, 36)) AS other,
           min(time_ns) AS first_ns, max(time_ns) AS last_ns
    FROM heap_events
    WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid) AND opcode NOT IN (55)
    GROUP BY pid, heap
),
-- One pass over the capture's reallocs: counts per heap and source, then per heap.
rs AS (
    SELECT pid, heap, source, count(*) AS n
    FROM reallocs
    WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap)
      AND (:pid IS NULL OR pid = :pid)
    GROUP BY pid, heap, source
),
r AS (
    SELECT pid, heap, sum(n) AS reallocs, group_concat(name, ',') AS sources
    FROM (SELECT rs.pid, rs.heap, rs.n, coalesce(s.name, CAST(rs.source AS TEXT)) AS name
          FROM rs LEFT JOIN sources s ON s.source = rs.source
          ORDER BY rs.pid, rs.heap, rs.source)
    GROUP BY pid, heap
),
h AS (SELECT pid, heap FROM e UNION SELECT pid, heap FROM r)
SELECT h.pid,
       p.name                       AS process,
       h.heap,
       coalesce(e.creates, 0) > 0   AS created,
       coalesce(e.destroys, 0) > 0  AS destroyed,
       coalesce(e.allocs, 0)        AS allocs,
       coalesce(r.reallocs, 0)      AS reallocs,
       coalesce(e.frees, 0)         AS frees,
       coalesce(e.other, 0)         AS other,
       r.sources                    AS realloc_sources
FROM h
LEFT JOIN e ON e.pid = h.pid AND e.heap = h.heap
LEFT JOIN r ON r.pid = h.pid AND r.heap = h.heap
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = h.pid
ORDER BY h.pid, h.heap;
