-- heapdb schema: secondary indexes, one per line (heapdb builds, drops and rebuilds them
-- by this list). A bulk load into a database smaller than the batch drops them and builds
-- them once at the end; an append keeps them and moves each capture's rows in from
-- unindexed staging tables in one statement.
--
-- Every index of the event tables is led by capture_id: a night's entries then sit
-- together at the end of each index, so appending a night costs the same whatever the
-- history (an index led by the address alone puts each new entry at a random place in
-- an index as large as the history, and appends slow down night after night). Lookups
-- across captures by address, heap or time still use them: SQLite skip-scans the few
-- capture_id values (the statistics `heapdb ingest` gathers tell it to).
--
-- What uses them: address-history (the three address indexes); heap, source and time
-- are the columns analysts filter on in ad hoc SQL. Reports that read one capture scan
-- its id range (captures.first_event_id..last_event_id, first_block_id..last_block_id)
-- and need no index; the per-kind and per-heap questions are answered by the summaries
-- written at ingest (heap_event_counts, block_counts), so heap_events has no index by
-- opcode any more (it served growth-chains and data-quality before the block
-- lifetimes, and cost 1.1 s per 2 M-event capture).
-- blocks_by_chain follows a realloc chain (growth-chains, leak-suspects, and
-- `WHERE chain_id = ?` in ad hoc SQL; a chain's blocks have increasing ids, so ORDER BY
-- block_id is chain order). blocks has no address index: it would cost 1.1 s per 1.2 M
-- blocks, more than a quarter of what the lifetimes add to an ingest
-- (docs/performance.md); find a block by address within its capture's id range
-- (captures.first_block_id..last_block_id): a scan of one capture.
CREATE INDEX IF NOT EXISTS reallocs_by_heap        ON reallocs (capture_id, heap, time_ns);
CREATE INDEX IF NOT EXISTS reallocs_by_new_address ON reallocs (capture_id, new_address);
CREATE INDEX IF NOT EXISTS reallocs_by_old_address ON reallocs (capture_id, old_address);
CREATE INDEX IF NOT EXISTS reallocs_by_source      ON reallocs (capture_id, source);
CREATE INDEX IF NOT EXISTS reallocs_by_time        ON reallocs (capture_id, time_ns);
CREATE INDEX IF NOT EXISTS reallocs_by_capture_stack ON reallocs (capture_id, stack_id);
CREATE INDEX IF NOT EXISTS heap_events_by_address  ON heap_events (capture_id, address);
CREATE INDEX IF NOT EXISTS heap_events_by_heap     ON heap_events (capture_id, heap, time_ns);
CREATE INDEX IF NOT EXISTS processes_by_pid        ON processes (capture_id, pid);
CREATE INDEX IF NOT EXISTS threads_by_tid          ON threads (capture_id, tid);
CREATE INDEX IF NOT EXISTS images_by_process       ON images (capture_id, pid, base);
CREATE INDEX IF NOT EXISTS site_stats_by_capture   ON site_stats (capture_id, site_id);
CREATE INDEX IF NOT EXISTS capture_labels_by_key   ON capture_labels (key, value);
CREATE INDEX IF NOT EXISTS blocks_by_chain         ON blocks (chain_id);
CREATE INDEX IF NOT EXISTS heap_event_counts_by_capture ON heap_event_counts (capture_id, pid, heap);
CREATE INDEX IF NOT EXISTS block_counts_by_capture ON block_counts (capture_id, pid, heap);
