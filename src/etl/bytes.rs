//! Bounds-checked little-endian reads over byte slices.
//!
//! Every on-disk field goes through these helpers, so a short or corrupt input turns
//! into `None` (and from there into an error carrying an offset), never a panic.

#[inline]
pub fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

#[inline]
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

#[inline]
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

#[inline]
pub fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    u32_at(b, off).map(|v| v as i32)
}

/// A pointer-sized (4 or 8 byte) unsigned value, zero-extended to 64 bits.
#[inline]
pub fn ptr_at(b: &[u8], off: usize, ptr_size: u8) -> Option<u64> {
    if ptr_size == 8 {
        u64_at(b, off)
    } else {
        u32_at(b, off).map(u64::from)
    }
}

/// A NUL-terminated UTF-16LE string starting at `off`. Returns the decoded string
/// (lossy) and the offset just past the terminator (or the end of the slice when the
/// terminator is missing: truncated strings are kept rather than dropped).
pub fn utf16z_at(b: &[u8], off: usize) -> (String, usize) {
    let mut units = Vec::new();
    let mut pos = off;
    while let Some(u) = u16_at(b, pos) {
        pos += 2;
        if u == 0 {
            return (String::from_utf16_lossy(&units), pos);
        }
        units.push(u);
    }
    (String::from_utf16_lossy(&units), b.len().max(off))
}

/// A NUL-terminated 8-bit string (ANSI; decoded as Latin-1 superset via lossy UTF-8).
pub fn cstr_at(b: &[u8], off: usize) -> (String, usize) {
    let rest = b.get(off..).unwrap_or(&[]);
    match rest.iter().position(|&c| c == 0) {
        Some(n) => (
            String::from_utf8_lossy(&rest[..n]).into_owned(),
            off + n + 1,
        ),
        None => (String::from_utf8_lossy(rest).into_owned(), b.len().max(off)),
    }
}

#[inline]
pub fn align8(n: usize) -> usize {
    (n + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_little_endian_and_bounded() {
        let b = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        assert_eq!(u16_at(&b, 0), Some(0x0201));
        assert_eq!(u32_at(&b, 4), Some(0x0807_0605));
        assert_eq!(u64_at(&b, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(u32_at(&b, 5), None);
        assert_eq!(u64_at(&b, 1), None);
        assert_eq!(u16_at(&b, usize::MAX), None);
        assert_eq!(ptr_at(&b, 0, 4), Some(0x0403_0201));
    }

    #[test]
    fn strings_stop_at_nul_or_end() {
        let b = [b'a', 0, b'b', 0, 0, 0, b'c', 0];
        assert_eq!(utf16z_at(&b, 0), ("ab".to_string(), 6));
        assert_eq!(utf16z_at(&b, 6), ("c".to_string(), 8));
        assert_eq!(cstr_at(b"abc\0de", 0), ("abc".to_string(), 4));
        assert_eq!(cstr_at(b"abc\0de", 4), ("de".to_string(), 6));
    }
}
