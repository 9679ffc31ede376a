-- name: leak-suspects
-- description: Call sites whose blocks, allocated in the window, are still live at its end (AIFO), ranked by how steadily they grew: steady growth beats one big block.
-- question: Who keeps adding memory that is never given back?
-- param: capture = latest : capture id (default: the latest capture)
-- param: since = none : window start, seconds after the session start (default: the capture's start)
-- param: until = none : window end, seconds after the session start (default: the capture's end)
-- param: pid = all : only this process
-- param: slices = 10 : the window is cut into this many equal slices
-- param: group = function [function|stack|module] : what a row is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
-- param: limit = 20 : rows to return
--
-- For each call site (the stack that started the block, named by its call site:
-- module!function once symbolized, else module+0xRVA; see top-realloc-sites for
-- site_key, stacks and stack; without stacks, the heap), its AIFO blocks (lifetimes
-- report): started in the window, not ended by its end. stack_id: the row's stack with
-- the most AIFO bytes. slices_growing: in how many of
-- the window's slices the site started such blocks; a site that leaks a little all
-- along scores higher than one big block. score = aifo_bytes * slices_growing / slices.
-- growing_chains: AIFO blocks at the end of a realloc chain in which every realloc grew
-- the block (a buffer that only ever grows and is never released). largest_block: the
-- biggest AIFO block; first_s / last_s: when the first and last of them started, in
-- seconds after the session start.
-- BIGINT, not INTEGER, in casts: the same in SQLite (64-bit either way), but DuckDB's
-- INTEGER is 32-bit.
WITH cap AS (SELECT capture_id AS id, first_block_id AS lo, last_block_id AS hi, start_time_ns,
                    max(CASE WHEN :since IS NULL THEN -9223372036854775807 ELSE start_time_ns + CAST(round(:since * 1e9) AS BIGINT) END, first_event_ns) AS t_from,
                    min(CASE WHEN :until IS NULL THEN 9223372036854775807 ELSE start_time_ns + CAST(round(:until * 1e9) AS BIGINT) END, last_event_ns + 1) AS t_to
             FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
aifo AS (
    SELECT b.*,
           CAST((b.start_ns - (SELECT t_from FROM cap)) * max(:slices, 1)
                / max((SELECT t_to - t_from FROM cap), 1) AS BIGINT) AS slice
    FROM blocks b
    WHERE b.block_id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap)
      AND +b.capture_id = (SELECT id FROM cap)
      AND b.start_kind <= 2                 -- alloc, realloc (block_start_kinds)
      AND b.start_ns >= (SELECT t_from FROM cap) AND b.start_ns < (SELECT t_to FROM cap)
      AND (b.end_ns IS NULL OR b.end_ns >= (SELECT t_to FROM cap))
      AND b.end_kind <> 5                   -- not process_exited
      AND (:pid IS NULL OR b.pid = :pid)
),
-- Chains whose every realloc grew the block: none of its links shrank or kept the size.
grow AS (
    SELECT a.block_id,
           NOT EXISTS (SELECT 1 FROM blocks m JOIN blocks pr ON pr.block_id = m.prev_block_id
                       WHERE m.chain_id = a.chain_id AND m.chain_index BETWEEN 1 AND a.chain_index
                         AND m.size <= coalesce(pr.size, 0)) AS grew
    FROM aifo a WHERE a.chain_index > 0
),
-- Counted per (process, stack, slice) first; only those counts are named and grouped.
per AS (
    SELECT a.pid, a.start_stack_id AS stack_id,
           CASE WHEN a.start_stack_id IS NULL THEN a.heap END AS heap,
           a.slice,
           count(*) AS aifo_blocks,
           sum(a.size) AS aifo_bytes,
           sum(coalesce(g.grew, 0)) AS growing_chains,
           max(a.size) AS largest_block,
           min(a.start_ns) AS first_ns,
           max(a.start_ns) AS last_ns
    FROM aifo a LEFT JOIN grow g ON g.block_id = a.block_id
    GROUP BY a.pid, a.start_stack_id, CASE WHEN a.start_stack_id IS NULL THEN a.heap END, a.slice
),
stk AS (
    SELECT pid, stack_id, heap, sum(aifo_bytes) AS aifo_bytes
    FROM per GROUP BY pid, stack_id, heap
),
-- Each (process, stack) named by its call site: site_key is what a row is.
named AS (
    SELECT a.*, g.site_id,
           coalesce(g.site_key, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site_key,
           coalesce(g.site, CASE WHEN a.stack_id IS NULL THEN printf('heap 0x%x', a.heap) ELSE 'stack ' || a.stack_id END) AS site
    FROM stk a
    LEFT JOIN stack_groups_v g ON g.capture_id = (SELECT id FROM cap) AND g.pid = a.pid
                              AND g.stack_id = a.stack_id AND g.grp = :group
),
ranked AS (
    SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.aifo_bytes DESC, n.stack_id) AS rn
    FROM named n
),
s AS (
    SELECT r.pid, r.site_key, max(r.site) AS site,
           max(CASE WHEN r.rn = 1 THEN r.stack_id END) AS stack_id,
           max(CASE WHEN r.rn = 1 THEN r.site_id END) AS site_id,
           max(r.heap) AS heap,
           count(DISTINCT r.stack_id) AS stacks,
           sum(p.aifo_blocks) AS aifo_blocks,
           sum(p.aifo_bytes) AS aifo_bytes,
           count(DISTINCT p.slice) AS slices_growing,
           sum(p.growing_chains) AS growing_chains,
           max(p.largest_block) AS largest_block,
           min(p.first_ns) AS first_ns,
           max(p.last_ns) AS last_ns
    FROM ranked r
    -- IS NOT DISTINCT FROM: equal, or both NULL (SQLite's `a IS b`, which DuckDB lacks)
    JOIN per p ON p.pid = r.pid AND p.stack_id IS NOT DISTINCT FROM r.stack_id AND p.heap IS NOT DISTINCT FROM r.heap
    GROUP BY r.pid, r.site_key
)
SELECT s.site,
       s.stack_id,
       s.pid,
       p.name AS process,
       s.aifo_blocks,
       s.aifo_bytes,
       s.slices_growing,
       s.growing_chains,
       s.largest_block,
       round((s.first_ns - (SELECT start_time_ns FROM cap)) / 1e9, 6) AS first_s,
       round((s.last_ns - (SELECT start_time_ns FROM cap)) / 1e9, 6) AS last_s,
       s.aifo_bytes * s.slices_growing / max(:slices, 1) AS score,
       s.stacks,
       s.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = s.site_id) END AS stack
FROM s
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY score DESC, s.aifo_bytes DESC, s.pid, s.stack_id, s.heap, s.site_key
LIMIT :limit;
