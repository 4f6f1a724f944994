//! The unframed message-boundary scanner, fed arbitrary bytes in arbitrary pieces;
//! whatever it reports must agree with feeding everything at once.
#![no_main]

use ringsoa::protocol::Protocol;
use ringsoa::transport::scan::Scanner;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    for proto in [Protocol::Binary, Protocol::Compact] {
        let mut whole = Scanner::new(proto, 4096);
        whole.expect_struct_then_message();
        let at_once = whole.feed(data);
        let mut inc = Scanner::new(proto, 4096);
        inc.expect_struct_then_message();
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
    }
});
