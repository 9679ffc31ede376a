-- name: source-breakdown
-- description: Counts and bytes per Source (lookaside, LFH, main, slow, invalid, segment) for reallocs, allocs and frees.
-- question: Which heap paths serve this workload?
-- param: capture = latest : capture id (default: the latest capture)
-- param: pid = all : only this process
--
-- allocs and frees leave out the internal Alloc/Free of moving reallocs (counted once,
-- as the ReAlloc).
-- The capture's reallocs are the id range first_event_id..last_event_id: a rowid range scan.
WITH cap AS (SELECT capture_id AS id, first_event_id AS lo, last_event_id AS hi FROM captures
             WHERE capture_id = coalesce(:capture, (SELECT max(capture_id) FROM captures))),
r AS (
    SELECT source, count(*) AS reallocs, sum(moved) AS moved, sum(new_size) AS realloc_bytes,
           sum(CASE WHEN new_size > old_size THEN new_size - old_size ELSE 0 END) AS bytes_grown
    FROM reallocs WHERE id BETWEEN (SELECT lo FROM cap) AND (SELECT hi FROM cap) AND +capture_id = (SELECT id FROM cap) AND (:pid IS NULL OR pid = :pid)
    GROUP BY source
),
-- Allocs and frees from heap_event_counts (kept by the ingest per process, heap, kind
-- and source): the same sums as over heap_events, without reading millions of rows.
e AS (
    SELECT source,
           sum(CASE WHEN opcode = 33 THEN events ELSE 0 END) AS allocs,
           sum(CASE WHEN opcode = 33 THEN bytes ELSE 0 END)  AS alloc_bytes,
           sum(CASE WHEN opcode = 36 THEN events ELSE 0 END) AS frees
    FROM heap_event_counts
    WHERE capture_id = (SELECT id FROM cap) AND opcode IN (33, 36) AND realloc_internal = 0
      AND (:pid IS NULL OR pid = :pid)
    GROUP BY source
),
src AS (SELECT source FROM r UNION SELECT source FROM e)
SELECT src.source                                  AS source_id,
       coalesce(s.name, CAST(src.source AS TEXT))  AS source,
       coalesce(r.reallocs, 0)      AS reallocs,
       coalesce(r.moved, 0)         AS moved,
       coalesce(r.realloc_bytes, 0) AS realloc_bytes,
       coalesce(r.bytes_grown, 0)   AS bytes_grown,
       coalesce(e.allocs, 0)        AS allocs,
       coalesce(e.alloc_bytes, 0)   AS alloc_bytes,
       coalesce(e.frees, 0)         AS frees
FROM src
LEFT JOIN r ON r.source = src.source
LEFT JOIN e ON e.source = src.source
LEFT JOIN sources s ON s.source = src.source
ORDER BY src.source;
