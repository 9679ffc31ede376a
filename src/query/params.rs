//! Parameters given on the command line (`--param NAME=VALUE`), as SQL values.

use super::QueryError;
use rusqlite::types::Value;

/// A parameter value: `0x...` hex and decimal integers (64-bit; values above
/// `i64::MAX` keep their bit pattern, as addresses are stored), reals, and the words
/// `all`, `latest`, `previous`, `null`, `none` (NULL, which the reports read as "no
/// filter" / "the default capture"). Anything else is text. A number that does not fit
/// in 64 bits is an error, not silently a real.
pub fn parse_value(s: &str) -> Result<Value, String> {
    let t = s.trim();
    let out_of_range = || format!("{t} is out of range (integers must fit in 64 bits)");
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return u64::from_str_radix(h, 16)
                .map(|v| Value::Integer(v as i64))
                .map_err(|_| out_of_range());
        }
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = t.parse::<i64>() {
            return Ok(Value::Integer(v));
        }
        if let Ok(v) = t.parse::<u64>() {
            return Ok(Value::Integer(v as i64));
        }
        return Err(out_of_range());
    }
    // A real needs a digit: Rust would also read "inf" and "nan", which are words here.
    if t.bytes().any(|b| b.is_ascii_digit()) {
        if let Ok(v) = t.parse::<f64>() {
            if !v.is_finite() {
                return Err(format!("{t} is out of range for a number"));
            }
            return Ok(Value::Real(v));
        }
    }
    Ok(match t.to_ascii_lowercase().as_str() {
        "all" | "latest" | "previous" | "null" | "none" | "" => Value::Null,
        _ => Value::Text(s.to_string()),
    })
}

/// `NAME=VALUE` (a leading `:` on the name is allowed, as in the SQL).
pub fn parse_param(p: &str) -> Result<(String, Value), QueryError> {
    let Some((k, v)) = p.split_once('=') else {
        return Err(QueryError::Usage(format!(
            "--param {p:?}: expected NAME=VALUE"
        )));
    };
    let name = k.trim().trim_start_matches(':').to_string();
    if name.is_empty() {
        return Err(QueryError::Usage(format!(
            "--param {p:?}: the name is empty"
        )));
    }
    let value = parse_value(v).map_err(|m| QueryError::Usage(format!("--param {name}: {m}")))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse_value("0x1F"), Ok(Value::Integer(31)));
        assert_eq!(parse_value("0xffffffffffffffff"), Ok(Value::Integer(-1)));
        assert_eq!(parse_value("42"), Ok(Value::Integer(42)));
        assert_eq!(parse_value("-7"), Ok(Value::Integer(-7)));
        assert_eq!(
            parse_value("18446744073709551615"),
            Ok(Value::Integer(-1)),
            "u64 bit pattern"
        );
        assert_eq!(parse_value("1.5"), Ok(Value::Real(1.5)));
        assert_eq!(parse_value("all"), Ok(Value::Null));
        assert_eq!(parse_value("nan"), Ok(Value::Text("nan".into())));
        assert_eq!(
            parse_value("devenv.exe"),
            Ok(Value::Text("devenv.exe".into()))
        );
        assert!(parse_value("99999999999999999999")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_value("0x1ffffffffffffffff").is_err());
        assert!(parse_value("1e400").is_err());
        let e = parse_param("limit=99999999999999999999").unwrap_err();
        assert!(e.to_string().starts_with("--param limit: "), "{e}");
        assert_eq!(
            parse_param(":pid=0x10").unwrap(),
            ("pid".to_string(), Value::Integer(16))
        );
        assert!(parse_param("novalue").is_err());
    }
}
