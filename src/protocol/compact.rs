//! TCompactProtocol: zigzag varints, field-id deltas, bools folded into field headers.
//!
//! Follows the Apache Thrift specification (`doc/specs/thrift-compact-protocol.md`),
//! which thriftpy2's `protocol/compact.py` implements: protocol id `0x82`, version 1,
//! doubles little-endian, bool list elements as `1` (true) / `2` (false).

use bytes::Bytes;

use super::{
    check_len, DecodeBudget, Depth, MessageHeader, MessageType, ProtocolError, ProtocolErrorKind,
    ProtocolReader, ProtocolWriter, Sink, TType,
};

/// First byte of every compact message.
pub const PROTOCOL_ID: u8 = 0x82;
const VERSION: u8 = 1;
const VERSION_MASK: u8 = 0x1f;
const TYPE_SHIFT: u8 = 5;

/// Compact type nibbles.
mod ct {
    pub const STOP: u8 = 0;
    pub const TRUE: u8 = 1;
    pub const FALSE: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const I16: u8 = 4;
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SET: u8 = 10;
    pub const MAP: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const UUID: u8 = 13;
}

#[inline]
fn to_compact(t: TType) -> u8 {
    match t {
        TType::Stop | TType::Void => ct::STOP,
        TType::Bool => ct::TRUE,
        TType::I8 => ct::BYTE,
        TType::I16 => ct::I16,
        TType::I32 => ct::I32,
        TType::I64 => ct::I64,
        TType::Double => ct::DOUBLE,
        TType::String => ct::BINARY,
        TType::List => ct::LIST,
        TType::Set => ct::SET,
        TType::Map => ct::MAP,
        TType::Struct => ct::STRUCT,
        TType::Uuid => ct::UUID,
    }
}

#[inline]
fn from_compact(c: u8) -> Result<TType, ProtocolError> {
    Ok(match c {
        ct::STOP => TType::Stop,
        ct::TRUE | ct::FALSE => TType::Bool,
        ct::BYTE => TType::I8,
        ct::I16 => TType::I16,
        ct::I32 => TType::I32,
        ct::I64 => TType::I64,
        ct::DOUBLE => TType::Double,
        ct::BINARY => TType::String,
        ct::LIST => TType::List,
        ct::SET => TType::Set,
        ct::MAP => TType::Map,
        ct::STRUCT => TType::Struct,
        ct::UUID => TType::Uuid,
        _ => {
            return Err(ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("unknown compact type {c}"),
            ))
        }
    })
}

#[inline]
fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

#[inline]
fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Writes TCompactProtocol into any [`Sink`] (a [`bytes::BufMut`]).
pub struct CompactWriter<'a, B: Sink> {
    buf: &'a mut B,
    last_field: i16,
}

impl<'a, B: Sink> CompactWriter<'a, B> {
    /// A writer appending to `buf`.
    pub fn new(buf: &'a mut B) -> Self {
        CompactWriter { buf, last_field: 0 }
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        self.buf.put_u8(b);
    }

    #[inline]
    fn varint(&mut self, mut n: u64) {
        // Up to 10 bytes, assembled on the stack and written once.
        let mut tmp = [0u8; 10];
        let mut i = 0;
        while n >= 0x80 {
            tmp[i] = (n as u8) | 0x80;
            n >>= 7;
            i += 1;
        }
        tmp[i] = n as u8;
        self.buf.put_slice(&tmp[..=i]);
    }

    #[inline]
    fn field_header(&mut self, ctype: u8, id: i16) {
        let delta = id.wrapping_sub(self.last_field);
        if delta > 0 && delta <= 15 {
            self.byte(((delta as u8) << 4) | ctype);
        } else {
            self.byte(ctype);
            self.varint(zigzag32(id as i32) as u64);
        }
        self.last_field = id;
    }

    #[inline]
    fn collection(&mut self, elem: TType, len: usize) {
        if len < 15 {
            self.byte(((len as u8) << 4) | to_compact(elem));
        } else {
            self.byte(0xf0 | to_compact(elem));
            self.varint(len as u64);
        }
    }
}

impl<B: Sink> ProtocolWriter for CompactWriter<'_, B> {
    fn write_message_begin_bytes(&mut self, name: &[u8], kind: MessageType, seqid: i32) {
        self.byte(PROTOCOL_ID);
        self.byte((VERSION & VERSION_MASK) | ((kind as u8) << TYPE_SHIFT));
        self.varint(seqid as u32 as u64);
        self.write_binary(name);
    }

    #[inline]
    fn write_struct_begin(&mut self) -> i16 {
        std::mem::replace(&mut self.last_field, 0)
    }

    #[inline]
    fn write_struct_end(&mut self, mark: i16) {
        self.byte(ct::STOP);
        self.last_field = mark;
    }

    #[inline]
    fn write_field_begin(&mut self, ttype: TType, id: i16) {
        self.field_header(to_compact(ttype), id);
    }

    #[inline]
    fn write_bool_field(&mut self, id: i16, value: bool) {
        self.field_header(if value { ct::TRUE } else { ct::FALSE }, id);
    }

    #[inline]
    fn write_list_begin(&mut self, elem: TType, len: usize) {
        self.collection(elem, len);
    }

    #[inline]
    fn write_set_begin(&mut self, elem: TType, len: usize) {
        self.collection(elem, len);
    }

    #[inline]
    fn write_map_begin(&mut self, key: TType, value: TType, len: usize) {
        if len == 0 {
            self.byte(0);
        } else {
            self.varint(len as u64);
            self.byte((to_compact(key) << 4) | to_compact(value));
        }
    }

    #[inline]
    fn write_bool(&mut self, v: bool) {
        self.byte(if v { ct::TRUE } else { ct::FALSE });
    }

    #[inline]
    fn write_i8(&mut self, v: i8) {
        self.byte(v as u8);
    }

    #[inline]
    fn write_i16(&mut self, v: i16) {
        self.varint(zigzag32(v as i32) as u64);
    }

    #[inline]
    fn write_i32(&mut self, v: i32) {
        self.varint(zigzag32(v) as u64);
    }

    #[inline]
    fn write_i64(&mut self, v: i64) {
        self.varint(zigzag64(v));
    }

    #[inline]
    fn write_double(&mut self, v: f64) {
        self.buf.put_f64_le(v);
    }

    #[inline]
    fn write_binary(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.buf.put_slice(v);
    }

    #[inline]
    fn write_bytes(&mut self, v: &Bytes) {
        self.varint(v.len() as u64);
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

/// Reads TCompactProtocol from a [`Bytes`] buffer; binary values are zero-copy slices.
pub struct CompactReader {
    buf: Bytes,
    pos: usize,
    depth: Depth,
    budget: DecodeBudget,
    last_field: i16,
    /// The value of a bool field whose header was just read (compact folds it in).
    pending_bool: Option<bool>,
}

impl CompactReader {
    /// A reader over `buf`.
    pub fn new(buf: Bytes) -> Self {
        CompactReader {
            buf,
            pos: 0,
            depth: Depth::default(),
            budget: DecodeBudget::default(),
            last_field: 0,
            pending_bool: None,
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, ProtocolError> {
        match self.buf.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => Err(ProtocolError::truncated()),
        }
    }

    #[inline]
    fn varint(&mut self, max_bytes: u32) -> Result<u64, ProtocolError> {
        let mut result = 0u64;
        let mut shift = 0u32;
        for _ in 0..max_bytes {
            let b = self.byte()?;
            result |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(result);
            }
            shift += 7;
        }
        Err(ProtocolError::new(
            ProtocolErrorKind::InvalidData,
            "varint longer than its type allows",
        ))
    }

    #[inline]
    fn varint32(&mut self) -> Result<i32, ProtocolError> {
        let n = self.varint(5)? as u32;
        Ok(((n >> 1) as i32) ^ -((n & 1) as i32))
    }

    #[inline]
    fn len(&mut self) -> Result<usize, ProtocolError> {
        let n = self.varint(5)?;
        if n > i32::MAX as u64 {
            return Err(ProtocolError::new(
                ProtocolErrorKind::NegativeSize,
                format!("length {n} over i32::MAX"),
            ));
        }
        Ok(n as usize)
    }

    #[inline]
    fn read_bytes(&mut self) -> Result<std::ops::Range<usize>, ProtocolError> {
        let n = self.len()?;
        super::take_span(self.buf.len(), &mut self.pos, n)
    }

    fn collection(&mut self) -> Result<(TType, usize), ProtocolError> {
        let head = self.byte()?;
        let elem = from_compact(head & 0x0f)?;
        let len = match head >> 4 {
            15 => self.len()?,
            n => n as usize,
        };
        check_len(len, Self::min_size(elem), self.remaining())?;
        Ok((elem, len))
    }
}

impl ProtocolReader for CompactReader {
    fn read_message_begin(&mut self) -> Result<MessageHeader, ProtocolError> {
        let id = self.byte()?;
        if id != PROTOCOL_ID {
            return Err(ProtocolError::new(
                ProtocolErrorKind::BadVersion,
                format!("compact protocol id {id:#04x}, expected 0x82"),
            ));
        }
        let vt = self.byte()?;
        if vt & VERSION_MASK != VERSION {
            return Err(ProtocolError::new(
                ProtocolErrorKind::BadVersion,
                format!("compact protocol version {}", vt & VERSION_MASK),
            ));
        }
        let kind = MessageType::from_u8(vt >> TYPE_SHIFT)?;
        let seqid = self.varint(5)? as u32 as i32;
        let name = self.read_binary()?;
        Ok(MessageHeader { name, kind, seqid })
    }

    #[inline]
    fn read_struct_begin(&mut self) -> Result<i16, ProtocolError> {
        self.depth.enter()?;
        Ok(std::mem::replace(&mut self.last_field, 0))
    }

    #[inline]
    fn read_struct_end(&mut self, mark: i16) {
        self.depth.leave();
        self.last_field = mark;
    }

    #[inline]
    fn read_field_begin(&mut self) -> Result<(TType, i16), ProtocolError> {
        let head = self.byte()?;
        let ctype = head & 0x0f;
        if ctype == ct::STOP {
            return Ok((TType::Stop, 0));
        }
        let ttype = from_compact(ctype)?;
        let id = match head >> 4 {
            0 => {
                let id = self.varint32()?;
                i16::try_from(id).map_err(|_| {
                    ProtocolError::new(
                        ProtocolErrorKind::InvalidData,
                        format!("field id {id} out of range"),
                    )
                })?
            }
            delta => self.last_field.wrapping_add(delta as i16),
        };
        self.last_field = id;
        if ttype == TType::Bool {
            self.pending_bool = Some(ctype == ct::TRUE);
        }
        Ok((ttype, id))
    }

    fn read_list_begin(&mut self) -> Result<(TType, usize), ProtocolError> {
        self.collection()
    }

    fn read_set_begin(&mut self) -> Result<(TType, usize), ProtocolError> {
        self.collection()
    }

    fn read_map_begin(&mut self) -> Result<(TType, TType, usize), ProtocolError> {
        let len = self.len()?;
        if len == 0 {
            return Ok((TType::Stop, TType::Stop, 0));
        }
        let kv = self.byte()?;
        let k = from_compact(kv >> 4)?;
        let v = from_compact(kv & 0x0f)?;
        check_len(len, Self::min_size(k) + Self::min_size(v), self.remaining())?;
        Ok((k, v, len))
    }

    #[inline]
    fn read_bool(&mut self) -> Result<bool, ProtocolError> {
        if let Some(v) = self.pending_bool.take() {
            return Ok(v);
        }
        match self.byte()? {
            ct::TRUE => Ok(true),
            ct::FALSE | 0 => Ok(false),
            b => Err(ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("bad compact bool byte {b}"),
            )),
        }
    }

    #[inline]
    fn read_i8(&mut self) -> Result<i8, ProtocolError> {
        Ok(self.byte()? as i8)
    }

    #[inline]
    fn read_i16(&mut self) -> Result<i16, ProtocolError> {
        let n = self.varint32()?;
        i16::try_from(n).map_err(|_| {
            ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("i16 value {n} out of range"),
            )
        })
    }

    #[inline]
    fn read_i32(&mut self) -> Result<i32, ProtocolError> {
        self.varint32()
    }

    #[inline]
    fn read_i64(&mut self) -> Result<i64, ProtocolError> {
        let n = self.varint(10)?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    #[inline]
    fn read_double(&mut self) -> Result<f64, ProtocolError> {
        match self.buf.get(self.pos..self.pos + 8) {
            Some(s) => {
                self.pos += 8;
                Ok(f64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
            }
            None => Err(ProtocolError::truncated()),
        }
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

    fn read_uuid(&mut self) -> Result<[u8; 16], ProtocolError> {
        match self.buf.get(self.pos..self.pos + 16) {
            Some(s) => {
                self.pos += 16;
                Ok(s.try_into().unwrap_or([0; 16]))
            }
            None => Err(ProtocolError::truncated()),
        }
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
            TType::Double => 8,
            TType::Uuid => 16,
            _ => 1,
        }
    }
}
