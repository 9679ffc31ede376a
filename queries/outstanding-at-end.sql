-- name: outstanding-at-end
-- description: Blocks allocated or grown during the capture and still live when it ends, by call site: the leak suspects.
-- question: What was allocated (or last reallocated) in the trace and is still live when it ends?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: limit = 20 : rows to return
--
-- Reads the capture's block lifetimes (counted per site at ingest in block_counts): the
-- blocks that started in the trace (an Alloc, or a ReAlloc that produced them) and ended
-- 'live_at_end'. Blocks of a process that exited, of a heap that was destroyed, or
-- whose Free was lost (a later block took their address) are not outstanding; neither
-- are blocks from before the trace (their size and start are unknown): data-quality
-- counts those. The site is the stack of the event that started the block, named by
-- its call site (the first frame outside the heap and the runtimes) when the rundown
-- names the images; without stacks, the heap. via_realloc: blocks a ReAlloc produced
-- (a grown buffer still alive).
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
)
SELECT coalesce(si.call_function, si.call_site,
                CASE WHEN live.stack_id IS NOT NULL THEN 'stack ' || live.stack_id
                     ELSE printf('heap 0x%x', live.heap) END) AS site,
       live.stack_id,
       live.pid,
       p.name                                             AS process,
       live.blocks,
       live.bytes,
       live.via_realloc,
       round(((SELECT last_event_ns FROM cap) - live.oldest_ns) / 1e6, 3) AS oldest_age_ms
FROM live
LEFT JOIN capture_stacks cs ON cs.capture_id = (SELECT id FROM cap) AND cs.pid = live.pid AND cs.stack_id = live.stack_id
LEFT JOIN sites si ON si.site_id = cs.site_id
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = live.pid
ORDER BY live.bytes DESC, live.blocks DESC, live.pid, live.stack_id
LIMIT :limit;
