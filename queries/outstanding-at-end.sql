-- name: outstanding-at-end
-- description: Blocks allocated or grown during the capture and still live when it ends, by call site: the leak suspects.
-- question: What was allocated (or last reallocated) in the trace and is still live when it ends?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: group = function [function|stack|module] : what a row is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
-- param: limit = 20 : rows to return
--
-- Reads the capture's block lifetimes (counted per site at ingest in block_counts): the
-- blocks that started in the trace (an Alloc, or a ReAlloc that produced them) and ended
-- 'live_at_end'. Blocks of a process that exited, of a heap that was destroyed, or
-- whose Free was lost (a later block took their address) are not outstanding; neither
-- are blocks from before the trace (their size and start are unknown): data-quality
-- counts those. The site is the stack of the event that started the block, named by
-- its call site (the first frame outside the heap, the runtimes and the allocator
-- functions: module!function once symbolized, else module+0xRVA; see
-- top-realloc-sites for site_key, stacks and stack); without stacks, the heap.
-- stack_id: the row's stack holding the most bytes. via_realloc: blocks a ReAlloc
-- produced (a grown buffer still alive).
WITH cap AS (SELECT capture_id AS id, last_event_ns
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
-- From the per-site lifetime counts written at ingest (block_counts), not the blocks.
live AS (
    SELECT k.pid,
           k.start_stack_id                               AS stack_id,
           CASE WHEN k.start_stack_id IS NULL THEN k.heap END AS heap,
           sum(k.blocks)                                  AS blocks,
           sum(k.bytes)                                   AS bytes,
           sum(CASE WHEN k.start_kind = 'realloc' THEN k.blocks ELSE 0 END) AS via_realloc,
           min(k.min_start_ns)                            AS oldest_ns
    FROM block_counts k
    WHERE k.capture_id = (SELECT id FROM cap)
      AND k.end_kind = 'live_at_end' AND k.start_kind IN ('alloc', 'realloc')
      AND (:pid IS NULL OR k.pid = :pid)
    GROUP BY k.pid, k.start_stack_id, CASE WHEN k.start_stack_id IS NULL THEN k.heap END
),
-- Each (process, stack) named by its call site: site_key is what a row is.
named AS (
    SELECT a.*, g.site_id,
           coalesce(g.site_key, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site_key,
           coalesce(g.site, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site
    FROM live a
    LEFT JOIN stack_groups_v g ON g.capture_id = (SELECT id FROM cap) AND g.pid = a.pid
                              AND g.stack_id = a.stack_id AND g.grp = :group
),
ranked AS (
    SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.bytes DESC, n.stack_id) AS rn
    FROM named n
),
g AS (
    SELECT pid, site_key, max(site) AS site,
           max(CASE WHEN rn = 1 THEN stack_id END) AS stack_id,
           max(CASE WHEN rn = 1 THEN site_id END) AS site_id,
           max(heap) AS heap,
           count(stack_id) AS stacks,
           sum(blocks) AS blocks, sum(bytes) AS bytes, sum(via_realloc) AS via_realloc,
           min(oldest_ns) AS oldest_ns
    FROM ranked
    GROUP BY pid, site_key
    ORDER BY bytes DESC, blocks DESC, pid, stack_id, heap, site_key
    LIMIT :limit
)
SELECT s.site,
       s.stack_id,
       s.pid,
       p.name                                             AS process,
       s.blocks,
       s.bytes,
       s.via_realloc,
       round(((SELECT last_event_ns FROM cap) - s.oldest_ns) / 1e6, 3) AS oldest_age_ms,
       s.stacks,
       s.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = s.site_id) END AS stack
FROM g s
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY s.bytes DESC, s.blocks DESC, s.pid, s.stack_id, s.heap, s.site_key;
