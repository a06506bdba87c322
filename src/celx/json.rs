//! JSON ↔ CEL conversions, and `json.encode`.
//!
//! JSON comes in as Cerbos receives it, as `google.protobuf.Value`: every
//! number is a `double`, objects are maps with string keys. Values go out the
//! way cel-go converts them to `google.protobuf.Value` (what Cerbos renders
//! outputs with).

use super::err::CelxError;
use super::message::MessageType;
use super::util::{take_args, FnResult};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelString, CelTimestamp, CelUInt, Kind, DYN_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The largest integer a double holds exactly: cel-go renders ints beyond
/// it as JSON strings.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Converts JSON to CEL, making strings (values and keys) with `string`.
fn convert<'i, 'o>(
    value: &'i Value,
    string: &impl Fn(&'i str) -> CelString<'o>,
) -> Box<dyn Val + 'o> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Box::new(string(s)),
        Value::Array(items) => Box::new(CelList::from(
            items
                .iter()
                .map(|item| convert(item, string))
                .collect::<Vec<_>>(),
        )),
        Value::Object(fields) => {
            let map: HashMap<CelMapKey<'o>, Box<dyn Val + 'o>> = fields
                .iter()
                .map(|(k, v)| (CelMapKey::String(string(k)), convert(v, string)))
                .collect();
            Box::new(CelMap::from(map))
        }
    }
}

/// See [`super::json_to_val`].
pub(crate) fn to_val<'a>(value: &'a Value) -> Box<dyn Val + 'a> {
    convert(value, &|s: &'a str| CelString::from(s))
}

/// See [`super::json_to_static_val`].
pub(crate) fn to_static_val(value: &Value) -> Box<dyn Val + 'static> {
    convert(value, &|s: &str| CelString::from(s.to_owned()))
}

/// A request message as protobuf's JSON renders it: only its populated
/// fields, under their JSON names.
fn message(value: &dyn Val, message_type: &MessageType) -> Result<Value, CelxError> {
    let type_name = value.get_type().name();
    let fields = value
        .as_indexer()
        .ok_or_else(|| CelxError::convert(type_name, "message fields cannot be read"))?;
    let mut out = Map::new();
    for field in message_type.fields() {
        let field_value = fields
            .get(&CelString::from(field.json))
            .map_err(|e| CelxError::convert(type_name, e.to_string()))?;
        let json = from_val(field_value.as_ref())?;
        let populated = match &json {
            Value::String(s) => !s.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(entries) => !entries.is_empty(),
            _ => true,
        };
        if populated {
            out.insert(field.json.to_string(), json);
        }
    }
    Ok(Value::Object(out))
}

/// A double as a JSON number: whole numbers that a double holds exactly
/// render without a fraction, as protobuf's JSON does.
pub(crate) fn double(d: f64, type_name: &str) -> Result<Value, CelxError> {
    if !d.is_finite() {
        return Err(CelxError::convert(
            type_name,
            format!("{d} has no JSON representation"),
        ));
    }
    if d.fract() == 0.0 && d.abs() <= MAX_SAFE_INTEGER as f64 {
        return Ok(Value::Number(Number::from(d as i64)));
    }
    Number::from_f64(d)
        .map(Value::Number)
        .ok_or_else(|| CelxError::convert(type_name, format!("{d} has no JSON representation")))
}

/// Protobuf's JSON rendering of a fraction of a second: none, or 3, 6 or 9
/// digits.
fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    if nanos % 1_000_000 == 0 {
        format!(".{}", &digits[..3])
    } else if nanos % 1_000 == 0 {
        format!(".{}", &digits[..6])
    } else {
        format!(".{digits}")
    }
}

/// A duration as protobuf's JSON renders it: `"86400s"`, `"1.500s"`.
fn duration_string(d: &chrono::Duration) -> String {
    let negative = *d < chrono::Duration::zero();
    let abs = if negative { -*d } else { *d };
    let secs = abs.num_seconds();
    let nanos = (abs - chrono::Duration::seconds(secs))
        .num_nanoseconds()
        .unwrap_or(0)
        .clamp(0, 999_999_999) as u32;
    format!(
        "{}{secs}{}s",
        if negative { "-" } else { "" },
        fraction(nanos)
    )
}

/// A timestamp as protobuf's JSON renders it: UTC, `Z`.
pub(crate) fn timestamp_string(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    let utc = t.with_timezone(&chrono::Utc);
    format!(
        "{}{}Z",
        utc.format("%Y-%m-%dT%H:%M:%S"),
        fraction(utc.timestamp_subsec_nanos() % 1_000_000_000)
    )
}

/// An int as cel-go renders it: a number when a double holds it exactly, a
/// decimal string otherwise.
pub(crate) fn int(i: i64) -> Value {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) {
        Value::Number(Number::from(i))
    } else {
        Value::String(i.to_string())
    }
}

/// See [`super::val_to_json`].
pub(crate) fn from_val(value: &dyn Val) -> Result<Value, CelxError> {
    let type_name = value.get_type().name();
    if let Some(b) = value.downcast_ref::<CelBool>() {
        return Ok(Value::Bool(*b.inner()));
    }
    if value.downcast_ref::<CelNull>().is_some() {
        return Ok(Value::Null);
    }
    if let Some(i) = value.downcast_ref::<CelInt>() {
        return Ok(int(*i.inner()));
    }
    if let Some(u) = value.downcast_ref::<CelUInt>() {
        let u = *u.inner();
        return Ok(match i64::try_from(u) {
            Ok(i) if i <= MAX_SAFE_INTEGER => Value::Number(Number::from(u)),
            _ => Value::String(u.to_string()),
        });
    }
    if let Some(d) = value.downcast_ref::<CelDouble>() {
        return double(*d.inner(), type_name);
    }
    if let Some(s) = value.downcast_ref::<CelString>() {
        return Ok(Value::String(s.inner().to_owned()));
    }
    if let Some(b) = value.downcast_ref::<CelBytes>() {
        return Ok(Value::String(BASE64_STANDARD.encode(b.inner())));
    }
    if let Some(t) = value.downcast_ref::<CelTimestamp>() {
        return Ok(Value::String(timestamp_string(t.inner())));
    }
    if let Some(d) = value.downcast_ref::<CelDuration>() {
        return Ok(Value::String(duration_string(d.inner())));
    }
    if let Some(message_type) = super::message::message_type(value) {
        return message(value, message_type);
    }
    match value.get_type().kind() {
        Kind::List => {
            let items = value
                .as_iterable()
                .ok_or_else(|| CelxError::convert(type_name, "list value cannot be iterated"))?;
            let mut iter = items.iter();
            let mut out = Vec::new();
            while let Some(item) = iter.next() {
                out.push(from_val(item)?);
            }
            Ok(Value::Array(out))
        }
        Kind::Map => {
            let mut out = Map::new();
            let mut put = |key: &dyn Val, v: &dyn Val| -> Result<(), CelxError> {
                let Some(k) = key.downcast_ref::<CelString>() else {
                    return Err(CelxError::convert(
                        type_name,
                        format!(
                            "map key of type `{}` is not a string",
                            key.get_type().name()
                        ),
                    ));
                };
                out.insert(k.inner().to_owned(), from_val(v)?);
                Ok(())
            };
            if let Some(map) = value.downcast_ref::<CelMap>() {
                for (k, v) in map.inner() {
                    put(k.inner(), v.as_ref())?;
                }
            } else {
                let (keys, indexer) = value
                    .as_iterable()
                    .zip(value.as_indexer())
                    .ok_or_else(|| CelxError::convert(type_name, "map value cannot be iterated"))?;
                let mut iter = keys.iter();
                while let Some(k) = iter.next() {
                    let v = indexer
                        .get(k)
                        .map_err(|e| CelxError::convert(type_name, e.to_string()))?;
                    put(k, v.as_ref())?;
                }
            }
            Ok(Value::Object(out))
        }
        _ => Err(CelxError::convert(
            type_name,
            "no JSON representation for this type",
        )),
    }
}

/// Registers `json.encode`.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("json.encode", "json_encode_dyn", vec![DYN_TYPE], encode)
}

/// `json.encode(value)`: compact JSON text, object keys sorted, as Go's
/// `encoding/json` writes it.
fn encode<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> FnResult<'b, 'v> {
    let [value] = take_args(args)?;
    let json =
        from_val(value.as_ref()).map_err(|e| ExecutionError::function_error("json.encode", e))?;
    let mut out = String::new();
    write_json(&json, &mut out);
    Ok(CowVal::owned(CelString::from(out)))
}

/// Writes `value` as Go's `json.Marshal` would: compact, keys sorted, HTML
/// characters escaped.
pub(crate) fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(v) = fields.get(key) {
                    write_json(v, out);
                }
            }
            out.push('}');
        }
    }
}

/// A number as Go formats a float64: shortest form, exponent only below
/// 1e-6 or from 1e21 on.
fn write_number(n: &Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        let _ = write!(out, "{n}");
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&s),
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// A string literal as Go's `encoding/json` writes it.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
