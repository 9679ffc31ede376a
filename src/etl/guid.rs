//! Windows GUIDs in their on-disk (mixed-endian) layout.

use std::fmt;
use std::str::FromStr;

/// A GUID as Windows stores it: Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 8 bytes.
/// Displayed in the standard lowercase form without braces, as TDH and TraceEvent print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub const NIL: Guid = Guid([0; 16]);

    /// Builds a GUID from its textual fields (`d1-d2-d3-d4[0..2]-d4[2..8]`).
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Reads the 16 on-disk bytes at `off`, if present.
    pub fn read(b: &[u8], off: usize) -> Option<Guid> {
        let s = b.get(off..off.checked_add(16)?)?;
        let mut g = [0u8; 16];
        g.copy_from_slice(s);
        Some(Guid(g))
    }

    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9],
            g[10],
            g[11],
            g[12],
            g[13],
            g[14],
            g[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl FromStr for Guid {
    type Err = String;

    fn from_str(s: &str) -> Result<Guid, String> {
        let t = s.trim().trim_start_matches('{').trim_end_matches('}');
        let parts: Vec<&str> = t.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if parts.len() != 5 || parts.iter().zip(lens).any(|(p, n)| p.len() != n) {
            return Err(format!("not a GUID: {s:?}"));
        }
        let hex = |p: &str| u64::from_str_radix(p, 16).map_err(|_| format!("not a GUID: {s:?}"));
        let d1 = hex(parts[0])? as u32;
        let d2 = hex(parts[1])? as u16;
        let d3 = hex(parts[2])? as u16;
        let d4a = hex(parts[3])? as u16;
        let d4b = hex(parts[4])?;
        let mut d4 = [0u8; 8];
        d4[..2].copy_from_slice(&d4a.to_be_bytes());
        d4[2..].copy_from_slice(&d4b.to_be_bytes()[2..]);
        Ok(Guid::from_fields(d1, d2, d3, d4))
    }
}

impl serde::Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_heap_guid() {
        let g: Guid = "222962ab-6180-4b88-a825-346b75f2a24a".parse().unwrap();
        assert_eq!(g.to_string(), "222962ab-6180-4b88-a825-346b75f2a24a");
        // On-disk bytes: Data1..3 little-endian, Data4 as is.
        assert_eq!(&g.0[..4], &[0xab, 0x62, 0x29, 0x22]);
        assert_eq!(&g.0[8..], &[0xa8, 0x25, 0x34, 0x6b, 0x75, 0xf2, 0xa2, 0x4a]);
        assert!("{222962AB-6180-4B88-A825-346B75F2A24A}"
            .parse::<Guid>()
            .is_ok());
        assert!("222962ab-6180-4b88-a825".parse::<Guid>().is_err());
    }
}
