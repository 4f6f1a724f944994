//! Wire → JSON, guided by the IDL types.

use base64::Engine;
use serde_json::{Map, Number, Value as Json};

use crate::idl::model::{Field, Program, Ty};
use crate::protocol::{check_elem, element_cost, ProtocolError, ProtocolReader, TType};

/// Reads a struct with `fields` into a JSON object (fields as they came; unknown and
/// mistyped ones skipped).
pub fn decode_fields<R: ProtocolReader>(
    p: &Program,
    fields: &[Field],
    r: &mut R,
) -> Result<Json, ProtocolError> {
    let mark = r.read_struct_begin()?;
    let mut obj = Map::new();
    loop {
        let (t, id) = r.read_field_begin()?;
        if t == TType::Stop {
            break;
        }
        match fields.iter().find(|f| f.id == id && f.ty.ttype() == t) {
            Some(f) => {
                obj.insert(f.name.clone(), decode_value(p, &f.ty, r)?);
            }
            None => r.skip(t)?,
        }
    }
    r.read_struct_end(mark);
    Ok(Json::Object(obj))
}

fn double(d: f64) -> Json {
    match Number::from_f64(d) {
        Some(n) => Json::Number(n),
        None if d.is_nan() => Json::String("NaN".into()),
        None if d > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// Reads one value of type `ty` as JSON.
pub fn decode_value<R: ProtocolReader>(
    p: &Program,
    ty: &Ty,
    r: &mut R,
) -> Result<Json, ProtocolError> {
    Ok(match ty {
        Ty::Bool => Json::Bool(r.read_bool()?),
        Ty::I8 => r.read_i8()?.into(),
        Ty::I16 => r.read_i16()?.into(),
        Ty::I32 | Ty::Enum(_) => r.read_i32()?.into(),
        Ty::I64 => r.read_i64()?.into(),
        Ty::Double => double(r.read_double()?),
        Ty::String => Json::String(r.read_string()?),
        Ty::Binary => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(r.read_binary()?))
        }
        Ty::Uuid => Json::String(crate::protocol::format_uuid(&r.read_uuid()?)),
        Ty::Struct(id) => decode_fields(p, &p.strukt(*id).fields, r)?,
        Ty::List(t) | Ty::Set(t) => {
            let (et, n) = if matches!(ty, Ty::List(_)) {
                r.read_list_begin()?
            } else {
                r.read_set_begin()?
            };
            check_elem(t.ttype(), et, n)?;
            r.charge(element_cost::<Json>(n))?;
            let mut items = Vec::with_capacity(crate::protocol::prealloc::<Json>(n));
            for _ in 0..n {
                items.push(decode_value(p, t, r)?);
            }
            Json::Array(items)
        }
        Ty::Map(k, v) => {
            let (kt, vt, n) = r.read_map_begin()?;
            check_elem(k.ttype(), kt, n)?;
            check_elem(v.ttype(), vt, n)?;
            r.charge(element_cost::<(String, Json)>(n))?;
            let mut obj = Map::new();
            for _ in 0..n {
                let key = match decode_value(p, k, r)? {
                    Json::String(s) if **k == Ty::String => s,
                    other => other.to_string(),
                };
                obj.insert(key, decode_value(p, v, r)?);
            }
            Json::Object(obj)
        }
    })
}
