-- name: data-quality
-- description: Per capture: events and buffers lost, bad records, undecodable heap events, errors, stacks not matched, and what the block lifetimes say about lost or out-of-order events.
-- question: Can the numbers of this capture be trusted?
-- param: capture = all : only this capture (default: every capture)
--
-- From the session: events_lost / buffers_lost (the logger dropped them), events_bad
-- (corrupt records), heap_events_undecoded (heap-provider events heapdb recognized but
-- could not decode; details in ingest_errors): anything above 0 means the counts of the
-- capture are incomplete.
-- From the block lifetimes (docs/lifetimes.md), counted at ingest:
--   blocks_before_trace   blocks first seen being freed or reallocated at an address the
--                         capture had not used: allocated before the trace (normal: a
--                         trace starts while processes run; WPA's AOFI/AOFO)
--   reallocs_old_block_unseen  ReAllocs whose old block no event of the trace produced
--                         (allocated before the trace, or its Alloc was lost)
--   lost_allocs           blocks freed or reallocated at an address already used and
--                         freed in the trace: an Alloc was lost, or a double free
--   lost_frees            blocks still live when another block started at their
--                         address: their Free was lost
--   blocks_heap_destroyed / blocks_process_exited  blocks that ended with their heap or
--                         their process (not a fault; not outstanding at the end)
--   events_out_of_order   events that reached the lifetime pass after later ones (a CPU
--                         buffer held back beyond the reorder window): their lifetimes
--                         may be wrong
-- NULL in those columns: the capture was stored before lifetimes existed (`heapdb repair`).
-- From symbolization (docs/symbols.md): pdbs_loaded, pdbs_not_found, pdbs_unusable (a
-- PDB found that did not match its image, or could not be read): the PDBs this
-- capture's images name; `heapdb query symbol-status` says which and why. NULL status
-- ('pending') counts as not found until `heapdb symbolize` has run.
-- status: 'complete', 'complete_with_errors', 'recording' (a `heapdb record` still running,
-- or killed: `heapdb repair` finishes it) or 'incomplete' (a recording finished by repair:
-- what its checkpoints committed).
-- notes: the same in plain words, empty when nothing needs saying.
WITH caps AS (SELECT capture_id FROM captures WHERE :capture IS NULL OR capture_id = :capture),
k AS (
    SELECT capture_id,
           sum(CASE WHEN start_kind = 'before_trace' THEN blocks ELSE 0 END) AS before_trace,
           sum(CASE WHEN start_kind IN ('before_trace', 'lost_alloc')
                     AND end_kind IN ('realloc_moved', 'realloc_in_place') THEN blocks ELSE 0 END) AS unseen,
           sum(CASE WHEN start_kind = 'lost_alloc' THEN blocks ELSE 0 END) AS lost_allocs,
           sum(CASE WHEN end_kind = 'lost_free' THEN blocks ELSE 0 END) AS lost_frees,
           sum(CASE WHEN end_kind = 'heap_destroyed' THEN blocks ELSE 0 END) AS heap_destroyed,
           sum(CASE WHEN end_kind = 'process_exited' THEN blocks ELSE 0 END) AS process_exited
    FROM block_counts WHERE capture_id IN (SELECT capture_id FROM caps)
    GROUP BY capture_id
),
n AS (
    SELECT capture_id, sum(CASE WHEN opcode = 34 THEN events ELSE 0 END) AS reallocs
    FROM heap_event_counts WHERE capture_id IN (SELECT capture_id FROM caps)
    GROUP BY capture_id
),
q AS (
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
           -- Captures stored before the summaries existed count their reallocs.
           coalesce(n.reallocs, (SELECT count(*) FROM reallocs r
                                 WHERE r.id BETWEEN c.first_event_id AND c.last_event_id
                                   AND r.capture_id = c.capture_id)) AS reallocs,
           c.moving_reallocs_linked,
           -- CAST: 0/1 on DuckDB too, as in SQLite (a comparison is a BOOLEAN there)
           CAST(c.first_block_id IS NOT NULL AS INTEGER) AS lifetimes,
           CASE WHEN c.first_block_id IS NOT NULL THEN coalesce(k.before_trace, 0) END AS blocks_before_trace,
           CASE WHEN c.first_block_id IS NOT NULL THEN coalesce(k.unseen, 0) END AS reallocs_old_block_unseen,
           CASE WHEN c.first_block_id IS NOT NULL THEN coalesce(k.lost_allocs, 0) END AS lost_allocs,
           CASE WHEN c.first_block_id IS NOT NULL THEN coalesce(k.lost_frees, 0) END AS lost_frees,
           CASE WHEN c.first_block_id IS NOT NULL THEN coalesce(k.heap_destroyed, 0) END AS blocks_heap_destroyed,
           CASE WHEN c.first_block_id IS NOT NULL THEN coalesce(k.process_exited, 0) END AS blocks_process_exited,
           c.events_out_of_order,
           (SELECT count(*) FROM pdbs p WHERE p.status = 'loaded'
              AND p.pdb_id IN (SELECT pdb_id FROM images i WHERE i.capture_id = c.capture_id)) AS pdbs_loaded,
           (SELECT count(*) FROM pdbs p WHERE p.status IN ('pending', 'not_found')
              AND p.pdb_id IN (SELECT pdb_id FROM images i WHERE i.capture_id = c.capture_id)) AS pdbs_not_found,
           (SELECT count(*) FROM pdbs p WHERE p.status IN ('mismatch', 'error')
              AND p.pdb_id IN (SELECT pdb_id FROM images i WHERE i.capture_id = c.capture_id)) AS pdbs_unusable
    FROM captures c
    LEFT JOIN k ON k.capture_id = c.capture_id
    LEFT JOIN n ON n.capture_id = c.capture_id
    WHERE c.capture_id IN (SELECT capture_id FROM caps)
)
SELECT q.*,
       trim(
         CASE WHEN status = 'recording' THEN 'still being recorded (or its heapdb record was killed: heapdb repair finishes it); ' ELSE '' END ||
         CASE WHEN status = 'incomplete' THEN 'a recording that ended without its end (heapdb record was killed): it holds what was committed, and blocks it saw end or begin only in part; ' ELSE '' END ||
         CASE WHEN events_lost > 0 THEN printf('the session lost %d events; ', events_lost) ELSE '' END ||
         CASE WHEN buffers_lost > 0 THEN printf('the session lost %d buffers; ', buffers_lost) ELSE '' END ||
         CASE WHEN events_bad > 0 THEN printf('%d corrupt records (see ingest_errors); ', events_bad) ELSE '' END ||
         CASE WHEN heap_events_undecoded > 0 THEN printf('%d heap events could not be decoded: counts are incomplete; ', heap_events_undecoded) ELSE '' END ||
         CASE WHEN lost_allocs > 0 THEN printf('%d blocks were freed or reallocated without an Alloc at an address already freed (lost Allocs or double frees); ', lost_allocs) ELSE '' END ||
         CASE WHEN lost_frees > 0 THEN printf('%d blocks lost their Free (a new block took the address); ', lost_frees) ELSE '' END ||
         CASE WHEN events_out_of_order > 0 THEN printf('%d events arrived out of time order: some lifetimes may be wrong; ', events_out_of_order) ELSE '' END ||
         CASE WHEN pdbs_unusable > 0 THEN printf('%d PDBs found did not match their images or could not be read: their frames stay module+0xRVA (heapdb query symbol-status); ', pdbs_unusable) ELSE '' END ||
         CASE WHEN NOT lifetimes THEN 'no block lifetimes yet (stored by an older heapdb: run heapdb repair); ' ELSE '' END,
         '; ') AS notes
FROM q
ORDER BY capture_id;
