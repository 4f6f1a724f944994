//! Property tests: random values round-trip through both protocols (generated and
//! dynamic code), and random or truncated bytes never panic any decoder nor make it
//! allocate more than a bound proportional to the input.

mod idl {
    ringsoa::include_idl!();
}
#[path = "support/items.rs"]
mod items;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use idl::demo::*;
use items::item;
use proptest::collection::vec;
use proptest::prelude::*;
use ringsoa::dynamic::{decode_fields, encode_fields};
use ringsoa::idl::model::Program;
use ringsoa::protocol::{
    from_bytes, skip::skip, to_bytes, BinaryReader, BinaryWriter, CompactReader, CompactWriter,
    Decode, Protocol, ProtocolReader, TType,
};
use ringsoa::transport::{scan::Scanner, DEFAULT_MAX_MESSAGE};

/// Counts this thread's live heap bytes and their peak, so a decoder's allocations
/// can be bounded without other test threads interfering.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|c| {
            c.set(c.get() + l.size());
            let _ = PEAK.try_with(|p| p.set(p.get().max(c.get())));
        });
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get().saturating_sub(l.size())));
        System.dealloc(p, l)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns the peak heap bytes it added.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.with(|c| c.get());
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(|p| p.get()) - base
}

const CASES: u32 = 100_000;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

fn demo() -> Program {
    ringsoa::idl::load(&["src/bin/ringsoa-demo/demo.thrift"], &[] as &[&str]).unwrap()
}

fn item_fields(p: &Program) -> &[ringsoa::idl::model::Field] {
    &p.files[0]
        .structs
        .iter()
        .find(|s| s.name == "Item")
        .unwrap()
        .fields
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn items_round_trip(item in item()) {
        for proto in [Protocol::Binary, Protocol::Compact] {
            let bytes = to_bytes(&item, proto);
            let back: Item = from_bytes(bytes.clone(), proto).unwrap();
            // Compare re-encoded bytes: NaN scores are not equal to themselves.
            prop_assert_eq!(&to_bytes(&back, proto), &bytes);
            if item.scores.iter().flatten().all(|s| !s.is_nan()) {
                prop_assert_eq!(&back, &item);
            }
        }
    }

    #[test]
    fn dynamic_agrees_with_generated_code(item in item()) {
        with_demo(|p| dynamic_agrees(p, &item))?;
    }
}

fn dynamic_agrees(p: &Program, item: &Item) -> Result<(), TestCaseError> {
    for proto in [Protocol::Binary, Protocol::Compact] {
        let bytes = to_bytes(item, proto);
        let mut out = BytesMut::new();
        let json = match proto {
            Protocol::Binary => {
                let j = decode_fields(p, item_fields(p), &mut BinaryReader::new(bytes.clone()))
                    .unwrap();
                encode_fields(
                    p,
                    item_fields(p),
                    ringsoa::idl::model::StructKind::Struct,
                    &j,
                    &mut BinaryWriter::new(&mut out),
                )
                .unwrap();
                j
            }
            Protocol::Compact => {
                let j = decode_fields(p, item_fields(p), &mut CompactReader::new(bytes.clone()))
                    .unwrap();
                encode_fields(
                    p,
                    item_fields(p),
                    ringsoa::idl::model::StructKind::Struct,
                    &j,
                    &mut CompactWriter::new(&mut out),
                )
                .unwrap();
                j
            }
        };
        prop_assert_eq!(&out[..], &bytes[..], "json was {}", json);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn truncated_items_are_errors(item in item(), cut in any::<proptest::sample::Index>()) {
        for proto in [Protocol::Binary, Protocol::Compact] {
            let bytes = to_bytes(&item, proto);
            let at = cut.index(bytes.len());
            prop_assert!(from_bytes::<Item>(bytes.slice(..at), proto).is_err());
        }
    }
}

/// Decodes `data` every way there is, checking the allocation bound for each.
fn decode_everything(p: &Program, data: &[u8]) {
    let bound = 64 * data.len() + 64 * 1024;
    let bytes = Bytes::copy_from_slice(data);
    let check = |what: &str, f: &mut dyn FnMut()| {
        let peak = peak_of(f);
        assert!(
            peak <= bound,
            "{what}: {peak} bytes for {} input bytes",
            data.len()
        );
    };
    check("binary Item", &mut || {
        drop(Item::decode(&mut BinaryReader::new(bytes.clone())))
    });
    check("compact Item", &mut || {
        drop(Item::decode(&mut CompactReader::new(bytes.clone())))
    });
    check("binary args", &mut || {
        drop(DemoRoundtripArgs::decode(&mut BinaryReader::new(
            bytes.clone(),
        )))
    });
    check("binary message", &mut || {
        let mut r = BinaryReader::new(bytes.clone()).with_strict_read(false);
        if r.read_message_begin().is_ok() {
            let _ = skip(&mut r, TType::Struct);
        }
    });
    check("compact message", &mut || {
        let mut r = CompactReader::new(bytes.clone());
        if r.read_message_begin().is_ok() {
            let _ = skip(&mut r, TType::Struct);
        }
    });
    for proto in [Protocol::Binary, Protocol::Compact] {
        check("scanner", &mut || {
            let mut s = Scanner::new(proto, DEFAULT_MAX_MESSAGE);
            s.expect_struct_then_message();
            let _ = s.feed(data);
        });
    }
    let dyn_bound = 2 * bound;
    let peak = peak_of(|| {
        drop(decode_fields(
            p,
            item_fields(p),
            &mut BinaryReader::new(bytes.clone()),
        ))
    });
    assert!(
        peak <= dyn_bound,
        "dynamic binary: {peak} bytes for {} input bytes",
        data.len()
    );
    let peak = peak_of(|| {
        drop(decode_fields(
            p,
            item_fields(p),
            &mut CompactReader::new(bytes.clone()),
        ))
    });
    assert!(
        peak <= dyn_bound,
        "dynamic compact: {peak} bytes for {} input bytes",
        data.len()
    );
}

/// Bytes that look like Thrift: half of them drawn from valid type codes, header
/// bytes and small or huge length bytes, so the decoders get past their first byte
/// far more often than with uniform noise.
fn thriftish() -> impl Strategy<Value = Vec<u8>> {
    const TABLE: &[u8] = &[
        0x80, 0x01, 0x82, 0x21, 0x00, 0x7f, 0xff, 0x0c, 0x0d, 0x0e, 0x0f, 0x0b, 0x08, 0x0a, 0x1c,
        0x19, 0x1b, 0x2c, 0x15, 0xf9, 0xfc, 0x02, 0x03, 0x04, 0x06,
    ];
    vec(any::<u16>(), 0..256).prop_map(|v| {
        v.into_iter()
            .map(|x| {
                if x & 1 == 0 {
                    (x >> 8) as u8
                } else {
                    TABLE[(x >> 1) as usize % TABLE.len()]
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn random_bytes_never_panic_nor_overallocate(data in vec(any::<u8>(), 0..256)) {
        with_demo(|p| decode_everything(p, &data));
    }

    #[test]
    fn thrift_like_bytes_never_panic_nor_overallocate(data in thriftish()) {
        with_demo(|p| decode_everything(p, &data));
    }
}

/// The demo program, parsed once per thread.
fn with_demo<T>(f: impl FnOnce(&Program) -> T) -> T {
    thread_local! {
        static P: Program = demo();
    }
    P.with(f)
}

#[test]
fn a_huge_claim_allocates_nothing_large() {
    // `children` field claiming 2^31-1 Inners, in each protocol.
    let bin = [
        TType::List as u8,
        0,
        11,
        TType::Struct as u8,
        0x7f,
        0xff,
        0xff,
        0xff,
        0,
    ];
    let compact = [0xb9, 0xfc, 0xff, 0xff, 0xff, 0x07, 0];
    let peak = peak_of(|| {
        assert!(Item::decode(&mut BinaryReader::new(Bytes::copy_from_slice(&bin))).is_err())
    });
    assert!(peak < 4096, "{peak}");
    let peak = peak_of(|| {
        assert!(Item::decode(&mut CompactReader::new(Bytes::copy_from_slice(&compact))).is_err())
    });
    assert!(peak < 4096, "{peak}");
}
