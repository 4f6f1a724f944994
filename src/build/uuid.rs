//! The text form of Thrift's `uuid` (Apache Thrift 0.19+): 36 characters,
//! `00112233-4455-6677-8899-aabbccddeeff`, the 16 bytes in wire order.

/// Parses the hyphenated form (either case; Apache's IDL also allows it in braces).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(s);
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut digits = b.iter().filter(|&&c| c != b'-');
    let mut out = [0u8; 16];
    for o in &mut out {
        let hi = (*digits.next()? as char).to_digit(16)?;
        let lo = (*digits.next()? as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    digits.next().is_none().then_some(out)
}

/// The hyphenated, lower-case form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_rejects_misplaced_hyphens() {
        let text = "00112233-4455-6677-8899-aabbccddeeff";
        let u = parse_uuid(text).unwrap();
        assert_eq!(u[0], 0x00);
        assert_eq!(u[1], 0x11);
        assert_eq!(u[15], 0xff);
        assert_eq!(format_uuid(&u), text);
        assert_eq!(
            parse_uuid("{00112233-4455-6677-8899-AABBCCDDEEFF}"),
            Some(u)
        );
        assert_eq!(parse_uuid("0011223-34455-6677-8899-aabbccddeeff"), None);
        assert_eq!(parse_uuid("00112233-4455-6677-8899-aabbccddeefg"), None);
        assert_eq!(parse_uuid("00112233445566778899aabbccddeeff"), None);
    }
}
