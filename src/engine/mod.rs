//! Decisions: a request plus the rule index gives an effect per action.
//!
//! The engine is pure: `(RuleIndex, request, now) -> results`, no I/O. It
//! follows Cerbos 0.55's evaluation order: principal policies before resource
//! policies, scopes from the most specific to the root, role policies
//! narrowing what a role may do, deny-overrides within a role, and the first
//! role that allows wins.

mod activation;
mod direct;
mod evaluate;
mod validate;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::compile::RuleIndex;
pub use crate::policy::model::Effect;

/// The principal making the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Principal {
    /// Principal id.
    pub id: String,
    /// Roles; at least one.
    pub roles: Vec<String>,
    /// Attributes (a JSON object).
    pub attr: serde_json::Map<String, serde_json::Value>,
    /// Policy version; empty means the configured default.
    pub policy_version: String,
    /// Scope; empty is the root.
    pub scope: String,
}

/// The resource being acted on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Resource kind.
    pub kind: String,
    /// Resource id.
    pub id: String,
    /// Attributes (a JSON object).
    pub attr: serde_json::Map<String, serde_json::Value>,
    /// Policy version; empty means the configured default.
    pub policy_version: String,
    /// Scope; empty is the root.
    pub scope: String,
}

/// One resource and the actions asked about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceCheck {
    /// The resource.
    pub resource: Resource,
    /// The actions.
    pub actions: Vec<String>,
}

/// Decoded auxiliary data: the claims of the request's JWT.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuxData {
    /// JWT claims, available as `request.auxData.jwt`.
    pub jwt: serde_json::Map<String, serde_json::Value>,
}

/// What was decided for one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionResult {
    /// The action.
    pub action: String,
    /// ALLOW or DENY.
    pub effect: Effect,
    /// The policy that decided, `NO_MATCH` when none did.
    pub policy: String,
    /// The scope at which it was decided, empty for the root or no match.
    pub scope: String,
}

/// Which attributes failed their schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ValidationSource {
    /// Principal attributes.
    #[serde(rename = "SOURCE_PRINCIPAL")]
    Principal,
    /// Resource attributes.
    #[serde(rename = "SOURCE_RESOURCE")]
    Resource,
}

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// JSON pointer into the attributes.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Principal or resource.
    pub source: ValidationSource,
}

/// A value emitted by a rule's `output`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputEntry {
    /// `<policy key>#<rule name>`.
    pub src: String,
    /// The value; absent when the expression failed to evaluate.
    pub val: Option<serde_json::Value>,
    /// The action being evaluated when it was emitted.
    pub action: String,
    /// Why the expression has no value, in cel-go's words (`no such key:
    /// owner`), as Cerbos 0.55 reports it in the entry's `error` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The decisions for one resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckResult {
    /// One entry per requested action, in request order.
    pub actions: Vec<ActionResult>,
    /// Derived roles that applied, sorted.
    pub effective_derived_roles: Vec<String>,
    /// Schema violations.
    pub validation_errors: Vec<ValidationError>,
    /// Outputs, in evaluation order.
    pub outputs: Vec<OutputEntry>,
}

impl CheckResult {
    /// The effect for `action`; DENY when it was not asked.
    pub fn effect(&self, action: &str) -> Effect {
        self.actions
            .iter()
            .find(|a| a.action == action)
            .map_or(Effect::Deny, |a| a.effect)
    }
}

/// Name used for the policy of an action no policy decided.
pub const NO_MATCH: &str = "NO_MATCH";

/// Decides every action on every resource for one principal.
///
/// The principal's attributes are converted for CEL once and shared by all
/// resources; `now` is the instant `now()` returns throughout the request.
pub fn check(
    index: &RuleIndex,
    principal: &Principal,
    aux_data: Option<&AuxData>,
    resources: &[ResourceCheck],
    now: DateTime<FixedOffset>,
) -> Vec<CheckResult> {
    evaluate::check(index, principal, aux_data, resources, now)
}

#[cfg(test)]
mod tests;
