-- name: shrinks
-- description: Reallocs that shrink a block, per call site: how many, and how many bytes they gave back.
-- question: Who trims buffers, and how much memory does it return?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: pid = all : only this process
-- param: group = function [function|stack|module] : what a row is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
-- param: limit = 20 : rows to return
--
-- `site`, site_key, stacks and stack as in top-realloc-sites (events without a stack: by
-- heap); stack_id: the row's stack that returned the most bytes.
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan,
-- counted per (process, stack) first; only those counts are named and grouped.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
agg AS (
    SELECT r.pid, r.stack_id, CASE WHEN r.stack_id IS NULL THEN r.heap END AS heap,
           count(*)                        AS shrinks,
           sum(r.old_size - r.new_size)    AS bytes_returned,
           sum(r.moved)                    AS moved,
           sum(r.old_size)                 AS old_bytes,
           sum(r.new_size)                 AS new_bytes
    FROM reallocs r
    WHERE r.id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +r.capture_id = (SELECT id FROM cap)
          AND r.time_ns >= (SELECT t_from FROM cap) AND r.time_ns < (SELECT t_to FROM cap)
      AND r.new_size < r.old_size
      AND (:pid IS NULL OR r.pid = :pid)
    GROUP BY r.pid, r.stack_id, CASE WHEN r.stack_id IS NULL THEN r.heap END
),
-- Each (process, stack) named by its call site: site_key is what a row is.
named AS (
    SELECT a.*, g.site_id,
           coalesce(g.site_key, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site_key,
           coalesce(g.site, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site
    FROM agg a
    LEFT JOIN stack_groups_v g ON g.capture_id = (SELECT id FROM cap) AND g.pid = a.pid
                              AND g.stack_id = a.stack_id AND g.grp = :group
),
ranked AS (
    SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.bytes_returned DESC, n.stack_id) AS rn
    FROM named n
),
g AS (
    SELECT pid, site_key, max(site) AS site,
           max(CASE WHEN rn = 1 THEN stack_id END) AS stack_id,
           max(CASE WHEN rn = 1 THEN site_id END) AS site_id,
           max(heap) AS heap,
           count(stack_id) AS stacks,
           sum(shrinks) AS shrinks, sum(bytes_returned) AS bytes_returned, sum(moved) AS moved,
           sum(old_bytes) AS old_bytes, sum(new_bytes) AS new_bytes
    FROM ranked
    GROUP BY pid, site_key
    ORDER BY bytes_returned DESC, shrinks DESC, pid, stack_id, heap, site_key
    LIMIT :limit
)
SELECT s.site,
       s.stack_id,
       s.pid,
       p.name                               AS process,
       s.shrinks,
       s.bytes_returned,
       s.moved,
       round(1.0 * s.old_bytes / s.shrinks, 1) AS avg_old_size,
       round(1.0 * s.new_bytes / s.shrinks, 1) AS avg_new_size,
       s.stacks,
       s.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = s.site_id) END AS stack
FROM g s
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY s.bytes_returned DESC, s.shrinks DESC, s.pid, s.stack_id, s.heap, s.site_key;
