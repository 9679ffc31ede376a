-- name: thread-activity
-- description: Reallocs per thread: count, moves, bytes grown and rate.
-- question: Which threads drive the reallocs?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: pid = all : only this process
-- param: limit = 50 : rows to return
--
-- reallocs_per_s is over the thread's own active span (first to last realloc).
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures)))
SELECT r.pid,
       max(p.name)                 AS process,   -- one per pid (max(): DuckDB wants it aggregated)
       r.tid,
       count(*)                    AS reallocs,
       sum(r.moved)                AS moves,
       sum(CASE WHEN r.new_size > r.old_size THEN r.new_size - r.old_size ELSE 0 END) AS bytes_grown,
       round(count(*) / max((max(r.time_ns) - min(r.time_ns)) / 1e9, 0.001), 1) AS reallocs_per_s
FROM reallocs r
LEFT JOIN process_names p ON p.capture_id = r.capture_id AND p.pid = r.pid
WHERE r.id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +r.capture_id = (SELECT id FROM cap)
      AND r.time_ns >= (SELECT t_from FROM cap) AND r.time_ns < (SELECT t_to FROM cap)
  AND (:pid IS NULL OR r.pid = :pid)
GROUP BY r.pid, r.tid
ORDER BY reallocs DESC, r.pid, r.tid
LIMIT :limit;
