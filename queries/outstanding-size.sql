-- name: outstanding-size
-- description: Outstanding bytes and blocks over time per process (or per heap, or per call site): the series WPA plots first.
-- question: When did memory grow, and in which process (heap, call site)?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
-- param: by = process [process|heap|site] : one series per process, per heap, or per call site (the stack that started the blocks)
-- param: buckets = 100 : time buckets across the capture (the series' points)
-- param: top = 10 : with by=heap or by=site: the series of the keys with the highest peak (per capture)
-- param: group = function [function|stack|module] : with by=site, what a series is: a call-site function (stacks whose call site is the same function add up; module+0xRVA until symbolized), a whole stack (by function once symbolized), or the calling module
--
-- Outstanding at the end of each bucket: the bytes (and blocks) of the blocks that
-- started in the trace (an Alloc or a ReAlloc that produced them) and had not ended by
-- then. Blocks from before the trace have no known start and are not counted (as in
-- WPA). allocated_bytes / ended_bytes: what started and ended inside the bucket (ended
-- by a Free, a ReAlloc, its heap's Destroy or its process's exit). Buckets split the
-- capture's heap events (first to last) evenly; time_s is the bucket's end in seconds
-- after the session start. The exact peak and its instant are in peak-usage.
-- With by=site, `series` names the call site (module!function once symbolized, else
-- module+0xRVA; see top-realloc-sites for site_key, stacks and stack; '(no stack)'
-- for blocks without one); stack_id: the series' stack that allocated the most bytes.
WITH RECURSIVE
cap AS (SELECT capture_id AS id, first_block_id AS lo, last_block_id AS hi, start_time_ns,
               first_event_ns AS t0,
               max((last_event_ns - first_event_ns + 1) / max(:buckets, 1), 1) AS width
        FROM captures
        WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
bk(b) AS (SELECT 0 UNION ALL SELECT b + 1 FROM bk WHERE b + 1 < max(:buckets, 1)),
blk AS (
    SELECT b.pid,
           CASE :by WHEN 'heap' THEN b.heap WHEN 'site' THEN b.start_stack_id ELSE 0 END AS k,
           b.size, b.start_ns, b.end_ns
    FROM blocks b
    WHERE b.block_id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap)
      AND +b.capture_id = (SELECT id FROM cap)
      AND b.start_kind <= 2                 -- alloc, realloc (block_start_kinds)
      AND (:pid IS NULL OR b.pid = :pid)
),
-- One row per (series, start bucket, end bucket) first: one sort of one row per block
-- instead of two (its start and its end).
se0 AS (
    SELECT pid, k,
           min((start_ns - (SELECT t0 FROM cap)) / (SELECT width FROM cap), max(:buckets, 1) - 1) AS sb,
           min((end_ns - (SELECT t0 FROM cap)) / (SELECT width FROM cap), max(:buckets, 1) - 1) AS eb,
           sum(size) AS bytes, count(*) AS n
    FROM blk GROUP BY 1, 2, 3, 4
),
-- by=site: each (process, stack) named by its call site; site_key is what a series is.
named AS (
    -- max(g.*): one stack_groups_v row per (process, stack) at most; the aggregate says
    -- so, as DuckDB requires of every column neither grouped nor aggregated.
    SELECT a.pid, a.k AS stack_id, sum(a.bytes) AS bytes, max(g.site_id) AS site_id,
           coalesce(max(g.site_key), CASE WHEN a.k IS NULL THEN '(no stack)' ELSE 'stack ' || a.k END) AS site_key,
           coalesce(max(g.site), CASE WHEN a.k IS NULL THEN '(no stack)' ELSE 'stack ' || a.k END) AS site
    FROM se0 a
    LEFT JOIN stack_groups_v g ON g.capture_id = (SELECT id FROM cap) AND g.pid = a.pid
                              AND g.stack_id = a.k AND g.grp = :group
    WHERE :by = 'site'
    GROUP BY a.pid, a.k
),
names AS (
    SELECT pid, site_key, max(site) AS site,
           max(CASE WHEN rn = 1 THEN stack_id END) AS stack_id,
           max(CASE WHEN rn = 1 THEN site_id END) AS site_id,
           count(stack_id) AS stacks
    FROM (SELECT n.*, row_number() OVER (PARTITION BY n.pid, n.site_key ORDER BY n.bytes DESC, n.stack_id) AS rn
          FROM named n)
    GROUP BY pid, site_key
),
-- A series is (pid, k, sk): k the number (0 with by=process, the heap with by=heap), sk
-- the call site's site_key with by=site (k is then NULL). Two columns rather than one
-- holding either: a DuckDB column has one type (and its NULLs a type too, hence the casts).
se AS (
    SELECT se0.pid, se0.k, CAST(NULL AS TEXT) AS sk, se0.sb, se0.eb, se0.bytes, se0.n FROM se0 WHERE :by <> 'site'
    UNION ALL
    SELECT se0.pid, CAST(NULL AS BIGINT), n.site_key, se0.sb, se0.eb, sum(se0.bytes), sum(se0.n)
    -- IS NOT DISTINCT FROM: equal, or both NULL (SQLite's `a IS b`, which DuckDB lacks)
    FROM se0 JOIN named n ON n.pid = se0.pid AND n.stack_id IS NOT DISTINCT FROM se0.k
    GROUP BY se0.pid, n.site_key, se0.sb, se0.eb
),
-- CAST(0 AS BIGINT): DuckDB types a UNION's column by its first SELECT, and a bare 0 is
-- a 32-bit INTEGER there (a capture's ended bytes pass 2^31).
d AS (
    SELECT pid, k, sk, sb AS b, bytes AS dbytes, n AS dblocks, bytes AS allocated, CAST(0 AS BIGINT) AS ended FROM se
    UNION ALL
    SELECT pid, k, sk, eb, -bytes, -n, 0, bytes FROM se WHERE eb IS NOT NULL
),
g AS (
    SELECT pid, k, sk, b, sum(dbytes) AS dbytes, sum(dblocks) AS dblocks,
           sum(allocated) AS allocated, sum(ended) AS ended
    FROM d GROUP BY pid, k, sk, b
),
keys AS (SELECT DISTINCT pid, k, sk FROM g),
series AS (
    SELECT keys.pid, keys.k, keys.sk, bk.b,
           sum(coalesce(g.dbytes, 0)) OVER w AS bytes,
           sum(coalesce(g.dblocks, 0)) OVER w AS blocks,
           coalesce(g.allocated, 0) AS allocated,
           coalesce(g.ended, 0) AS ended
    FROM keys CROSS JOIN bk
    LEFT JOIN g ON g.pid = keys.pid AND g.k IS NOT DISTINCT FROM keys.k
               AND g.sk IS NOT DISTINCT FROM keys.sk AND g.b = bk.b
    WINDOW w AS (PARTITION BY keys.pid, keys.k, keys.sk ORDER BY bk.b)
),
peaks AS (
    SELECT pid, k, sk, max(bytes) AS peak FROM series GROUP BY pid, k, sk
),
kept AS (
    SELECT pid, k, sk FROM (SELECT pid, k, sk, row_number() OVER (ORDER BY peak DESC, pid, k, sk) AS rn FROM peaks)
    WHERE rn <= max(:top, 1) OR :by NOT IN ('heap', 'site')
)
SELECT s.b AS bucket,
       round(((SELECT t0 FROM cap) + (s.b + 1) * (SELECT width FROM cap) - (SELECT start_time_ns FROM cap)) / 1e9, 6) AS time_s,
       s.pid,
       p.name AS process,
       CASE :by WHEN 'heap' THEN printf('0x%x', s.k)
                WHEN 'site' THEN nm.site
                ELSE NULL END AS series,
       nm.stack_id,
       s.bytes AS outstanding_bytes,
       s.blocks AS outstanding_blocks,
       s.allocated AS allocated_bytes,
       s.ended AS ended_bytes,
       nm.stacks,
       nm.site_key,
       CASE WHEN :group = 'stack' THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = nm.site_id) END AS stack
FROM series s
JOIN kept ON kept.pid = s.pid AND kept.k IS NOT DISTINCT FROM s.k AND kept.sk IS NOT DISTINCT FROM s.sk
LEFT JOIN names nm ON :by = 'site' AND nm.pid = s.pid AND nm.site_key = s.sk
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
ORDER BY s.pid, s.k, s.sk, s.b;
