//! A direct form for the commonest conditions and outputs: comparisons,
//! `in`, string tests and timestamps over request attributes, constants,
//! variables and literals, joined by `&&`, `||` and `!`, and maps of such
//! values.
//!
//! `cel` evaluates `R.attr.owner == P.id` by walking its syntax tree with
//! boxed values, and that walk was most of a warm decision's cost. The
//! engine evaluates this form instead when an expression has one, and only
//! on plain scalars of one kind (ints and doubles both count as numbers),
//! where the answer cannot differ from `cel`'s. On anything else (a missing
//! key, a list, a string against a number) it gives up and `cel` evaluates
//! the expression, so errors and their wording come from one place.

use cel::common::ast::operators;
use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use chrono::{DateTime, Datelike, FixedOffset};

/// A literal operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string.
    Str(Box<str>),
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A double.
    Double(f64),
    /// `timestamp("...")`, parsed once.
    Timestamp(DateTime<FixedOffset>),
}

/// `timestamp(text)` as `cel` reads it (RFC 3339), for the years well
/// inside CEL's range; `None` sends anything else to `cel`.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .filter(|t| (2..=9998).contains(&t.naive_utc().year()))
}

/// A field of the request that the direct form reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `P.id`.
    PrincipalId,
    /// `P.attr`.
    PrincipalAttr,
    /// `R.id`.
    ResourceId,
    /// `R.kind`.
    ResourceKind,
    /// `R.attr`.
    ResourceAttr,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// A test of one string against another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringTest {
    /// `startsWith`.
    StartsWith,
    /// `endsWith`.
    EndsWith,
    /// `contains`.
    Contains,
}

/// An expression in the direct form.
#[derive(Debug, Clone, PartialEq)]
pub enum Direct {
    /// A literal.
    Literal(Literal),
    /// A request field, then keys into its JSON objects (`R.attr.a.b`).
    Request(Field, Box<[Box<str>]>),
    /// `V.name`.
    Variable(Box<str>),
    /// `C.name`.
    Constant(Box<str>),
    /// `left op right`.
    Compare(Comparison, Box<Direct>, Box<Direct>),
    /// A list of literals, only as the right side of `in`.
    List(Box<[Literal]>),
    /// `operand in list`, the list written out or read from the request,
    /// `V` or `C`.
    In(Box<Direct>, Box<Direct>),
    /// `string.method(argument)`.
    StringTest(StringTest, Box<Direct>, Box<Direct>),
    /// `timestamp(string)`.
    Timestamp(Box<Direct>),
    /// `{"key": value, ...}`, keys distinct string literals: an output.
    Map(Box<[(Box<str>, Direct)]>),
    /// `left && right`.
    And(Box<Direct>, Box<Direct>),
    /// `left || right`.
    Or(Box<Direct>, Box<Direct>),
    /// `!operand`.
    Not(Box<Direct>),
}

impl Direct {
    /// The direct form of a compiled expression, when it has one.
    pub fn from_expr(expr: &IdedExpr) -> Option<Direct> {
        match &expr.expr {
            Expr::Literal(literal) => literal_of(literal).map(Direct::Literal),
            Expr::Call(call) => from_call(call),
            Expr::Map(map) => {
                let mut entries: Vec<(Box<str>, Direct)> = Vec::new();
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return None;
                    };
                    let Expr::Literal(LiteralValue::String(key)) = &entry.key.expr else {
                        return None;
                    };
                    if entry.optional || entries.iter().any(|(k, _)| **k == *key.inner()) {
                        return None;
                    }
                    entries.push((key.inner().into(), Direct::from_expr(&entry.value)?));
                }
                Some(Direct::Map(entries.into()))
            }
            _ => None,
        }
    }
}

fn literal_of(literal: &LiteralValue) -> Option<Literal> {
    Some(match literal {
        LiteralValue::String(s) => Literal::Str(s.inner().into()),
        LiteralValue::Boolean(b) => Literal::Bool(*b.inner()),
        LiteralValue::Int(i) => Literal::Int(*i.inner()),
        LiteralValue::Double(d) => Literal::Double(*d.inner()),
        _ => return None,
    })
}

fn from_call(call: &CallExpr) -> Option<Direct> {
    let boxed = |e: &IdedExpr| Direct::from_expr(e).map(Box::new);
    if let Some(target) = &call.target {
        let test = match call.func_name.as_str() {
            "startsWith" => StringTest::StartsWith,
            "endsWith" => StringTest::EndsWith,
            "contains" => StringTest::Contains,
            _ => return None,
        };
        let [argument] = call.args.as_slice() else {
            return None;
        };
        return Some(Direct::StringTest(test, boxed(target)?, boxed(argument)?));
    }
    match (call.func_name.as_str(), call.args.as_slice()) {
        (operators::LOGICAL_AND, [l, r]) => Some(Direct::And(boxed(l)?, boxed(r)?)),
        (operators::LOGICAL_OR, [l, r]) => Some(Direct::Or(boxed(l)?, boxed(r)?)),
        (operators::LOGICAL_NOT, [operand]) => Some(Direct::Not(boxed(operand)?)),
        (operators::IN, [operand, list]) => {
            let list = match &list.expr {
                Expr::List(list) if list.optional_indices.is_empty() => Direct::List(
                    list.elements
                        .iter()
                        .map(|e| match &e.expr {
                            Expr::Literal(l) => literal_of(l),
                            _ => None,
                        })
                        .collect::<Option<_>>()?,
                ),
                _ => match Direct::from_expr(list)? {
                    data @ (Direct::Request(..) | Direct::Variable(_) | Direct::Constant(_)) => {
                        data
                    }
                    _ => return None,
                },
            };
            Some(Direct::In(boxed(operand)?, Box::new(list)))
        }
        (operators::INDEX, [_, _]) => index_chain(call),
        ("timestamp", [argument]) => match &argument.expr {
            Expr::Literal(LiteralValue::String(text)) => {
                parse_timestamp(text.inner()).map(|t| Direct::Literal(Literal::Timestamp(t)))
            }
            _ => Some(Direct::Timestamp(boxed(argument)?)),
        },
        (name, [l, r]) => {
            let comparison = match name {
                operators::EQUALS => Comparison::Eq,
                operators::NOT_EQUALS => Comparison::Ne,
                operators::LESS => Comparison::Lt,
                operators::LESS_EQUALS => Comparison::Le,
                operators::GREATER => Comparison::Gt,
                operators::GREATER_EQUALS => Comparison::Ge,
                _ => return None,
            };
            Some(Direct::Compare(comparison, boxed(l)?, boxed(r)?))
        }
        _ => None,
    }
}

/// `root["k1"]["k2"]...`, as `lookup.rs` rewrites selections, from the
/// request's principal or resource, `V` or `C`.
fn index_chain(call: &CallExpr) -> Option<Direct> {
    let mut keys = Vec::new();
    let mut node = call;
    let root = loop {
        let [operand, key] = node.args.as_slice() else {
            return None;
        };
        let Expr::Literal(LiteralValue::String(key)) = &key.expr else {
            return None;
        };
        keys.push(key.inner());
        match &operand.expr {
            Expr::Ident(root) => break root.as_str(),
            Expr::Call(inner) if inner.func_name == operators::INDEX && inner.target.is_none() => {
                node = inner;
            }
            _ => return None,
        }
    };
    keys.reverse();
    let (root, keys) = match (root, keys.as_slice()) {
        ("request", ["principal", rest @ ..]) => ("P", rest),
        ("request", ["resource", rest @ ..]) => ("R", rest),
        (root, keys) => (root, keys),
    };
    let owned = |keys: &[&str]| keys.iter().map(|k| Box::from(*k)).collect();
    match (root, keys) {
        ("V" | "variables", [name]) => Some(Direct::Variable((*name).into())),
        ("C" | "constants", [name]) => Some(Direct::Constant((*name).into())),
        ("P", ["id"]) => Some(Direct::Request(Field::PrincipalId, Box::new([]))),
        ("P", ["attr", rest @ ..]) => Some(Direct::Request(Field::PrincipalAttr, owned(rest))),
        ("R", ["id"]) => Some(Direct::Request(Field::ResourceId, Box::new([]))),
        ("R", ["kind"]) => Some(Direct::Request(Field::ResourceKind, Box::new([]))),
        ("R", ["attr", rest @ ..]) => Some(Direct::Request(Field::ResourceAttr, owned(rest))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(source: &str) -> Option<Direct> {
        Direct::from_expr(crate::celx::compile(source).unwrap().expression())
    }

    fn attr(field: Field, keys: &[&str]) -> Box<Direct> {
        Box::new(Direct::Request(
            field,
            keys.iter().map(|k| Box::from(*k)).collect(),
        ))
    }

    #[test]
    fn comparisons_of_request_fields_have_a_direct_form() {
        assert_eq!(
            direct("R.attr.owner == P.id"),
            Some(Direct::Compare(
                Comparison::Eq,
                attr(Field::ResourceAttr, &["owner"]),
                attr(Field::PrincipalId, &[]),
            ))
        );
        assert_eq!(
            direct("request.resource.attr.a.b >= 3 && !V.flag"),
            Some(Direct::And(
                Box::new(Direct::Compare(
                    Comparison::Ge,
                    attr(Field::ResourceAttr, &["a", "b"]),
                    Box::new(Direct::Literal(Literal::Int(3))),
                )),
                Box::new(Direct::Not(Box::new(Direct::Variable("flag".into())))),
            ))
        );
        assert_eq!(
            direct("R.kind in ['a', 'b'] || C.x != 1.5"),
            Some(Direct::Or(
                Box::new(Direct::In(
                    attr(Field::ResourceKind, &[]),
                    Box::new(Direct::List(Box::new([
                        Literal::Str("a".into()),
                        Literal::Str("b".into())
                    ]))),
                )),
                Box::new(Direct::Compare(
                    Comparison::Ne,
                    Box::new(Direct::Constant("x".into())),
                    Box::new(Direct::Literal(Literal::Double(1.5))),
                )),
            ))
        );
    }

    #[test]
    fn membership_and_string_tests_have_a_direct_form() {
        assert_eq!(
            direct("R.attr.region in C.regions && R.attr.title.startsWith(P.id)"),
            Some(Direct::And(
                Box::new(Direct::In(
                    attr(Field::ResourceAttr, &["region"]),
                    Box::new(Direct::Constant("regions".into())),
                )),
                Box::new(Direct::StringTest(
                    StringTest::StartsWith,
                    attr(Field::ResourceAttr, &["title"]),
                    attr(Field::PrincipalId, &[]),
                )),
            ))
        );
    }

    #[test]
    fn anything_else_is_left_to_cel() {
        for source in [
            "has(R.attr.owner)",
            "R.attr.tags[0] == 'a'",
            "P.roles == ['user']",
            "R.attr.size + 1 > 2",
            "R.attr.region in R.attr.regions.map(r, r)",
            "R.attr.title.startsWith('doc', 1)",
            "R.attr.title.matches('doc')",
            "R.policyVersion == 'default'",
            "V.a.b == 1",
            "timestamp(R.attr.t) > now()",
            "timestamp('not a time') > timestamp(R.attr.t)",
            "timestamp(R.attr.t, 'UTC') > timestamp(R.attr.u)",
            "R.attr.x == null",
            "{'a': 1, 'a': 2}",
            "{R.id: 1}",
            "{'a': [1]}",
            "x == 1",
        ] {
            assert_eq!(direct(source), None, "{source}");
        }
    }
}
