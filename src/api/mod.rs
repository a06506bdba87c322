//! The Cerbos JSON API: request bodies to engine calls, results to responses.
//!
//! `POST /api/check/resources` takes and returns Cerbos's `CheckResources`
//! messages field for field (camelCase or proto names, unknown fields
//! refused, `EFFECT_*`, `meta` with `includeMeta`). `POST /api/check` takes
//! the single-resource form of the Cerbos-on-Lambda guide. Bad input gets a
//! Cerbos-style error naming the field; nothing here ever allows by default.

pub mod err;
pub mod jwt;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::compile::RuleIndex;
use crate::config::Config;
use crate::engine::{
    self, AuxData, CheckResult, Effect, OutputEntry, Principal, Resource, ResourceCheck,
    ValidationError,
};
pub use err::{ApiError, Code};
pub use jwt::{JwtVerifier, KeySetError};

/// Cerbos's default limit on resources per request.
pub const MAX_RESOURCES_PER_REQUEST: usize = 50;
/// Cerbos's default limit on actions per resource.
pub const MAX_ACTIONS_PER_RESOURCE: usize = 50;

type Attributes = serde_json::Map<String, serde_json::Value>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PrincipalWire {
    #[serde(default)]
    id: String,
    #[serde(default, rename = "policyVersion", alias = "policy_version")]
    policy_version: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, alias = "attributes")]
    attr: Attributes,
    #[serde(default)]
    scope: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResourceWire {
    #[serde(default)]
    kind: String,
    #[serde(default, rename = "policyVersion", alias = "policy_version")]
    policy_version: String,
    #[serde(default)]
    id: String,
    #[serde(default, alias = "attributes")]
    attr: Attributes,
    #[serde(default)]
    scope: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceEntryWire {
    #[serde(default)]
    actions: Vec<String>,
    resource: Option<ResourceWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtWire {
    #[serde(default)]
    token: String,
    #[serde(default, rename = "keySetId", alias = "key_set_id")]
    key_set_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuxDataWire {
    jwt: Option<JwtWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckResourcesWire {
    #[serde(default, rename = "requestId", alias = "request_id")]
    request_id: String,
    principal: Option<PrincipalWire>,
    resources: Option<Vec<ResourceEntryWire>>,
    #[serde(default, rename = "auxData", alias = "aux_data")]
    aux_data: Option<AuxDataWire>,
    #[serde(default, rename = "includeMeta", alias = "include_meta")]
    include_meta: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckWire {
    #[serde(default, rename = "requestId", alias = "request_id")]
    request_id: String,
    #[serde(default)]
    actions: Vec<String>,
    resource: Option<ResourceWire>,
    principal: Option<PrincipalWire>,
    #[serde(default, rename = "auxData", alias = "aux_data")]
    aux_data: Option<AuxDataWire>,
    #[serde(default, rename = "includeMeta", alias = "include_meta")]
    include_meta: bool,
}

/// A checked request: what was asked and what was decided.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The client's request id.
    pub request_id: String,
    /// The id of this decision, as Cerbos's `cerbosCallId`.
    pub call_id: String,
    /// Whether the client asked for `meta`.
    pub include_meta: bool,
    /// The principal.
    pub principal: Principal,
    /// The resources and actions.
    pub resources: Vec<ResourceCheck>,
    /// One result per resource.
    pub results: Vec<CheckResult>,
}

/// The API: request parsing, checking and response rendering.
pub struct Api {
    jwt: JwtVerifier,
}

impl Api {
    /// Loads what the API needs from the config (JWT key sets).
    pub fn new(config: &Config) -> Result<Api, KeySetError> {
        Ok(Api {
            jwt: JwtVerifier::from_config(&config.aux_data.jwt)?,
        })
    }

    /// `POST /api/check/resources`.
    pub fn check_resources(
        &self,
        index: &RuleIndex,
        body: &[u8],
        now: DateTime<FixedOffset>,
    ) -> Result<Checked, ApiError> {
        let wire: CheckResourcesWire = parse(body)?;
        let mut problems = Problems::default();
        let principal = problems.principal(wire.principal, Field::Root("principal"));
        let entries = match wire.resources {
            Some(entries) if !entries.is_empty() => entries,
            _ => {
                problems.add(Field::Root("resources"), "value is required");
                Vec::new()
            }
        };
        if entries.len() > MAX_RESOURCES_PER_REQUEST {
            problems.add(
                Field::Root("resources"),
                format!("value must contain no more than {MAX_RESOURCES_PER_REQUEST} item(s)"),
            );
        }
        let resources: Vec<ResourceCheck> = entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| ResourceCheck {
                resource: problems.resource(
                    entry.resource,
                    Field::Member(&Field::Item("resources", i), "resource"),
                ),
                actions: problems.actions(
                    entry.actions,
                    Field::Member(&Field::Item("resources", i), "actions"),
                ),
            })
            .collect();
        problems.finish()?;
        let aux = self.aux_data(wire.aux_data)?;
        let results = engine::check(index, &principal, aux.as_ref(), &resources, now);
        Ok(Checked {
            request_id: wire.request_id,
            call_id: ulid::Ulid::generate().to_string(),
            include_meta: wire.include_meta,
            principal,
            resources,
            results,
        })
    }

    /// `POST /api/check`: one resource, the Lambda guide's form.
    pub fn check(
        &self,
        index: &RuleIndex,
        body: &[u8],
        now: DateTime<FixedOffset>,
    ) -> Result<Checked, ApiError> {
        let wire: CheckWire = parse(body)?;
        let mut problems = Problems::default();
        let principal = problems.principal(wire.principal, Field::Root("principal"));
        let resource = problems.resource(wire.resource, Field::Root("resource"));
        let actions = problems.actions(wire.actions, Field::Root("actions"));
        problems.finish()?;
        let aux = self.aux_data(wire.aux_data)?;
        let resources = vec![ResourceCheck { resource, actions }];
        let results = engine::check(index, &principal, aux.as_ref(), &resources, now);
        Ok(Checked {
            request_id: wire.request_id,
            call_id: ulid::Ulid::generate().to_string(),
            include_meta: wire.include_meta,
            principal,
            resources,
            results,
        })
    }

    fn aux_data(&self, wire: Option<AuxDataWire>) -> Result<Option<AuxData>, ApiError> {
        let Some(jwt) = wire.and_then(|a| a.jwt) else {
            return Ok(None);
        };
        if jwt.token.is_empty() {
            return Err(ApiError::invalid(
                "validation error: aux_data.jwt.token: value is required",
            ));
        }
        let key_set = Some(jwt.key_set_id.as_str()).filter(|k| !k.is_empty());
        let claims = self.jwt.claims(&jwt.token, key_set)?;
        Ok(Some(AuxData { jwt: claims }))
    }
}

/// `serde_json::from_slice`, faster: reading bytes, serde_json checks the
/// UTF-8 of each string it meets, while one check of the whole input and
/// reading it as text costs a few hundred instructions. Input that is not
/// UTF-8 goes through the byte reader, so its error is the same.
pub(crate) fn from_json_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "request body is empty: expected a JSON object",
        ));
    }
    // Tracking the path costs on every request; it is only needed to word
    // an error, so a body that fails is parsed a second time for it.
    if let Ok(value) = from_json_bytes(body) {
        return Ok(value);
    }
    // serde would name the internal type it expected (`struct CheckWire`).
    let top_level = body.iter().find(|b| !b.is_ascii_whitespace());
    if top_level != Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(ApiError::invalid(
            "invalid JSON: the request must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        // `?` stands for a key not read yet (the body ended or broke inside an
        // object): name the object that holds it instead.
        let path = path.trim_end_matches(".?").trim_end_matches('?');
        let inner = err.into_inner();
        if path.is_empty() || path == "." {
            ApiError::invalid(format!("invalid JSON: {inner}"))
        } else {
            ApiError::invalid(format!("invalid JSON at {path}: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::invalid(format!("invalid JSON: {err}")))?;
    Ok(value)
}

/// A request field, named in Cerbos's form (`resources[0].resource.kind`).
/// The name is only written out when the field has a problem: a request
/// that has none should not pay for naming its fields.
#[derive(Clone, Copy)]
enum Field<'a> {
    /// A top-level field.
    Root(&'static str),
    /// An element of a top-level list.
    Item(&'static str, usize),
    /// A field of a message.
    Member(&'a Field<'a>, &'static str),
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Root(name) => f.write_str(name),
            Field::Item(list, index) => write!(f, "{list}[{index}]"),
            Field::Member(parent, name) => write!(f, "{parent}.{name}"),
        }
    }
}

/// Field violations, reported together in Cerbos's wording.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, field: Field<'_>, message: impl fmt::Display) {
        self.0.push(format!("{field}: {message}"));
    }

    fn required(&mut self, field: Field<'_>, value: &str) {
        if value.is_empty() {
            self.add(field, "value is required");
        }
    }

    fn version(&mut self, field: Field<'_>, value: &str) {
        if !value.chars().all(|c| c.is_alphanumeric() || c == '_') {
            self.add(field, "does not match regex pattern `^[\\w]*$`");
        }
    }

    fn scope(&mut self, field: Field<'_>, value: &str) {
        if !valid_request_scope(value) {
            self.add(
                field,
                "does not match regex pattern `^(^$|\\.|[0-9a-zA-Z][\\w\\-]*(\\.\\w[\\w\\-]*)*)$`",
            );
        }
    }

    fn unique(&mut self, field: Field<'_>, values: &[String]) {
        // Requests name a handful of roles and actions: comparing each pair
        // is cheaper than hashing them, up to a length where it is not.
        const PAIRWISE_UP_TO: usize = 16;
        let unique = if values.len() <= PAIRWISE_UP_TO {
            values
                .iter()
                .enumerate()
                .all(|(i, v)| !values[..i].contains(v))
        } else {
            let mut seen = std::collections::HashSet::new();
            values.iter().all(|v| seen.insert(v.as_str()))
        };
        if !unique {
            self.add(field, "repeated value must contain unique items");
        }
    }

    fn principal(&mut self, wire: Option<PrincipalWire>, field: Field<'_>) -> Principal {
        let Some(p) = wire else {
            self.add(field, "value is required");
            return Principal::default();
        };
        let member = |name| Field::Member(&field, name);
        self.required(member("id"), &p.id);
        if p.roles.is_empty() {
            self.add(member("roles"), "value is required");
        }
        if p.roles.iter().any(String::is_empty) {
            self.add(member("roles"), "roles must not be empty strings");
        }
        self.unique(member("roles"), &p.roles);
        self.version(member("policy_version"), &p.policy_version);
        self.scope(member("scope"), &p.scope);
        Principal {
            id: p.id,
            roles: p.roles,
            attr: p.attr,
            policy_version: p.policy_version,
            scope: p.scope,
        }
    }

    fn resource(&mut self, wire: Option<ResourceWire>, field: Field<'_>) -> Resource {
        let Some(r) = wire else {
            self.add(field, "value is required");
            return Resource::default();
        };
        let member = |name| Field::Member(&field, name);
        self.required(member("kind"), &r.kind);
        self.required(member("id"), &r.id);
        self.version(member("policy_version"), &r.policy_version);
        self.scope(member("scope"), &r.scope);
        Resource {
            kind: r.kind,
            id: r.id,
            attr: r.attr,
            policy_version: r.policy_version,
            scope: r.scope,
        }
    }

    fn actions(&mut self, actions: Vec<String>, field: Field<'_>) -> Vec<String> {
        if actions.is_empty() {
            self.add(field, "value is required");
        }
        if actions.len() > MAX_ACTIONS_PER_RESOURCE {
            self.add(
                field,
                format!("value must contain no more than {MAX_ACTIONS_PER_RESOURCE} item(s)"),
            );
        }
        if actions.iter().any(String::is_empty) {
            self.add(field, "actions must not be empty strings");
        }
        self.unique(field, &actions);
        actions
    }

    fn finish(self) -> Result<(), ApiError> {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => Err(ApiError::invalid(format!("validation error: {one}"))),
            many => Err(ApiError::invalid(format!(
                "validation errors:\n - {}",
                many.join("\n - ")
            ))),
        }
    }
}

/// Cerbos's request scope pattern: empty, `.`, or dotted segments where the
/// first starts with a letter or digit.
fn valid_request_scope(scope: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if scope.is_empty() || scope == "." {
        return true;
    }
    scope.split('.').enumerate().all(|(i, segment)| {
        let mut chars = segment.chars();
        let first_ok = match chars.next() {
            Some(first) if i == 0 => first.is_ascii_alphanumeric(),
            Some(first) => word(first),
            None => false,
        };
        first_ok && chars.all(|c| word(c) || c == '-')
    })
}

fn effect_name(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "EFFECT_ALLOW",
        Effect::Deny => "EFFECT_DENY",
    }
}

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

#[derive(Serialize)]
struct ResourceEcho<'a> {
    id: &'a str,
    kind: &'a str,
    #[serde(rename = "policyVersion", skip_serializing_if = "is_empty")]
    policy_version: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    scope: &'a str,
}

#[derive(Serialize)]
struct ActionMeta<'a> {
    #[serde(rename = "matchedPolicy", skip_serializing_if = "is_empty")]
    matched_policy: &'a str,
    #[serde(rename = "matchedScope", skip_serializing_if = "is_empty")]
    matched_scope: &'a str,
}

#[derive(Serialize)]
struct Meta<'a> {
    actions: BTreeMap<&'a str, ActionMeta<'a>>,
    #[serde(
        rename = "effectiveDerivedRoles",
        skip_serializing_if = "<[_]>::is_empty"
    )]
    effective_derived_roles: &'a [String],
}

#[derive(Serialize)]
struct OutputWire<'a> {
    src: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    val: Option<&'a serde_json::Value>,
    action: &'a str,
    /// Cerbos 0.55 says why an output expression has no value.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn outputs(entries: &[OutputEntry]) -> Vec<OutputWire<'_>> {
    entries
        .iter()
        .map(|o| OutputWire {
            src: &o.src,
            val: o.val.as_ref(),
            action: &o.action,
            error: o.error.as_deref(),
        })
        .collect()
}

#[derive(Serialize)]
struct ResultWire<'a> {
    resource: ResourceEcho<'a>,
    actions: BTreeMap<&'a str, &'static str>,
    #[serde(rename = "validationErrors", skip_serializing_if = "<[_]>::is_empty")]
    validation_errors: &'a [ValidationError],
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Meta<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<OutputWire<'a>>,
}

#[derive(Serialize)]
struct CheckResourcesResponse<'a> {
    #[serde(rename = "requestId", skip_serializing_if = "is_empty")]
    request_id: &'a str,
    results: Vec<ResultWire<'a>>,
    #[serde(rename = "cerbosCallId")]
    call_id: &'a str,
}

#[derive(Serialize)]
struct CheckResponse<'a> {
    #[serde(rename = "requestId")]
    request_id: &'a str,
    #[serde(rename = "resourceId")]
    resource_id: &'a str,
    actions: BTreeMap<&'a str, &'static str>,
    #[serde(rename = "validationErrors", skip_serializing_if = "<[_]>::is_empty")]
    validation_errors: &'a [ValidationError],
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Meta<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<OutputWire<'a>>,
    #[serde(rename = "cerbosCallId")]
    call_id: &'a str,
}

fn actions(result: &CheckResult) -> BTreeMap<&str, &'static str> {
    result
        .actions
        .iter()
        .map(|a| (a.action.as_str(), effect_name(a.effect)))
        .collect()
}

fn meta(include: bool, result: &CheckResult) -> Option<Meta<'_>> {
    include.then(|| Meta {
        actions: result
            .actions
            .iter()
            .map(|a| {
                (
                    a.action.as_str(),
                    ActionMeta {
                        matched_policy: &a.policy,
                        matched_scope: &a.scope,
                    },
                )
            })
            .collect(),
        effective_derived_roles: &result.effective_derived_roles,
    })
}

impl Checked {
    /// The `CheckResourcesResponse`, for any serde_json formatter to write.
    pub fn check_resources_response(&self) -> impl Serialize + '_ {
        let results = self
            .resources
            .iter()
            .zip(&self.results)
            .map(|(item, result)| ResultWire {
                resource: ResourceEcho {
                    id: &item.resource.id,
                    kind: &item.resource.kind,
                    policy_version: &item.resource.policy_version,
                    scope: &item.resource.scope,
                },
                actions: actions(result),
                validation_errors: &result.validation_errors,
                meta: meta(self.include_meta, result),
                outputs: outputs(&result.outputs),
            })
            .collect();
        CheckResourcesResponse {
            request_id: &self.request_id,
            results,
            call_id: &self.call_id,
        }
    }

    /// The `/api/check` response, for any serde_json formatter to write.
    pub fn check_response(&self) -> Result<impl Serialize + '_, ApiError> {
        let (Some(item), Some(result)) = (self.resources.first(), self.results.first()) else {
            return Err(ApiError::internal("no result for the resource"));
        };
        Ok(CheckResponse {
            request_id: &self.request_id,
            resource_id: &item.resource.id,
            actions: actions(result),
            validation_errors: &result.validation_errors,
            meta: meta(self.include_meta, result),
            outputs: outputs(&result.outputs),
            call_id: &self.call_id,
        })
    }

    /// The `CheckResourcesResponse` JSON.
    pub fn check_resources_json(&self) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::with_capacity(self.response_len_hint());
        serde_json::to_writer(&mut out, &self.check_resources_response()).map_err(render_error)?;
        Ok(out)
    }

    /// About how many bytes a typical response takes, also once escaped
    /// into a string (a `\` before each quote), so the buffer it is written
    /// into is sized once rather than regrown as it fills.
    pub fn response_len_hint(&self) -> usize {
        320 * self.results.len() + 64
    }

    /// The `/api/check` response JSON.
    pub fn check_json(&self) -> Result<Vec<u8>, ApiError> {
        serde_json::to_vec(&self.check_response()?).map_err(render_error)
    }
}

/// A response that serde_json could not write (a map key that is not a
/// string, say): the caller's fault is never the cause, so it is internal.
pub fn render_error(err: serde_json::Error) -> ApiError {
    ApiError::internal(format!("cannot render response: {err}"))
}

#[cfg(test)]
mod tests;
