//! TBinaryProtocol: big-endian fixed-width integers, i32 length prefixes.
//!
//! Writes are always strict (`0x8001` version word), as thriftpy2 and Apache Thrift
//! do. Reads are strict by default; non-strict message headers (a name length first)
//! are accepted only with [`BinaryReader::with_strict_read`]`(false)`, because the
//! server's auto-detection and the tracking header rely on the `0x80` marker.

use bytes::Bytes;

use super::{
    check_len, ttype_from_u8, DecodeBudget, Depth, MessageHeader, MessageType, ProtocolError,
    ProtocolErrorKind, ProtocolReader, ProtocolWriter, Sink, TType,
};

/// The strict version word's upper half.
pub const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// Writes TBinaryProtocol into any [`Sink`] (a [`bytes::BufMut`]).
pub struct BinaryWriter<'a, B: Sink> {
    buf: &'a mut B,
}

impl<'a, B: Sink> BinaryWriter<'a, B> {
    /// A writer appending to `buf`.
    pub fn new(buf: &'a mut B) -> Self {
        BinaryWriter { buf }
    }

    #[inline]
    fn put_len(&mut self, len: usize) {
        debug_assert!(len <= i32::MAX as usize, "length over i32::MAX");
        self.buf.put_i32(len as i32);
    }
}

impl<B: Sink> ProtocolWriter for BinaryWriter<'_, B> {
    fn write_message_begin_bytes(&mut self, name: &[u8], kind: MessageType, seqid: i32) {
        self.buf.put_u32(VERSION_1 | kind as u32);
        self.write_binary(name);
        self.buf.put_i32(seqid);
    }

    #[inline]
    fn write_struct_begin(&mut self) -> i16 {
        0
    }

    #[inline]
    fn write_struct_end(&mut self, _mark: i16) {
        self.buf.put_u8(TType::Stop as u8);
    }

    #[inline]
    fn write_field_begin(&mut self, ttype: TType, id: i16) {
        self.buf.put_u8(ttype as u8);
        self.buf.put_i16(id);
    }

    #[inline]
    fn write_bool_field(&mut self, id: i16, value: bool) {
        self.write_field_begin(TType::Bool, id);
        self.write_bool(value);
    }

    #[inline]
    fn write_list_begin(&mut self, elem: TType, len: usize) {
        self.buf.put_u8(elem as u8);
        self.put_len(len);
    }

    #[inline]
    fn write_set_begin(&mut self, elem: TType, len: usize) {
        self.write_list_begin(elem, len);
    }

    #[inline]
    fn write_map_begin(&mut self, key: TType, value: TType, len: usize) {
        self.buf.put_u8(key as u8);
        self.buf.put_u8(value as u8);
        self.put_len(len);
    }

    #[inline]
    fn write_bool(&mut self, v: bool) {
        self.buf.put_u8(v as u8);
    }

    #[inline]
    fn write_i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    #[inline]
    fn write_i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    #[inline]
    fn write_i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    #[inline]
    fn write_i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    #[inline]
    fn write_double(&mut self, v: f64) {
        self.buf.put_f64(v);
    }

    #[inline]
    fn write_binary(&mut self, v: &[u8]) {
        self.put_len(v.len());
        self.buf.put_slice(v);
    }

    #[inline]
    fn write_bytes(&mut self, v: &Bytes) {
        self.put_len(v.len());
        self.buf.put_shared(v);
    }

    #[inline]
    fn write_raw(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }

    #[inline]
    fn write_uuid(&mut self, v: &[u8; 16]) {
        self.buf.put_slice(v);
    }
}

/// Reads TBinaryProtocol from a [`Bytes`] buffer; binary values are zero-copy slices.
pub struct BinaryReader {
    buf: Bytes,
    pos: usize,
    depth: Depth,
    budget: DecodeBudget,
    strict: bool,
}

impl BinaryReader {
    /// A strict reader over `buf`.
    pub fn new(buf: Bytes) -> Self {
        BinaryReader {
            buf,
            pos: 0,
            depth: Depth::default(),
            budget: DecodeBudget::default(),
            strict: true,
        }
    }

    /// Accepts (`false`) or refuses (`true`, the default) non-strict message headers.
    pub fn with_strict_read(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    #[inline]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        match self.buf.get(self.pos..self.pos + N) {
            Some(s) => {
                self.pos += N;
                // The slice has length N by construction.
                Ok(s.try_into().unwrap_or([0; N]))
            }
            None => Err(ProtocolError::truncated()),
        }
    }

    #[inline]
    fn read_len(&mut self) -> Result<usize, ProtocolError> {
        let n = i32::from_be_bytes(self.take()?);
        if n < 0 {
            return Err(ProtocolError::new(
                ProtocolErrorKind::NegativeSize,
                format!("negative length {n}"),
            ));
        }
        Ok(n as usize)
    }

    #[inline]
    fn read_bytes(&mut self) -> Result<std::ops::Range<usize>, ProtocolError> {
        let n = self.read_len()?;
        super::take_span(self.buf.len(), &mut self.pos, n)
    }

    #[inline]
    fn read_ttype(&mut self) -> Result<TType, ProtocolError> {
        ttype_from_u8(self.take::<1>()?[0])
    }

    fn container(&mut self, elems: &[TType]) -> Result<usize, ProtocolError> {
        let len = self.read_len()?;
        let min = elems.iter().map(|t| Self::min_size(*t)).sum();
        check_len(len, min, self.remaining())?;
        Ok(len)
    }
}

impl ProtocolReader for BinaryReader {
    fn read_message_begin(&mut self) -> Result<MessageHeader, ProtocolError> {
        // The usual header, all here, its bounds checked once.
        if let Some(&[v0, v1, 0, k, l0, l1, l2, l3]) = self.buf.get(self.pos..self.pos + 8) {
            let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
            let (name, seqid) = (self.pos + 8, self.pos + 8 + len);
            if u16::from_be_bytes([v0, v1]) == (VERSION_1 >> 16) as u16
                && len <= i32::MAX as usize
                && seqid + 4 <= self.buf.len()
            {
                if let Ok(kind) = MessageType::from_u8(k) {
                    let s = &self.buf[seqid..seqid + 4];
                    let seqid_value = i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
                    self.pos = seqid + 4;
                    return Ok(MessageHeader {
                        name: self.buf.slice(name..name + len),
                        kind,
                        seqid: seqid_value,
                    });
                }
            }
        }
        let word = i32::from_be_bytes(self.take()?);
        if word < 0 {
            let word = word as u32;
            if word & VERSION_MASK != VERSION_1 {
                return Err(ProtocolError::new(
                    ProtocolErrorKind::BadVersion,
                    format!("bad binary protocol version word {word:#010x}"),
                ));
            }
            let kind = MessageType::from_u8((word & 0xff) as u8)?;
            let name = self.read_binary()?;
            let seqid = self.read_i32()?;
            Ok(MessageHeader { name, kind, seqid })
        } else if self.strict {
            Err(ProtocolError::new(
                ProtocolErrorKind::BadVersion,
                "no protocol version header (non-strict binary refused)",
            ))
        } else {
            self.pos -= 4;
            let name = self.read_binary()?;
            let kind = MessageType::from_u8(self.take::<1>()?[0])?;
            let seqid = self.read_i32()?;
            Ok(MessageHeader { name, kind, seqid })
        }
    }

    #[inline]
    fn read_struct_begin(&mut self) -> Result<i16, ProtocolError> {
        self.depth.enter()?;
        Ok(0)
    }

    #[inline]
    fn read_struct_end(&mut self, _mark: i16) {
        self.depth.leave();
    }

    #[inline]
    fn read_field_begin(&mut self) -> Result<(TType, i16), ProtocolError> {
        let t = self.read_ttype()?;
        if t == TType::Stop {
            return Ok((t, 0));
        }
        Ok((t, self.read_i16()?))
    }

    fn read_list_begin(&mut self) -> Result<(TType, usize), ProtocolError> {
        let t = self.read_ttype()?;
        Ok((t, self.container(&[t])?))
    }

    fn read_set_begin(&mut self) -> Result<(TType, usize), ProtocolError> {
        self.read_list_begin()
    }

    fn read_map_begin(&mut self) -> Result<(TType, TType, usize), ProtocolError> {
        let k = self.read_ttype()?;
        let v = self.read_ttype()?;
        Ok((k, v, self.container(&[k, v])?))
    }

    #[inline]
    fn read_bool(&mut self) -> Result<bool, ProtocolError> {
        Ok(self.take::<1>()?[0] != 0)
    }

    #[inline]
    fn read_i8(&mut self) -> Result<i8, ProtocolError> {
        Ok(self.take::<1>()?[0] as i8)
    }

    #[inline]
    fn read_i16(&mut self) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    #[inline]
    fn read_i32(&mut self) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    #[inline]
    fn read_i64(&mut self) -> Result<i64, ProtocolError> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    #[inline]
    fn read_double(&mut self) -> Result<f64, ProtocolError> {
        Ok(f64::from_be_bytes(self.take()?))
    }

    #[inline]
    fn read_string(&mut self) -> Result<String, ProtocolError> {
        let r = self.read_bytes()?;
        super::string_from_utf8(&self.buf[r])
    }

    #[inline]
    fn read_binary(&mut self) -> Result<Bytes, ProtocolError> {
        let r = self.read_bytes()?;
        Ok(self.buf.slice(r))
    }

    #[inline]
    fn read_uuid(&mut self) -> Result<[u8; 16], ProtocolError> {
        self.take()
    }

    #[inline]
    fn budget(&mut self) -> &mut DecodeBudget {
        &mut self.budget
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn min_size(ttype: TType) -> usize {
        match ttype {
            TType::Stop | TType::Void | TType::Bool | TType::I8 | TType::Struct => 1,
            TType::I16 => 2,
            TType::I32 | TType::String => 4,
            TType::I64 | TType::Double => 8,
            TType::List | TType::Set => 5,
            TType::Map => 6,
            TType::Uuid => 16,
        }
    }
}
