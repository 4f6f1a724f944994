//! Thrift wire protocols: TBinaryProtocol and TCompactProtocol.
//!
//! Layout:
//! - [`ttype`]: the wire type codes and message types shared by both protocols.
//! - [`binary`], [`compact`]: a writer and a reader for each protocol.
//! - [`error`]: [`ProtocolError`], returned by every reader on bad or short input.
//! - [`skip`]: skipping a value of any type with a nesting limit.
//! - [`app_exception`]: `TApplicationException`, the standard error reply.
//! - [`budget`]: how much memory decoding one message may take.
//! - [`text`]: [`Text`], a `string` decoded without copying its characters.
//!
//! Generated code and the dynamic encoder are generic over [`ProtocolWriter`] and
//! [`ProtocolReader`], so each protocol gets its own monomorphised copy with no
//! per-field dynamic dispatch. Writers are infallible (they append to a growable
//! buffer); readers check every length against the bytes that remain before they
//! allocate, and never panic on wire bytes.

pub mod app_exception;
pub mod binary;
pub mod budget;
pub mod compact;
pub mod error;
pub mod skip;
pub mod text;
pub mod ttype;
mod utf8;

pub use app_exception::{ApplicationException, ApplicationExceptionKind};
pub use binary::{BinaryReader, BinaryWriter};
pub use budget::{element_cost, DecodeBudget, DEFAULT_MAX_DECODED};
pub use compact::{CompactReader, CompactWriter};
pub use error::{ProtocolError, ProtocolErrorKind};
pub use ringsoa_build::{format_uuid, parse_uuid};
pub use text::Text;
pub use ttype::{ttype_from_u8, MessageType, TType};
pub(crate) use utf8::{check_utf8, string_from_utf8};

use bytes::Bytes;

/// Runs `$body` with the type alias `$C` naming the [`Codec`] of the run-time
/// [`Protocol`] `$protocol`: one monomorphised copy of `$body` per protocol, without
/// writing the two-armed match at every call site.
macro_rules! with_codec {
    ($protocol:expr, $C:ident => $body:expr) => {
        match $protocol {
            $crate::protocol::Protocol::Binary => {
                type $C = $crate::protocol::BinaryCodec;
                $body
            }
            $crate::protocol::Protocol::Compact => {
                type $C = $crate::protocol::CompactCodec;
                $body
            }
        }
    };
}
pub(crate) use with_codec;

/// Nesting limit for structs and skipped values, as thriftpy2's `DEFAULT_MAX_DEPTH`.
pub const MAX_DEPTH: u16 = 64;

/// The header of a message: method name, message type and sequence id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// Method name, as raw bytes sliced from the input (no copy).
    pub name: Bytes,
    /// CALL, REPLY, EXCEPTION or ONEWAY.
    pub kind: MessageType,
    /// The caller's sequence id, echoed in the reply.
    pub seqid: i32,
}

/// Which of the two protocols a connection or a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TBinaryProtocol, strict (version `0x8001`).
    Binary,
    /// TCompactProtocol (protocol id `0x82`, version 1).
    Compact,
}

/// Writes Thrift values into a buffer. Implemented by each protocol.
///
/// Struct nesting is tracked by the caller: `write_struct_begin` returns a mark that
/// is handed back to `write_struct_end` (the compact protocol keeps its last field id
/// there), so writers need no heap stack.
pub trait ProtocolWriter {
    /// Begins a message.
    fn write_message_begin(&mut self, name: &str, kind: MessageType, seqid: i32) {
        self.write_message_begin_bytes(name.as_bytes(), kind, seqid);
    }
    /// Begins a message whose name is bytes as they came (a reply to a call
    /// whose method name is not UTF-8 echoes it unchanged).
    fn write_message_begin_bytes(&mut self, name: &[u8], kind: MessageType, seqid: i32);
    /// Begins a struct; returns the mark for [`ProtocolWriter::write_struct_end`].
    fn write_struct_begin(&mut self) -> i16;
    /// Writes the field-stop marker and ends the struct begun with `mark`.
    fn write_struct_end(&mut self, mark: i16);
    /// Begins a field (use [`ProtocolWriter::write_bool_field`] for a bool field).
    fn write_field_begin(&mut self, ttype: TType, id: i16);
    /// Writes a whole bool field (the compact protocol folds the value into the header).
    fn write_bool_field(&mut self, id: i16, value: bool);
    /// Begins a list of `len` elements.
    fn write_list_begin(&mut self, elem: TType, len: usize);
    /// Begins a set of `len` elements.
    fn write_set_begin(&mut self, elem: TType, len: usize);
    /// Begins a map of `len` entries.
    fn write_map_begin(&mut self, key: TType, value: TType, len: usize);
    /// Writes a bool (as a container element or bare value).
    fn write_bool(&mut self, v: bool);
    /// Writes a byte (`byte`/`i8`).
    fn write_i8(&mut self, v: i8);
    /// Writes an i16.
    fn write_i16(&mut self, v: i16);
    /// Writes an i32.
    fn write_i32(&mut self, v: i32);
    /// Writes an i64.
    fn write_i64(&mut self, v: i64);
    /// Writes a double.
    fn write_double(&mut self, v: f64);
    /// Writes a UTF-8 string.
    fn write_string(&mut self, v: &str) {
        self.write_binary(v.as_bytes());
    }
    /// Writes binary data.
    fn write_binary(&mut self, v: &[u8]);
    /// Writes binary data held in shared bytes: as [`ProtocolWriter::write_binary`],
    /// except that a writer whose [`Sink`] links large byte strings into its output
    /// (a connection's write buffer) takes a reference instead of a copy.
    #[inline]
    fn write_bytes(&mut self, v: &Bytes) {
        self.write_binary(v);
    }
    /// Writes a UTF-8 string held in shared bytes (see [`ProtocolWriter::write_bytes`]).
    #[inline]
    fn write_text(&mut self, v: &Text) {
        self.write_bytes(v.shared());
    }
    /// Writes a uuid (16 bytes, big-endian as in Apache Thrift 0.19+).
    fn write_uuid(&mut self, v: &[u8; 16]);
    /// Appends bytes already encoded in this protocol as one whole value (a
    /// struct encoded elsewhere, e.g. on another thread).
    fn write_raw(&mut self, v: &[u8]);
}

/// Reads Thrift values from a buffer. Implemented by each protocol.
///
/// Every length is checked against the bytes that remain before anything is
/// allocated; struct nesting deeper than [`MAX_DEPTH`] is an error.
pub trait ProtocolReader {
    /// Reads a message header.
    fn read_message_begin(&mut self) -> Result<MessageHeader, ProtocolError>;
    /// Begins a struct; returns the mark for [`ProtocolReader::read_struct_end`].
    fn read_struct_begin(&mut self) -> Result<i16, ProtocolError>;
    /// Ends the struct begun with `mark`.
    fn read_struct_end(&mut self, mark: i16);
    /// Reads a field header; `TType::Stop` ends the struct (the id is then 0).
    fn read_field_begin(&mut self) -> Result<(TType, i16), ProtocolError>;
    /// Reads a list header: element type and length.
    fn read_list_begin(&mut self) -> Result<(TType, usize), ProtocolError>;
    /// Reads a set header: element type and length.
    fn read_set_begin(&mut self) -> Result<(TType, usize), ProtocolError>;
    /// Reads a map header: key type, value type and length.
    fn read_map_begin(&mut self) -> Result<(TType, TType, usize), ProtocolError>;
    /// Reads a bool.
    fn read_bool(&mut self) -> Result<bool, ProtocolError>;
    /// Reads a byte.
    fn read_i8(&mut self) -> Result<i8, ProtocolError>;
    /// Reads an i16.
    fn read_i16(&mut self) -> Result<i16, ProtocolError>;
    /// Reads an i32.
    fn read_i32(&mut self) -> Result<i32, ProtocolError>;
    /// Reads an i64.
    fn read_i64(&mut self) -> Result<i64, ProtocolError>;
    /// Reads a double.
    fn read_double(&mut self) -> Result<f64, ProtocolError>;
    /// Reads a string; invalid UTF-8 is an error.
    fn read_string(&mut self) -> Result<String, ProtocolError>;
    /// Reads binary data as a slice of the input (no copy).
    fn read_binary(&mut self) -> Result<Bytes, ProtocolError>;
    /// Reads a string as a checked slice of the input (no copy).
    #[inline]
    fn read_text(&mut self) -> Result<Text, ProtocolError> {
        Text::from_utf8(self.read_binary()?)
    }
    /// Reads a uuid.
    fn read_uuid(&mut self) -> Result<[u8; 16], ProtocolError>;
    /// Bytes not yet consumed.
    fn remaining(&self) -> usize;
    /// The decode budget that generated decoders charge containers to.
    fn budget(&mut self) -> &mut DecodeBudget;
    /// Takes `bytes` of decoded memory from the budget, or refuses (see
    /// [`budget`]).
    #[inline]
    fn charge(&mut self, bytes: usize) -> Result<(), ProtocolError> {
        self.budget().charge(bytes)
    }
    /// The fewest bytes one value of `ttype` can take in this protocol (for size checks).
    fn min_size(ttype: TType) -> usize;
    /// Skips one value of `ttype`.
    fn skip(&mut self, ttype: TType) -> Result<(), ProtocolError>
    where
        Self: Sized,
    {
        skip::skip(self, ttype)
    }
}

/// A value that can be written with any protocol.
pub trait Encode {
    /// Writes `self`.
    fn encode<W: ProtocolWriter>(&self, w: &mut W);
}

/// A struct already encoded in the protocol it will be written with, written as it
/// is (arguments encoded on another thread, or once for many calls).
pub struct Encoded<'a>(pub &'a [u8]);

impl Encode for Encoded<'_> {
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        w.write_raw(self.0);
    }
}

/// A value that can be read with any protocol.
pub trait Decode: Sized {
    /// Reads a value.
    fn decode<R: ProtocolReader>(r: &mut R) -> Result<Self, ProtocolError>;
}

/// Most bytes' worth of elements a decoder pre-allocates for a container before it
/// has seen them; beyond this the container grows as elements actually arrive.
const PREALLOC_BYTES: usize = 64 * 1024;

/// The capacity to reserve for a container of `len` elements of type `T`, already
/// checked against the remaining input: never more than 64 KiB of memory.
#[inline]
pub fn prealloc<T>(len: usize) -> usize {
    len.min(PREALLOC_BYTES / std::mem::size_of::<T>().max(1))
}

/// Checks that `len` elements of at least `min` bytes each fit in `remaining` bytes.
#[inline]
pub(crate) fn check_len(len: usize, min: usize, remaining: usize) -> Result<(), ProtocolError> {
    if len.saturating_mul(min) > remaining {
        return Err(ProtocolError::new(
            ProtocolErrorKind::SizeLimit,
            format!("container of {len} elements cannot fit in the {remaining} bytes left"),
        ));
    }
    Ok(())
}

/// Encodes `value` as a bare struct with protocol `P` into a new buffer.
pub fn to_bytes(value: &impl Encode, protocol: Protocol) -> Bytes {
    let mut buf = bytes::BytesMut::new();
    with_codec!(protocol, C => value.encode(&mut C::writer(&mut buf)));
    buf.freeze()
}

/// Decodes a bare value of type `T` from `bytes` with the given protocol; the input
/// must be consumed exactly.
pub fn from_bytes<T: Decode>(bytes: Bytes, protocol: Protocol) -> Result<T, ProtocolError> {
    fn whole<T: Decode, R: ProtocolReader>(mut r: R) -> Result<T, ProtocolError> {
        let v = T::decode(&mut r)?;
        match r.remaining() {
            0 => Ok(v),
            n => Err(ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("{n} trailing bytes after the value"),
            )),
        }
    }
    with_codec!(protocol, C => whole(C::reader(bytes)))
}

/// The range of the next `n` input bytes after `pos` in a buffer of `len` bytes,
/// advancing `pos`; truncated input is an error.
#[inline]
pub(crate) fn take_span(
    len: usize,
    pos: &mut usize,
    n: usize,
) -> Result<std::ops::Range<usize>, ProtocolError> {
    if n > len - *pos {
        return Err(ProtocolError::truncated());
    }
    let start = *pos;
    *pos += n;
    Ok(start..*pos)
}

/// Struct nesting of a reader, limited to [`MAX_DEPTH`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Depth(u16);

impl Depth {
    /// Enters a struct.
    #[inline]
    pub(crate) fn enter(&mut self) -> Result<(), ProtocolError> {
        if self.0 >= MAX_DEPTH {
            return Err(ProtocolError::new(
                ProtocolErrorKind::DepthLimit,
                format!("structs nested deeper than {MAX_DEPTH}"),
            ));
        }
        self.0 += 1;
        Ok(())
    }

    /// Leaves a struct.
    #[inline]
    pub(crate) fn leave(&mut self) {
        self.0 = self.0.saturating_sub(1);
    }
}

/// Checks a container's element type on the wire against the declared one (an empty
/// container may carry any type: some writers leave it unset).
#[inline]
pub fn check_elem(expected: TType, found: TType, len: usize) -> Result<(), ProtocolError> {
    if found != expected && len > 0 {
        return Err(ProtocolError::wrong_element_type(expected, found));
    }
    Ok(())
}

impl<T: Encode + ?Sized> Encode for Box<T> {
    #[inline]
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        (**self).encode(w)
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    #[inline]
    fn encode<W: ProtocolWriter>(&self, w: &mut W) {
        (**self).encode(w)
    }
}

/// Where a writer puts its bytes: a [`bytes::BufMut`] that may also take large
/// shared byte strings by reference ([`Sink::put_shared`]).
pub trait Sink: bytes::BufMut {
    /// Appends `v`; a sink that can send it from where it is keeps a reference
    /// instead of copying it. By default it is copied.
    #[inline]
    fn put_shared(&mut self, v: &Bytes) {
        self.put_slice(v);
    }
}

impl Sink for bytes::BytesMut {}

impl Sink for Vec<u8> {}

/// A protocol chosen at compile time: how to make its reader and writer. Lets a
/// connection pick the protocol once and run monomorphised code from then on.
pub trait Codec {
    /// The reader type.
    type Reader: ProtocolReader;
    /// The writer type, borrowing its buffer.
    type Writer<'a, B: Sink + 'a>: ProtocolWriter;
    /// A reader over `buf`.
    fn reader(buf: Bytes) -> Self::Reader;
    /// A writer appending to `buf`.
    fn writer<B: Sink>(buf: &mut B) -> Self::Writer<'_, B>;
}

/// [`Codec`] for TBinaryProtocol: strict reads (`STRICT`), or reads that also take
/// non-strict message headers; writes are always strict, which every non-strict
/// reader accepts.
pub struct BinaryCodecOf<const STRICT: bool>;

/// [`Codec`] for TBinaryProtocol (strict).
pub type BinaryCodec = BinaryCodecOf<true>;

/// [`Codec`] for TBinaryProtocol that also reads non-strict message headers.
pub type NonStrictBinaryCodec = BinaryCodecOf<false>;

/// [`Codec`] for TCompactProtocol.
pub struct CompactCodec;

impl<const STRICT: bool> Codec for BinaryCodecOf<STRICT> {
    type Reader = BinaryReader;
    type Writer<'a, B: Sink + 'a> = BinaryWriter<'a, B>;
    fn reader(buf: Bytes) -> BinaryReader {
        BinaryReader::new(buf).with_strict_read(STRICT)
    }
    fn writer<B: Sink>(buf: &mut B) -> Self::Writer<'_, B> {
        BinaryWriter::new(buf)
    }
}

impl Codec for CompactCodec {
    type Reader = CompactReader;
    type Writer<'a, B: Sink + 'a> = CompactWriter<'a, B>;
    fn reader(buf: Bytes) -> CompactReader {
        CompactReader::new(buf)
    }
    fn writer<B: Sink>(buf: &mut B) -> Self::Writer<'_, B> {
        CompactWriter::new(buf)
    }
}
