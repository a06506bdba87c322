//! Cerbos's request messages, `cerbos.engine.v1.Principal` and
//! `cerbos.engine.v1.Resource`, as CEL values.
//!
//! In Cerbos, `P` and `R` are protobuf messages: fields are read by their
//! JSON or proto names (`policyVersion`, `policy_version`), two messages are
//! equal when their fields are, and a message rendered as an output carries
//! only its populated fields, under their JSON names. A message here holds
//! its five field values in declaration order and finds a field by comparing
//! names, which is cheaper than building and probing a hash map per request.

use std::fmt;
use std::marker::PhantomData;

use cel::common::traits::Indexer;
use cel::common::types::{CelString, Type};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;

/// How many fields each request message has.
pub const FIELDS: usize = 5;

/// A field's names.
#[derive(Debug)]
pub struct FieldName {
    /// The JSON name, used in outputs.
    pub json: &'static str,
    /// The proto name, which CEL accepts too.
    pub proto: &'static str,
}

const fn same(name: &'static str) -> FieldName {
    FieldName {
        json: name,
        proto: name,
    }
}

const POLICY_VERSION: FieldName = FieldName {
    json: "policyVersion",
    proto: "policy_version",
};

/// A request message type: its CEL type and its fields in order.
#[derive(Debug)]
pub struct MessageType {
    cel_type: Type,
    fields: [FieldName; FIELDS],
}

/// `cerbos.engine.v1.Principal`: id, roles, attr, policy version, scope.
pub static PRINCIPAL: MessageType = MessageType {
    cel_type: Type::new_unspecified_type("cerbos.engine.v1.Principal"),
    fields: [
        same("id"),
        same("roles"),
        same("attr"),
        POLICY_VERSION,
        same("scope"),
    ],
};

/// `cerbos.engine.v1.Resource`: kind, id, attr, policy version, scope.
pub static RESOURCE: MessageType = MessageType {
    cel_type: Type::new_unspecified_type("cerbos.engine.v1.Resource"),
    fields: [
        same("kind"),
        same("id"),
        same("attr"),
        POLICY_VERSION,
        same("scope"),
    ],
};

/// The message type `value` is an instance of, if it is a request message.
pub(crate) fn message_type(value: &dyn Val) -> Option<&'static MessageType> {
    let name = value.get_type().name();
    [&PRINCIPAL, &RESOURCE]
        .into_iter()
        .find(|t| t.cel_type.name() == name)
}

impl MessageType {
    /// The fields, in declaration order.
    pub(crate) fn fields(&self) -> &[FieldName; FIELDS] {
        &self.fields
    }
}

/// Which request message a [`Message`] is.
pub trait Kind: Send + Sync + 'static {
    /// Its type.
    const TYPE: &'static MessageType;
}

/// `cerbos.engine.v1.Principal`.
pub enum PrincipalKind {}

impl Kind for PrincipalKind {
    const TYPE: &'static MessageType = &PRINCIPAL;
}

/// `cerbos.engine.v1.Resource`.
pub enum ResourceKind {}

impl Kind for ResourceKind {
    const TYPE: &'static MessageType = &RESOURCE;
}

/// One request message.
pub struct Message<'a, K: Kind> {
    values: [Box<dyn Val + 'a>; FIELDS],
    kind: PhantomData<K>,
}

impl<'a, K: Kind> Message<'a, K> {
    /// A message with its field values in declaration order.
    pub fn new(values: [Box<dyn Val + 'a>; FIELDS]) -> Self {
        Message {
            values,
            kind: PhantomData,
        }
    }

    fn field(&self, name: &str) -> Option<&(dyn Val + 'a)> {
        K::TYPE
            .fields
            .iter()
            .position(|f| f.json == name || f.proto == name)
            .map(|i| &*self.values[i])
    }
}

impl<K: Kind> fmt::Debug for Message<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct(K::TYPE.cel_type.name());
        for (field, value) in K::TYPE.fields.iter().zip(&self.values) {
            out.field(field.json, value);
        }
        out.finish()
    }
}

impl<K: Kind> Indexer for Message<'_, K> {
    fn get<'b, 'v>(&'b self, field: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let Some(name) = field.downcast_ref::<CelString>().map(CelString::inner) else {
            return Err(ExecutionError::UnexpectedType {
                got: field.get_type().name().to_string(),
                want: "string".to_string(),
            });
        };
        self.field(name)
            .map(CowVal::Borrowed)
            .ok_or_else(|| ExecutionError::no_such_key(name))
    }

    fn steal<'v>(self: Box<Self>, field: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(field).map(CowVal::into_owned)
    }
}

impl<K: Kind> Val for Message<'_, K> {
    fn get_type(&self) -> &Type {
        &K::TYPE.cel_type
    }

    fn cel_type() -> &'static Type
    where
        Self: Sized,
    {
        &K::TYPE.cel_type
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        if other.get_type().name() != self.get_type().name() {
            return false;
        }
        let Some(other) = other.as_indexer() else {
            return false;
        };
        K::TYPE
            .fields
            .iter()
            .zip(&self.values)
            .all(|(field, value)| {
                other
                    .get(&CelString::from(field.json))
                    .is_ok_and(|theirs| value.equals(theirs.as_ref()))
            })
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(Message::<K>::new(std::array::from_fn(|i| {
            self.values[i].clone_as_boxed()
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::celx::{compile, environment, json_to_val, val_to_json};
    use cel::common::types::CelList;
    use cel::{Context, Value};
    use serde_json::json;

    fn string(s: &str) -> Box<dyn Val + '_> {
        Box::new(CelString::from(s))
    }

    fn eval(expr: &str, attr: &serde_json::Value, scope: &str) -> Result<Value, ExecutionError> {
        let principal = Message::<PrincipalKind>::new([
            string("alice"),
            Box::new(CelList::from(vec![string("user")])),
            json_to_val(attr),
            string(""),
            string(scope),
        ]);
        let other = principal.clone_as_boxed();
        let mut ctx = Context::with_env(environment());
        ctx.add_variable_as_val("P", Box::new(principal));
        ctx.add_variable_as_val("Q", other);
        compile(expr).unwrap().execute(&ctx)
    }

    #[test]
    fn fields_are_read_by_json_and_proto_names() {
        let attr = json!({"team": "a"});
        for expr in [
            "P.id == 'alice' && P.roles == ['user'] && P.attr.team == 'a'",
            "P.policyVersion == '' && P.policy_version == '' && P.scope == 'acme'",
            "P == Q && P != {'id': 'alice'}",
            "type(P) != map",
        ] {
            assert_eq!(eval(expr, &attr, "acme"), Ok(Value::Bool(true)), "{expr}");
        }
        let missing = eval("P.name", &attr, "").unwrap_err();
        assert!(missing.to_string().contains("name"), "{missing}");
    }

    #[test]
    fn renders_only_populated_fields_under_json_names() {
        let attr = json!({});
        let principal = Message::<PrincipalKind>::new([
            string("alice"),
            Box::new(CelList::from(vec![string("user")])),
            json_to_val(&attr),
            string(""),
            string(""),
        ]);
        assert_eq!(
            val_to_json(&principal).unwrap(),
            json!({"id": "alice", "roles": ["user"]})
        );
        let full = json!({"a": 1});
        let resource = Message::<ResourceKind>::new([
            string("doc"),
            string("1"),
            json_to_val(&full),
            string("v2"),
            string("acme"),
        ]);
        assert_eq!(
            val_to_json(&resource).unwrap(),
            json!({"kind": "doc", "id": "1", "attr": {"a": 1}, "policyVersion": "v2", "scope": "acme"})
        );
    }
}
