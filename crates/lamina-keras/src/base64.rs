//! Standard base64 decoding (with or without padding, whitespace skipped), for the Python
//! bytecode Keras records for a `lambda`: Lamina only reads names out of it for messages.

/// The decoded bytes, or `None` if a character is not base64.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The short ASCII strings of a marshalled Python code object (names, the file name, the
/// function's name), as `marshal` writes them: a type byte `z` or `Z` (with or without the
/// reference flag), a one-byte length, the characters. Printable ones of at least `min`
/// characters, in order, each once; falls back to `strings` when none is found.
pub(crate) fn marshal_strings(bytes: &[u8], min: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Seen strings in a set: crafted bytecode with many strings stays linear.
    let mut seen = std::collections::HashSet::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let kind = bytes[i] & 0x7f;
        let n = bytes[i + 1] as usize;
        if (kind == b'z' || kind == b'Z')
            && n >= min
            && let Some(s) = bytes.get(i + 2..i + 2 + n)
            && s.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
        {
            let text = String::from_utf8_lossy(s).into_owned();
            if seen.insert(text.clone()) {
                out.push(text);
            }
            i += 2 + n;
            continue;
        }
        i += 1;
    }
    if out.is_empty() {
        return strings(bytes, min);
    }
    out
}

/// The runs of printable ASCII of at least `min` characters in `bytes` (names, file paths).
pub(crate) fn strings(bytes: &[u8], min: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for &b in bytes {
        if b.is_ascii_graphic() {
            cur.push(b as char);
        } else {
            if cur.len() >= min {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    if cur.len() >= min {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_standard_base64() {
        assert_eq!(super::decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::decode("aGVs\nbG8").unwrap(), b"hello");
        assert!(super::decode("a*b").is_none());
        assert_eq!(super::strings(b"\x01abc\x02de\x03fghi", 3), ["abc", "fghi"]);
    }
}
