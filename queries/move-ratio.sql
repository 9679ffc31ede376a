-- name: move-ratio
-- description: Per process, heap and source: reallocs, share that moved the block, estimated bytes copied.
-- question: How often does realloc copy the data instead of resizing in place?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: pid = all : only this process
-- param: heap = all : only this heap handle (e.g. 0x1f0000)
-- param: limit = 100 : rows to return
--
-- est_bytes_copied = sum over moving reallocs of min(old size, new size): what
-- HeapReAlloc had to memcpy.
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures)))
-- max(p.name), max(s.name): one value per group already; the aggregate says so, as
-- DuckDB requires of every column neither grouped nor aggregated.
SELECT r.pid,
       max(p.name)                               AS process,
       r.heap,
       coalesce(max(s.name), CAST(r.source AS TEXT)) AS source,
       count(*)                                  AS reallocs,
       sum(r.moved)                              AS moved,
       round(100.0 * sum(r.moved) / count(*), 1) AS moved_pct,
       sum(CASE WHEN r.moved THEN min(r.old_size, r.new_size) ELSE 0 END) AS est_bytes_copied
FROM reallocs r
LEFT JOIN sources s ON s.source = r.source
LEFT JOIN process_names p ON p.capture_id = r.capture_id AND p.pid = r.pid
WHERE r.id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +r.capture_id = (SELECT id FROM cap)
      AND r.time_ns >= (SELECT t_from FROM cap) AND r.time_ns < (SELECT t_to FROM cap)
  AND (:pid IS NULL OR r.pid = :pid)
  AND (:heap IS NULL OR r.heap = :heap)
GROUP BY r.pid, r.heap, r.source
ORDER BY reallocs DESC, r.pid, r.heap, r.source
LIMIT :limit;
