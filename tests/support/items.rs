//! Random `Item`s over each field's whole range, for property tests (included by
//! path by the tests that use it, beside their own `idl` module).

use bytes::Bytes;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;

use crate::idl::demo::{Color, Inner, Item};

/// An `Inner`, its fields present or not.
pub fn inner() -> impl Strategy<Value = Inner> {
    (option::of(".{0,8}"), option::of(vec(any::<i64>(), 0..4)))
        .prop_map(|(label, values)| Inner { label, values })
}

/// An `Item`: any integers, doubles (NaN and signed zeros too), text and bytes, unknown
/// enum values, absent fields, empty and nested containers.
pub fn item() -> impl Strategy<Value = Item> {
    (
        any::<i64>(),
        option::of(any::<String>()),
        option::of(vec(any::<f64>(), 0..4)),
        option::of(btree_map(".{0,4}", any::<i32>(), 0..4)),
        option::of(btree_set(any::<i16>(), 0..20)),
        option::of(vec(any::<u8>(), 0..40)),
        any::<bool>(),
        option::of(any::<i8>()),
        any::<i32>(),
        option::of(inner()),
        option::of(vec(inner(), 0..18)),
        option::of(btree_map(any::<i32>(), vec(".{0,3}", 0..3), 0..3)),
    )
        .prop_map(
            |(id, name, scores, attrs, tags, blob, flag, tiny, color, inner, children, nested)| {
                Item {
                    id,
                    name,
                    scores,
                    attrs,
                    tags,
                    blob: blob.map(Bytes::from),
                    flag,
                    tiny,
                    color: Color(color),
                    inner,
                    children,
                    nested,
                }
            },
        )
}
