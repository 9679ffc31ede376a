-- name: heap-inventory
-- description: Heaps per process with their counts by event kind, create/destroy, and the sources seen.
-- question: Which heaps exist, how busy is each, which were created or destroyed during the trace?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
--
-- allocs and frees leave out the internal Alloc/Free of moving reallocs. other counts
-- every other heap event kind (Expand, SnapShot, Lock, Subsegment*, ...).
WITH cap AS (SELECT coalesce(:capture, (SELECT max(capture_id) FROM captures)) AS id),
e AS (
    SELECT pid, heap,
           sum(opcode = 32) AS creates,
           sum(opcode = 35) AS destroys,
           sum(opcode = 33 AND realloc_internal = 0) AS allocs,
           sum(opcode = 36 AND realloc_internal = 0) AS frees,
           sum(opcode NOT IN (32, 33, 35, 36)) AS other,
           min(time_ns) AS first_ns, max(time_ns) AS last_ns
    FROM heap_events
    WHERE capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid) AND opcode NOT IN (55)
    GROUP BY pid, heap
),
r AS (
    SELECT pid, heap, count(*) AS reallocs, min(time_ns) AS first_ns, max(time_ns) AS last_ns,
           group_concat(DISTINCT source) AS sources
    FROM reallocs
    WHERE capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid)
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
       (SELECT group_concat(name, ',') FROM (SELECT DISTINCT s.name FROM reallocs x JOIN sources s ON s.source = x.source
          WHERE x.capture_id = (SELECT id FROM cap) AND x.pid = h.pid AND x.heap = h.heap ORDER BY s.source)) AS realloc_sources
FROM h
LEFT JOIN e ON e.pid = h.pid AND e.heap = h.heap
LEFT JOIN r ON r.pid = h.pid AND r.heap = h.heap
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = h.pid
ORDER BY h.pid, h.heap;
