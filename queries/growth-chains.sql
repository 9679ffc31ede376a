-- name: growth-chains
-- description: Blocks followed through successive reallocs (a realloc chain): length, first and final size, growth ratio, moves, still live at the end.
-- question: Which logical buffers are grown again and again, and are they still alive when the capture ends?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: min_length = 2 : only chains of at least this many reallocs
-- param: order = length [length|copied] : longest chains first, or the chains whose moves copied the most bytes
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
-- module+0xRVA, else 'stack N'; NULL without a stack. bytes_copied: what the chain's
-- moves copied, min(old size, new size) of each moving ReAlloc, as top-realloc-sites
-- counts it. order=copied lists the chains that moved, most copied first (one pass over
-- the capture's blocks; order=length reads only the longest).
WITH cap AS (SELECT capture_id AS id, first_block_id AS lo, last_block_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
-- order=copied: what each chain's moves copied: the blocks that ended moved, each
-- joined by rowid to the ReAlloc that moved it (min(old size, new size), as
-- top-realloc-sites counts it): one pass over the capture's blocks.
copied AS (
    SELECT m.chain_id,
           sum(min(r.old_size, r.new_size)) AS bytes
    FROM blocks m
    JOIN reallocs r ON r.id = m.end_event_id
    WHERE :order = 'copied'
      AND m.block_id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap)
      AND +m.capture_id = (SELECT id FROM cap)
      AND m.end_kind = 2                    -- realloc_moved
      AND (:pid IS NULL OR m.pid = :pid)
    GROUP BY m.chain_id
),
last AS (
    SELECT * FROM (
        SELECT b.* FROM blocks b
        WHERE :order <> 'copied'
          AND b.block_id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap)
          AND +b.capture_id = (SELECT id FROM cap)
          AND b.chain_index >= max(:min_length, 1)
          AND b.end_kind NOT IN (2, 3)          -- not ended by a ReAlloc (block_end_kinds)
          AND (:pid IS NULL OR b.pid = :pid)
        ORDER BY b.chain_index DESC, b.size DESC, b.chain_id
        LIMIT :limit)
    UNION ALL
    -- A chain's last block is its only one not ended by a ReAlloc.
    SELECT * FROM (
        SELECT b.* FROM copied c JOIN blocks b ON b.chain_id = c.chain_id AND b.end_kind NOT IN (2, 3)
        WHERE b.chain_index >= max(:min_length, 1)
        ORDER BY c.bytes DESC, b.chain_index DESC, b.chain_id
        LIMIT :limit)
)
-- The rows, then their order: DuckDB cannot sort by an alias of a subquery
-- (bytes_copied) inside an expression, so the ORDER BY reads the finished rows.
SELECT * FROM (
SELECT l.pid,
       p.name                                             AS process,
       l.heap,
       l.chain_index                                      AS reallocs,
       f.size                                             AS first_size,
       l.size                                             AS final_size,
       round(1.0 * l.size / max(coalesce(f.size, 0), 1), 2) AS growth_ratio,
       (SELECT count(*) FROM blocks m WHERE m.chain_id = l.chain_id AND m.end_kind = 2) AS moves,  -- realloc_moved
       (SELECT coalesce(sum(min(r.old_size, r.new_size)), 0) FROM blocks m JOIN reallocs r ON r.id = m.end_event_id
        WHERE m.chain_id = l.chain_id AND m.end_kind = 2)   AS bytes_copied,
       l.address                                          AS final_address,
       round((l.start_ns - coalesce(f.start_ns, f.end_ns)) / 1e6, 3) AS duration_ms,
       -- CAST: 0/1 on DuckDB too, as in SQLite (a comparison is a BOOLEAN there)
       CAST(l.end_kind = 7 AS INTEGER)                    AS still_live,            -- live_at_end
       CAST(f.start_kind >= 3 AS INTEGER)                 AS started_before_trace,  -- before_trace, lost_alloc
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
)
ORDER BY CASE WHEN :order = 'copied' THEN bytes_copied ELSE reallocs END DESC,
         reallocs DESC, CASE WHEN :order = 'copied' THEN 0 ELSE final_size END DESC, chain_id;
