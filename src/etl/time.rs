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

    /// The FILETIME (100 ns since 1601, UTC) of a raw timestamp, the way heapdb assumes
    /// `ProcessTrace` converts it when it is not asked for raw timestamps: the same
    /// anchor as [`Clock::unix_ns`], rounded down to whole 100 ns (saturating).
    pub fn filetime(&self, raw: u64) -> i64 {
        let delta = raw as i128 - self.t0 as i128;
        let ft = self.start_ft() + (delta * self.num).div_euclid(self.den * 100);
        ft.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// The inverse of [`Clock::filetime`]: the smallest raw value whose FILETIME is
    /// `ft` (saturating at the u64 range). Exact, `filetime(raw_from_filetime(
    /// filetime(r))) == filetime(r)` and `raw_from_filetime(filetime(r)) == r`, whenever
    /// a raw tick lasts at least 100 ns (clocks of at most 10 MHz: QPC on current
    /// Windows, the system-time clock); a faster clock (CPU cycles) cannot be recovered
    /// from a FILETIME, and the value is then the first tick of its 100 ns.
    pub fn raw_from_filetime(&self, ft: i64) -> u64 {
        let d = (ft as i128 - self.start_ft()) * self.den * 100;
        // ceil(d / num) for num > 0
        let delta = -(-d).div_euclid(self.num);
        (self.t0 as i128 + delta).clamp(0, u64::MAX as i128) as u64
    }

    fn start_ft(&self) -> i128 {
        self.start_unix_ns / 100 + FILETIME_UNIX_EPOCH as i128
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

    fn clock(clock_type: ClockType, perf_freq: u64, cpu_speed_mhz: u32) -> Clock {
        Clock::new(&LogfileHeader {
            buffer_size: 65536,
            os_major: 10,
            os_minor: 0,
            os_build: 19045,
            format_major: 2,
            format_minor: 0,
            cpu_count: 2,
            end_time: 0,
            timer_resolution: 156_250,
            maximum_file_size: 0,
            log_file_mode: 0,
            buffers_written: 0,
            pointer_size: 8,
            events_lost: 0,
            cpu_speed_mhz,
            timezone_bias_minutes: 0,
            boot_time: 0,
            perf_freq,
            start_time: 132_404_548_206_236_167,
            clock_type,
            buffers_lost: 0,
            logger_name: String::new(),
            log_file_name: String::new(),
            start_raw: 987_654_321,
            layout_pointer_size: 8,
        })
    }

    #[test]
    fn filetime_round_trips_for_clocks_up_to_10_mhz() {
        for (ty, freq, mhz) in [
            (ClockType::Qpc, 10_000_000, 0),
            (ClockType::Qpc, 3_579_545, 0),
            (ClockType::Qpc, 2_343_750, 0),
            (ClockType::SystemTime, 0, 0),
        ] {
            let c = clock(ty, freq, mhz);
            for raw in [
                987_654_321u64,
                987_654_322,
                987_654_320,
                1_000_000_000,
                55,
                987_654_321 + 123_456_789_012,
            ] {
                let ft = c.filetime(raw);
                assert_eq!(
                    c.raw_from_filetime(ft),
                    raw,
                    "{ty:?} {freq} raw {raw} ft {ft}"
                );
            }
        }
        // 10 MHz: one raw tick is one FILETIME tick, anchored on the start.
        let c = clock(ClockType::Qpc, 10_000_000, 0);
        assert_eq!(c.filetime(987_654_321), 132_404_548_206_236_167);
        assert_eq!(c.filetime(987_654_321 + 7), 132_404_548_206_236_174);
        assert_eq!(c.filetime(987_654_321 - 7), 132_404_548_206_236_160);
        // 3.579545 MHz: 2.79 FILETIME ticks per raw tick, rounded down.
        let c = clock(ClockType::Qpc, 3_579_545, 0);
        assert_eq!(c.filetime(987_654_321 + 1), 132_404_548_206_236_169);
        assert_eq!(c.filetime(987_654_321 - 1), 132_404_548_206_236_164);
    }

    #[test]
    fn a_cpu_cycle_clock_loses_ticks_in_filetime() {
        let c = clock(ClockType::CpuCycle, 0, 3000);
        let raw = 987_654_321 + 3000 * 10 + 17;
        let ft = c.filetime(raw);
        assert_eq!(ft, 132_404_548_206_236_167 + 100);
        let back = c.raw_from_filetime(ft);
        assert_eq!(back, 987_654_321 + 3000 * 10, "first tick of the 100 ns");
        assert_eq!(c.filetime(back), ft);
    }

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
