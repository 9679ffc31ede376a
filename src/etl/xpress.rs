//! [MS-XCA] "plain LZ77" (XPRESS without Huffman) decompression, the algorithm Windows
//! uses for compressed ETL buffers (LogFileMode 0x04000000, buffer flag 0x0040).
//!
//! Written from the MS-XCA 2.4 pseudo-code. The output size is known in advance (the
//! buffer's Offset − 0x48), so the decoder writes into a caller-owned buffer reused from
//! one ETL buffer to the next, and refuses to write past the expected length.

/// Decompresses `input` into `out` (cleared first). `expected` is the exact length the
/// data must decompress to; anything else is an error.
pub fn decompress(input: &[u8], out: &mut Vec<u8>, expected: usize) -> Result<(), String> {
    out.clear();
    out.reserve(expected);
    let mut ip = 0usize;
    let mut flags: u32 = 0;
    let mut flag_count = 0u32;
    let mut last_half_byte: usize = 0;

    loop {
        if flag_count == 0 {
            if ip + 4 > input.len() {
                break; // input exhausted: done
            }
            flags = u32::from_le_bytes([input[ip], input[ip + 1], input[ip + 2], input[ip + 3]]);
            ip += 4;
            flag_count = 32;
        }
        flag_count -= 1;
        if flags & (1 << flag_count) == 0 {
            // Literal.
            let Some(&b) = input.get(ip) else { break };
            if out.len() >= expected {
                return Err(format!("output exceeds the expected {expected} bytes"));
            }
            out.push(b);
            ip += 1;
            continue;
        }
        // Match. The last flag word may announce items that are not there: stop.
        if ip + 2 > input.len() {
            break;
        }
        let token = u16::from_le_bytes([input[ip], input[ip + 1]]) as usize;
        ip += 2;
        let offset = (token >> 3) + 1;
        let mut length = token & 7;
        if length == 7 {
            if last_half_byte == 0 {
                let b = *input.get(ip).ok_or("truncated match length")?;
                length = (b & 0x0F) as usize;
                last_half_byte = ip;
                ip += 1;
            } else {
                let b = *input.get(last_half_byte).ok_or("bad match length")?;
                length = (b >> 4) as usize;
                last_half_byte = 0;
            }
            if length == 15 {
                length = *input.get(ip).ok_or("truncated match length")? as usize;
                ip += 1;
                if length == 255 {
                    let s = input.get(ip..ip + 2).ok_or("truncated match length")?;
                    length = u16::from_le_bytes([s[0], s[1]]) as usize;
                    ip += 2;
                    if length == 0 {
                        let s = input.get(ip..ip + 4).ok_or("truncated match length")?;
                        length = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
                        ip += 4;
                    }
                    if length < 15 + 7 {
                        return Err(format!("invalid match length {length}"));
                    }
                    length -= 15 + 7;
                }
                length += 15;
            }
            length += 7;
        }
        length += 3;
        let start = out
            .len()
            .checked_sub(offset)
            .ok_or_else(|| format!("match offset {offset} before the start of the output"))?;
        if out.len() + length > expected {
            return Err(format!("output exceeds the expected {expected} bytes"));
        }
        if offset >= length {
            out.extend_from_within(start..start + length);
        } else {
            // Overlapping copy: the match repeats bytes it is producing.
            for i in 0..length {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    if out.len() != expected {
        return Err(format!(
            "decompressed to {} bytes, expected {expected}",
            out.len()
        ));
    }
    Ok(())
}

/// Compresses `input` with plain LZ77 so that [`decompress`] restores it. Used by the
/// synthesizer to write compressed captures; favours speed over ratio (a single hash
/// table of recent positions).
pub fn compress(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    const HASH_BITS: u32 = 14;
    let mut table = vec![u32::MAX; 1 << HASH_BITS];
    let mut flag_pos = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    let mut flags: u32 = 0;
    let mut flag_count = 0u32;
    let mut last_half_byte: Option<usize> = None;
    let mut i = 0usize;

    fn push_flag(
        out: &mut Vec<u8>,
        bit: u32,
        flags: &mut u32,
        flag_count: &mut u32,
        flag_pos: &mut usize,
    ) {
        *flags = (*flags << 1) | bit;
        *flag_count += 1;
        if *flag_count == 32 {
            out[*flag_pos..*flag_pos + 4].copy_from_slice(&flags.to_le_bytes());
            *flag_pos = out.len();
            out.extend_from_slice(&[0, 0, 0, 0]);
            *flags = 0;
            *flag_count = 0;
        }
    }

    while i < input.len() {
        let mut best_len = 0usize;
        let mut best_off = 0usize;
        if i + 3 <= input.len() {
            let h = (u32::from_le_bytes([input[i], input[i + 1], input[i + 2], 0])
                .wrapping_mul(2_654_435_761)
                >> (32 - HASH_BITS)) as usize;
            let cand = table[h];
            table[h] = i as u32;
            if cand != u32::MAX {
                let c = cand as usize;
                let off = i - c;
                if (1..=8192).contains(&off) {
                    let max = (input.len() - i).min(65535 + 3);
                    let mut l = 0;
                    while l < max && input[c + l] == input[i + l] {
                        l += 1;
                    }
                    if l >= 3 {
                        best_len = l;
                        best_off = off;
                    }
                }
            }
        }
        if best_len < 3 {
            out.push(input[i]);
            push_flag(out, 0, &mut flags, &mut flag_count, &mut flag_pos);
            i += 1;
            continue;
        }
        let l = best_len - 3;
        let off_bits = (best_off - 1) << 3;
        if l < 7 {
            out.extend_from_slice(&((off_bits | l) as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&((off_bits | 7) as u16).to_le_bytes());
            let rest = l - 7;
            let nibble = rest.min(15) as u8;
            match last_half_byte.take() {
                None => {
                    last_half_byte = Some(out.len());
                    out.push(nibble);
                }
                Some(p) => out[p] |= nibble << 4,
            }
            if rest >= 15 {
                let rest2 = rest - 15;
                if rest2 < 255 {
                    out.push(rest2 as u8);
                } else {
                    out.push(255);
                    let total = rest + 7; // the u16 stores length - 3
                    if total <= 0xFFFF {
                        out.extend_from_slice(&(total as u16).to_le_bytes());
                    } else {
                        out.extend_from_slice(&[0, 0]);
                        out.extend_from_slice(&(total as u32).to_le_bytes());
                    }
                }
            }
        }
        push_flag(out, 1, &mut flags, &mut flag_count, &mut flag_pos);
        i += best_len;
    }
    // Pad the final flag word with 1 bits so a reader sees "match" with no input left
    // and stops (MS-XCA encoders do the same).
    let remaining = 32 - flag_count;
    let flags = if flag_count == 0 {
        u32::MAX
    } else {
        (flags << remaining) | ((1u32 << remaining) - 1)
    };
    out[flag_pos..flag_pos + 4].copy_from_slice(&flags.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) {
        let mut c = Vec::new();
        compress(data, &mut c);
        let mut d = Vec::new();
        decompress(&c, &mut d, data.len()).unwrap();
        assert_eq!(d, data);
    }

    #[test]
    fn round_trips() {
        round_trip(b"");
        round_trip(b"a");
        round_trip(b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabc");
        round_trip(&vec![0u8; 100_000]);
        let mut v = Vec::new();
        let mut x = 12345u32;
        for i in 0..200_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.push(if i % 7 == 0 {
                (x >> 16) as u8
            } else {
                (i % 13) as u8
            });
        }
        round_trip(&v);
    }

    #[test]
    fn known_vector_from_ms_xca() {
        // [MS-XCA] 3.1: "abc" compresses to ff ff ff 1f 61 62 63 (a little-endian flag
        // word 0x1fffffff: three literals, then 1 bits that end the stream).
        let mut d = Vec::new();
        decompress(&[0xff, 0xff, 0xff, 0x1f, 0x61, 0x62, 0x63], &mut d, 3).unwrap();
        assert_eq!(d, b"abc");
        // "abcabcabc...": 3 literals then a match of offset 3.
        let input = [
            0xff, 0xff, 0xff, 0x1f, 0x61, 0x62, 0x63, 0x17, 0x00, 0x0f, 0xff, 0x26, 0x01,
        ];
        decompress(&input, &mut d, 300).unwrap();
        assert_eq!(d.len(), 300);
        assert!(d.chunks(3).all(|c| c == b"abc"));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut d = Vec::new();
        // A match pointing before the start.
        assert!(decompress(&[0xff, 0xff, 0xff, 0xff, 0x10, 0x00], &mut d, 10).is_err());
        // Wrong expected size.
        assert!(decompress(&[0xff, 0xff, 0xff, 0x1f, 0x61, 0x62, 0x63], &mut d, 4).is_err());
        assert!(decompress(&[0xff, 0xff, 0xff, 0x1f, 0x61, 0x62, 0x63], &mut d, 2).is_err());
    }
}
