//! JSON → wire, guided by the IDL types.

use base64::Engine;
use serde_json::Value as Json;

use crate::idl::model::{Field, Program, Requiredness, StructKind, Ty};
use crate::protocol::ProtocolWriter;

use super::DynamicError;

type Result<T> = std::result::Result<T, DynamicError>;

/// Writes `json` as a struct with `fields` (`union` when `kind` is a union).
pub fn encode_fields<W: ProtocolWriter>(
    p: &Program,
    fields: &[Field],
    kind: StructKind,
    json: &Json,
    w: &mut W,
) -> Result<()> {
    let empty = serde_json::Map::new();
    let obj = match json {
        Json::Object(o) => o,
        Json::Null => &empty,
        other => {
            return Err(DynamicError::json(format!(
                "expected an object, found {other}"
            )))
        }
    };
    if let Some(k) = obj.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
        return Err(DynamicError::json(format!("unknown field `{k}`")));
    }
    let given = fields
        .iter()
        .filter(|f| obj.get(&f.name).is_some_and(|v| !v.is_null()));
    if kind == StructKind::Union && given.clone().count() != 1 {
        return Err(DynamicError::json("a union needs exactly one field"));
    }
    let mark = w.write_struct_begin();
    for f in fields {
        match obj.get(&f.name) {
            Some(v) if !v.is_null() => {
                if f.ty == Ty::Bool {
                    let b = v.as_bool().ok_or_else(|| {
                        DynamicError::json(format!("expected a bool, found {v}")).at(&f.name)
                    })?;
                    w.write_bool_field(f.id, b);
                } else {
                    w.write_field_begin(f.ty.ttype(), f.id);
                    encode_value(p, &f.ty, v, w).map_err(|e| e.at(&f.name))?;
                }
            }
            _ if f.req == Requiredness::Required => {
                return Err(DynamicError::json(format!(
                    "required field `{}` is missing",
                    f.name
                )))
            }
            _ => {}
        }
    }
    w.write_struct_end(mark);
    Ok(())
}

fn int(json: &Json, lo: i64, hi: i64) -> Result<i64> {
    match json.as_i64() {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(DynamicError::json(format!(
            "expected an integer in {lo}..={hi}, found {json}"
        ))),
    }
}

/// Writes one value of type `ty` from `json`.
pub fn encode_value<W: ProtocolWriter>(p: &Program, ty: &Ty, json: &Json, w: &mut W) -> Result<()> {
    match ty {
        Ty::Bool => w.write_bool(
            json.as_bool()
                .ok_or_else(|| DynamicError::json(format!("expected a bool, found {json}")))?,
        ),
        Ty::I8 => w.write_i8(int(json, i8::MIN as i64, i8::MAX as i64)? as i8),
        Ty::I16 => w.write_i16(int(json, i16::MIN as i64, i16::MAX as i64)? as i16),
        Ty::I32 => w.write_i32(int(json, i32::MIN as i64, i32::MAX as i64)? as i32),
        Ty::I64 => w.write_i64(int(json, i64::MIN, i64::MAX)?),
        Ty::Double => w.write_double(match json {
            Json::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Json::String(s) if s == "NaN" => f64::NAN,
            Json::String(s) if s == "Infinity" => f64::INFINITY,
            Json::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
            other => {
                return Err(DynamicError::json(format!(
                    "expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), found {other}"
                )))
            }
        }),
        Ty::String => w.write_string(
            json.as_str()
                .ok_or_else(|| DynamicError::json(format!("expected a string, found {json}")))?,
        ),
        Ty::Binary => {
            let s = json
                .as_str()
                .ok_or_else(|| DynamicError::json(format!("expected base64 text, found {json}")))?;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| DynamicError::json(format!("bad base64: {e}")))?;
            w.write_binary(&b);
        }
        Ty::Uuid => w.write_uuid(&parse_uuid(json)?),
        Ty::Enum(id) => {
            let e = p.enumeration(*id);
            let n = match json {
                Json::String(s) => e
                    .values
                    .iter()
                    .find(|v| &v.name == s)
                    .map(|v| v.value)
                    .ok_or_else(|| {
                        DynamicError::json(format!("`{s}` is not a value of enum {}", e.name))
                    })?,
                other => int(other, i32::MIN as i64, i32::MAX as i64)? as i32,
            };
            w.write_i32(n);
        }
        Ty::Struct(id) => {
            let s = p.strukt(*id);
            encode_fields(p, &s.fields, s.kind, json, w)?;
        }
        Ty::List(t) | Ty::Set(t) => {
            let items = json
                .as_array()
                .ok_or_else(|| DynamicError::json(format!("expected an array, found {json}")))?;
            if matches!(ty, Ty::List(_)) {
                w.write_list_begin(t.ttype(), items.len());
            } else {
                w.write_set_begin(t.ttype(), items.len());
            }
            for (i, v) in items.iter().enumerate() {
                encode_value(p, t, v, w).map_err(|e| e.at(&format!("[{i}]")))?;
            }
        }
        Ty::Map(k, v) => {
            let obj = json
                .as_object()
                .ok_or_else(|| DynamicError::json(format!("expected an object, found {json}")))?;
            w.write_map_begin(k.ttype(), v.ttype(), obj.len());
            for (key, val) in obj {
                let at = format!("[{key:?}]");
                if **k == Ty::String {
                    w.write_string(key);
                } else {
                    let kj: Json = serde_json::from_str(key).map_err(|_| {
                        DynamicError::json(format!(
                            "map key `{key}` is not JSON text: a map whose keys are not strings \
                             takes each key as its JSON text, as \"4\" for 4"
                        ))
                        .at(&at)
                    })?;
                    encode_value(p, k, &kj, w).map_err(|e| e.at(&at))?;
                }
                encode_value(p, v, val, w).map_err(|e| e.at(&at))?;
            }
        }
    }
    Ok(())
}

fn parse_uuid(json: &Json) -> Result<[u8; 16]> {
    json.as_str()
        .and_then(crate::protocol::parse_uuid)
        .ok_or_else(|| {
            DynamicError::json(format!(
                "expected a uuid like 00112233-4455-6677-8899-aabbccddeeff, found {json}"
            ))
        })
}
