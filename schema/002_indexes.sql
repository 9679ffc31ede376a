-- heapdb schema: secondary indexes. Applied after the tables and re-applied after a bulk
-- load (heapdb drops them while loading a batch larger than the existing data, which is
-- several times faster than maintaining them row by row, then builds them again).
CREATE INDEX IF NOT EXISTS reallocs_by_heap        ON reallocs (heap, time_ns);
CREATE INDEX IF NOT EXISTS reallocs_by_new_address ON reallocs (new_address);
CREATE INDEX IF NOT EXISTS reallocs_by_old_address ON reallocs (old_address);
CREATE INDEX IF NOT EXISTS reallocs_by_source      ON reallocs (source);
CREATE INDEX IF NOT EXISTS reallocs_by_time        ON reallocs (time_ns);
CREATE INDEX IF NOT EXISTS reallocs_by_capture_stack ON reallocs (capture_id, stack_id);
CREATE INDEX IF NOT EXISTS heap_events_by_address  ON heap_events (address);
CREATE INDEX IF NOT EXISTS heap_events_by_heap     ON heap_events (heap, time_ns);
CREATE INDEX IF NOT EXISTS heap_events_by_capture_opcode ON heap_events (capture_id, opcode, pid);
CREATE INDEX IF NOT EXISTS processes_by_pid        ON processes (capture_id, pid);
CREATE INDEX IF NOT EXISTS threads_by_tid          ON threads (capture_id, tid);
CREATE INDEX IF NOT EXISTS images_by_process       ON images (capture_id, pid, base);
