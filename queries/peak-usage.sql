-- name: peak-usage
-- description: Per process: peak outstanding bytes, when, and the call sites that held most of it at that instant.
-- question: When did each process use the most heap memory, and who was holding it then?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: sites = 5 : call sites shown per process
-- param: group = function [function|stack|module] : what a site is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
--
-- Outstanding bytes of a process: the bytes of its blocks that started in the trace (an
-- Alloc, or a ReAlloc that produced them) and are still live; blocks from before the
-- trace have no known start and are not counted (as in WPA's outstanding-size graph).
-- The peak and its instant are computed at ingest, after every event in time order
-- (process_usage); the sites are the blocks live just after the event that reached the
-- peak, grouped by the stack that started them, named by its call site
-- (module!function once symbolized, else module+0xRVA; see top-realloc-sites for
-- site_key, stacks and stack; without stacks, the heap); stack_id: the site's stack
-- holding the most bytes. share_pct: of the peak. end_bytes:
-- outstanding when the trace ended (0 when the process exited).
WITH cap AS (SELECT capture_id AS id, first_block_id AS lo, last_block_id AS hi, start_time_ns
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
u AS (
    SELECT * FROM process_usage
    WHERE capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid) AND peak_event_id IS NOT NULL
),
held AS (
    SELECT b.pid, b.start_stack_id AS stack_id,
           CASE WHEN b.start_stack_id IS NULL THEN b.heap END AS heap,
           count(*) AS blocks, sum(b.size) AS bytes
    FROM blocks b JOIN u ON u.pid = b.pid
    WHERE b.block_id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap)
      AND +b.capture_id = (SELECT id FROM cap)
      AND b.start_kind <= 2                 -- alloc, realloc (block_start_kinds)
      AND (b.start_ns, b.start_event_id) <= (u.peak_ns, u.peak_event_id)
      AND (b.end_ns IS NULL OR (b.end_ns, coalesce(b.end_event_id, 9223372036854775807)) > (u.peak_ns, u.peak_event_id))
    GROUP BY b.pid, b.start_stack_id, CASE WHEN b.start_stack_id IS NULL THEN b.heap END
),
-- Each (process, stack) named by its call site: site_key is what a row is.
named AS (
    SELECT a.*, g.site_id,
           coalesce(g.site_key, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site_key,
           coalesce(g.site, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site
    FROM held a
    LEFT JOIN stack_groups_v g ON g.capture_id = (SELECT id FROM cap) AND g.pid = a.pid
                              AND g.stack_id = a.stack_id AND g.grp = :group
),
top AS (
    SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.bytes DESC, n.stack_id) AS rn
    FROM named n
),
g AS (
    SELECT pid, site_key, max(site) AS site,
           max(CASE WHEN rn = 1 THEN stack_id END) AS stack_id,
           max(CASE WHEN rn = 1 THEN site_id END) AS site_id,
           max(heap) AS heap,
           count(stack_id) AS stacks,
           sum(blocks) AS blocks, sum(bytes) AS bytes
    FROM top
    GROUP BY pid, site_key
),
ranked AS (
    SELECT g.*, row_number() OVER (PARTITION BY pid ORDER BY bytes DESC, stack_id, heap, site_key) AS rank
    FROM g
)
SELECT u.pid,
       p.name AS process,
       u.peak_bytes,
       u.peak_blocks,
       round((u.peak_ns - (SELECT start_time_ns FROM cap)) / 1e9, 6) AS peak_time_s,
       u.end_bytes,
       r.rank,
       r.site,
       r.stack_id,
       r.blocks AS site_blocks,
       r.bytes AS site_bytes,
       round(100.0 * r.bytes / max(u.peak_bytes, 1), 1) AS share_pct,
       r.stacks,
       r.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = r.site_id) END AS stack
FROM u
LEFT JOIN ranked r ON r.pid = u.pid AND r.rank <= :sites
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = u.pid
ORDER BY u.peak_bytes DESC, u.pid, r.rank;
