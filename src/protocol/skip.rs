//! Skipping a value of any type, for unknown fields and unknown methods' arguments.

use super::{ProtocolError, ProtocolErrorKind, ProtocolReader, TType, MAX_DEPTH};

/// Skips one value of `ttype`, nesting at most [`MAX_DEPTH`] containers and structs.
pub fn skip<R: ProtocolReader>(r: &mut R, ttype: TType) -> Result<(), ProtocolError> {
    skip_at(r, ttype, 0)
}

fn skip_at<R: ProtocolReader>(r: &mut R, ttype: TType, depth: u16) -> Result<(), ProtocolError> {
    if depth >= MAX_DEPTH {
        return Err(ProtocolError::new(
            ProtocolErrorKind::DepthLimit,
            format!("values nested deeper than {MAX_DEPTH}"),
        ));
    }
    match ttype {
        TType::Bool => drop(r.read_bool()?),
        TType::I8 => drop(r.read_i8()?),
        TType::I16 => drop(r.read_i16()?),
        TType::I32 => drop(r.read_i32()?),
        TType::I64 => drop(r.read_i64()?),
        TType::Double => drop(r.read_double()?),
        TType::String => drop(r.read_binary()?),
        TType::Uuid => drop(r.read_uuid()?),
        TType::Struct => {
            let mark = r.read_struct_begin()?;
            loop {
                let (t, _) = r.read_field_begin()?;
                if t == TType::Stop {
                    break;
                }
                skip_at(r, t, depth + 1)?;
            }
            r.read_struct_end(mark);
        }
        TType::List | TType::Set => {
            let (elem, len) = if ttype == TType::List {
                r.read_list_begin()?
            } else {
                r.read_set_begin()?
            };
            for _ in 0..len {
                skip_at(r, elem, depth + 1)?;
            }
        }
        TType::Map => {
            let (k, v, len) = r.read_map_begin()?;
            for _ in 0..len {
                skip_at(r, k, depth + 1)?;
                skip_at(r, v, depth + 1)?;
            }
        }
        TType::Stop | TType::Void => {
            return Err(ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("cannot skip a value of type {ttype:?}"),
            ))
        }
    }
    Ok(())
}
