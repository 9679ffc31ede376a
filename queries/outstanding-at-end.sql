-- name: outstanding-at-end
-- description: Blocks allocated or grown during the capture and never freed, by site: the leak suspects.
-- question: What was allocated (or last reallocated) in the trace and is still live when it ends?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: limit = 20 : rows to return
--
-- A block is outstanding when the last event at its address (per process and heap) is an
-- Alloc or a ReAlloc that produced it, and its heap was not destroyed afterwards. The
-- site is the stack of that last event (or the heap, without stacks). via_realloc
-- counts blocks whose last event was a ReAlloc (a grown buffer still alive).
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
ev AS (
    SELECT pid, heap, new_address AS addr, time_ns, id, 1 AS kind, 1 AS via_realloc, new_size AS size, stack_id
      FROM reallocs WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT pid, heap, old_address, time_ns, id, 0, 1, NULL, NULL
      FROM reallocs WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT pid, heap, address, time_ns, id, 1, 0, size, stack_id
      FROM heap_events WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND opcode = 33 AND realloc_internal = 0 AND (:pid IS NULL OR pid = :pid)
    UNION ALL
    SELECT pid, heap, address, time_ns, id, 0, 0, NULL, NULL
      FROM heap_events WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND opcode = 36 AND realloc_internal = 0 AND (:pid IS NULL OR pid = :pid)
),
last AS (
    SELECT *, row_number() OVER (PARTITION BY pid, heap, addr ORDER BY time_ns DESC, kind DESC, id DESC) AS rn
    FROM ev
),
destroyed AS (
    SELECT pid, heap, min(time_ns) AS time_ns FROM heap_events
    WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND opcode = 35 GROUP BY pid, heap
),
live AS (
    SELECT l.* FROM last l
    LEFT JOIN destroyed d ON d.pid = l.pid AND d.heap = l.heap
    WHERE l.rn = 1 AND l.kind = 1 AND (d.time_ns IS NULL OR d.time_ns < l.time_ns)
)
SELECT CASE WHEN stack_id IS NOT NULL THEN 'stack ' || stack_id ELSE printf('heap 0x%x', heap) END AS site,
       stack_id,
       live.pid,
       p.name                                   AS process,
       count(*)                                 AS blocks,
       sum(size)                                AS bytes,
       sum(via_realloc)                         AS via_realloc,
       round((c.last_event_ns - min(live.time_ns)) / 1e6, 3) AS oldest_age_ms
FROM live
JOIN captures c ON c.capture_id = (SELECT id FROM cap)
LEFT JOIN process_names p ON p.capture_id = c.capture_id AND p.pid = live.pid
GROUP BY live.pid, stack_id, CASE WHEN stack_id IS NULL THEN heap END
ORDER BY bytes DESC, blocks DESC, live.pid, stack_id
LIMIT :limit;
