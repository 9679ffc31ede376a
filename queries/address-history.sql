-- name: address-history
-- description: Every heap event that touched one address (as block, new or old address), in time order.
-- question: What happened to the block at this address?
-- param: address = required : the block address (hex like 0x1f3a2b40 or decimal)
-- param: capture = all : only this capture
-- param: pid = all : only this process
-- param: limit = 1000 : rows to return
--
-- role says how the event touched the address: 'block' (Alloc/Free/other kinds),
-- 'new' (a ReAlloc produced it) or 'old' (a ReAlloc consumed it; same for an in-place one).
-- site: the event's call site (the first frame outside the heap, the runtimes and the
-- allocator functions) as module!function once symbolized (heapdb symbolize), else
-- module+0xRVA, else 'stack N'; NULL for an event without a stack. stack: its whole
-- stack, innermost first, each frame named as in site_frames_v, ' <- ' between them.
SELECT h.capture_id, h.time_ns, h.time, h.pid, h.process, h.tid, h.kind, h.role, h.heap, h.address, h.new_address, h.old_address,
       h.size, h.old_size, h.source, h.moved, h.stack_id, h.id,
       CASE WHEN h.stack_id IS NOT NULL THEN coalesce(v.call_site, 'stack ' || h.stack_id) END AS site,
       v.stack
FROM (
    SELECT r.capture_id, r.time_ns, r.time, r.pid, r.process, r.tid, 'ReAlloc' AS kind,
           CASE WHEN r.new_address = :address AND r.old_address = :address THEN 'new+old'
                WHEN r.new_address = :address THEN 'new' ELSE 'old' END AS role,
           r.heap, NULL AS address, r.new_address, r.old_address, r.new_size AS size, r.old_size,
           r.source, r.moved, r.stack_id, r.id
    FROM reallocs_v r
    WHERE (r.new_address = :address OR r.old_address = :address)
      AND (:capture IS NULL OR r.capture_id = :capture)
      AND (:pid IS NULL OR r.pid = :pid)
    UNION ALL
    SELECT e.capture_id, e.time_ns, e.time, e.pid, e.process, e.tid, e.kind, 'block', e.heap, e.address,
           NULL, NULL, e.size, NULL, e.source, NULL, e.stack_id, e.id
    FROM heap_events_v e
    WHERE e.address = :address
      AND (:capture IS NULL OR e.capture_id = :capture)
      AND (:pid IS NULL OR e.pid = :pid)
) h
LEFT JOIN capture_stacks cs ON cs.capture_id = h.capture_id AND cs.pid = h.pid AND cs.stack_id = h.stack_id
LEFT JOIN sites_v v ON v.site_id = cs.site_id
ORDER BY h.capture_id, h.time_ns, h.id
LIMIT :limit;
