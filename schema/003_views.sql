-- heapdb schema: views for people. Re-created by every heapdb run (they hold no data),
-- so they can be improved without a migration.

-- One name per process of a capture (a pid reused within one capture shows the last name).
DROP VIEW IF EXISTS process_names;
CREATE VIEW process_names AS
SELECT capture_id, pid, max(name) AS name, max(command_line) AS command_line
FROM processes GROUP BY capture_id, pid;

-- Captures with readable times.
DROP VIEW IF EXISTS captures_v;
CREATE VIEW captures_v AS
SELECT capture_id, file_name, path, size_bytes, fingerprint, os_version, os_build,
       pointer_size, cpu_count, clock_type, logger_name,
       strftime('%Y-%m-%dT%H:%M:%SZ', start_time_ns / 1000000000, 'unixepoch') AS start_time,
       strftime('%Y-%m-%dT%H:%M:%SZ', end_time_ns / 1000000000, 'unixepoch') AS end_time,
       round((coalesce(last_event_ns, start_time_ns) - start_time_ns) / 1e9, 3) AS seconds_traced,
       events_lost, buffers_lost, events_seen, events_decoded, events_skipped, events_bad,
       stacks_matched, moving_reallocs_linked, heap_events_undecoded, status, ingest_finished,
       heapdb_version,
       (SELECT group_concat(key || '=' || value, ' ' ORDER BY key) FROM capture_labels l
        WHERE l.capture_id = captures.capture_id) AS labels   -- 'branch=main build=26100.1234'
FROM captures;

-- Every ReAlloc with hex addresses, source names, process names and the size change.
DROP VIEW IF EXISTS reallocs_v;
CREATE VIEW reallocs_v AS
SELECT r.id,
       r.capture_id,
       c.file_name AS capture,
       strftime('%Y-%m-%dT%H:%M:%S', r.time_ns / 1000000000, 'unixepoch')
         || printf('.%09dZ', r.time_ns % 1000000000) AS time,
       r.time_ns,
       r.pid,
       p.name AS process,
       r.tid,
       r.cpu,
       printf('0x%x', r.heap) AS heap_hex,
       printf('0x%x', r.new_address) AS new_address_hex,
       printf('0x%x', r.old_address) AS old_address_hex,
       r.new_size,
       r.old_size,
       r.new_size - r.old_size AS delta,          -- bytes grown (negative: shrunk)
       r.moved,                                   -- 1 when the block moved (data copied)
       CASE WHEN r.moved THEN min(r.new_size, r.old_size) ELSE 0 END AS bytes_copied,
       coalesce(s.name, CAST(r.source AS TEXT)) AS source,
       r.source AS source_id,
       r.stack_id,
       -- CAST: 0/1 on DuckDB too, as in SQLite (a comparison is a BOOLEAN there)
       CAST(r.alloc_id IS NOT NULL AS INTEGER) AS logged_with_alloc_free,
       r.pointer_size,
       r.file_offset,
       r.heap, r.new_address, r.old_address       -- numeric forms, for filters and joins
FROM reallocs r
JOIN captures c ON c.capture_id = r.capture_id
LEFT JOIN sources s ON s.source = r.source
LEFT JOIN process_names p ON p.capture_id = r.capture_id AND p.pid = r.pid;

-- Every other heap event, readable.
DROP VIEW IF EXISTS heap_events_v;
CREATE VIEW heap_events_v AS
SELECT e.id,
       e.capture_id,
       c.file_name AS capture,
       strftime('%Y-%m-%dT%H:%M:%S', e.time_ns / 1000000000, 'unixepoch')
         || printf('.%09dZ', e.time_ns % 1000000000) AS time,
       e.time_ns,
       e.pid,
       p.name AS process,
       e.tid,
       e.cpu,
       coalesce(o.name, CAST(e.opcode AS TEXT)) AS kind,
       e.opcode,
       printf('0x%x', e.heap) AS heap_hex,
       CASE WHEN e.address IS NOT NULL THEN printf('0x%x', e.address) END AS address_hex,
       e.size,
       coalesce(s.name, CAST(e.source AS TEXT)) AS source,
       e.stack_id,
       e.realloc_internal,
       e.extra,
       e.pointer_size,
       e.file_offset,
       e.heap, e.address
FROM heap_events e
JOIN captures c ON c.capture_id = e.capture_id
LEFT JOIN heap_opcodes o ON o.opcode = e.opcode
LEFT JOIN sources s ON s.source = e.source
LEFT JOIN process_names p ON p.capture_id = e.capture_id AND p.pid = e.pid;

-- Each stack of each capture with what the site reports group it by, one row per
-- grouping (`grp`, the reports' --param group): 'function' keys the call site by
-- function (module!function once symbolized, else module+0xRVA); 'stack' the whole
-- stack's identity (by function once symbolized: the same across rebuilds); 'module'
-- the calling module. `site` is the name a report shows.
DROP VIEW IF EXISTS stack_groups_v;
CREATE VIEW stack_groups_v AS
SELECT cs.capture_id, cs.pid, cs.stack_id, si.site_id, g.grp,
       CASE g.grp WHEN 'stack' THEN CAST(coalesce(si.function_site_id, si.site_id) AS TEXT)
                  WHEN 'module' THEN coalesce(si.caller_module, '(outside any image)')
                  ELSE coalesce(si.call_function, si.call_site) END AS site_key,
       CASE g.grp WHEN 'module' THEN coalesce(si.caller_module, '(outside any image)')
                  ELSE coalesce(si.call_function, si.call_site) END AS site
FROM capture_stacks cs
JOIN sites si ON si.site_id = cs.site_id
CROSS JOIN (SELECT 'function' AS grp UNION ALL SELECT 'stack' UNION ALL SELECT 'module') g;

-- Frames of each site, innermost first, named as in stack_frames_v: `frame` is
-- module!function+0xOFF (offset from the return address, as debuggers print it) when
-- the PDB named it, else module+0xRVA (or the address outside every image).
DROP VIEW IF EXISTS site_frames_v;
CREATE VIEW site_frames_v AS
SELECT sf.site_id, sf.depth,
       CASE WHEN sym.name IS NOT NULL THEN sf.module || '!' || sym.name || printf('+0x%x', sf.rva - sym.function_rva)
            WHEN sf.module IS NOT NULL THEN sf.module || printf('+0x%x', sf.rva)
            ELSE printf('0x%x', sf.address) END AS frame,
       sym.file || ':' || sym.line AS source,
       (SELECT group_concat(i.name || coalesce(' (' || i.file || ':' || i.line || ')', ''), ' in ' ORDER BY i.inline_depth DESC)
        FROM symbols i WHERE i.pdb_id = sym.pdb_id AND i.rva = sym.rva AND i.inline_depth > 0) AS inlined,
       sym.function, sf.module, sf.rva, sf.address
FROM site_frames sf
-- The symbol of a return address (depth > 0) is the call instruction's, one byte before.
-- (A CASE rather than subtracting the comparison: DuckDB does no arithmetic on booleans.)
LEFT JOIN symbols sym ON sym.pdb_id = sf.pdb_id AND sym.rva = sf.rva - CASE WHEN sf.depth > 0 THEN 1 ELSE 0 END AND sym.inline_depth = 0;

-- Stack frames, innermost first, named: `frame` is module!function+0xOFF once the
-- module's PDB was found (heapdb symbolize), else module+0xRVA, else the address;
-- `source` the file:line of the call, `inlined` the functions inlined at that point
-- (innermost first). Names come through the site the stack was first seen as
-- (stacks.site_id).
DROP VIEW IF EXISTS stack_frames_v;
CREATE VIEW stack_frames_v AS
SELECT f.stack_id, f.depth, printf('0x%x', f.address) AS address_hex,
       coalesce(n.frame, printf('0x%x', f.address)) AS frame,
       n.source, n.inlined, n.function, f.address
FROM stack_frames f
LEFT JOIN stacks st ON st.stack_id = f.stack_id
LEFT JOIN site_frames_v n ON n.site_id = st.site_id AND n.depth = f.depth;

-- Images with hex bases, and what symbolization found for their PDB.
DROP VIEW IF EXISTS images_v;
CREATE VIEW images_v AS
SELECT i.capture_id, i.pid, i.name, printf('0x%x', i.base) AS base_hex, i.size, i.path,
       i.pdb_guid, i.pdb_age, i.pdb_path,
       coalesce(p.status, CASE WHEN i.pdb_guid IS NULL THEN 'no_pdb_record' ELSE 'pending' END) AS symbols,
       p.path AS pdb_file, i.base
FROM images i
LEFT JOIN pdbs p ON p.pdb_id = i.pdb_id;

-- The PDBs of the captures' images, what was found, and how many call-site frames
-- each names: what to fetch next when reports still show module+0xRVA.
DROP VIEW IF EXISTS pdbs_v;
CREATE VIEW pdbs_v AS
SELECT p.pdb_id, p.name, p.guid, p.age, p.status, p.path, p.found_by, p.message, p.rvas,
       (SELECT count(*) FROM site_frames sf WHERE sf.pdb_id = p.pdb_id) AS site_frames,
       -- its modules, in the order their images were stored (first image_row): said
       -- explicitly, as DuckDB keeps no input order
       (SELECT group_concat(m.name, ',' ORDER BY m.first_row)
        FROM (SELECT i.name, min(i.image_row) AS first_row FROM images i
              WHERE i.pdb_id = p.pdb_id GROUP BY i.name) m) AS modules,
       strftime('%Y-%m-%dT%H:%M:%SZ', p.updated_ns / 1e9, 'unixepoch') AS updated
FROM pdbs p;

-- Call sites with their names: `call_site` is module!function once symbolized, else
-- module+0xRVA; `stack` the whole stack, innermost first, each frame as in
-- site_frames_v, separated by ' <- ' (read: called from).
DROP VIEW IF EXISTS sites_v;
CREATE VIEW sites_v AS
SELECT s.site_id, coalesce(s.call_function, s.call_site) AS call_site, s.caller_module,
       s.call_depth, s.depth, coalesce(s.function_site_id, s.site_id) AS site_key,
       (SELECT group_concat(n.frame, ' <- ' ORDER BY n.depth) FROM site_frames_v n
        WHERE n.site_id = s.site_id) AS stack,
       s.call_function, s.function_site_id
FROM sites s;

-- What each call site did in each heap of each capture, with its names: the view the
-- cross-capture reports (trend, capture-diff) group. `site` is the call site
-- (module!function once symbolized, else module+0xRVA); `site_key` the identity of the
-- whole stack (by function once symbolized, else by module + RVA); `module` the
-- calling module (what still matches after a rebuild).
DROP VIEW IF EXISTS site_stats_v;
CREATE VIEW site_stats_v AS
SELECT st.capture_id,
       st.process,
       st.heap_identity,
       st.pid,
       printf('0x%x', st.heap) AS heap_hex,
       st.site_id,
       CASE WHEN st.site_id IS NULL THEN 'no stack: heap ' || st.heap_identity
            ELSE CAST(coalesce(s.function_site_id, s.site_id) AS TEXT) END AS site_key,
       CASE WHEN st.site_id IS NULL THEN '(no stack) heap ' || st.heap_identity
            ELSE coalesce(s.call_function, s.call_site) END AS site,
       CASE WHEN st.site_id IS NULL THEN '(no stack)'
            ELSE coalesce(s.caller_module, '(outside any image)') END AS module,
       st.allocs, st.alloc_bytes, st.reallocs, st.moves, st.bytes_copied, st.bytes_grown,
       st.live_blocks, st.live_bytes   -- outstanding at the end of the capture (NULL: lifetimes not computed)
FROM site_stats st
LEFT JOIN sites s ON s.site_id = st.site_id;

-- Labels of each capture, one row per label.
DROP VIEW IF EXISTS capture_labels_v;
CREATE VIEW capture_labels_v AS
SELECT l.capture_id, c.file_name, l.key, l.value
FROM capture_labels l JOIN captures c ON c.capture_id = l.capture_id;

-- Block lifetimes, readable: hex addresses, source and process names, times as text
-- and in seconds after the session start, the lifetime's length, its call site, and its
-- WPA class over the whole capture (AIFO: allocated in the trace and never ended;
-- AOFI/AOFO: allocated before the trace; for another window see the lifetimes report).
DROP VIEW IF EXISTS blocks_v;
CREATE VIEW blocks_v AS
SELECT b.block_id,
       b.capture_id,
       c.file_name AS capture,
       b.pid,
       p.name AS process,
       printf('0x%x', b.heap) AS heap_hex,
       printf('0x%x', b.address) AS address_hex,
       b.size,
       coalesce(s.name, CAST(b.source AS TEXT)) AS source,
       sk.name AS start_kind,
       round((b.start_ns - c.start_time_ns) / 1e9, 9) AS start_s,
       ek.name AS end_kind,
       round((b.end_ns - c.start_time_ns) / 1e9, 9) AS end_s,
       round((b.end_ns - b.start_ns) / 1e6, 6) AS lifetime_ms,   -- NULL when a side is unknown
       CASE WHEN b.start_kind <= 2           -- alloc, realloc: allocated inside the trace
            THEN CASE WHEN b.end_kind = 7 THEN 'AIFO' ELSE 'AIFI' END   -- 7: live_at_end
            ELSE CASE WHEN b.end_kind = 7 THEN 'AOFO' ELSE 'AOFI' END END AS wpa_class,
       coalesce(si.call_function, si.call_site) AS call_site,
       b.start_stack_id,
       b.end_stack_id,
       b.chain_id,
       b.chain_index,
       b.prev_block_id,
       b.start_event_id,
       b.end_event_id,
       b.start_ns, b.end_ns, b.heap, b.address   -- numeric forms, for filters and joins
FROM blocks b
JOIN captures c ON c.capture_id = b.capture_id
JOIN block_start_kinds sk ON sk.kind = b.start_kind
JOIN block_end_kinds ek ON ek.kind = b.end_kind
LEFT JOIN sources s ON s.source = b.source
LEFT JOIN process_names p ON p.capture_id = b.capture_id AND p.pid = b.pid
LEFT JOIN capture_stacks cs ON cs.capture_id = b.capture_id AND cs.pid = b.pid AND cs.stack_id = b.start_stack_id
LEFT JOIN sites si ON si.site_id = cs.site_id;

-- Outstanding-bytes peaks per process, readable.
DROP VIEW IF EXISTS process_usage_v;
CREATE VIEW process_usage_v AS
SELECT u.capture_id, u.pid, p.name AS process, u.peak_bytes, u.peak_blocks,
       round((u.peak_ns - c.start_time_ns) / 1e9, 9) AS peak_s,
       u.end_bytes, u.end_blocks, u.peak_ns, u.peak_event_id
FROM process_usage u
JOIN captures c ON c.capture_id = u.capture_id
LEFT JOIN process_names p ON p.capture_id = u.capture_id AND p.pid = u.pid;
