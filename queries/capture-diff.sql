-- name: capture-diff
-- description: Two captures (nights) side by side per call site: allocs, reallocs, moves, bytes copied and bytes still live at the end in each and the change, matched by identities that survive reboots (process name, heap kind, call site as module!function once symbolized, else module+RVA).
-- question: Did last night's build realloc more, or differently, than the night before, and where?
-- param: a = previous : the baseline capture id (default: the capture before b, in start order)
-- param: b = latest : the capture to compare (default: the latest capture)
-- param: group = function [function|stack|module|heap|process|site|call_site] : what a row is: the call-site function (function: stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole call stack (stack: by function once symbolized, so it matches across rebuilds), the calling module (module: still matches after a rebuild moved the code), a heap, or a whole process; site and call_site are the old names of stack and function
-- param: limit = 30 : rows to return
--
-- Rows are processes (by identity, see docs/history.md) and, within them, the groups
-- chosen; status says whether a row is only in a ('gone'), only in b ('new') or in both.
-- site: the call site (module!function once symbolized, else module+0xRVA; '(no stack)
-- heap ...' for events without a stack), the module, or the heap; site_key: the row's
-- identity (group=stack: the whole stack's); stack: with group=stack, the whole stack,
-- innermost first (sites_v.stack); site_id: one of the row's sites.
-- Ordered by the largest absolute change in reallocs. With --param label.K=V only the
-- captures with that label are considered (a and b default to the last two of them).
WITH ordered AS (
    SELECT capture_id, row_number() OVER (ORDER BY coalesce(start_time_ns, 0), capture_id) AS n
    FROM captures
),
ids AS (
    SELECT coalesce(:b, (SELECT capture_id FROM ordered ORDER BY n DESC LIMIT 1)) AS b
),
pair AS (
    SELECT coalesce(:a, (SELECT o.capture_id FROM ordered o
                         WHERE o.n < (SELECT n FROM ordered WHERE capture_id = (SELECT b FROM ids))
                         ORDER BY o.n DESC LIMIT 1)) AS a,
           (SELECT b FROM ids) AS b
),
g AS (
    SELECT v.capture_id, v.process,
           CASE WHEN :group IN ('stack', 'site') THEN v.site_key WHEN :group IN ('function', 'call_site') THEN v.site
                WHEN :group = 'module' THEN v.module WHEN :group = 'heap' THEN v.heap_identity ELSE '' END AS k,
           max(CASE WHEN :group IN ('stack', 'site', 'function', 'call_site') THEN v.site
                    WHEN :group = 'module' THEN v.module WHEN :group = 'heap' THEN 'heap ' || v.heap_identity
                    ELSE '' END) AS label,
           CASE WHEN :group IN ('stack', 'site', 'function', 'call_site') THEN max(v.site_id) END AS site_id,
           sum(v.allocs) AS allocs, sum(v.reallocs) AS reallocs, sum(v.moves) AS moves,
           sum(v.bytes_copied) AS bytes_copied, sum(v.live_bytes) AS live_bytes
    FROM site_stats_v v
    WHERE v.capture_id IN ((SELECT a FROM pair), (SELECT b FROM pair))
    GROUP BY v.capture_id, v.process, k
)
SELECT d.*,
       CASE WHEN :group IN ('stack', 'site') THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = d.site_id) END AS stack
FROM (
SELECT process,
       max(label) AS site,   -- one per k (max(): DuckDB wants it aggregated)
       k AS site_key,
       max(site_id) AS site_id,
       CASE WHEN sum(capture_id = (SELECT a FROM pair)) = 0 THEN 'new'
            WHEN sum(capture_id = (SELECT b FROM pair)) = 0 THEN 'gone'
            ELSE 'both' END AS status,
       sum(CASE WHEN capture_id = (SELECT a FROM pair) THEN allocs ELSE 0 END) AS allocs_a,
       sum(CASE WHEN capture_id = (SELECT b FROM pair) THEN allocs ELSE 0 END) AS allocs_b,
       sum(CASE WHEN capture_id = (SELECT a FROM pair) THEN reallocs ELSE 0 END) AS reallocs_a,
       sum(CASE WHEN capture_id = (SELECT b FROM pair) THEN reallocs ELSE 0 END) AS reallocs_b,
       sum(CASE WHEN capture_id = (SELECT b FROM pair) THEN reallocs ELSE -reallocs END) AS reallocs_change,
       sum(CASE WHEN capture_id = (SELECT a FROM pair) THEN moves ELSE 0 END) AS moves_a,
       sum(CASE WHEN capture_id = (SELECT b FROM pair) THEN moves ELSE 0 END) AS moves_b,
       sum(CASE WHEN capture_id = (SELECT a FROM pair) THEN bytes_copied ELSE 0 END) AS bytes_copied_a,
       sum(CASE WHEN capture_id = (SELECT b FROM pair) THEN bytes_copied ELSE 0 END) AS bytes_copied_b,
       -- Outstanding at the end of each capture (NULL where its lifetimes are not computed).
       sum(CASE WHEN capture_id = (SELECT a FROM pair) THEN live_bytes ELSE 0 END) AS live_bytes_a,
       sum(CASE WHEN capture_id = (SELECT b FROM pair) THEN live_bytes ELSE 0 END) AS live_bytes_b,
       (SELECT a FROM pair) AS capture_a,
       (SELECT b FROM pair) AS capture_b
FROM g
GROUP BY process, k
ORDER BY abs(reallocs_change) DESC, process, site, site_key
LIMIT :limit
) d
ORDER BY abs(d.reallocs_change) DESC, d.process, d.site, d.site_key;
