-- name: size-histogram
-- description: ReAllocs by power-of-two class of the new size and by source.
-- question: Which sizes are reallocated, and from which heap path (LFH, main, ...) are they served?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: pid = all : only this process
--
-- size_class is the power of two at or below the new size (0 for size 0): the class
-- [2^k, 2^(k+1)). Uses SQLite's math functions (built into heapdb and the sqlite3 shell).
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures)))
-- CAST AS BIGINT: 64-bit in both (DuckDB's INTEGER is 32-bit; a 2 GiB class would overflow).
SELECT CASE WHEN r.new_size > 0 THEN CAST(pow(2, floor(log2(r.new_size))) AS BIGINT) ELSE 0 END AS size_class,
       -- max(): one name per source already (DuckDB wants each column grouped or aggregated)
       coalesce(max(s.name), CAST(r.source AS TEXT)) AS source,
       count(*)                                  AS reallocs,
       sum(r.moved)                              AS moved,
       round(100.0 * sum(r.moved) / count(*), 1) AS moved_pct,
       sum(r.new_size)                           AS bytes
FROM reallocs r
LEFT JOIN sources s ON s.source = r.source
WHERE r.id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +r.capture_id = (SELECT id FROM cap)
      AND r.time_ns >= (SELECT t_from FROM cap) AND r.time_ns < (SELECT t_to FROM cap)
  AND (:pid IS NULL OR r.pid = :pid)
GROUP BY size_class, r.source
ORDER BY size_class, r.source;
