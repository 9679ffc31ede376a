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
SELECT capture_id, time_ns, time, pid, process, tid, kind, role, heap, address, new_address, old_address, size, old_size, source, moved, stack_id, id
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
)
ORDER BY capture_id, time_ns, id
LIMIT :limit;
