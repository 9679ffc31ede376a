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
per AS (
    SELECT r.capture_id,
           CASE WHEN r.stack_id IS NOT NULL THEN 'stack ' || r.stack_id
                ELSE coalesce(p.name, 'pid ' || r.pid) || printf(' heap 0x%x', r.heap) END AS site,
           count(*) AS reallocs,
           sum(r.moved) AS moves,
           sum(CASE WHEN r.moved THEN min(r.old_size, r.new_size) ELSE 0 END) AS bytes_copied
    FROM reallocs r
    LEFT JOIN process_names p ON p.capture_id = r.capture_id AND p.pid = r.pid
    WHERE r.capture_id IN ((SELECT a FROM ids), (SELECT b FROM ids))
    GROUP BY r.capture_id, site
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
