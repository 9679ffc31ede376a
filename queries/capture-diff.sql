-- name: capture-diff
-- description: Realloc sites of two captures side by side (regression between nights): counts, moves and bytes copied in each, and the change.
-- question: Did last night's build realloc more, or differently, than the night before?
-- param: a = previous : the baseline capture id (default: the one before the latest)
-- param: b = latest : the capture to compare (default: the latest)
-- param: limit = 30 : rows to return
--
-- Sites are stacks (stack ids are a hash of the frames, the same in every capture), or
-- process name + heap handle where no stacks were collected. Rows are ordered by the
-- largest absolute change in realloc count.
WITH ids AS (
    SELECT coalesce(:b, (SELECT max(capture_id) FROM captures)) AS b,
           coalesce(:a, (SELECT max(capture_id) FROM captures
                         WHERE capture_id < coalesce(:b, (SELECT max(capture_id) FROM captures)))) AS a
),
-- Each capture's rows are an id range (captures.first_event_id..last_event_id).
ranges AS (
    SELECT capture_id, first_event_id AS lo, last_event_id AS hi FROM captures
    WHERE capture_id IN ((SELECT a FROM ids), (SELECT b FROM ids))
),
-- Group on numbers first, name the (few) groups after.
g AS (
    SELECT r.capture_id, r.stack_id, CASE WHEN r.stack_id IS NULL THEN r.pid END AS pid,
           CASE WHEN r.stack_id IS NULL THEN r.heap END AS heap,
           count(*) AS reallocs,
           sum(r.moved) AS moves,
           sum(CASE WHEN r.moved THEN min(r.old_size, r.new_size) ELSE 0 END) AS bytes_copied
    FROM ranges x JOIN reallocs r ON r.id BETWEEN x.lo AND x.hi AND +r.capture_id = x.capture_id
    GROUP BY r.capture_id, r.stack_id, 3, 4
),
per AS (
    SELECT g.capture_id,
           CASE WHEN g.stack_id IS NOT NULL THEN 'stack ' || g.stack_id
                ELSE coalesce(p.name, 'pid ' || g.pid) || printf(' heap 0x%x', g.heap) END AS site,
           g.reallocs, g.moves, g.bytes_copied
    FROM g LEFT JOIN process_names p ON p.capture_id = g.capture_id AND p.pid = g.pid
)
SELECT site,
       sum(CASE WHEN capture_id = (SELECT a FROM ids) THEN reallocs ELSE 0 END) AS reallocs_a,
       sum(CASE WHEN capture_id = (SELECT b FROM ids) THEN reallocs ELSE 0 END) AS reallocs_b,
       sum(CASE WHEN capture_id = (SELECT b FROM ids) THEN reallocs ELSE -reallocs END) AS reallocs_change,
       sum(CASE WHEN capture_id = (SELECT a FROM ids) THEN moves ELSE 0 END) AS moves_a,
       sum(CASE WHEN capture_id = (SELECT b FROM ids) THEN moves ELSE 0 END) AS moves_b,
       sum(CASE WHEN capture_id = (SELECT a FROM ids) THEN bytes_copied ELSE 0 END) AS bytes_copied_a,
       sum(CASE WHEN capture_id = (SELECT b FROM ids) THEN bytes_copied ELSE 0 END) AS bytes_copied_b
FROM per
GROUP BY site
ORDER BY abs(reallocs_change) DESC, site
LIMIT :limit;
