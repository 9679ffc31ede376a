-- name: symbol-status
-- description: Per PDB of the captures' images: its modules, identity, what symbolization found (loaded, not_found, mismatch, error, pending) and why, how many call sites it names, and how many would gain a name if it were found: what to fetch next.
-- question: Which PDBs are missing, and which of them would name the most call sites?
-- param: capture = all : only the PDBs of this capture's images (default: every capture)
--
-- One row per PDB identity (file name, GUID, age) the images record in their RSDS
-- record. status: 'pending' until `heapdb symbolize` (or `ingest --symbols`) looked
-- for it, else what it found (pdbs.status; message says why not, path and found_by
-- where). frames: frames of call sites in its modules (site_frames); call_sites: call
-- sites whose call-site frame (sites.call_depth) is in one of its modules; named: those
-- named module!function; unnamed: those still module+0xRVA, which finding this PDB
-- would name; unnamed_events: the allocs and reallocs of the unnamed ones (site_stats):
-- the rows are ordered by it, the PDB worth fetching first on top. Call sites are
-- counted through the captures' stacks (capture_stacks), in the processes that loaded
-- the image. Images without an RSDS record have no PDB and no row.
WITH caps AS (SELECT capture_id FROM captures WHERE :capture IS NULL OR capture_id = :capture),
img AS (
    -- The PDB identity of each image: its pdbs row once symbolization has seen it,
    -- else the file name of its pdb_path (directory dropped), GUID and age.
    SELECT i.capture_id, i.pid, i.name AS module, i.pdb_id, i.image_row,
           coalesce(p.name, replace(i.pdb_path, rtrim(i.pdb_path, replace(replace(i.pdb_path, '\', ''), '/', '')), ''))
             AS pdb, coalesce(p.guid, i.pdb_guid) AS guid, coalesce(p.age, i.pdb_age) AS age
    FROM images i
    LEFT JOIN pdbs p ON p.pdb_id = i.pdb_id
    WHERE i.pdb_guid IS NOT NULL AND i.capture_id IN (SELECT capture_id FROM caps)
),
-- Each PDB's modules, listed in the order their images were stored (first image_row):
-- said explicitly, as DuckDB (and SQLite under another plan) keeps no input order.
mods AS (
    SELECT lower(pdb) AS pdb_key, guid, age, module, max(pdb) AS pdb, max(pdb_id) AS pdb_id,
           min(image_row) AS first_row
    FROM img GROUP BY lower(pdb), guid, age, module
),
ids AS (
    SELECT pdb_key, guid, age, max(pdb) AS pdb, max(pdb_id) AS pdb_id,
           group_concat(module, ',' ORDER BY first_row) AS modules
    FROM mods GROUP BY pdb_key, guid, age
),
-- Call sites seen in a process that loaded the PDB's module: (pdb, site).
cs AS (
    SELECT DISTINCT lower(m.pdb) AS pdb_key, m.guid, m.age, s.site_id, s.call_function IS NOT NULL AS named
    FROM capture_stacks c
    JOIN sites s ON s.site_id = c.site_id
    JOIN img m ON m.capture_id = c.capture_id AND m.pid = c.pid AND m.module = s.caller_module
    WHERE c.capture_id IN (SELECT capture_id FROM caps)
),
ev AS (
    SELECT site_id, sum(allocs + reallocs) AS events
    FROM site_stats WHERE capture_id IN (SELECT capture_id FROM caps) AND site_id IS NOT NULL
    GROUP BY site_id
),
per AS (
    SELECT cs.pdb_key, cs.guid, cs.age,
           count(*) AS call_sites,
           sum(cs.named) AS named,
           sum(NOT cs.named) AS unnamed,
           sum(CASE WHEN NOT cs.named THEN coalesce(ev.events, 0) ELSE 0 END) AS unnamed_events
    FROM cs LEFT JOIN ev ON ev.site_id = cs.site_id
    GROUP BY cs.pdb_key, cs.guid, cs.age
)
SELECT ids.modules,
       ids.pdb,
       ids.guid,
       ids.age,
       coalesce(p.status, 'pending') AS status,
       p.message,
       p.path,
       p.found_by,
       coalesce(p.rvas, 0) AS rvas,
       (SELECT count(*) FROM site_frames sf WHERE sf.pdb_id = ids.pdb_id) AS frames,
       coalesce(per.call_sites, 0) AS call_sites,
       coalesce(per.named, 0) AS named,
       coalesce(per.unnamed, 0) AS unnamed,
       coalesce(per.unnamed_events, 0) AS unnamed_events,
       ids.pdb_id
FROM ids
LEFT JOIN pdbs p ON p.pdb_id = ids.pdb_id
LEFT JOIN per ON per.pdb_key = ids.pdb_key AND per.guid = ids.guid AND per.age = ids.age
ORDER BY unnamed_events DESC, unnamed DESC, call_sites DESC, ids.pdb, ids.guid, ids.age;
