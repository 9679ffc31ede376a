-- name: top-realloc-sites
-- description: Call sites (stacks, or heaps where no stacks were collected) with the most reallocs, moves and bytes grown.
-- question: Who reallocates most, and what does it cost in copies?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: pid = all : only this process
-- param: limit = 20 : rows to return
--
-- A site is a stack (stack_id) when the capture has stacks for ReAlloc, else the heap of a
-- process. `leaf` is the innermost frame outside the heap implementation (ntdll,
-- kernelbase, kernel32, the C runtimes) as module+offset, when the rundown names images.
-- bytes_copied estimates the memcpy of moving reallocs: min(old size, new size).
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
sites AS (
    SELECT r.pid,
           r.stack_id,
           CASE WHEN r.stack_id IS NULL THEN r.heap END AS heap,
           count(*)                                              AS reallocs,
           sum(r.moved)                                          AS moved,
           sum(CASE WHEN r.new_size > r.old_size THEN r.new_size - r.old_size ELSE 0 END) AS bytes_grown,
           sum(CASE WHEN r.moved THEN min(r.old_size, r.new_size) ELSE 0 END) AS bytes_copied,
           max(r.new_size)                                       AS max_size
    FROM reallocs r
    WHERE r.id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +r.capture_id = (SELECT id FROM cap)
      AND r.time_ns >= (SELECT t_from FROM cap) AND r.time_ns < (SELECT t_to FROM cap)
      AND (:pid IS NULL OR r.pid = :pid)
    GROUP BY r.pid, r.stack_id, CASE WHEN r.stack_id IS NULL THEN r.heap END
    ORDER BY reallocs DESC, bytes_grown DESC, r.pid, r.stack_id, heap
    LIMIT :limit
)
SELECT CASE WHEN s.stack_id IS NOT NULL THEN 'stack ' || s.stack_id ELSE printf('heap 0x%x', s.heap) END AS site,
       s.stack_id,
       s.pid,
       p.name                                              AS process,
       coalesce((SELECT i.name || printf('+0x%x', f.address - i.base)
                 FROM stack_frames f
                 JOIN images i ON i.capture_id = (SELECT id FROM cap) AND i.pid = s.pid
                              AND f.address >= i.base AND f.address < i.base + i.size
                 WHERE f.stack_id = s.stack_id
                   AND i.name NOT IN ('ntdll.dll', 'kernelbase.dll', 'kernel32.dll', 'ucrtbase.dll', 'msvcrt.dll', 'vcruntime140.dll')
                 ORDER BY f.depth LIMIT 1),
                (SELECT printf('0x%x', leaf) FROM stacks WHERE stack_id = s.stack_id)) AS leaf,
       s.reallocs,
       s.moved,
       round(100.0 * s.moved / s.reallocs, 1)              AS moved_pct,
       s.bytes_grown,
       s.bytes_copied,
       s.max_size
FROM sites s
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY s.reallocs DESC, s.bytes_grown DESC, s.pid, s.stack_id, s.heap;
