//! `Item` for the Apache `thrift` crate 0.25, as its compiler (`thrift --gen rs`)
//! generates it: `String`, `Vec<u8>`, `BTreeMap`/`BTreeSet`, identifiers built per
//! field, dynamic protocol objects behind `&mut dyn` in generated code.

use std::collections::{BTreeMap, BTreeSet};

use thrift::protocol::{
    TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier, TOutputProtocol,
    TSetIdentifier, TStructIdentifier, TType,
};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inner {
    pub label: Option<String>,
    pub values: Option<Vec<i64>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Item {
    pub id: i64,
    pub name: Option<String>,
    pub scores: Option<Vec<f64>>,
    pub attrs: Option<BTreeMap<String, i32>>,
    pub tags: Option<BTreeSet<i16>>,
    pub blob: Option<Vec<u8>>,
    pub flag: bool,
    pub tiny: Option<i8>,
    pub color: i32,
    pub inner: Option<Inner>,
    pub children: Option<Vec<Inner>>,
    pub nested: Option<BTreeMap<i32, Vec<String>>>,
}

type R<T> = thrift::Result<T>;

impl Inner {
    pub fn write_to_out_protocol(&self, o: &mut dyn TOutputProtocol) -> R<()> {
        o.write_struct_begin(&TStructIdentifier::new("Inner"))?;
        if let Some(v) = &self.label {
            o.write_field_begin(&TFieldIdentifier::new("label", TType::String, 1))?;
            o.write_string(v)?;
            o.write_field_end()?;
        }
        if let Some(v) = &self.values {
            o.write_field_begin(&TFieldIdentifier::new("values", TType::List, 2))?;
            o.write_list_begin(&TListIdentifier::new(TType::I64, v.len() as i32))?;
            for x in v {
                o.write_i64(*x)?;
            }
            o.write_list_end()?;
            o.write_field_end()?;
        }
        o.write_field_stop()?;
        o.write_struct_end()
    }

    pub fn read_from_in_protocol(i: &mut dyn TInputProtocol) -> R<Inner> {
        i.read_struct_begin()?;
        let mut out = Inner::default();
        loop {
            let f = i.read_field_begin()?;
            if f.field_type == TType::Stop {
                break;
            }
            match f.id {
                Some(1) => out.label = Some(i.read_string()?),
                Some(2) => {
                    let l = i.read_list_begin()?;
                    let mut v = Vec::with_capacity(l.size as usize);
                    for _ in 0..l.size {
                        v.push(i.read_i64()?);
                    }
                    i.read_list_end()?;
                    out.values = Some(v);
                }
                _ => i.skip(f.field_type)?,
            }
            i.read_field_end()?;
        }
        i.read_struct_end()?;
        Ok(out)
    }
}

impl Item {
    pub fn write_to_out_protocol(&self, o: &mut dyn TOutputProtocol) -> R<()> {
        o.write_struct_begin(&TStructIdentifier::new("Item"))?;
        o.write_field_begin(&TFieldIdentifier::new("id", TType::I64, 1))?;
        o.write_i64(self.id)?;
        o.write_field_end()?;
        if let Some(v) = &self.name {
            o.write_field_begin(&TFieldIdentifier::new("name", TType::String, 2))?;
            o.write_string(v)?;
            o.write_field_end()?;
        }
        if let Some(v) = &self.scores {
            o.write_field_begin(&TFieldIdentifier::new("scores", TType::List, 3))?;
            o.write_list_begin(&TListIdentifier::new(TType::Double, v.len() as i32))?;
            for x in v {
                o.write_double(*x)?;
            }
            o.write_list_end()?;
            o.write_field_end()?;
        }
        if let Some(v) = &self.attrs {
            o.write_field_begin(&TFieldIdentifier::new("attrs", TType::Map, 4))?;
            o.write_map_begin(&TMapIdentifier::new(
                TType::String,
                TType::I32,
                v.len() as i32,
            ))?;
            for (k, x) in v {
                o.write_string(k)?;
                o.write_i32(*x)?;
            }
            o.write_map_end()?;
            o.write_field_end()?;
        }
        if let Some(v) = &self.tags {
            o.write_field_begin(&TFieldIdentifier::new("tags", TType::Set, 5))?;
            o.write_set_begin(&TSetIdentifier::new(TType::I16, v.len() as i32))?;
            for x in v {
                o.write_i16(*x)?;
            }
            o.write_set_end()?;
            o.write_field_end()?;
        }
        if let Some(v) = &self.blob {
            o.write_field_begin(&TFieldIdentifier::new("blob", TType::String, 6))?;
            o.write_bytes(v)?;
            o.write_field_end()?;
        }
        o.write_field_begin(&TFieldIdentifier::new("flag", TType::Bool, 7))?;
        o.write_bool(self.flag)?;
        o.write_field_end()?;
        if let Some(v) = self.tiny {
            o.write_field_begin(&TFieldIdentifier::new("tiny", TType::I08, 8))?;
            o.write_i8(v)?;
            o.write_field_end()?;
        }
        o.write_field_begin(&TFieldIdentifier::new("color", TType::I32, 9))?;
        o.write_i32(self.color)?;
        o.write_field_end()?;
        if let Some(v) = &self.inner {
            o.write_field_begin(&TFieldIdentifier::new("inner", TType::Struct, 10))?;
            v.write_to_out_protocol(o)?;
            o.write_field_end()?;
        }
        if let Some(v) = &self.children {
            o.write_field_begin(&TFieldIdentifier::new("children", TType::List, 11))?;
            o.write_list_begin(&TListIdentifier::new(TType::Struct, v.len() as i32))?;
            for x in v {
                x.write_to_out_protocol(o)?;
            }
            o.write_list_end()?;
            o.write_field_end()?;
        }
        if let Some(v) = &self.nested {
            o.write_field_begin(&TFieldIdentifier::new("nested", TType::Map, 12))?;
            o.write_map_begin(&TMapIdentifier::new(
                TType::I32,
                TType::List,
                v.len() as i32,
            ))?;
            for (k, l) in v {
                o.write_i32(*k)?;
                o.write_list_begin(&TListIdentifier::new(TType::String, l.len() as i32))?;
                for s in l {
                    o.write_string(s)?;
                }
                o.write_list_end()?;
            }
            o.write_map_end()?;
            o.write_field_end()?;
        }
        o.write_field_stop()?;
        o.write_struct_end()
    }

    pub fn read_from_in_protocol(i: &mut dyn TInputProtocol) -> R<Item> {
        i.read_struct_begin()?;
        let mut out = Item::default();
        let mut id = None;
        loop {
            let f = i.read_field_begin()?;
            if f.field_type == TType::Stop {
                break;
            }
            match f.id {
                Some(1) => id = Some(i.read_i64()?),
                Some(2) => out.name = Some(i.read_string()?),
                Some(3) => {
                    let l = i.read_list_begin()?;
                    let mut v = Vec::with_capacity(l.size as usize);
                    for _ in 0..l.size {
                        v.push(i.read_double()?);
                    }
                    i.read_list_end()?;
                    out.scores = Some(v);
                }
                Some(4) => {
                    let m = i.read_map_begin()?;
                    let mut v = BTreeMap::new();
                    for _ in 0..m.size {
                        let k = i.read_string()?;
                        v.insert(k, i.read_i32()?);
                    }
                    i.read_map_end()?;
                    out.attrs = Some(v);
                }
                Some(5) => {
                    let s = i.read_set_begin()?;
                    let mut v = BTreeSet::new();
                    for _ in 0..s.size {
                        v.insert(i.read_i16()?);
                    }
                    i.read_set_end()?;
                    out.tags = Some(v);
                }
                Some(6) => out.blob = Some(i.read_bytes()?),
                Some(7) => out.flag = i.read_bool()?,
                Some(8) => out.tiny = Some(i.read_i8()?),
                Some(9) => out.color = i.read_i32()?,
                Some(10) => out.inner = Some(Inner::read_from_in_protocol(i)?),
                Some(11) => {
                    let l = i.read_list_begin()?;
                    let mut v = Vec::with_capacity(l.size as usize);
                    for _ in 0..l.size {
                        v.push(Inner::read_from_in_protocol(i)?);
                    }
                    i.read_list_end()?;
                    out.children = Some(v);
                }
                Some(12) => {
                    let m = i.read_map_begin()?;
                    let mut v = BTreeMap::new();
                    for _ in 0..m.size {
                        let k = i.read_i32()?;
                        let l = i.read_list_begin()?;
                        let mut s = Vec::with_capacity(l.size as usize);
                        for _ in 0..l.size {
                            s.push(i.read_string()?);
                        }
                        i.read_list_end()?;
                        v.insert(k, s);
                    }
                    i.read_map_end()?;
                    out.nested = Some(v);
                }
                _ => i.skip(f.field_type)?,
            }
            i.read_field_end()?;
        }
        i.read_struct_end()?;
        out.id = id.ok_or_else(|| {
            thrift::Error::Protocol(thrift::ProtocolError::new(
                thrift::ProtocolErrorKind::InvalidData,
                "field id is required",
            ))
        })?;
        Ok(out)
    }
}
