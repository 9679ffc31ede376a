//! The canned reports: `queries/*.sql`, embedded in the binary, each with a header
//! comment naming it and documenting its parameters.

use super::{parse_value, QueryError};
use rusqlite::types::Value;

/// A parameter of a report, from a `-- param: name = default : help` line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Param {
    pub name: String,
    /// As written: a number, or a word (`latest`, `all`, `previous`, `required`) that
    /// means NULL to the SQL (which then picks the latest capture, all processes, ...).
    pub default: String,
    pub help: String,
    /// The values it accepts, when it is a choice (`name = default [a|b|c] : help`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

impl Param {
    /// Whether the report cannot run without it.
    pub fn required(&self) -> bool {
        self.default == "required"
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub name: String,
    pub description: String,
    pub question: String,
    pub params: Vec<Param>,
    #[serde(skip)]
    pub sql: &'static str,
}

const FILES: &[&str] = &[
    include_str!("../../queries/top-realloc-sites.sql"),
    include_str!("../../queries/move-ratio.sql"),
    include_str!("../../queries/growth-chains.sql"),
    include_str!("../../queries/small-increments.sql"),
    include_str!("../../queries/shrinks.sql"),
    include_str!("../../queries/size-histogram.sql"),
    include_str!("../../queries/source-breakdown.sql"),
    include_str!("../../queries/timeline.sql"),
    include_str!("../../queries/outstanding-at-end.sql"),
    include_str!("../../queries/thread-activity.sql"),
    include_str!("../../queries/heap-inventory.sql"),
    include_str!("../../queries/lifetimes.sql"),
    include_str!("../../queries/outstanding-size.sql"),
    include_str!("../../queries/peak-usage.sql"),
    include_str!("../../queries/leak-suspects.sql"),
    include_str!("../../queries/capture-diff.sql"),
    include_str!("../../queries/trend.sql"),
    include_str!("../../queries/address-history.sql"),
    include_str!("../../queries/data-quality.sql"),
    include_str!("../../queries/symbol-status.sql"),
];

/// Parses a report's header comment.
pub fn parse(sql: &'static str) -> Result<Report, String> {
    let mut r = Report {
        name: String::new(),
        description: String::new(),
        question: String::new(),
        params: Vec::new(),
        sql,
    };
    for line in sql.lines() {
        let Some(c) = line.strip_prefix("--") else {
            break;
        };
        let c = c.trim();
        if let Some(v) = c.strip_prefix("name:") {
            r.name = v.trim().to_string();
        } else if let Some(v) = c.strip_prefix("description:") {
            r.description = v.trim().to_string();
        } else if let Some(v) = c.strip_prefix("question:") {
            r.question = v.trim().to_string();
        } else if let Some(v) = c.strip_prefix("param:") {
            let (head, help) = v
                .split_once(':')
                .ok_or_else(|| format!("bad param line: {line}"))?;
            let (name, default) = head
                .split_once('=')
                .ok_or_else(|| format!("bad param line: {line}"))?;
            let (default, choices) = match default.split_once('[') {
                Some((d, rest)) => {
                    let list = rest
                        .trim_end()
                        .strip_suffix(']')
                        .ok_or_else(|| format!("bad param line: {line}"))?;
                    (d, list.split('|').map(|c| c.trim().to_string()).collect())
                }
                None => (default, Vec::new()),
            };
            r.params.push(Param {
                name: name.trim().to_string(),
                default: default.trim().to_string(),
                help: help.trim().to_string(),
                choices,
            });
        }
    }
    if r.name.is_empty() || r.description.is_empty() {
        return Err("report without a name or description header".into());
    }
    Ok(r)
}

/// Every canned report, in the order of `heapdb reports`.
pub fn all() -> Vec<Report> {
    FILES
        .iter()
        .map(|s| parse(s).expect("embedded report headers are valid"))
        .collect()
}

pub fn find(name: &str) -> Option<Report> {
    all().into_iter().find(|r| r.name == name)
}

/// The report named `name`, or a usage error listing the reports.
pub fn get(name: &str) -> Result<Report, QueryError> {
    find(name).ok_or_else(|| {
        let names: Vec<String> = all().into_iter().map(|r| r.name).collect();
        QueryError::Usage(format!(
            "no report named {name:?}; reports: {}",
            names.join(", ")
        ))
    })
}

impl Report {
    /// The parameters to run the report with: the given ones (each must be one of the
    /// report's), then the defaults of the others. A required parameter that is missing
    /// is a usage error.
    pub fn bind(&self, given: &[(String, Value)]) -> Result<Vec<(String, Value)>, QueryError> {
        for (k, v) in given {
            if let Some(p) = self.params.iter().find(|p| &p.name == k) {
                if !p.choices.is_empty() {
                    let ok = matches!(v, Value::Text(t) if p.choices.contains(t));
                    if !ok {
                        return Err(QueryError::Usage(format!(
                            "report {}: --param {k} must be one of {}",
                            self.name,
                            p.choices.join(", ")
                        )));
                    }
                }
            }
            if !self.params.iter().any(|p| &p.name == k) {
                let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                return Err(QueryError::Usage(format!(
                    "report {} has no parameter {k:?} (it takes: {})",
                    self.name,
                    known.join(", ")
                )));
            }
        }
        let mut out = given.to_vec();
        for p in &self.params {
            if given.iter().any(|(k, _)| k == &p.name) {
                continue;
            }
            if p.required() {
                return Err(QueryError::Usage(format!(
                    "report {} needs --param {}=VALUE ({})",
                    self.name, p.name, p.help
                )));
            }
            if !p.choices.is_empty() {
                out.push((p.name.clone(), Value::Text(p.default.clone())));
                continue;
            }
            let v = parse_value(&p.default).map_err(|m| {
                QueryError::Usage(format!("report {}: default of {}: {m}", self.name, p.name))
            })?;
            out.push((p.name.clone(), v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_has_a_header_and_its_params_are_used() {
        let all = all();
        assert_eq!(all.len(), 20);
        for r in &all {
            assert!(!r.question.is_empty(), "{}", r.name);
            for p in &r.params {
                assert!(
                    r.sql.contains(&format!(":{}", p.name)),
                    "{}: param {} unused",
                    r.name,
                    p.name
                );
            }
            // Every :name in the SQL is a documented parameter.
            for (i, _) in r.sql.match_indices(':') {
                let rest = &r.sql[i + 1..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty()
                    || r.sql[..i].ends_with(':')
                    || r.sql[..i]
                        .lines()
                        .last()
                        .is_some_and(|l| l.trim_start().starts_with("--"))
                {
                    continue;
                }
                assert!(
                    r.params.iter().any(|p| p.name == name),
                    "{}: undocumented :{name}",
                    r.name
                );
            }
        }
        let mut names: Vec<_> = all.iter().map(|r| r.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 20);
    }
}
