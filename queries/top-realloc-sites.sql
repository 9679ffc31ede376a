-- name: top-realloc-sites
-- description: Call sites (by function once symbolized, or whole stacks, or calling modules; heaps where no stacks were collected) with the most reallocs, moves and bytes grown.
-- question: Who reallocates most, and what does it cost in copies?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : only events at least this many seconds after the session start
-- param: until = none : only events before this many seconds after the session start
-- param: pid = all : only this process
-- param: group = function [function|stack|module] : what a row is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
-- param: order = reallocs [reallocs|bytes_copied|bytes_grown] : which rows come first (and make the limit)
-- param: limit = 20 : rows to return
--
-- Rows are per process. `site` is the call site (the first frame outside the heap
-- implementation, the C runtimes and the allocator functions) as module!function once
-- symbolized (heapdb symbolize), else module+0xRVA, else 'stack N'; with group=module
-- the calling module. Events without a stack are grouped by heap ('heap 0x...').
-- site_key: the row's identity (group=stack: the stack's, the same across captures and
-- rebuilds once symbolized); stack: the whole stack, innermost first (group=stack);
-- stacks: how many stacks the row adds up; stack_id: the one of them with the most
-- reallocs. `leaf` is that stack's innermost frame outside the heap implementation
-- (ntdll, kernelbase, kernel32, the C runtimes) as module+offset, when the rundown names
-- images. bytes_copied estimates the memcpy of moving reallocs: min(old size, new size).
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan,
-- counted per (process, stack) first; only those counts are named and grouped.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi,
                    -- since/until: seconds from the session start (NULL: no bound)
                    start_time_ns + coalesce(:since, -1e12) * 1e9 AS t_from,
                    start_time_ns + coalesce(:until, 1e12) * 1e9 AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
agg AS (
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
    SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.reallocs DESC, n.stack_id) AS rn
    FROM named n
),
g AS (
    SELECT pid, site_key, max(site) AS site,
           max(CASE WHEN rn = 1 THEN stack_id END) AS stack_id,
           max(CASE WHEN rn = 1 THEN site_id END) AS site_id,
           max(heap) AS heap,
           count(stack_id) AS stacks,
           sum(reallocs) AS reallocs, sum(moved) AS moved, sum(bytes_grown) AS bytes_grown,
           sum(bytes_copied) AS bytes_copied, max(max_size) AS max_size
    FROM ranked
    GROUP BY pid, site_key
    ORDER BY CASE :order WHEN 'bytes_copied' THEN sum(bytes_copied) WHEN 'bytes_grown' THEN sum(bytes_grown) ELSE sum(reallocs) END DESC,
             reallocs DESC, bytes_grown DESC, pid, stack_id, heap, site_key
    LIMIT :limit
)
SELECT s.site,
       s.stack_id,
       s.pid,
       p.name                                              AS process,
       coalesce((SELECT i.name || printf('+0x%x', f.address - i.base)
                 FROM stack_frames f
                 JOIN images i ON i.capture_id = (SELECT id FROM cap) AND i.pid = s.pid
                              AND f.address >= i.base AND f.address < i.base + i.size
                 WHERE f.stack_id = s.stack_id
                   AND i.name NOT IN ('ntdll.dll', 'kernelbase.dll', 'kernel32.dll', 'ucrtbase.dll', 'msvcrt.dll', 'vcruntime140.dll')
                 -- Images overlapping (one unloaded, another loaded over it): the lowest
                 -- base, then the first stored, as SQLite's index scan gave them before this
                 -- was spelled out (DuckDB needs the order total to pick the same).
                 ORDER BY f.depth, i.base, i.image_row LIMIT 1),
                (SELECT printf('0x%x', leaf) FROM stacks WHERE stack_id = s.stack_id)) AS leaf,
       s.reallocs,
       s.moved,
       round(100.0 * s.moved / s.reallocs, 1)              AS moved_pct,
       s.bytes_grown,
       s.bytes_copied,
       s.max_size,
       s.stacks,
       s.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = s.site_id) END AS stack
FROM g s
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY CASE :order WHEN 'bytes_copied' THEN s.bytes_copied WHEN 'bytes_grown' THEN s.bytes_grown ELSE s.reallocs END DESC,
         s.reallocs DESC, s.bytes_grown DESC, s.pid, s.stack_id, s.heap, s.site_key;
