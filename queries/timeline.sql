-- name: timeline
-- description: Reallocs, moves, net bytes (sum of new - old size) and bytes copied by moves per time bucket and process.
-- question: Is realloc activity steady or bursty; when does memory grow?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: bucket_ms = 1000 : bucket width in milliseconds
-- param: pid = all : only this process
--
-- bucket_start_ms counts from the capture's session start. bytes_copied estimates the
-- memcpy of the moving reallocs as top-realloc-sites does: min(old size, new size).
-- bucket_ms may be fractional (0.5) for short captures.
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
c AS (SELECT start_time_ns FROM captures WHERE capture_id = (SELECT id FROM cap)),
-- Counted per bucket and process first; only those rows are named.
t AS (
    -- trunc(): a fractional bucket_ms makes the quotient a real, and SQLite's CAST
    -- truncates it where DuckDB's rounds; trunc() first gives both SQLite's answer.
    -- BIGINT: DuckDB's INTEGER is 32-bit.
    SELECT CAST(trunc((r.time_ns - c.start_time_ns) / (1000000 * :bucket_ms)) AS BIGINT) * :bucket_ms AS bucket_start_ms,
           r.pid,
           count(*)                     AS reallocs,
           sum(r.moved)                 AS moves,
           sum(r.new_size - r.old_size) AS net_bytes,
           sum(CASE WHEN r.moved THEN min(r.old_size, r.new_size) ELSE 0 END) AS bytes_copied
    FROM reallocs r
    CROSS JOIN c
    WHERE r.id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +r.capture_id = (SELECT id FROM cap)
          AND r.time_ns >= (SELECT t_from FROM cap) AND r.time_ns < (SELECT t_to FROM cap)
      AND (:pid IS NULL OR r.pid = :pid)
    GROUP BY bucket_start_ms, r.pid
)
SELECT t.bucket_start_ms, t.pid, p.name AS process, t.reallocs, t.moves, t.net_bytes, t.bytes_copied
FROM t
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = t.pid
ORDER BY t.bucket_start_ms, t.pid;
