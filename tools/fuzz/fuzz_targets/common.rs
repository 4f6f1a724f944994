//! Shared by the protocol targets: decode the bytes every way a server would.

pub mod idl {
    ringsoa::include_idl!();
}

use bytes::Bytes;
use ringsoa::protocol::{skip::skip, Decode, ProtocolReader, TType};

/// Decodes `data` as a message, as an `Item`, as call arguments, and by skipping.
pub fn decode_all<R: ProtocolReader>(make: impl Fn(Bytes) -> R, data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let mut r = make(bytes.clone());
    if r.read_message_begin().is_ok() {
        let _ = idl::demo::DemoRoundtripArgs::decode(&mut r);
    }
    let _ = idl::demo::Item::decode(&mut make(bytes.clone()));
    let _ = skip(&mut make(bytes), TType::Struct);
}
