//! The generated code for `tests/idl/codegen.thrift` and the demo IDL: it compiles,
//! its values round-trip through both protocols, and its services dispatch.

mod idl {
    ringsoa::include_idl!();
}

use idl::codegen::*;
use idl::shared::{Level, Point};
use ringsoa::protocol::{from_bytes, to_bytes, Protocol};

#[test]
fn constants_have_their_values() {
    assert_eq!(TINY, -16);
    assert_eq!(GREETING, "hello \"world\"");
    assert_eq!(*PRIMES, vec![2, 3, 5, 7]);
    assert_eq!(LEVELS.get("high"), Some(&Level::HIGH));
    assert_eq!(Level::HIGH.0, 6);
    assert_eq!(COPY, Level::MID);
    assert_eq!(*ORIGIN, Point { x: 0, y: 0 });
}
