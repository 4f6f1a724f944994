//! `Item` for pilota 0.13, as pilota-build generates it: `FastStr` strings, `Bytes`
//! binary, `AHashMap`/`AHashSet` containers, `Message` encode/decode.

use pilota::thrift::{
    Message, TAsyncInputProtocol, TInputProtocol, TLengthProtocol, TListIdentifier, TMapIdentifier,
    TOutputProtocol, TSetIdentifier, TStructIdentifier, TType, ThriftException,
};
use pilota::{AHashMap, AHashSet, Bytes, FastStr};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inner {
    pub label: Option<FastStr>,
    pub values: Option<Vec<i64>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Item {
    pub id: i64,
    pub name: Option<FastStr>,
    pub scores: Option<Vec<f64>>,
    pub attrs: Option<AHashMap<FastStr, i32>>,
    pub tags: Option<AHashSet<i16>>,
    pub blob: Option<Bytes>,
    pub flag: bool,
    pub tiny: Option<i8>,
    pub color: i32,
    pub inner: Option<Inner>,
    pub children: Option<Vec<Inner>>,
    pub nested: Option<AHashMap<i32, Vec<FastStr>>>,
}

impl Message for Inner {
    fn encode<T: TOutputProtocol>(&self, p: &mut T) -> Result<(), ThriftException> {
        p.write_struct_begin(&TStructIdentifier { name: "Inner" })?;
        if let Some(v) = self.label.as_ref() {
            p.write_field_begin(TType::Binary, 1)?;
            p.write_faststr(v.clone())?;
            p.write_field_end()?;
        }
        if let Some(v) = self.values.as_ref() {
            p.write_field_begin(TType::List, 2)?;
            p.write_list_begin(TListIdentifier {
                element_type: TType::I64,
                size: v.len(),
            })?;
            for x in v {
                p.write_i64(*x)?;
            }
            p.write_list_end()?;
            p.write_field_end()?;
        }
        p.write_field_stop()?;
        p.write_struct_end()
    }

    fn decode<T: TInputProtocol>(p: &mut T) -> Result<Self, ThriftException> {
        let (mut label, mut values) = (None, None);
        p.read_struct_begin()?;
        loop {
            let f = p.read_field_begin()?;
            if f.field_type == TType::Stop {
                break;
            }
            match f.id {
                Some(1) if f.field_type == TType::Binary => label = Some(p.read_faststr()?),
                Some(2) if f.field_type == TType::List => {
                    let l = p.read_list_begin()?;
                    let mut v = Vec::with_capacity(l.size);
                    for _ in 0..l.size {
                        v.push(p.read_i64()?);
                    }
                    p.read_list_end()?;
                    values = Some(v);
                }
                _ => {
                    p.skip(f.field_type)?;
                }
            }
            p.read_field_end()?;
        }
        p.read_struct_end()?;
        Ok(Inner { label, values })
    }

    async fn decode_async<T: TAsyncInputProtocol>(_: &mut T) -> Result<Self, ThriftException> {
        unreachable!("the benchmark decodes from memory only")
    }

    fn size<T: TLengthProtocol>(&self, _: &mut T) -> usize {
        unreachable!("the benchmark does not pre-size buffers for any implementation")
    }
}

impl Message for Item {
    fn encode<T: TOutputProtocol>(&self, p: &mut T) -> Result<(), ThriftException> {
        p.write_struct_begin(&TStructIdentifier { name: "Item" })?;
        p.write_field_begin(TType::I64, 1)?;
        p.write_i64(self.id)?;
        p.write_field_end()?;
        if let Some(v) = self.name.as_ref() {
            p.write_field_begin(TType::Binary, 2)?;
            p.write_faststr(v.clone())?;
            p.write_field_end()?;
        }
        if let Some(v) = self.scores.as_ref() {
            p.write_field_begin(TType::List, 3)?;
            p.write_list_begin(TListIdentifier {
                element_type: TType::Double,
                size: v.len(),
            })?;
            for x in v {
                p.write_double(*x)?;
            }
            p.write_list_end()?;
            p.write_field_end()?;
        }
        if let Some(v) = self.attrs.as_ref() {
            p.write_field_begin(TType::Map, 4)?;
            p.write_map_begin(TMapIdentifier {
                key_type: TType::Binary,
                value_type: TType::I32,
                size: v.len(),
            })?;
            for (k, x) in v {
                p.write_faststr(k.clone())?;
                p.write_i32(*x)?;
            }
            p.write_map_end()?;
            p.write_field_end()?;
        }
        if let Some(v) = self.tags.as_ref() {
            p.write_field_begin(TType::Set, 5)?;
            p.write_set_begin(TSetIdentifier {
                element_type: TType::I16,
                size: v.len(),
            })?;
            for x in v {
                p.write_i16(*x)?;
            }
            p.write_set_end()?;
            p.write_field_end()?;
        }
        if let Some(v) = self.blob.as_ref() {
            p.write_field_begin(TType::Binary, 6)?;
            p.write_bytes(v.clone())?;
            p.write_field_end()?;
        }
        p.write_field_begin(TType::Bool, 7)?;
        p.write_bool(self.flag)?;
        p.write_field_end()?;
        if let Some(v) = self.tiny {
            p.write_field_begin(TType::I8, 8)?;
            p.write_i8(v)?;
            p.write_field_end()?;
        }
        p.write_field_begin(TType::I32, 9)?;
        p.write_i32(self.color)?;
        p.write_field_end()?;
        if let Some(v) = self.inner.as_ref() {
            p.write_field_begin(TType::Struct, 10)?;
            v.encode(p)?;
            p.write_field_end()?;
        }
        if let Some(v) = self.children.as_ref() {
            p.write_field_begin(TType::List, 11)?;
            p.write_list_begin(TListIdentifier {
                element_type: TType::Struct,
                size: v.len(),
            })?;
            for x in v {
                x.encode(p)?;
            }
            p.write_list_end()?;
            p.write_field_end()?;
        }
        if let Some(v) = self.nested.as_ref() {
            p.write_field_begin(TType::Map, 12)?;
            p.write_map_begin(TMapIdentifier {
                key_type: TType::I32,
                value_type: TType::List,
                size: v.len(),
            })?;
            for (k, l) in v {
                p.write_i32(*k)?;
                p.write_list_begin(TListIdentifier {
                    element_type: TType::Binary,
                    size: l.len(),
                })?;
                for s in l {
                    p.write_faststr(s.clone())?;
                }
                p.write_list_end()?;
            }
            p.write_map_end()?;
            p.write_field_end()?;
        }
        p.write_field_stop()?;
        p.write_struct_end()
    }

    fn decode<T: TInputProtocol>(p: &mut T) -> Result<Self, ThriftException> {
        let mut out = Item::default();
        let mut id = None;
        p.read_struct_begin()?;
        loop {
            let f = p.read_field_begin()?;
            if f.field_type == TType::Stop {
                break;
            }
            match f.id {
                Some(1) if f.field_type == TType::I64 => id = Some(p.read_i64()?),
                Some(2) if f.field_type == TType::Binary => out.name = Some(p.read_faststr()?),
                Some(3) if f.field_type == TType::List => {
                    let l = p.read_list_begin()?;
                    let mut v = Vec::with_capacity(l.size);
                    for _ in 0..l.size {
                        v.push(p.read_double()?);
                    }
                    p.read_list_end()?;
                    out.scores = Some(v);
                }
                Some(4) if f.field_type == TType::Map => {
                    let m = p.read_map_begin()?;
                    let mut v = AHashMap::with_capacity(m.size);
                    for _ in 0..m.size {
                        let k = p.read_faststr()?;
                        v.insert(k, p.read_i32()?);
                    }
                    p.read_map_end()?;
                    out.attrs = Some(v);
                }
                Some(5) if f.field_type == TType::Set => {
                    let s = p.read_set_begin()?;
                    let mut v = AHashSet::with_capacity(s.size);
                    for _ in 0..s.size {
                        v.insert(p.read_i16()?);
                    }
                    p.read_set_end()?;
                    out.tags = Some(v);
                }
                Some(6) if f.field_type == TType::Binary => out.blob = Some(p.read_bytes()?),
                Some(7) if f.field_type == TType::Bool => out.flag = p.read_bool()?,
                Some(8) if f.field_type == TType::I8 => out.tiny = Some(p.read_i8()?),
                Some(9) if f.field_type == TType::I32 => out.color = p.read_i32()?,
                Some(10) if f.field_type == TType::Struct => out.inner = Some(Inner::decode(p)?),
                Some(11) if f.field_type == TType::List => {
                    let l = p.read_list_begin()?;
                    let mut v = Vec::with_capacity(l.size);
                    for _ in 0..l.size {
                        v.push(Inner::decode(p)?);
                    }
                    p.read_list_end()?;
                    out.children = Some(v);
                }
                Some(12) if f.field_type == TType::Map => {
                    let m = p.read_map_begin()?;
                    let mut v = AHashMap::with_capacity(m.size);
                    for _ in 0..m.size {
                        let k = p.read_i32()?;
                        let l = p.read_list_begin()?;
                        let mut s = Vec::with_capacity(l.size);
                        for _ in 0..l.size {
                            s.push(p.read_faststr()?);
                        }
                        p.read_list_end()?;
                        v.insert(k, s);
                    }
                    p.read_map_end()?;
                    out.nested = Some(v);
                }
                _ => {
                    p.skip(f.field_type)?;
                }
            }
            p.read_field_end()?;
        }
        p.read_struct_end()?;
        out.id = id.ok_or_else(|| {
            pilota::thrift::new_protocol_exception(
                pilota::thrift::ProtocolExceptionKind::InvalidData,
                "field id is required",
            )
        })?;
        Ok(out)
    }

    async fn decode_async<T: TAsyncInputProtocol>(_: &mut T) -> Result<Self, ThriftException> {
        unreachable!("the benchmark decodes from memory only")
    }

    fn size<T: TLengthProtocol>(&self, _: &mut T) -> usize {
        unreachable!("the benchmark does not pre-size buffers for any implementation")
    }
}
