-- name: small-increments
-- description: Sites whose buffers grow by small constant steps (quadratic copying), with the most common step.
-- question: Which call sites grow a buffer a few bytes at a time, so that each realloc copies it again?
-- param: capture = latest : capture id (default: the latest capture)
-- param: max_step = 256 : a growth of at most this many bytes counts as a small increment
-- param: min_reallocs = 10 : only sites with at least this many growing reallocs
-- param: limit = 20 : rows to return
--
-- Per site (stack, or heap of a process without stacks), over the reallocs that grow:
-- how many grew by at most max_step bytes and by less than 25%, the most common step,
-- and the bytes copied by the moving ones. Geometric growth (x1.5, x2) does not show
-- here; constant small steps do.
-- The capture's rows are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
grow AS (
    SELECT pid, stack_id, CASE WHEN stack_id IS NULL THEN heap END AS heap,
           new_size - old_size AS step, old_size, new_size, moved
    FROM reallocs
    WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND new_size > old_size
),
sites AS (
    SELECT pid, stack_id, heap,
           count(*) AS grows,
           sum(CASE WHEN step <= :max_step AND step * 4 < old_size THEN 1 ELSE 0 END) AS small_steps,
           sum(CASE WHEN moved THEN old_size ELSE 0 END) AS bytes_copied,
           max(new_size) AS max_size
    FROM grow
    GROUP BY pid, stack_id, heap
    HAVING count(*) >= :min_reallocs
),
steps AS (
    SELECT pid, stack_id, heap, step, count(*) AS n
    FROM grow GROUP BY pid, stack_id, heap, step
)
SELECT CASE WHEN s.stack_id IS NOT NULL THEN 'stack ' || s.stack_id ELSE printf('heap 0x%x', s.heap) END AS site,
       s.stack_id,
       s.pid,
       p.name AS process,
       s.grows,
       s.small_steps,
       round(100.0 * s.small_steps / s.grows, 1) AS small_pct,
       (SELECT st.step FROM steps st
         WHERE st.pid = s.pid AND st.stack_id IS s.stack_id AND st.heap IS s.heap
         ORDER BY st.n DESC, st.step LIMIT 1) AS common_step,
       s.bytes_copied,
       s.max_size
FROM sites s
LEFT JOIN process_names p ON p.capture_id = (SELECT id FROM cap) AND p.pid = s.pid
WHERE s.small_steps > 0
ORDER BY s.small_steps DESC, s.grows DESC, s.pid, s.stack_id, s.heap
LIMIT :limit;
