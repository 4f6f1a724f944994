//! The unframed message-boundary scanner, fed arbitrary bytes in arbitrary pieces;
//! whatever it reports must agree with feeding everything at once, and a boundary
//! it finds must be where the decoder ends the same message. Binary is walked both
//! strict and accepting non-strict message headers.
#![no_main]

use bytes::Bytes;
use ringsoa::protocol::{BinaryReader, CompactReader, Protocol, ProtocolReader, TType};
use ringsoa::transport::scan::Scanner;

/// Whether the decoder (binary reads `strict` or not), reading a tracking header
/// (when `header`) and a message from `unit`, ends exactly at its end; `None` when it
/// cannot decode it at all.
fn decoder_ends_at_end(proto: Protocol, strict: bool, unit: &[u8], header: bool) -> Option<bool> {
    fn read<R: ProtocolReader>(mut r: R, header: bool) -> Option<bool> {
        if header {
            r.skip(TType::Struct).ok()?;
        }
        r.read_message_begin().ok()?;
        r.skip(TType::Struct).ok()?;
        Some(r.remaining() == 0)
    }
    let bytes = Bytes::copy_from_slice(unit);
    match proto {
        Protocol::Binary => read(BinaryReader::new(bytes).with_strict_read(strict), header),
        Protocol::Compact => read(CompactReader::new(bytes), header),
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let forms = [
        (Protocol::Binary, true),
        (Protocol::Binary, false),
        (Protocol::Compact, true),
    ];
    for (proto, strict) in forms {
        let scanner = |skipping: bool| {
            let mut s = if skipping {
                Scanner::skipping(proto, 4096)
            } else {
                Scanner::new(proto, 4096)
            };
            if !strict {
                s.accept_non_strict();
            }
            s
        };
        for header in [true, false] {
            let start = |s: &mut Scanner| {
                if header {
                    s.expect_struct_then_message()
                } else {
                    s.expect_message()
                }
            };
            let mut whole = scanner(false);
            start(&mut whole);
            let at_once = whole.feed(data);
            let mut inc = scanner(false);
            start(&mut inc);
            let step = step as usize % 7 + 1;
            let mut end = 0;
            let piecewise = loop {
                end = (end + step).min(data.len());
                match inc.feed(&data[..end]) {
                    Ok(None) if end < data.len() => continue,
                    other => break other,
                }
            };
            match (&at_once, &piecewise) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "piecewise and whole scans disagree"),
                (Err(_), Err(_)) => {}
                // An error may be seen on a prefix only when it is found before the end.
                (Ok(Some(n)), Err(e)) => panic!("whole found {n} bytes, pieces failed: {e}"),
                _ => {}
            }
            if let Ok(Some(n)) = at_once {
                // Walked without keeping it, each piece's walked bytes let go: the same end.
                let mut skip = scanner(true);
                start(&mut skip);
                let (mut kept_from, mut end) = (0, 0);
                let skipped = loop {
                    end = (end + step).min(data.len());
                    match skip.feed(&data[kept_from..end]) {
                        Ok(Some(k)) => break Some(kept_from + k),
                        Ok(None) if end < data.len() => kept_from += skip.release(end - kept_from),
                        _ => break None,
                    }
                };
                assert_eq!(skipped, Some(n), "the skipping scan ends elsewhere");
                let ends = decoder_ends_at_end(proto, strict, &data[..n], header);
                assert_ne!(
                    ends,
                    Some(false),
                    "the decoder does not end where the scanner cut"
                );
            }
        }
    }
});
