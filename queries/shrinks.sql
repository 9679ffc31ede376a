-- name: shrinks
-- description: Reallocs that shrink a block, per site: how many, and how many bytes they gave back.
-- question: Who trims buffers, and how much memory does it return?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: pid = all : only this process
-- param: limit = 20 : rows to return
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures)))
SELECT CASE WHEN r.stack_id IS NOT NULL THEN 'stack ' || r.stack_id ELSE printf('heap 0x%x', r.heap) END AS site,
       r.stack_id,
       r.pid,
       p.name                          AS process,
       count(*)                        AS shrinks,
       sum(r.old_size - r.new_size)    AS bytes_returned,
       sum(r.moved)                    AS moved,
       round(avg(r.old_size), 1)       AS avg_old_size,
       round(avg(r.new_size), 1)       AS avg_new_size
FROM reallocs r
LEFT JOIN process_names p ON p.capture_id = r.capture_id AND p.pid = r.pid
WHERE r.id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +r.capture_id = (SELECT id FROM cap)
      AND r.time_ns >= (SELECT t_from FROM cap) AND r.time_ns < (SELECT t_to FROM cap)
  AND r.new_size < r.old_size
  AND (:pid IS NULL OR r.pid = :pid)
GROUP BY r.pid, r.stack_id, CASE WHEN r.stack_id IS NULL THEN r.heap END
ORDER BY bytes_returned DESC, shrinks DESC, r.pid, r.stack_id
LIMIT :limit;
