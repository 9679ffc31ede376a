-- name: trend
-- description: Call sites (or modules, heaps, processes) across captures in start order, or across the values of a label such as build: one number per capture, and a flag on those that rose steadily over the last captures, with the slope and the capture where the rise began.
-- question: Which call sites have been growing night after night, and since when?
-- param: metric = reallocs [reallocs|moves|bytes_copied|bytes_grown|allocs|alloc_bytes|live_blocks|live_bytes] : the number followed (live_*: blocks allocated in the capture and still live at its end: the leak that grows night after night)
-- param: last = 14 : how many captures (or label values), the latest ones
-- param: by = capture : 'capture' (each capture is a point) or a label key such as build (captures with the same value are averaged; values in order of their first capture)
-- param: group = function [function|stack|module|heap|process|site|call_site] : what a row is: the call-site function (stacks whose call site is the same function add up), a whole stack, the calling module, a heap or a process (see capture-diff)
-- param: min_run = 3 : flag a row only after this many consecutive rises ending at the last point
-- param: min_rise = 0.25 : and only when the last value is at least this much above the value where the rise began (0.25 = +25 %)
-- param: only_rising = 0 : 1 lists the flagged rows only
-- param: limit = 50 : rows to return
--
-- A row is flagged 'rising' when its values rose at every one of the last min_run (or
-- more) points, by min_rise in all, and (for the counts: reallocs, moves, allocs, live_blocks) by more
-- than three standard deviations of counting noise (rise² > 9 × (first + last)), and
-- the last value is more than three standard deviations (of the points before the rise,
-- when there are two or more) above their mean: a run of rises out of a dip is not a
-- trend. A row
-- absent from a capture counts 0 there. `rise_from` is the capture (or label value) where
-- the rise began; `slope` is the least-squares change per point over the rise. Flagged
-- rows come first, steepest first. Captures stored before schema 2 take part once
-- `heapdb repair` has computed their history.
WITH pts AS (
    SELECT c.capture_id,
           CASE WHEN :by = 'capture' THEN CAST(c.capture_id AS TEXT) ELSE l.value END AS point,
           coalesce(c.start_time_ns, 0) AS t
    FROM captures c
    LEFT JOIN capture_labels l ON l.capture_id = c.capture_id AND l.key = :by
    WHERE c.history = 1 AND (:by = 'capture' OR l.value IS NOT NULL)
),
points AS (
    SELECT point, min(t) AS t, min(capture_id) AS first_capture, count(*) AS captures
    FROM pts GROUP BY point
    ORDER BY t DESC, first_capture DESC
    LIMIT :last
),
win AS (
    SELECT point, captures, row_number() OVER (ORDER BY t, first_capture) AS seq FROM points
),
vals AS (
    SELECT v.process,
           CASE WHEN :group IN ('stack', 'site') THEN v.site_key WHEN :group IN ('function', 'call_site') THEN v.site
                WHEN :group = 'module' THEN v.module WHEN :group = 'heap' THEN v.heap_identity ELSE '' END AS k,
           max(CASE WHEN :group IN ('stack', 'site', 'function', 'call_site') THEN v.site
                    WHEN :group = 'module' THEN v.module WHEN :group = 'heap' THEN 'heap ' || v.heap_identity
                    ELSE '' END) AS label,
           CASE WHEN :group IN ('stack', 'site', 'function', 'call_site') THEN max(v.site_id) END AS site_id,
           w.seq,
           sum(CASE :metric WHEN 'reallocs' THEN v.reallocs WHEN 'moves' THEN v.moves
                            WHEN 'bytes_copied' THEN v.bytes_copied WHEN 'bytes_grown' THEN v.bytes_grown
                            WHEN 'allocs' THEN v.allocs WHEN 'live_blocks' THEN v.live_blocks
                            WHEN 'live_bytes' THEN v.live_bytes ELSE v.alloc_bytes END) * 1.0 / w.captures AS v
    FROM win w
    JOIN pts p ON p.point = w.point
    JOIN site_stats_v v ON v.capture_id = p.capture_id
    GROUP BY v.process, k, w.seq, w.captures   -- captures: one per seq (DuckDB wants it grouped)
),
keys AS (
    SELECT process, k, max(label) AS label, max(site_id) AS site_id FROM vals GROUP BY process, k
),
grid AS (
    SELECT keys.process, keys.k, w.seq, coalesce(vals.v, 0) AS v
    FROM keys CROSS JOIN win w
    LEFT JOIN vals ON vals.process = keys.process AND vals.k = keys.k AND vals.seq = w.seq
),
steps AS (
    SELECT process, k, seq, v, lag(v) OVER (PARTITION BY process, k ORDER BY seq) AS prev FROM grid
),
runs AS (
    SELECT process, k,
           coalesce(max(CASE WHEN prev IS NOT NULL AND v <= prev THEN seq END), 1) AS start_seq,
           max(seq) AS last_seq,
           group_concat(CAST(round(v, 1) AS TEXT), ' ' ORDER BY seq) AS series
    FROM steps GROUP BY process, k
),
fit AS (
    SELECT r.process, r.k, r.start_seq, r.last_seq, r.series,
           count(*) AS n, sum(s.seq) AS sx, sum(s.v) AS sy, sum(s.seq * s.v) AS sxy, sum(s.seq * s.seq) AS sxx,
           max(CASE WHEN s.seq = r.start_seq THEN s.v END) AS v_start,
           max(CASE WHEN s.seq = r.last_seq THEN s.v END) AS v_last
    FROM runs r JOIN steps s ON s.process = r.process AND s.k = r.k AND s.seq >= r.start_seq
    GROUP BY r.process, r.k, r.start_seq, r.last_seq, r.series   -- one runs row per (process, k)
),
pre AS (
    -- The points before the rise: a rise must end above their level by more than
    -- three of their standard deviations (a run of rises out of a dip is not a trend).
    SELECT r.process, r.k, count(*) AS m, avg(s.v) AS mean,
           (avg(s.v * s.v) - avg(s.v) * avg(s.v)) * count(*) / (count(*) - 1) AS var
    FROM runs r JOIN steps s ON s.process = r.process AND s.k = r.k AND s.seq < r.start_seq
    GROUP BY r.process, r.k
    HAVING count(*) >= 2
),
flagged AS (
    SELECT f.*,
           CASE WHEN f.n > 1 THEN (f.n * f.sxy - f.sx * f.sy) / (f.n * f.sxx - f.sx * f.sx) END AS slope,
           (f.last_seq - f.start_seq >= :min_run
            AND f.v_last > f.v_start
            AND f.v_last >= f.v_start * (1 + :min_rise)
            AND (:metric NOT IN ('reallocs', 'moves', 'allocs', 'live_blocks')
                 OR (f.v_last - f.v_start) * (f.v_last - f.v_start) > 9 * (f.v_start + f.v_last))
            AND (pre.m IS NULL
                 OR (f.v_last > pre.mean AND (f.v_last - pre.mean) * (f.v_last - pre.mean) > 9 * pre.var))) AS rising
    FROM fit f
    LEFT JOIN pre ON pre.process = f.process AND pre.k = f.k
)
SELECT fl.process,
       keys.label AS site,
       keys.site_id,
       keys.k AS site_key,
       CASE WHEN fl.rising THEN 'rising' ELSE '' END AS trend,
       CASE WHEN fl.rising THEN (SELECT point FROM win WHERE seq = fl.start_seq) END AS rise_from,
       CASE WHEN fl.rising THEN fl.last_seq - fl.start_seq END AS rises,
       CASE WHEN fl.rising AND fl.v_start > 0 THEN round(100.0 * (fl.v_last - fl.v_start) / fl.v_start, 1) END AS rise_pct,
       CASE WHEN fl.rising THEN round(fl.slope, 2) END AS slope,
       round(fl.v_last, 1) AS last_value,
       (SELECT count(*) FROM win) AS points,
       (SELECT point FROM win ORDER BY seq LIMIT 1) AS first_point,
       (SELECT point FROM win ORDER BY seq DESC LIMIT 1) AS last_point,
       fl.series,
       CASE WHEN :group IN ('stack', 'site') THEN (SELECT v.stack FROM sites_v v WHERE v.site_id = keys.site_id) END AS stack
FROM flagged fl
JOIN keys ON keys.process = fl.process AND keys.k = fl.k
WHERE fl.rising OR NOT :only_rising
-- CAST(rising AS INTEGER): its 0/1 (SQLite has no other booleans; DuckDB multiplies no
-- BOOLEAN).
ORDER BY fl.rising DESC, fl.slope * CAST(fl.rising AS INTEGER) DESC, fl.v_last DESC, fl.process, keys.label
LIMIT :limit;
