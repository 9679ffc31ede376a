//! Numbers and text as the page prints them for people. The exact values stay in
//! `data-v` attributes (and in `title`, on hover).

/// `1536` → `1.5 KiB`: binary units, as Windows tools print memory.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let neg = b < 0.0;
    let mut v = b.abs();
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let sign = if neg { "-" } else { "" };
    if u == 0 {
        format!("{sign}{v:.0} B")
    } else if v >= 100.0 {
        format!("{sign}{v:.0} {}", UNITS[u])
    } else if v >= 10.0 {
        format!("{sign}{v:.1} {}", UNITS[u])
    } else {
        format!("{sign}{v:.2} {}", UNITS[u])
    }
}

/// `1234567` → `1,234,567`; reals keep up to 3 decimals.
pub fn human_count(v: f64) -> String {
    if v.fract() != 0.0 {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return s.to_string();
    }
    let neg = v < 0.0;
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// Seconds for an axis or a caption: `0.0123` → `12.3 ms`, `75` → `75 s`.
pub fn human_seconds(s: f64) -> String {
    if s == 0.0 {
        "0 s".to_string()
    } else if s.abs() < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s.abs() < 1.0 {
        let ms = s * 1e3;
        if ms.fract().abs() < 1e-9 {
            format!("{ms:.0} ms")
        } else {
            format!("{} ms", trim_num(ms, 2))
        }
    } else if s.abs() < 600.0 {
        format!("{} s", trim_num(s, 2))
    } else if s.abs() < 36_000.0 {
        format!("{} min", trim_num(s / 60.0, 1))
    } else {
        format!("{} h", trim_num(s / 3600.0, 1))
    }
}

/// `v` with at most `decimals` decimals, trailing zeros dropped.
pub fn trim_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block: `</` cannot end the block.
pub fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace("</", "<\\/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_numbers() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(1023.0), "1023 B");
        assert_eq!(human_bytes(1536.0), "1.50 KiB");
        assert_eq!(human_bytes(44_056_576.0), "42.0 MiB");
        assert_eq!(human_bytes(-2048.0), "-2.00 KiB");
        assert_eq!(human_bytes(165_148_605.0), "157 MiB");
        assert_eq!(human_count(1234567.0), "1,234,567");
        assert_eq!(human_count(-1000.0), "-1,000");
        assert_eq!(human_count(12.5), "12.5");
        assert_eq!(human_count(999.0), "999");
        assert_eq!(human_seconds(0.0123), "12.3 ms");
        assert_eq!(human_seconds(0.25), "250 ms");
        assert_eq!(human_seconds(75.0), "75 s");
        assert_eq!(human_seconds(5400.0), "90 min");
        assert_eq!(esc("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
        assert_eq!(
            script_json(&serde_json::json!(["</script>"])),
            "[\"<\\/script>\"]"
        );
    }
}
