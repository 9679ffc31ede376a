-- name: data-quality
-- description: Per capture: events and buffers lost, bad records, heap events that could not be decoded, errors, stacks not matched, and reallocs whose old block was never seen.
-- question: Can the numbers of this capture be trusted?
-- param: capture = all : only this capture (default: every capture)
--
-- reallocs_old_block_unseen: ReAllocs whose old address no earlier Alloc or ReAlloc of
-- the same process and heap produced (the block predates the trace, or events were lost).
-- A high share with events_lost > 0 means the trace dropped events.
-- heap_events_undecoded: heap-provider events heapdb recognized (in any header form)
-- but could not decode; their details are in ingest_errors. Anything above 0 means the
-- counts of this capture are incomplete.
WITH caps AS (SELECT capture_id FROM captures WHERE :capture IS NULL OR capture_id = :capture),
ev AS (
    SELECT capture_id, pid, heap, new_address AS addr, time_ns, id, 1 AS kind FROM reallocs
     WHERE capture_id IN (SELECT capture_id FROM caps)
    UNION ALL
    SELECT capture_id, pid, heap, old_address, time_ns, id, 0 FROM reallocs
     WHERE capture_id IN (SELECT capture_id FROM caps)
    UNION ALL
    SELECT capture_id, pid, heap, address, time_ns, id, 1 FROM heap_events
     WHERE capture_id IN (SELECT capture_id FROM caps) AND opcode = 33 AND realloc_internal = 0
    UNION ALL
    SELECT capture_id, pid, heap, address, time_ns, id, 2 FROM heap_events
     WHERE capture_id IN (SELECT capture_id FROM caps) AND opcode = 36 AND realloc_internal = 0
),
consumers AS (
    SELECT capture_id, kind, lag(kind) OVER (PARTITION BY capture_id, pid, heap, addr ORDER BY time_ns, kind, id) AS prev_kind
    FROM ev
),
unseen AS (
    SELECT capture_id, count(*) AS n FROM consumers
    WHERE kind = 0 AND (prev_kind IS NULL OR prev_kind <> 1)
    GROUP BY capture_id
)
SELECT c.capture_id,
       c.file_name,
       c.status,
       c.events_lost,
       c.buffers_lost,
       c.events_seen,
       c.events_decoded,
       c.events_bad,
       coalesce(c.heap_events_undecoded, 0) AS heap_events_undecoded,
       (SELECT count(*) FROM ingest_errors e WHERE e.capture_id = c.capture_id) AS ingest_errors,
       c.unknown_versions,
       c.records_32bit,
       c.stacks_matched,
       c.stacks_orphan,
       (SELECT count(*) FROM reallocs r WHERE r.capture_id = c.capture_id) AS reallocs,
       coalesce(u.n, 0) AS reallocs_old_block_unseen,
       c.moving_reallocs_linked
FROM captures c
LEFT JOIN unseen u ON u.capture_id = c.capture_id
WHERE c.capture_id IN (SELECT capture_id FROM caps)
ORDER BY c.capture_id;
