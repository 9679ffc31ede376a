-- name: lifetimes
-- description: Block lifetimes by WPA class for a time window, per call site: AIFI, AIFO, AOFI, AOFO counts and bytes, mean lifetime, and the window's net contribution.
-- question: In this window, who allocated what, what did it free, and what did it leave behind?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : window start, seconds after the session start (default: the capture's start)
-- param: until = none : window end, seconds after the session start (default: the capture's end)
-- param: pid = all : only this process
-- param: group = function [function|stack|module] : what a row is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
-- param: limit = 20 : rows to return
--
-- WPA's classes (docs/lifetimes.md), for a block that lived in the window at all:
--   AIFI  allocated inside the window, freed inside it (churn)
--   AIFO  allocated inside, freed after the window or never (what the window left behind:
--         the leak suspects)
--   AOFI  allocated before the window (or before the trace), freed inside it
--   AOFO  allocated before, freed after (or never): alive throughout
-- "Allocated" is the block's start (an Alloc or the ReAlloc that produced it); "freed"
-- is its end, whatever ended it (a Free, a ReAlloc that moved or resized it, its heap's
-- Destroy, its process's exit). net_bytes = AIFO bytes - AOFI bytes: how much the window
-- added to what is outstanding. Blocks first seen being freed have no known size and add
-- nothing to the bytes. mean_lifetime_ms: over the AIFI blocks (whole lifetimes inside
-- the window). A site is the stack of the block's start, named by its call site
-- (module!function once symbolized, else module+0xRVA; see top-realloc-sites for
-- site_key, stacks and stack; without stacks, the heap); blocks from before the trace
-- have none ('(before the trace)', per heap). stack_id: the row's stack with the most
-- net bytes.
-- BIGINT, not INTEGER, in casts: the same in SQLite (64-bit either way), but DuckDB's
-- INTEGER is 32-bit.
WITH cap AS (SELECT capture_id AS id, first_block_id AS lo, last_block_id AS hi,
                    CASE WHEN :since IS NULL THEN -9223372036854775807 ELSE start_time_ns + CAST(round(:since * 1e9) AS BIGINT) END AS t_from,
                    CASE WHEN :until IS NULL THEN 9223372036854775807 ELSE start_time_ns + CAST(round(:until * 1e9) AS BIGINT) END AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
-- A window given: every lifetime of the capture is classed by its times.
c AS (
    SELECT b.pid,
           b.start_stack_id AS stack_id,
           CASE WHEN b.start_stack_id IS NULL THEN b.heap END AS heap,
           b.start_kind >= 3 AS unseen,          -- before_trace, lost_alloc (block_start_kinds)
           coalesce(b.start_ns >= cap.t_from, 0) AS ai,   -- allocated inside
           coalesce(b.end_ns < cap.t_to, 0)      AS fi,   -- freed inside
           coalesce(b.size, 0) AS size,
           b.end_ns - b.start_ns AS lifetime
    FROM cap CROSS JOIN blocks b
    WHERE (:since IS NOT NULL OR :until IS NOT NULL)
      AND b.block_id BETWEEN cap.lo AND cap.hi
      AND +b.capture_id = cap.id
      AND (:pid IS NULL OR b.pid = :pid)
      AND coalesce(b.start_ns < cap.t_to, 1)
      AND coalesce(b.end_ns >= cap.t_from, 1)
),
-- The whole capture (no window): the classes follow from the kinds alone (allocated
-- inside = started in the trace; freed inside = ended before the trace did), so the
-- per-site counts written at ingest (block_counts) answer without reading the blocks.
k AS (
    SELECT k.pid,
           k.start_stack_id AS stack_id,
           CASE WHEN k.start_stack_id IS NULL THEN k.heap END AS heap,
           k.start_kind IN ('before_trace', 'lost_alloc') AS unseen,
           k.start_kind IN ('alloc', 'realloc') AS ai,
           k.end_kind <> 'live_at_end' AS fi,
           k.blocks, k.bytes, k.timed_blocks, k.lifetime_ns
    FROM block_counts k
    WHERE :since IS NULL AND :until IS NULL
      AND k.capture_id = (SELECT id FROM cap)
      AND (:pid IS NULL OR k.pid = :pid)
),
s0 AS (
    SELECT pid, stack_id, heap, unseen,
           sum(ai AND fi)                         AS aifi_blocks,
           sum(CASE WHEN ai AND fi THEN size END) AS aifi_bytes,
           sum(ai AND NOT fi)                     AS aifo_blocks,
           sum(CASE WHEN ai AND NOT fi THEN size END) AS aifo_bytes,
           sum(NOT ai AND fi)                     AS aofi_blocks,
           sum(CASE WHEN NOT ai AND fi THEN size END) AS aofi_bytes,
           sum(NOT ai AND NOT fi)                 AS aofo_blocks,
           sum(CASE WHEN NOT ai AND NOT fi THEN size END) AS aofo_bytes,
           sum(CASE WHEN ai AND fi THEN lifetime END) AS lifetime_ns,
           count(CASE WHEN ai AND fi THEN lifetime END) AS timed_blocks
    FROM c
    GROUP BY pid, stack_id, heap, unseen
    UNION ALL
    SELECT pid, stack_id, heap, unseen,
           sum(CASE WHEN ai AND fi THEN blocks ELSE 0 END),
           sum(CASE WHEN ai AND fi THEN bytes END),
           sum(CASE WHEN ai AND NOT fi THEN blocks ELSE 0 END),
           sum(CASE WHEN ai AND NOT fi THEN bytes END),
           sum(CASE WHEN NOT ai AND fi THEN blocks ELSE 0 END),
           sum(CASE WHEN NOT ai AND fi THEN bytes END),
           sum(CASE WHEN NOT ai AND NOT fi THEN blocks ELSE 0 END),
           sum(CASE WHEN NOT ai AND NOT fi THEN bytes END),
           sum(CASE WHEN ai AND fi THEN lifetime_ns END),
           sum(CASE WHEN ai AND fi THEN timed_blocks ELSE 0 END)
    FROM k
    GROUP BY pid, stack_id, heap, unseen
),
-- Each (process, stack) named by its call site: site_key is what a row is.
named AS (
    SELECT a.*, g.site_id,
           coalesce(a.aifo_bytes, 0) - coalesce(a.aofi_bytes, 0) AS net,
           CASE WHEN a.unseen THEN '(before the trace) ' || coalesce('stack ' || a.stack_id, printf('heap 0x%x', a.heap))
                ELSE coalesce(g.site_key, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) END AS site_key,
           CASE WHEN a.unseen THEN '(before the trace)'
                ELSE coalesce(g.site, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) END AS site
    FROM s0 a
    LEFT JOIN stack_groups_v g ON g.capture_id = (SELECT id FROM cap) AND g.pid = a.pid
                              AND g.stack_id = a.stack_id AND g.grp = :group
),
ranked AS (
    SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.net DESC, n.stack_id) AS rn
    FROM named n
),
s AS (
    SELECT pid, site_key, max(site) AS site,
           max(CASE WHEN rn = 1 THEN stack_id END) AS stack_id,
           max(CASE WHEN rn = 1 THEN site_id END) AS site_id,
           max(heap) AS heap,
           count(stack_id) AS stacks,
           sum(aifi_blocks) AS aifi_blocks, sum(aifi_bytes) AS aifi_bytes,
           sum(aifo_blocks) AS aifo_blocks, sum(aifo_bytes) AS aifo_bytes,
           sum(aofi_blocks) AS aofi_blocks, sum(aofi_bytes) AS aofi_bytes,
           sum(aofo_blocks) AS aofo_blocks, sum(aofo_bytes) AS aofo_bytes,
           sum(lifetime_ns) * 1.0 / nullif(sum(timed_blocks), 0) AS mean_lifetime_ns
    FROM ranked
    GROUP BY pid, site_key
)
SELECT s.site,
       s.stack_id,
       s.pid,
       p.name AS process,
       s.heap,                                   -- set when the site is the heap (no stack)
       s.aifi_blocks, coalesce(s.aifi_bytes, 0) AS aifi_bytes,
       s.aifo_blocks, coalesce(s.aifo_bytes, 0) AS aifo_bytes,
       s.aofi_blocks, coalesce(s.aofi_bytes, 0) AS aofi_bytes,
       s.aofo_blocks, coalesce(s.aofo_bytes, 0) AS aofo_bytes,
       round(s.mean_lifetime_ns / 1e6, 3) AS mean_lifetime_ms,
       coalesce(s.aifo_bytes, 0) - coalesce(s.aofi_bytes, 0) AS net_bytes,
       s.stacks,
       s.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = s.site_id) END AS stack
FROM s
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY net_bytes DESC, s.aifo_blocks DESC, s.pid, s.stack_id, s.heap, s.site_key
LIMIT :limit;
