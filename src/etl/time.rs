//! Raw timestamps → absolute time, and RFC 3339 formatting.

use super::logfile::{ClockType, LogfileHeader};

/// FILETIME of 1970-01-01 (100 ns units since 1601).
pub const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// Converts raw session-clock values to UTC nanoseconds since the Unix epoch.
///
/// Anchored on the logfile header record, whose raw timestamp corresponds to the
/// header's StartTime (as TraceEvent does): `t = StartTime + (raw - t0) × scale`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: u64,
    start_unix_ns: i128,
    /// Nanoseconds per tick = num / den.
    num: i128,
    den: i128,
}

impl Clock {
    pub fn new(h: &LogfileHeader) -> Clock {
        let (num, den) = match h.clock_type {
            ClockType::SystemTime => (100, 1),
            ClockType::CpuCycle if h.cpu_speed_mhz != 0 => (1000, h.cpu_speed_mhz as i128),
            _ if h.perf_freq != 0 => (1_000_000_000, h.perf_freq as i128),
            _ => (100, 1),
        };
        Clock {
            t0: h.start_raw,
            start_unix_ns: (h.start_time as i128 - FILETIME_UNIX_EPOCH as i128) * 100,
            num,
            den,
        }
    }

    /// UTC nanoseconds since 1970 of a raw timestamp (saturating at the i64 range).
    #[inline]
    pub fn unix_ns(&self, raw: u64) -> i64 {
        let delta = raw as i128 - self.t0 as i128;
        let ns = self.start_unix_ns + delta * self.num / self.den;
        ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// UTC nanoseconds since 1970 of a FILETIME.
pub fn filetime_to_unix_ns(ft: u64) -> i64 {
    ((ft as i128 - FILETIME_UNIX_EPOCH as i128) * 100).clamp(i64::MIN as i128, i64::MAX as i128)
        as i64
}

/// Formats UTC nanoseconds as RFC 3339 with nanosecond precision
/// (`2020-07-29T00:07:00.623616700Z`).
pub fn rfc3339(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        // FILETIME 132404548206236167 = 2020-07-29 00:07:00.6236167 UTC (TraceEvent's
        // baseline for net.4.5.2.x64 prints StartTime=20/07/29 00:07:00.62...).
        assert_eq!(
            rfc3339(filetime_to_unix_ns(132_404_548_206_236_167)),
            "2020-07-29T00:07:00.623616700Z"
        );
    }
}
