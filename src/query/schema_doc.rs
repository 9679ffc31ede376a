//! `heapdb schema`: the tables and views of the database with their documentation, read
//! from the comments of `schema/*.sql` (the single source of truth) and the column list
//! SQLite reports.

use rusqlite::Connection;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDoc {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub doc: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectDoc {
    pub name: String,
    pub kind: String,
    pub doc: String,
    pub columns: Vec<ColumnDoc>,
}

/// The comment block right above `CREATE TABLE|VIEW name`, and `-- doc` comments at the
/// end of the lines inside it that mention a column.
fn docs_in(sql: &str, name: &str) -> (String, Vec<(String, String)>) {
    let lines: Vec<&str> = sql.lines().collect();
    let Some(at) = lines.iter().position(|l| {
        let l = l.trim_start();
        (l.starts_with("CREATE TABLE") || l.starts_with("CREATE VIEW"))
            && l.split_whitespace()
                .any(|w| w == name || w == format!("{name}("))
    }) else {
        return (String::new(), Vec::new());
    };
    let mut doc = Vec::new();
    let mut i = at;
    // Views are preceded by their `DROP VIEW IF EXISTS` (they are recreated on every
    // upgrade): the comment is above that.
    if i > 0 && lines[i - 1].trim_start().starts_with("DROP VIEW") {
        i -= 1;
    }
    while i > 0 && lines[i - 1].trim_start().starts_with("--") {
        i -= 1;
        doc.push(lines[i].trim_start().trim_start_matches('-').trim());
    }
    doc.reverse();
    let mut cols = Vec::new();
    for l in &lines[at + 1..] {
        let t = l.trim_start();
        if t.starts_with("CREATE ") || t.starts_with("DROP ") {
            break;
        }
        if let Some((code, comment)) = l.split_once("--") {
            // The column is the last identifier before the comment: `name TYPE ...,`
            // in tables, `... AS name,` in views.
            let code = code.trim().trim_end_matches(',');
            let ident = if let Some((_, alias)) = code.rsplit_once(" AS ") {
                alias.trim().to_string()
            } else {
                code.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .rsplit('.')
                    .next()
                    .unwrap_or("")
                    .to_string()
            };
            if !ident.is_empty() {
                cols.push((ident, comment.trim().to_string()));
            }
        }
    }
    (doc.join(" "), cols)
}

/// Documentation of every table and view of the schema.
pub fn describe() -> anyhow::Result<Vec<ObjectDoc>> {
    let conn = Connection::open_in_memory()?;
    crate::db::apply_schema(&conn)?;
    let all_sql = format!("{}\n{}", crate::db::TABLES_SQL, crate::db::VIEWS_SQL);
    let mut objects = Vec::new();
    let mut st = conn.prepare("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY type, name")?;
    let list: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, kind) in list {
        let (doc, col_docs) = docs_in(&all_sql, &name);
        let mut ci = conn.prepare(&format!("PRAGMA table_info({name})"))?;
        let columns = ci
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|(c, ty)| {
                let doc = col_docs
                    .iter()
                    .find(|(n, _)| *n == c)
                    .map(|(_, d)| d.clone())
                    .unwrap_or_default();
                ColumnDoc { name: c, ty, doc }
            })
            .collect();
        objects.push(ObjectDoc {
            name,
            kind,
            doc,
            columns,
        });
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_table_column_is_documented() {
        let objs = super::describe().unwrap();
        let reallocs = objs.iter().find(|o| o.name == "reallocs").unwrap();
        assert!(reallocs.doc.contains("ReAlloc"));
        for o in objs.iter().filter(|o| o.kind == "table") {
            assert!(!o.doc.is_empty(), "table {} undocumented", o.name);
            for c in &o.columns {
                assert!(!c.doc.is_empty(), "{}.{} undocumented", o.name, c.name);
            }
        }
        for o in objs.iter().filter(|o| o.kind == "view") {
            assert!(!o.doc.is_empty(), "view {} undocumented", o.name);
        }
        let frames = objs.iter().find(|o| o.name == "stack_frames_v").unwrap();
        assert!(
            frames.doc.contains("module!function+0xOFF"),
            "{}",
            frames.doc
        );
        assert!(objs.iter().any(|o| o.name == "reallocs_v"
            && o.kind == "view"
            && o.columns.iter().any(|c| c.name == "new_address_hex")));
    }
}
