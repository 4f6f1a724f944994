//! Dynamic mode: any method of any service, from an IDL parsed at run time, with
//! arguments and results as JSON (thriftpy's spirit: no generated code).
//!
//! JSON mapping (both directions):
//! - structs and exceptions: objects keyed by field name (`null` = absent); unions:
//!   objects with exactly one key;
//! - `list` and `set`: arrays; `map` with `string` keys: objects; maps with other key
//!   types: objects whose keys are the key's JSON text (`{"4": […]}` for
//!   `map<i32, …>`, `{"\"AQ==\"": …}` for binary keys);
//! - integers: JSON integers, range-checked, `i64` exact (never through a float);
//!   `double`: numbers, with `"NaN"`, `"Infinity"`, `"-Infinity"` as strings;
//! - enums: read as an integer or a value name, written as the integer;
//! - `binary`: standard base64; `uuid`: the 36-character hyphenated form;
//! - a `void` result: `null`.
//!
//! Decoding is lenient where a tool should be: fields are printed as they came,
//! absent fields are left out (no defaults filled in), unknown ones are skipped.

mod call;
mod decode;
mod encode;
mod error;

pub use call::{decode_reply, encode_call, method, Method, Reply};
pub use decode::{decode_fields, decode_value};
pub use encode::{encode_fields, encode_value};
pub use error::DynamicError;
