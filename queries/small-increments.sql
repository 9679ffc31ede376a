-- name: small-increments
-- description: Call sites whose buffers grow by small constant steps (quadratic copying), with the most common step.
-- question: Which call sites grow a buffer a few bytes at a time, so that each realloc copies it again?
-- param: capture = latest : capture id (default: the latest capture)
-- param: max_step = 256 : a growth of at most this many bytes counts as a small increment
-- param: min_reallocs = 10 : only sites with at least this many growing reallocs
-- param: group = function [function|stack|module] : what a row is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
-- param: limit = 20 : rows to return
--
-- Per site (see top-realloc-sites for `site`, site_key, stacks, stack; a heap of a
-- process for events without a stack), over the reallocs that grow: how many grew by at
-- most max_step bytes and by less than 25%, the most common step, and the bytes copied
-- by the moving ones. Geometric growth (x1.5, x2) does not show here; constant small
-- steps do. stack_id: the row's stack with the most growing reallocs.
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan,
-- counted per (process, stack, step) first; only those counts are named and grouped.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
steps AS (
    SELECT pid, stack_id, CASE WHEN stack_id IS NULL THEN heap END AS heap,
           new_size - old_size AS step,
           count(*) AS n,
           sum(CASE WHEN new_size - old_size <= :max_step AND (new_size - old_size) * 4 < old_size THEN 1 ELSE 0 END) AS small_steps,
           sum(CASE WHEN moved THEN old_size ELSE 0 END) AS bytes_copied,
           max(new_size) AS max_size
    FROM reallocs
    WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND new_size > old_size
    GROUP BY pid, stack_id, CASE WHEN stack_id IS NULL THEN heap END, step
),
agg AS (
    SELECT pid, stack_id, heap, sum(n) AS grows, sum(small_steps) AS small_steps,
           sum(bytes_copied) AS bytes_copied, max(max_size) AS max_size
    FROM steps GROUP BY pid, stack_id, heap
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
    SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.grows DESC, n.stack_id) AS rn
    FROM named n
),
g AS (
    SELECT pid, site_key, max(site) AS site,
           max(CASE WHEN rn = 1 THEN stack_id END) AS stack_id,
           max(CASE WHEN rn = 1 THEN site_id END) AS site_id,
           max(heap) AS heap,
           count(stack_id) AS stacks,
           sum(grows) AS grows, sum(small_steps) AS small_steps,
           sum(bytes_copied) AS bytes_copied, max(max_size) AS max_size
    FROM ranked
    GROUP BY pid, site_key
    HAVING sum(grows) >= :min_reallocs AND sum(small_steps) > 0
),
-- The most common step of each row.
common AS (
    SELECT pid, site_key, step FROM (
        SELECT n.pid, n.site_key, st.step,
               row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY sum(st.n) DESC, st.step) AS rn
        FROM named n
        -- IS NOT DISTINCT FROM: equal, or both NULL (SQLite's `a IS b`, which DuckDB lacks)
        JOIN steps st ON st.pid = n.pid AND st.stack_id IS NOT DISTINCT FROM n.stack_id AND st.heap IS NOT DISTINCT FROM n.heap
        WHERE EXISTS (SELECT 1 FROM g WHERE g.pid = n.pid AND g.site_key = n.site_key)
        GROUP BY n.pid, n.site_key, st.step)
    WHERE rn = 1
)
SELECT s.site,
       s.stack_id,
       s.pid,
       p.name AS process,
       s.grows,
       s.small_steps,
       round(100.0 * s.small_steps / s.grows, 1) AS small_pct,
       c.step AS common_step,
       s.bytes_copied,
       s.max_size,
       s.stacks,
       s.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = s.site_id) END AS stack
FROM g s
LEFT JOIN common c ON c.pid = s.pid AND c.site_key = s.site_key
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY s.small_steps DESC, s.grows DESC, s.pid, s.stack_id, s.heap, s.site_key
LIMIT :limit;
