-- name: growth-chains
-- description: Blocks followed through successive reallocs (a realloc chain): length, first and final size, growth ratio, moves, still live at the end.
-- question: Which logical buffers are grown again and again, and are they still alive when the capture ends?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: min_length = 2 : only chains of at least this many reallocs
-- param: limit = 20 : rows to return
--
-- Reads the block lifetimes (the blocks table): a chain is the blocks of one chain_id,
-- linked by ReAllocs (chain_index 0, 1, 2, ...); its last block is the one that did not
-- end in a ReAlloc, and its chain_index is the number of reallocs. A chain starts at an
-- Alloc, or at a block first seen being reallocated (allocated before the trace:
-- started_before_trace = 1). The internal Alloc/Free a moving ReAlloc logs with itself
-- play no part. still_live: the final block ended 'live_at_end' (not freed, its heap
-- not destroyed, its process still running). moves: reallocs that copied the block.
-- duration_ms: from the chain's first block's start (its first realloc when it came
-- from before the trace) to its last realloc. site: the call site of the chain's first
-- block (the stack that allocated it) as module!function once symbolized, else
-- module+0xRVA, else 'stack N'; NULL without a stack.
WITH cap AS (SELECT capture_id AS id, first_block_id AS lo, last_block_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
last AS (
    SELECT b.* FROM blocks b
    WHERE b.block_id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap)
      AND +b.capture_id = (SELECT id FROM cap)
      AND b.chain_index >= max(:min_length, 1)
      AND b.end_kind NOT IN (2, 3)          -- not ended by a ReAlloc (block_end_kinds)
      AND (:pid IS NULL OR b.pid = :pid)
    ORDER BY b.chain_index DESC, b.size DESC, b.chain_id
    LIMIT :limit
)
SELECT l.pid,
       p.name                                             AS process,
       l.heap,
       l.chain_index                                      AS reallocs,
       f.size                                             AS first_size,
       l.size                                             AS final_size,
       round(1.0 * l.size / max(coalesce(f.size, 0), 1), 2) AS growth_ratio,
       (SELECT count(*) FROM blocks m WHERE m.chain_id = l.chain_id AND m.end_kind = 2) AS moves,  -- realloc_moved
       l.address                                          AS final_address,
       round((l.start_ns - coalesce(f.start_ns, f.end_ns)) / 1e6, 3) AS duration_ms,
       l.end_kind = 7                                     AS still_live,            -- live_at_end
       f.start_kind >= 3                                  AS started_before_trace,  -- before_trace, lost_alloc
       (SELECT name FROM block_end_kinds WHERE kind = l.end_kind) AS final_end,
       l.chain_id,
       f.start_stack_id                                   AS first_stack_id,
       CASE WHEN f.start_stack_id IS NOT NULL
            THEN coalesce(si.call_function, si.call_site, 'stack ' || f.start_stack_id) END AS site
FROM last l
JOIN blocks f ON f.block_id = l.chain_id
LEFT JOIN capture_stacks cs ON cs.capture_id = (SELECT id FROM cap) AND cs.pid = l.pid AND cs.stack_id = f.start_stack_id
LEFT JOIN sites si ON si.site_id = cs.site_id
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = l.pid
ORDER BY l.chain_index DESC, l.size DESC, l.chain_id;
