//! Evaluation of the direct form of an expression (see `compile::direct`):
//! plain scalars of one kind, read straight from the request, or `None`
//! whenever `cel` has to decide.

use std::cmp::Ordering;

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelString};
use cel::common::value::Val;

use super::{Principal, Resource};
use chrono::{DateTime, FixedOffset};

use crate::celx;
use crate::compile::direct::{parse_timestamp, Comparison, Direct, Field, Literal, StringTest};
use crate::compile::FastMap;

/// `V` or `C` as the direct form reads them: a value by name.
pub trait NamedValues {
    /// The value named `name`, when there is one.
    fn value(&self, name: &str) -> Option<&dyn Val>;
}

/// A policy's constants by name (`Params::constant_values`).
impl NamedValues for FastMap<Box<str>, Box<dyn Val>> {
    fn value(&self, name: &str) -> Option<&dyn Val> {
        self.get(name).map(|value| &**value)
    }
}

/// What a direct expression reads besides literals.
pub struct Inputs<'a> {
    /// `P`.
    pub principal: &'a Principal,
    /// `R`.
    pub resource: &'a Resource,
    /// `V`.
    pub variables: &'a dyn NamedValues,
    /// `C`.
    pub constants: &'a dyn NamedValues,
}

/// A value the direct form works with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// A string.
    Str(&'a str),
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A double (every JSON number).
    Double(f64),
    /// A timestamp.
    Timestamp(DateTime<FixedOffset>),
}

impl Scalar<'_> {
    /// The value as `cel` would hold it.
    pub fn to_val(self) -> Box<dyn Val + 'static> {
        match self {
            Scalar::Str(s) => Box::new(CelString::from(s.to_string())),
            Scalar::Bool(b) => Box::new(CelBool::from(b)),
            Scalar::Int(i) => Box::new(CelInt::from(i)),
            Scalar::Double(d) => Box::new(CelDouble::from(d)),
            Scalar::Timestamp(t) => celx::timestamp_val(t),
        }
    }

    /// What `celx::val_to_json` gives for this value as `cel` holds it;
    /// `None` for a double with no JSON form.
    fn to_json(self) -> Option<serde_json::Value> {
        use celx::json;
        match self {
            Scalar::Str(s) => Some(serde_json::Value::String(s.to_string())),
            Scalar::Bool(b) => Some(serde_json::Value::Bool(b)),
            Scalar::Int(i) => Some(json::int(i)),
            Scalar::Double(d) => json::double(d, "double").ok(),
            Scalar::Timestamp(t) => Some(serde_json::Value::String(json::timestamp_string(&t))),
        }
    }
}

/// The value of `expr`, or `None` when `cel` must evaluate it: an operand
/// that is missing, not a scalar, or of another type than its partner.
pub fn evaluate<'a>(expr: &'a Direct, inputs: &Inputs<'a>) -> Option<Scalar<'a>> {
    match expr {
        Direct::Literal(literal) => Some(literal_scalar(literal)),
        Direct::Request(field, keys) => request(*field, keys, inputs),
        Direct::Variable(name) => val_scalar(inputs.variables.value(name)?),
        Direct::Constant(name) => val_scalar(inputs.constants.value(name)?),
        Direct::Compare(op, left, right) => {
            let left = evaluate(left, inputs)?;
            let right = evaluate(right, inputs)?;
            compare(*op, left, right).map(Scalar::Bool)
        }
        Direct::List(_) | Direct::Map(_) => None,
        Direct::In(operand, list) => {
            let operand = evaluate(operand, inputs)?;
            member(operand, list, inputs).map(Scalar::Bool)
        }
        Direct::Timestamp(text) => match evaluate(text, inputs)? {
            Scalar::Str(text) => parse_timestamp(text).map(Scalar::Timestamp),
            _ => None,
        },
        Direct::StringTest(test, target, argument) => {
            let (Scalar::Str(target), Scalar::Str(argument)) =
                (evaluate(target, inputs)?, evaluate(argument, inputs)?)
            else {
                return None;
            };
            Some(Scalar::Bool(match test {
                StringTest::StartsWith => target.starts_with(argument),
                StringTest::EndsWith => target.ends_with(argument),
                StringTest::Contains => target.contains(argument),
            }))
        }
        // `false && x` is false and `true || x` is true whatever `x` is,
        // even an error, so `x` need not be looked at.
        Direct::And(left, right) => match evaluate(left, inputs)? {
            Scalar::Bool(false) => Some(Scalar::Bool(false)),
            Scalar::Bool(true) => boolean(evaluate(right, inputs)?),
            _ => None,
        },
        Direct::Or(left, right) => match evaluate(left, inputs)? {
            Scalar::Bool(true) => Some(Scalar::Bool(true)),
            Scalar::Bool(false) => boolean(evaluate(right, inputs)?),
            _ => None,
        },
        Direct::Not(operand) => match evaluate(operand, inputs)? {
            Scalar::Bool(b) => Some(Scalar::Bool(!b)),
            _ => None,
        },
    }
}

/// An output's value as JSON, converted as `cel`'s would be, or `None`
/// when `cel` must evaluate it.
pub fn output(expr: &Direct, inputs: &Inputs<'_>) -> Option<serde_json::Value> {
    let json = Scalar::to_json;
    match expr {
        Direct::Map(entries) => {
            let mut object = serde_json::Map::new();
            for (key, value) in entries.iter() {
                object.insert(String::from(&**key), json(evaluate(value, inputs)?)?);
            }
            Some(serde_json::Value::Object(object))
        }
        scalar => json(evaluate(scalar, inputs)?),
    }
}

fn boolean(value: Scalar<'_>) -> Option<Scalar<'_>> {
    matches!(value, Scalar::Bool(_)).then_some(value)
}

fn literal_scalar(literal: &Literal) -> Scalar<'_> {
    match literal {
        Literal::Str(s) => Scalar::Str(s),
        Literal::Bool(b) => Scalar::Bool(*b),
        Literal::Int(i) => Scalar::Int(*i),
        Literal::Double(d) => Scalar::Double(*d),
        Literal::Timestamp(t) => Scalar::Timestamp(*t),
    }
}

/// Whether `operand` equals an item of `list`, when every item is a
/// scalar it can be compared with.
fn member(operand: Scalar<'_>, list: &Direct, inputs: &Inputs<'_>) -> Option<bool> {
    let mut found = false;
    match list {
        Direct::List(items) => {
            for item in items.iter() {
                found |= equal(operand, literal_scalar(item))?;
            }
        }
        Direct::Request(field, keys) => {
            for item in attr_value(*field, keys, inputs)?.as_array()? {
                found |= equal(operand, json_scalar(item)?)?;
            }
        }
        Direct::Variable(name) => found = val_member(operand, inputs.variables.value(name)?)?,
        Direct::Constant(name) => {
            found = val_member(operand, inputs.constants.value(name)?)?;
        }
        _ => return None,
    }
    Some(found)
}

fn val_member(operand: Scalar<'_>, list: &dyn Val) -> Option<bool> {
    let mut found = false;
    for item in list.downcast_ref::<CelList>()?.inner() {
        found |= equal(operand, val_scalar(&**item)?)?;
    }
    Some(found)
}

fn request<'a>(field: Field, keys: &[Box<str>], inputs: &Inputs<'a>) -> Option<Scalar<'a>> {
    match field {
        Field::PrincipalId => Some(Scalar::Str(&inputs.principal.id)),
        Field::ResourceId => Some(Scalar::Str(&inputs.resource.id)),
        Field::ResourceKind => Some(Scalar::Str(&inputs.resource.kind)),
        Field::PrincipalAttr | Field::ResourceAttr => json_scalar(attr_value(field, keys, inputs)?),
    }
}

/// `P.attr.k1.k2...` or `R.attr.k1.k2...`.
fn attr_value<'a>(
    field: Field,
    keys: &[Box<str>],
    inputs: &Inputs<'a>,
) -> Option<&'a serde_json::Value> {
    let mut object = match field {
        Field::PrincipalAttr => &inputs.principal.attr,
        Field::ResourceAttr => &inputs.resource.attr,
        Field::PrincipalId | Field::ResourceId | Field::ResourceKind => return None,
    };
    let (last, path) = keys.split_last()?;
    for key in path {
        object = object.get(&**key)?.as_object()?;
    }
    object.get(&**last)
}

fn json_scalar(value: &serde_json::Value) -> Option<Scalar<'_>> {
    match value {
        serde_json::Value::String(s) => Some(Scalar::Str(s)),
        serde_json::Value::Bool(b) => Some(Scalar::Bool(*b)),
        serde_json::Value::Number(n) => n.as_f64().map(Scalar::Double),
        _ => None,
    }
}

fn val_scalar(value: &dyn Val) -> Option<Scalar<'_>> {
    if let Some(s) = value.downcast_ref::<CelString>() {
        Some(Scalar::Str(s.inner()))
    } else if let Some(b) = value.downcast_ref::<CelBool>() {
        Some(Scalar::Bool(*b.inner()))
    } else if let Some(d) = value.downcast_ref::<CelDouble>() {
        Some(Scalar::Double(*d.inner()))
    } else {
        value
            .downcast_ref::<CelInt>()
            .map(|i| Scalar::Int(*i.inner()))
    }
}

/// `left == right` for scalars of one kind, ints and doubles compared as
/// numbers; `None` for other mixes (a string against a number), which
/// `cel` decides.
fn equal(left: Scalar<'_>, right: Scalar<'_>) -> Option<bool> {
    match (left, right) {
        (Scalar::Str(l), Scalar::Str(r)) => Some(l == r),
        (Scalar::Bool(l), Scalar::Bool(r)) => Some(l == r),
        (Scalar::Int(l), Scalar::Int(r)) => Some(l == r),
        (Scalar::Double(l), Scalar::Double(r)) if !l.is_nan() && !r.is_nan() => Some(l == r),
        (Scalar::Timestamp(l), Scalar::Timestamp(r)) => Some(l == r),
        (Scalar::Int(_), Scalar::Double(_)) | (Scalar::Double(_), Scalar::Int(_)) => {
            Some(numeric_order(left, right)? == Ordering::Equal)
        }
        _ => None,
    }
}

/// Ints against doubles (JSON numbers are doubles, literals like `3` are
/// ints), compared as numbers as CEL does; only for ints a double holds
/// exactly.
fn numeric_order(left: Scalar<'_>, right: Scalar<'_>) -> Option<Ordering> {
    const EXACT: i64 = 1 << 53;
    let as_double = |value: Scalar<'_>| match value {
        Scalar::Double(d) => Some(d),
        Scalar::Int(i) if (-EXACT..=EXACT).contains(&i) => Some(i as f64),
        _ => None,
    };
    as_double(left)?.partial_cmp(&as_double(right)?)
}

fn compare(op: Comparison, left: Scalar<'_>, right: Scalar<'_>) -> Option<bool> {
    let order = || match (left, right) {
        (Scalar::Str(l), Scalar::Str(r)) => Some(l.cmp(r)),
        (Scalar::Int(l), Scalar::Int(r)) => Some(l.cmp(&r)),
        (Scalar::Double(l), Scalar::Double(r)) => l.partial_cmp(&r),
        (Scalar::Timestamp(l), Scalar::Timestamp(r)) => Some(l.cmp(&r)),
        (Scalar::Int(_), Scalar::Double(_)) | (Scalar::Double(_), Scalar::Int(_)) => {
            numeric_order(left, right)
        }
        _ => None,
    };
    Some(match op {
        Comparison::Eq => equal(left, right)?,
        Comparison::Ne => !equal(left, right)?,
        Comparison::Lt => order()? == Ordering::Less,
        Comparison::Le => order()? != Ordering::Greater,
        Comparison::Gt => order()? == Ordering::Greater,
        Comparison::Ge => order()? != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use cel::Context;
    use serde_json::json;

    use super::super::activation::{Activation, LazyVal, RequestView, Runtime};
    use super::*;
    use crate::celx;

    fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn direct_of(source: &str) -> Direct {
        let program = celx::compile(source).unwrap();
        Direct::from_expr(program.expression())
            .unwrap_or_else(|| panic!("no direct form for {source}"))
    }

    use cel::common::value::CowVal;

    /// `V` or `C` from a CEL map, as `cel` sees it too.
    struct MapVariables(Box<dyn Val>);

    impl NamedValues for MapVariables {
        fn value(&self, name: &str) -> Option<&dyn Val> {
            let key = CelString::from(name);
            match self.0.as_indexer()?.get(&key).ok()? {
                CowVal::Borrowed(value) => Some(value),
                CowVal::Owned(_) => None,
            }
        }
    }

    fn inputs<'a>(
        principal: &'a Principal,
        resource: &'a Resource,
        variables: &'a MapVariables,
        constants: &'a MapVariables,
    ) -> Inputs<'a> {
        Inputs {
            principal,
            resource,
            variables,
            constants,
        }
    }

    /// `cel`'s value for `source`, as JSON; `None` when it fails.
    fn by_cel(
        source: &str,
        inputs: &Inputs<'_>,
        variables: &MapVariables,
        constants: &MapVariables,
    ) -> Option<serde_json::Value> {
        let program = celx::compile(source).unwrap();
        let principal = LazyVal::principal(inputs.principal);
        let resource = LazyVal::resource(inputs.resource);
        let aux = LazyVal::aux_data(None);
        let now = celx::timestamp_val(chrono::Utc::now().fixed_offset());
        let runtime = Runtime::new(Vec::new());
        let globals = celx::json_to_static_val(&json!({}));
        let activation = Activation {
            request: RequestView {
                principal: &principal,
                resource: &resource,
                aux_data: &aux,
            },
            runtime: &runtime,
            variables: &*variables.0,
            constants: &*constants.0,
            globals: &*globals,
            now: &*now,
        };
        let mut context = Context::with_env(celx::environment());
        context.set_variable_resolver(&activation);
        let value = cel::Value::resolve_val(program.expression(), &context).ok()?;
        celx::val_to_json(&*value).ok()
    }

    /// Every expression, on every input, decides as `cel` does whenever the
    /// direct form answers; and the direct form answers the plain cases.
    #[test]
    fn the_direct_form_agrees_with_cel() {
        let principals = [
            json!({"department": "eng", "level": 4, "tags": ["a", "eng"]}),
            json!({"department": "ops", "level": 2.5, "flag": true}),
            json!({"level": "4", "nested": {"x": "alice"}}),
        ];
        let resources = [
            json!({"owner": "alice", "department": "eng", "size": 10, "status": "draft", "locked": false,
                "created": "2024-05-01T00:00:00Z"}),
            json!({"owner": "bob", "department": "ops", "size": 100.5, "status": "archived", "locked": true,
                "created": "2024-05-02T10:30:00.5+05:30"}),
            json!({"owner": 7, "size": "10", "status": null, "nested": {"x": "alice"},
                "created": "yesterday"}),
            json!({}),
        ];
        let constants = MapVariables(celx::json_to_static_val(&json!({
            "limit": 100, "name": "alice", "on": true,
            "statuses": ["draft", "review"], "sizes": [10, "big"]
        })));
        let sources = [
            "R.attr.owner == P.id",
            "R.attr.owner != P.id",
            "R.attr.department == P.attr.department",
            "R.attr.size < C.limit && R.attr.size <= 100.5",
            "R.attr.size > 10.0 || R.attr.locked == true",
            "P.attr.level >= 3",
            "P.attr.level == 4 && R.attr.size != 10",
            "R.attr.size in [10, 100]",
            "C.limit > 99 && C.limit < 100.5",
            "P.attr.level >= 3.0",
            "P.attr.level < 3.0 || P.attr.flag",
            "R.attr.status in ['draft', 'review']",
            "R.attr.status in ['draft', 1]",
            "R.attr.status in C.statuses || R.attr.size in C.sizes",
            "'eng' in P.attr.tags || R.attr.owner in R.attr.nested",
            "R.attr.owner.startsWith('al') && R.attr.status.endsWith('ft')",
            "R.attr.department.contains(P.attr.department)",
            "timestamp(R.attr.created) > timestamp('2024-05-01T00:00:00Z')",
            "timestamp(R.attr.created) == timestamp('2024-05-01T02:00:00+02:00')",
            "timestamp(R.attr.created) <= timestamp(P.attr.department)",
            "P.id.contains(R.attr.size)",
            "!(R.attr.locked)",
            "!R.attr.locked && R.attr.status != 'archived'",
            "R.attr.nested.x == P.id",
            "request.resource.attr.nested.x == request.principal.attr.nested.x",
            "R.kind == 'doc' && R.id > 'a'",
            "C.name == R.attr.owner || C.on",
            "R.attr.missing == 'x' || true",
            "false && R.attr.missing == 'x'",
            "R.attr.missing == 'x' && false",
            "R.attr.owner < 'b'",
            "R.attr.locked < true",
            "'alice'",
            "true",
        ];
        let mut answered = 0;
        for principal_attr in &principals {
            for resource_attr in &resources {
                let principal = Principal {
                    id: "alice".into(),
                    roles: vec!["user".into()],
                    attr: object(principal_attr.clone()),
                    ..Principal::default()
                };
                let resource = Resource {
                    kind: "doc".into(),
                    id: "doc-1".into(),
                    attr: object(resource_attr.clone()),
                    ..Resource::default()
                };
                let variables = MapVariables(celx::json_to_static_val(&json!({})));
                let inputs = inputs(&principal, &resource, &variables, &constants);
                for source in sources {
                    if let Some(value) = evaluate(&direct_of(source), &inputs) {
                        answered += 1;
                        assert_eq!(
                            value == Scalar::Bool(true),
                            by_cel(source, &inputs, &variables, &constants) == Some(json!(true)),
                            "{source} on P.attr {principal_attr} and R.attr {resource_attr}"
                        );
                    }
                }
            }
        }
        // Most pairs are plain scalars of one kind, which must not fall back.
        assert!(
            answered > 100,
            "the direct form answered only {answered} times"
        );
    }

    #[test]
    fn direct_outputs_are_the_json_cel_gives() {
        let principal = Principal {
            id: "alice".into(),
            attr: object(json!({"level": 4})),
            ..Principal::default()
        };
        let resource = Resource {
            kind: "doc".into(),
            id: "doc-1".into(),
            attr: object(json!({"size": 10, "ratio": 0.25, "at": "2024-05-01T02:00:00.5+02:00"})),
            ..Resource::default()
        };
        let variables = MapVariables(celx::json_to_static_val(&json!({"on": true})));
        let constants = MapVariables(celx::json_to_static_val(&json!({"limit": 100})));
        let inputs = inputs(&principal, &resource, &variables, &constants);
        for source in [
            "{'rule': 'edit', 'kind': R.kind, 'size': R.attr.size, 'ratio': R.attr.ratio}",
            "{'z': V.on, 'a': C.limit > R.attr.size, 'n': 9007199254740993, 'when': timestamp(R.attr.at)}",
            "P.attr.level",
            "timestamp(R.attr.at)",
            "'locked'",
        ] {
            let by_direct =
                output(&direct_of(source), &inputs).unwrap_or_else(|| panic!("{source}"));
            assert_eq!(Some(by_direct), by_cel(source, &inputs, &variables, &constants), "{source}");
        }
    }

    #[test]
    fn variables_are_read_when_they_hold_scalars() {
        let principal = Principal::default();
        let resource = Resource::default();
        let variables = MapVariables(celx::json_to_static_val(
            &json!({"yes": true, "list": [true]}),
        ));
        let constants = MapVariables(celx::json_to_static_val(&json!({})));
        let inputs = inputs(&principal, &resource, &variables, &constants);
        let run = |source: &str| {
            evaluate(&direct_of(source), &inputs).map(|value| value == Scalar::Bool(true))
        };
        assert_eq!(run("V.yes && !false"), Some(true));
        assert_eq!(run("V.list == true"), None);
        assert_eq!(run("V.absent || true"), None);
    }
}
