//! The CEL view of a request, built at most once per request (the first
//! time `cel` reads it) and shared by every condition.
//!
//! Strings are borrowed from the parsed request rather than copied, and the
//! principal's view is shared by all resources of a batch. `request`, `P` and
//! `R` resolve to the same values, so `request.principal` and `P` cost the
//! same.

use std::collections::HashMap;
use std::sync::OnceLock;

use cel::common::traits::Indexer;
use cel::common::types::{CelList, CelMap, CelMapKey, CelString, Type};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::ExecutionError;

use super::{AuxData, Principal, Resource};
use crate::celx;
use crate::celx::message::{Message, PrincipalKind, ResourceKind};

type Boxed<'a> = Box<dyn Val + 'a>;

fn string<'a>(s: &'a str) -> Boxed<'a> {
    Box::new(CelString::from(s))
}

fn object<'a>(attr: &'a serde_json::Map<String, serde_json::Value>) -> Boxed<'a> {
    let map: HashMap<CelMapKey<'a>, Boxed<'a>> = attr
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.as_str()), celx::json_to_val(v)))
        .collect();
    Box::new(CelMap::from(map))
}

/// `request.principal` / `P`.
fn principal_val(p: &Principal) -> Boxed<'_> {
    let roles: Vec<Boxed<'_>> = p.roles.iter().map(|r| string(r)).collect();
    Box::new(Message::<PrincipalKind>::new([
        string(&p.id),
        Box::new(CelList::from(roles)),
        object(&p.attr),
        string(&p.policy_version),
        string(p.scope.trim_start_matches('.')),
    ]))
}

/// `request.resource` / `R`.
fn resource_val(r: &Resource) -> Boxed<'_> {
    Box::new(Message::<ResourceKind>::new([
        string(&r.kind),
        string(&r.id),
        object(&r.attr),
        string(&r.policy_version),
        string(r.scope.trim_start_matches('.')),
    ]))
}

/// A map of named fields, for `auxData` and `runtime`: built once per
/// check and seldom read, so a map costs little here.
fn message<'a>(fields: Vec<(&'static str, Boxed<'a>)>) -> Boxed<'a> {
    let map: HashMap<CelMapKey<'a>, Boxed<'a>> = fields
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(map))
}

/// `request.auxData`: `{jwt: {...claims}}`, empty when the request has none.
fn aux_data_val(aux: Option<&AuxData>) -> Boxed<'_> {
    static EMPTY: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
        std::sync::LazyLock::new(serde_json::Map::new);
    let claims = aux.map_or(&*EMPTY, |a| &a.jwt);
    message(vec![("jwt", object(claims))])
}

/// `runtime`: the derived roles in effect at the scope being evaluated,
/// made into a CEL value the first time an expression reads it (few do).
pub struct Runtime<'a> {
    effective_derived_roles: Vec<&'a str>,
    value: OnceLock<Boxed<'static>>,
}

impl<'a> Runtime<'a> {
    /// `runtime` with these effective derived roles.
    pub fn new(effective_derived_roles: Vec<&'a str>) -> Runtime<'a> {
        Runtime {
            effective_derived_roles,
            value: OnceLock::new(),
        }
    }

    fn value(&self) -> &dyn Val {
        &**self
            .value
            .get_or_init(|| runtime_val(&self.effective_derived_roles))
    }
}

fn runtime_val(effective_derived_roles: &[&str]) -> Boxed<'static> {
    let roles = || -> Boxed<'static> {
        Box::new(CelList::from(
            effective_derived_roles
                .iter()
                .map(|r| -> Boxed<'static> { Box::new(CelString::from(r.to_string())) })
                .collect::<Vec<_>>(),
        ))
    };
    message(vec![
        ("effectiveDerivedRoles", roles()),
        ("effective_derived_roles", roles()),
    ])
}

/// Where a request value comes from.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Principal(&'a Principal),
    Resource(&'a Resource),
    AuxData(Option<&'a AuxData>),
}

/// `P`, `R` or `request.auxData`, made into a CEL value the first time
/// `cel` reads it: a check whose conditions all have a direct form (see
/// `direct.rs`) never needs it.
#[derive(Debug)]
pub struct LazyVal<'a> {
    source: Source<'a>,
    value: OnceLock<Boxed<'a>>,
}

impl<'a> LazyVal<'a> {
    /// `request.principal`.
    pub fn principal(p: &'a Principal) -> LazyVal<'a> {
        LazyVal::new(Source::Principal(p))
    }

    /// `request.resource`.
    pub fn resource(r: &'a Resource) -> LazyVal<'a> {
        LazyVal::new(Source::Resource(r))
    }

    /// `request.auxData`.
    pub fn aux_data(aux: Option<&'a AuxData>) -> LazyVal<'a> {
        LazyVal::new(Source::AuxData(aux))
    }

    fn new(source: Source<'a>) -> LazyVal<'a> {
        LazyVal {
            source,
            value: OnceLock::new(),
        }
    }
}

/// A value of the request that `cel` may read. A trait object, because
/// [`LazyVal`] is invariant in its lifetime and the principal's outlives
/// each resource's.
pub trait RequestValue: std::fmt::Debug + Send + Sync {
    /// The value, built now if `cel` has not read it before.
    fn get(&self) -> &dyn Val;
}

impl RequestValue for LazyVal<'_> {
    fn get(&self) -> &dyn Val {
        &**self.value.get_or_init(|| match self.source {
            Source::Principal(p) => principal_val(p),
            Source::Resource(r) => resource_val(r),
            Source::AuxData(aux) => aux_data_val(aux),
        })
    }
}

static REQUEST_TYPE: Type = Type::new_unspecified_type("cerbos.engine.v1.Request");

/// `request`: a view over the principal, resource and aux data values.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `request.principal`.
    pub principal: &'a dyn RequestValue,
    /// `request.resource`.
    pub resource: &'a dyn RequestValue,
    /// `request.auxData`.
    pub aux_data: &'a dyn RequestValue,
}

impl Indexer for RequestView<'_> {
    fn get<'b, 'v>(&'b self, field: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match field.downcast_ref::<CelString>().map(CelString::inner) {
            Some("principal") => Ok(CowVal::Borrowed(self.principal.get())),
            Some("resource") => Ok(CowVal::Borrowed(self.resource.get())),
            Some("auxData" | "aux_data") => Ok(CowVal::Borrowed(self.aux_data.get())),
            Some(other) => Err(ExecutionError::no_such_key(other)),
            None => Err(ExecutionError::UnexpectedType {
                got: field.get_type().name().to_string(),
                want: "string".to_string(),
            }),
        }
    }

    fn steal<'v>(self: Box<Self>, field: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(field).map(CowVal::into_owned)
    }
}

impl Val for RequestView<'_> {
    fn get_type(&self) -> &Type {
        &REQUEST_TYPE
    }

    fn cel_type() -> &'static Type
    where
        Self: Sized,
    {
        &REQUEST_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }
}

/// Everything a condition can name.
pub struct Activation<'a> {
    /// `request`.
    pub request: RequestView<'a>,
    /// `runtime`.
    pub runtime: &'a Runtime<'a>,
    /// `V` / `variables`.
    pub variables: &'a dyn Val,
    /// `C` / `constants`.
    pub constants: &'a dyn Val,
    /// `G` / `globals`.
    pub globals: &'a dyn Val,
    /// The request's `now()`.
    pub now: &'a dyn Val,
}

impl VariableResolver for Activation<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let value: &'b dyn Val = match name {
            "request" => &self.request,
            "P" => self.request.principal.get(),
            "R" => self.request.resource.get(),
            "V" | "variables" => self.variables,
            "C" | "constants" => self.constants,
            "G" | "globals" => self.globals,
            "runtime" => self.runtime.value(),
            celx::NOW_VARIABLE => self.now,
            _ => return None,
        };
        Some(CowVal::Borrowed(value))
    }
}
