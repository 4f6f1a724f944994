//! The UTF-8 check of decoded `string`s. Text on the wire is mostly ASCII, and an
//! ASCII run is checked 256 bytes at a time (AVX2 where the CPU has it); the rest
//! goes to simdutf8's full check, and only a failure pays for `std`'s, which says
//! where the bad byte is.

use super::{ProtocolError, ProtocolErrorKind};

/// Copies `bytes` into a `String`, rejecting invalid UTF-8.
#[inline]
pub(crate) fn string_from_utf8(bytes: &[u8]) -> Result<String, ProtocolError> {
    check_utf8(bytes).map(str::to_owned)
}

/// `bytes` as `str`, rejecting invalid UTF-8.
#[inline]
pub(crate) fn check_utf8(bytes: &[u8]) -> Result<&str, ProtocolError> {
    if bytes.len() <= SHORT && all_ascii(bytes) {
        // SAFETY: ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    // ASCII bytes are whole characters: the rest is valid on its own or not at all.
    let rest = &bytes[ascii_prefix(bytes)..];
    match simdutf8::basic::from_utf8(rest) {
        // SAFETY: an ASCII prefix followed by valid UTF-8 is valid UTF-8.
        Ok(_) => Ok(unsafe { std::str::from_utf8_unchecked(bytes) }),
        Err(_) => std::str::from_utf8(bytes).map_err(not_utf8),
    }
}

/// Text up to this long is first checked as ASCII by [`all_ascii`]: on short text
/// simdutf8's setup costs more than the check (a 64-byte string under callgrind:
/// 69 instructions for `Text::from_utf8` against 89).
const SHORT: usize = 128;

/// Whether `bytes` are all ASCII, 8 at a time: for short text, which the compiler
/// unrolls and vectorizes.
#[inline]
fn all_ascii(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().expect("8 bytes"));
    let high = words.fold(0, |acc, w| acc | word(w));
    let high = rest.iter().fold(high, |acc, &b| acc | u64::from(b));
    high & 0x8080_8080_8080_8080 == 0
}

/// How many leading bytes are ASCII, in whole blocks of [`BLOCK`] bytes (0 when the
/// CPU has no AVX2: simdutf8 then checks everything).
#[cfg(target_arch = "x86_64")]
#[inline]
fn ascii_prefix(bytes: &[u8]) -> usize {
    if bytes.len() >= BLOCK && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { ascii_blocks_avx2(bytes) }
    } else {
        0
    }
}

/// Elsewhere simdutf8 checks everything.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn ascii_prefix(_: &[u8]) -> usize {
    0
}

/// Bytes per step of the ASCII scan: eight 32-byte vectors OR-ed together.
#[cfg(target_arch = "x86_64")]
const BLOCK: usize = 256;

/// The length of the longest prefix of `bytes` made of whole ASCII blocks.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ascii_blocks_avx2(bytes: &[u8]) -> usize {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256};
    let mut done = 0;
    for block in bytes.chunks_exact(BLOCK) {
        let p = block.as_ptr().cast::<__m256i>();
        // SAFETY: `p` has BLOCK = 8 × 32 readable bytes; unaligned loads.
        let any_high = unsafe {
            let v = |i| _mm256_loadu_si256(p.add(i));
            let a = _mm256_or_si256(_mm256_or_si256(v(0), v(1)), _mm256_or_si256(v(2), v(3)));
            let b = _mm256_or_si256(_mm256_or_si256(v(4), v(5)), _mm256_or_si256(v(6), v(7)));
            _mm256_movemask_epi8(_mm256_or_si256(a, b))
        };
        if any_high != 0 {
            break;
        }
        done += BLOCK;
    }
    done
}

/// The error for a string that is not UTF-8.
fn not_utf8(e: std::str::Utf8Error) -> ProtocolError {
    ProtocolError::new(
        ProtocolErrorKind::InvalidData,
        format!("string is not valid UTF-8: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Text of `len` ASCII bytes with `insert` spliced in at `at`.
    fn spliced(len: usize, at: usize, insert: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let at = at.min(len);
        v.splice(at..at, insert.iter().copied());
        v
    }

    #[test]
    fn ascii_and_multibyte_text_pass_at_every_block_position() {
        for len in [
            0, 1, 7, 8, 9, 127, 128, 129, 255, 256, 257, 511, 512, 4096, 4097,
        ] {
            for at in [0, 1, 7, 8, 31, 32, 127, 128, 255, 256, 300, 4000, len] {
                let v = spliced(len, at, "é€😀".as_bytes());
                assert_eq!(check_utf8(&v).unwrap().as_bytes(), &v[..]);
            }
        }
    }

    #[test]
    fn a_bad_byte_anywhere_is_refused_with_its_position() {
        for len in [0, 5, 64, 127, 128, 256, 1000, 4096] {
            for at in [0, 3, 8, 63, 120, 127, 128, 200, 255, 256, 700, len] {
                // A lone continuation byte, and a sequence cut short.
                for bad in [&[0x80u8][..], &[0xe2, 0x82]] {
                    let v = spliced(len, at, bad);
                    let e = check_utf8(&v).unwrap_err();
                    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
                    assert!(
                        e.to_string().contains(&format!("index {}", at.min(len))),
                        "{e}"
                    );
                }
            }
        }
    }

    proptest! {
        /// The same verdict as `std` on any bytes, mostly-ASCII or not.
        #[test]
        fn agrees_with_std(
            prefix in 0usize..1200,
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut v = spliced(prefix, prefix, &[]);
            v.extend_from_slice(&tail);
            prop_assert_eq!(check_utf8(&v).is_ok(), std::str::from_utf8(&v).is_ok());
        }
    }
}
