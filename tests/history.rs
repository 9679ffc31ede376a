//! History across nights: identities that survive ASLR, restarts and rebuilds, labels,
//! and the cross-capture reports. Expected values come from the synthesizer's
//! manifests (what it wrote), never from the SQL under test.

mod common;

use common::{run as heapdb, s};
use rusqlite::Connection;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Writes a batch and returns its captures (sorted) and manifest.
fn synth(dir: &Path, extra: &[&str]) -> (Vec<PathBuf>, Json) {
    let mut args = vec![];
    if !extra.contains(&"--stack-keys") {
        args.push("--stacks");
    }
    args.extend_from_slice(extra);
    let v = common::synth(dir, &args);
    let m: Json =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    (v, m)
}

fn ingest(db: &Path, files: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["ingest", "--quiet", "--db", s(db)];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|p| s(p)));
    heapdb(&args)
}

fn query_json(db: &Path, args: &[&str]) -> Vec<Json> {
    let mut a = vec!["query", "--db", s(db), "--format", "jsonl"];
    a.extend_from_slice(args);
    ok(heapdb(&a))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (process identity, frames) → reallocs, of the sites a manifest file says were used.
fn manifest_sites(file: &Json) -> BTreeMap<(String, Vec<String>), (u64, u64)> {
    let mut out = BTreeMap::new();
    for p in file["processes"].as_array().unwrap() {
        for site in p["sites"].as_array().unwrap() {
            let allocs = site["allocs"].as_u64().unwrap();
            let reallocs = site["reallocs"].as_u64().unwrap();
            if allocs + reallocs == 0 {
                continue;
            }
            let frames = site["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            out.insert(
                (p["identity"].as_str().unwrap().to_string(), frames),
                (allocs, reallocs),
            );
        }
    }
    out
}

/// A site's frames as the database names them.
fn frames_of(c: &Connection, site_id: i64) -> Vec<String> {
    let mut st = c
        .prepare("SELECT frame FROM site_frames_v WHERE site_id = ?1 ORDER BY depth")
        .unwrap();
    st.query_map([site_id], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn two_nights_match_every_site_the_manifests_share() {
    let d = tempfile::tempdir().unwrap();
    // 12 processes: three of them are chrome.exe, told apart by their command lines.
    let (files, m) = synth(
        &d.path().join("n"),
        &[
            "--files",
            "2",
            "--events-per-file",
            "60000",
            "--processes",
            "12",
            "--pointer-size",
            "mixed",
        ],
    );
    let db = d.path().join("h.db");
    ok(ingest(&db, &[&files[0], &files[1]], &[]));
    let c = Connection::open(&db).unwrap();

    // The two nights really differ in everything the OS chooses.
    let differ = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        differ("SELECT count(*) FROM images a JOIN images b ON a.capture_id = 1 AND b.capture_id = 2 AND a.base = b.base AND a.name = b.name AND a.name LIKE '%.exe'"),
        0,
        "executables load at new bases"
    );
    assert_eq!(
        differ("SELECT count(*) FROM processes a JOIN processes b ON a.capture_id = 1 AND b.capture_id = 2 AND a.pid = b.pid"),
        0
    );
    assert_eq!(
        differ("SELECT count(*) FROM heaps a JOIN heaps b ON a.capture_id = 1 AND b.capture_id = 2 AND a.heap = b.heap AND a.process = b.process"),
        0
    );
    assert_eq!(
        differ("SELECT count(*) FROM stacks WHERE stack_id IN (SELECT stack_id FROM reallocs WHERE capture_id = 1) AND stack_id IN (SELECT stack_id FROM reallocs WHERE capture_id = 2)"),
        0,
        "no absolute stack is shared"
    );

    // Identities of processes and heaps are the manifest's.
    let files_m = m["files"].as_array().unwrap();
    for (cid, f) in files_m.iter().enumerate() {
        let mut want: BTreeSet<(u64, String)> = BTreeSet::new();
        for p in f["processes"].as_array().unwrap() {
            want.insert((
                p["pid"].as_u64().unwrap(),
                p["identity"].as_str().unwrap().into(),
            ));
        }
        let mut st = c
            .prepare("SELECT pid, identity FROM processes WHERE capture_id = ?1")
            .unwrap();
        let got: BTreeSet<(u64, String)> = st
            .query_map([cid as i64 + 1], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got, want);
        let want: BTreeSet<(u64, u64, String)> = f["heaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["pid"].as_u64().unwrap(),
                    h["handle"].as_u64().unwrap(),
                    h["identity"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut st = c
            .prepare("SELECT pid, heap, identity FROM heaps WHERE capture_id = ?1")
            .unwrap();
        let got: BTreeSet<(u64, u64, String)> = st
            .query_map([cid as i64 + 1], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get(2)?,
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got, want);
    }

    // capture-diff matches every site both manifests have, with their numbers.
    let a = manifest_sites(&files_m[0]);
    let b = manifest_sites(&files_m[1]);
    let shared: BTreeSet<_> = a.keys().filter(|k| b.contains_key(*k)).cloned().collect();
    assert!(shared.len() > 100, "{} shared sites", shared.len());
    let rows = query_json(
        &db,
        &[
            "capture-diff",
            "--param",
            "group=stack",
            "--param",
            "limit=100000",
        ],
    );
    let mut both = BTreeSet::new();
    for r in &rows {
        let key = (
            r["process"].as_str().unwrap().to_string(),
            frames_of(&c, r["site_id"].as_i64().unwrap()),
        );
        match r["status"].as_str().unwrap() {
            "both" => {
                assert_eq!(r["allocs_a"].as_u64().unwrap(), a[&key].0, "{key:?}");
                assert_eq!(r["reallocs_a"].as_u64().unwrap(), a[&key].1, "{key:?}");
                assert_eq!(r["reallocs_b"].as_u64().unwrap(), b[&key].1, "{key:?}");
                both.insert(key);
            }
            "new" => assert!(!a.contains_key(&key) && b.contains_key(&key), "{key:?}"),
            "gone" => assert!(a.contains_key(&key) && !b.contains_key(&key), "{key:?}"),
            other => panic!("status {other}"),
        }
    }
    assert_eq!(both, shared);
}

#[test]
fn trend_flags_exactly_the_planted_regression() {
    trend_flags_only(&[
        "--events-per-file",
        "60000",
        "--processes",
        "4",
        "--seed",
        "5",
    ]);
}

/// The README's example: small nights, so counting noise is large. A site of the
/// browser's renderer went 106 83 75 96 85 100 63 78 91 102: three rises out of a dip,
/// +62 %, beyond Poisson noise of the run's ends, and was flagged before the rise had
/// to clear the level of the points before it.
#[test]
fn trend_does_not_flag_a_rebound_from_a_dip() {
    trend_flags_only(&["--events-per-file", "30000"]);
}

/// Ten nights with site 4 of process 1 growing 30 % a night: `trend` flags that site
/// and no other.
fn trend_flags_only(extra: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let mut args = vec!["--files", "10", "--regression", "1:4=1.3"];
    args.extend_from_slice(extra);
    let (files, m) = synth(&d.path().join("n"), &args);
    let db = d.path().join("h.db");
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    ok(ingest(&db, &refs, &[]));
    let c = Connection::open(&db).unwrap();
    let truth = &m["files"][9]["regression"];
    let want_frames: Vec<String> = truth["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    for metric in ["reallocs", "allocs"] {
        let rows = query_json(
            &db,
            &[
                "trend",
                "--param",
                "only_rising=1",
                "--param",
                &format!("metric={metric}"),
            ],
        );
        assert_eq!(rows.len(), 1, "{metric}: {rows:#?}");
        assert_eq!(rows[0]["process"], truth["process"]);
        assert_eq!(rows[0]["site"], truth["call_site"]);
        assert_eq!(
            frames_of(&c, rows[0]["site_id"].as_i64().unwrap()),
            want_frames
        );
        assert_eq!(rows[0]["points"], 10);
        // The last value is the manifest's count for that site on the last night.
        let last_night = &m["files"][9]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["identity"] == truth["process"])
            .unwrap()["sites"];
        let site = last_night
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["frames"].as_array().unwrap().len() == want_frames.len()
                    && s["frames"][0] == want_frames[0]
            })
            .unwrap();
        assert_eq!(
            rows[0]["last_value"].as_f64().unwrap(),
            site[metric].as_f64().unwrap()
        );
    }
    // Per process, the regressed process rises too; the others do not.
    let rows = query_json(
        &db,
        &[
            "trend",
            "--param",
            "group=process",
            "--param",
            "only_rising=1",
        ],
    );
    assert!(
        rows.iter().all(|r| r["process"] == truth["process"]),
        "{rows:#?}"
    );
    // Over the last 3 captures only, a run of 3 rises is impossible: nothing flagged.
    let rows = query_json(
        &db,
        &["trend", "--param", "last=3", "--param", "only_rising=1"],
    );
    assert!(rows.is_empty(), "{rows:#?}");
}

#[test]
fn labels_from_flags_and_paths_round_trip_and_select_captures() {
    let d = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (night, build) in [
        ("2026-11-20", "26100.1000"),
        ("2026-11-21", "26100.1001"),
        ("2026-11-22", "26100.1001"),
    ] {
        let dir = d.path().join("drops").join("main").join(build).join(night);
        let (files, _) = synth(
            &dir,
            &[
                "--files",
                "1",
                "--events-per-file",
                "3000",
                "--seed",
                &night[8..],
            ],
        );
        paths.push(files[0].clone());
    }
    let db = d.path().join("h.db");
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let o = ingest(
        &db,
        &refs,
        &[
            "--label",
            "host=lab-7",
            "--label-from-path",
            r"drops/(?P<branch>[^/]+)/(?P<build>[0-9.]+)/(?P<night>[0-9-]+)/",
            "--label-from-path",
            r"(?P<never>nomatch)",
        ],
    );
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("does not match this path").count(), 3, "{err}");
    let rows = query_json(
        &db,
        &[
            "--sql",
            "SELECT capture_id, labels FROM captures_v ORDER BY 1",
        ],
    );
    assert_eq!(
        rows.iter()
            .map(|r| r["labels"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "branch=main build=26100.1000 host=lab-7 night=2026-11-20",
            "branch=main build=26100.1001 host=lab-7 night=2026-11-21",
            "branch=main build=26100.1001 host=lab-7 night=2026-11-22",
        ]
    );
    // A label filter: `latest` is the latest capture with the label; views follow.
    let rows = query_json(
        &db,
        &["--sql", "SELECT max(capture_id) AS c, (SELECT count(*) FROM captures_v) AS n, (SELECT count(DISTINCT capture_id) FROM reallocs_v) AS r FROM captures", "--param", "label.build=26100.1000"],
    );
    assert_eq!(
        (
            rows[0]["c"].as_i64(),
            rows[0]["n"].as_i64(),
            rows[0]["r"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let rows = query_json(
        &db,
        &[
            "--sql",
            "SELECT count(*) AS n FROM captures",
            "--param",
            "label.night=2026-11-2[12]",
            "--param",
            "label.host=lab-7",
        ],
    );
    assert_eq!(rows[0]["n"], 2);
    // capture-diff within a build: its two captures.
    let rows = query_json(
        &db,
        &[
            "capture-diff",
            "--param",
            "label.build=26100.1001",
            "--param",
            "limit=1",
        ],
    );
    assert_eq!(
        (rows[0]["capture_a"].as_i64(), rows[0]["capture_b"].as_i64()),
        (Some(2), Some(3))
    );
    // trend by build: two points (one of them the average of two captures), in order
    // of each build's first capture.
    let c = Connection::open(&db).unwrap();
    let first_build: String = c
        .query_row(
            "SELECT value FROM capture_labels JOIN captures USING (capture_id) WHERE key = 'build' ORDER BY start_time_ns LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let rows = query_json(
        &db,
        &[
            "trend",
            "--param",
            "by=build",
            "--param",
            "group=process",
            "--param",
            "limit=1",
        ],
    );
    assert_eq!(rows[0]["points"], 2);
    assert_eq!(rows[0]["first_point"].as_str().unwrap(), first_build);
    // Unknown label value: exit 2 with the values there are.
    let o = heapdb(&[
        "query",
        "--db",
        s(&db),
        "top-realloc-sites",
        "--param",
        "label.build=1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("build is one of: 26100.1000, 26100.1001"));
    // Bad labels are usage errors, before anything is read.
    for bad in [
        &["--label", "build"][..],
        &["--label-from-path", "(\\d+)"][..],
    ] {
        let o = ingest(&d.path().join("x.db"), &[&paths[0]], bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn a_rebuilt_night_matches_by_module() {
    let d = tempfile::tempdir().unwrap();
    let (a, ma) = synth(
        &d.path().join("a"),
        &["--files", "1", "--events-per-file", "20000", "--seed", "3"],
    );
    let (b, mb) = synth(
        &d.path().join("b"),
        &[
            "--files",
            "1",
            "--events-per-file",
            "20000",
            "--seed",
            "4",
            "--build",
            "1",
        ],
    );
    let db = d.path().join("h.db");
    ok(ingest(&db, &[&a[0], &b[0]], &[]));
    // Every call site moved: no stack matches...
    let rows = query_json(
        &db,
        &[
            "capture-diff",
            "--param",
            "a=1",
            "--param",
            "b=2",
            "--param",
            "limit=100000",
        ],
    );
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["status"] != "both"),
        "a rebuilt site matched by RVA"
    );
    // ...but every process's calling modules do (its executable, and heapdemo.dll,
    // which was rebuilt too), with the manifest's totals.
    let rows = query_json(
        &db,
        &[
            "capture-diff",
            "--param",
            "a=1",
            "--param",
            "b=2",
            "--param",
            "group=module",
            "--param",
            "limit=1000",
        ],
    );
    let total = |m: &Json, p: &str, module: &str| -> u64 {
        m["files"][0]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["identity"] == p)
            .flat_map(|x| x["sites"].as_array().unwrap().iter())
            .filter(|s| {
                s["call_site"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{module}+"))
            })
            .map(|s| s["reallocs"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(rows.len(), 8);
    let mut demo_rows = 0;
    for r in &rows {
        assert_eq!(r["status"], "both");
        let p = r["process"].as_str().unwrap();
        let module = r["site"].as_str().unwrap();
        if module == "heapdemo.dll" {
            demo_rows += 1;
        } else {
            assert_eq!(module, p.split(' ').next().unwrap());
        }
        assert_eq!(r["reallocs_a"].as_u64().unwrap(), total(&ma, p, module));
        assert_eq!(r["reallocs_b"].as_u64().unwrap(), total(&mb, p, module));
    }
    assert_eq!(demo_rows, 4);
}

#[test]
fn repair_computes_the_history_of_old_captures_as_ingest_does() {
    let d = tempfile::tempdir().unwrap();
    let (files, _) = synth(
        &d.path().join("n"),
        &["--files", "2", "--events-per-file", "20000", "--stack-keys"],
    );
    let db = d.path().join("h.db");
    ok(ingest(&db, &[&files[0], &files[1]], &[]));
    let before = common::canonical(&db);
    // What a database written before schema 2 looks like after its upgrade.
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "DELETE FROM site_stats; DELETE FROM heaps; DELETE FROM capture_stacks; DELETE FROM site_frames;
         DELETE FROM sites; UPDATE processes SET identity = NULL; UPDATE captures SET history = NULL;",
    )
    .unwrap();
    drop(c);
    let o = ingest(&db, &[&files[0]], &[]);
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("2 capture(s) stored by an older heapdb have no history yet"));
    let trend = query_json(&db, &["trend"]);
    assert!(trend.is_empty(), "captures without history take no part");
    let out = ok(heapdb(&["repair", "--db", s(&db)]));
    let _ = out;
    assert_eq!(common::canonical(&db), before);
}

/// Labels forgotten at ingest (or wrong) are set afterwards with `heapdb label`, and
/// reports select and group by them as if they had been given at ingest.
#[test]
fn labels_can_be_set_after_ingest() {
    let d = tempfile::tempdir().unwrap();
    let (files, _) = synth(
        &d.path().join("n"),
        &["--files", "3", "--events-per-file", "3000"],
    );
    let db = d.path().join("h.db");
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    ok(ingest(&db, &refs, &[]));
    let labels = |db: &Path| -> Vec<(i64, String, String)> {
        let c = Connection::open(db).unwrap();
        let mut st = c
            .prepare("SELECT capture_id, key, value FROM capture_labels ORDER BY 1, 2")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let l = |args: &[&str]| {
        let mut v = vec!["label", "--db", s(&db)];
        v.extend_from_slice(args);
        heapdb(&v)
    };
    let out = ok(l(&[
        "--capture",
        "1",
        "--capture",
        "2",
        "build=26100.1",
        "host=lab-7",
    ]));
    assert!(
        out.contains("1\t") && out.contains("build=26100.1 host=lab-7"),
        "{out}"
    );
    let third = files[2].file_name().unwrap().to_str().unwrap().to_string();
    ok(l(&[
        "--file",
        &format!("*{}", &third[third.len() - 12..]),
        "build=26100.2",
    ]));
    ok(l(&["--capture", "2", "--remove", "host", "build=26100.2"]));
    assert_eq!(
        labels(&db),
        vec![
            (1, "build".into(), "26100.1".into()),
            (1, "host".into(), "lab-7".into()),
            (2, "build".into(), "26100.2".into()),
            (3, "build".into(), "26100.2".into()),
        ]
    );
    // Reports see them: two builds, the second of two captures.
    let rows = query_json(&db, &["trend", "--param", "by=build", "--param", "limit=1"]);
    assert_eq!(rows[0]["points"], 2, "{rows:#?}");
    let rows = query_json(
        &db,
        &[
            "capture-diff",
            "--param",
            "label.build=26100.2",
            "--param",
            "limit=1",
        ],
    );
    assert_eq!(
        (rows[0]["capture_a"].as_i64(), rows[0]["capture_b"].as_i64()),
        (Some(2), Some(3))
    );
    // Nothing matched: exit 1, nothing changed; a bad key: exit 2; no database: exit 3,
    // and none is created.
    let before = labels(&db);
    let o = l(&["--capture", "99", "build=x"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("no capture matched"));
    assert_eq!(l(&["--capture", "1", "b d=x"]).status.code(), Some(2));
    assert_eq!(
        l(&["--capture", "1", "--remove", "b d"]).status.code(),
        Some(2)
    );
    assert_eq!(
        l(&["build=x"]).status.code(),
        Some(2),
        "--capture or --file is required"
    );
    assert_eq!(labels(&db), before);
    let missing = d.path().join("missing.db");
    let o = heapdb(&["label", "--db", s(&missing), "--capture", "1", "a=b"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.db"));
    assert!(!missing.exists());
}
