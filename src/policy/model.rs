//! The typed form of Cerbos policy documents, field for field.
//!
//! These structs mirror the YAML (camelCase keys) and reject unknown fields,
//! so a typo is reported where it was written. [`super::parse`] turns them
//! into a [`Policy`] after checking what serde cannot: that a document holds
//! exactly one policy, names match Cerbos's patterns, and so on.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One YAML document of a policy file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyDocument {
    /// Must be `api.cerbos.dev/v1`.
    pub api_version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// A disabled policy is parsed and checked but never evaluated.
    #[serde(default)]
    pub disabled: bool,
    /// Annotations and provenance.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Deprecated top-level variables, still honoured as local variables.
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
    /// Editor hint, ignored.
    #[serde(default, rename = "$schema")]
    pub json_schema: Option<String>,
    /// A resource policy.
    #[serde(default)]
    pub resource_policy: Option<ResourcePolicy>,
    /// A principal policy.
    #[serde(default)]
    pub principal_policy: Option<PrincipalPolicy>,
    /// A derived roles set.
    #[serde(default)]
    pub derived_roles: Option<DerivedRoles>,
    /// Exported variables.
    #[serde(default)]
    pub export_variables: Option<ExportVariables>,
    /// Exported constants.
    #[serde(default)]
    pub export_constants: Option<ExportConstants>,
    /// A role policy.
    #[serde(default)]
    pub role_policy: Option<RolePolicy>,
}

/// `metadata:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Where the policy came from.
    #[serde(default)]
    pub source_file: Option<String>,
    /// Arbitrary annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// A content hash set by tooling.
    #[serde(default)]
    pub hash: Option<serde_json::Value>,
    /// Misspelt legacy field, accepted as Cerbos does.
    #[serde(default)]
    pub store_identifer: Option<String>,
    /// Store identifier set by tooling.
    #[serde(default)]
    pub store_identifier: Option<String>,
    /// Attributes set by the store.
    #[serde(default)]
    pub source_attributes: Option<SourceAttributes>,
}

/// `metadata.sourceAttributes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceAttributes {
    /// The attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// `variables:` inside a policy: imported sets plus local definitions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variables {
    /// Names of `exportVariables` sets to import.
    #[serde(default)]
    pub import: Vec<String>,
    /// Local definitions: name to CEL expression.
    #[serde(default)]
    pub local: BTreeMap<String, String>,
}

/// `constants:` inside a policy: imported sets plus local values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constants {
    /// Names of `exportConstants` sets to import.
    #[serde(default)]
    pub import: Vec<String>,
    /// Local values.
    #[serde(default)]
    pub local: BTreeMap<String, serde_json::Value>,
}

/// `resourcePolicy:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourcePolicy {
    /// The resource kind.
    pub resource: String,
    /// Policy version, e.g. `default`.
    pub version: String,
    /// Derived role sets this policy uses.
    #[serde(default)]
    pub import_derived_roles: Vec<String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<ResourceRule>,
    /// Dotted scope, empty for the root.
    #[serde(default)]
    pub scope: String,
    /// How this scope combines with its parents.
    #[serde(default)]
    pub scope_permissions: Option<ScopePermissions>,
    /// JSON Schemas for attributes.
    #[serde(default)]
    pub schemas: Option<Schemas>,
    /// Variables.
    #[serde(default)]
    pub variables: Option<Variables>,
    /// Constants.
    #[serde(default)]
    pub constants: Option<Constants>,
}

/// One rule of a resource policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRule {
    /// Actions (globs) the rule covers.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Derived roles the rule applies to.
    #[serde(default)]
    pub derived_roles: Vec<String>,
    /// Roles the rule applies to; `*` is any role.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Optional condition.
    #[serde(default)]
    pub condition: Option<Condition>,
    /// `EFFECT_ALLOW` or `EFFECT_DENY`.
    pub effect: Option<Effect>,
    /// Rule name, used in outputs.
    #[serde(default)]
    pub name: Option<String>,
    /// Output expressions.
    #[serde(default)]
    pub output: Option<Output>,
}

/// `principalPolicy:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalPolicy {
    /// The principal id.
    pub principal: String,
    /// Policy version.
    pub version: String,
    /// Per-resource rules.
    #[serde(default)]
    pub rules: Vec<PrincipalRule>,
    /// Dotted scope.
    #[serde(default)]
    pub scope: String,
    /// How this scope combines with its parents.
    #[serde(default)]
    pub scope_permissions: Option<ScopePermissions>,
    /// Variables.
    #[serde(default)]
    pub variables: Option<Variables>,
    /// Constants.
    #[serde(default)]
    pub constants: Option<Constants>,
}

/// Rules of a principal policy for one resource kind (glob).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalRule {
    /// Resource kind glob.
    pub resource: String,
    /// Action rules.
    #[serde(default)]
    pub actions: Vec<PrincipalAction>,
}

/// One action rule of a principal policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalAction {
    /// Action glob.
    pub action: String,
    /// Optional condition.
    #[serde(default)]
    pub condition: Option<Condition>,
    /// `EFFECT_ALLOW` or `EFFECT_DENY`.
    pub effect: Option<Effect>,
    /// Rule name.
    #[serde(default)]
    pub name: Option<String>,
    /// Output expressions.
    #[serde(default)]
    pub output: Option<Output>,
}

/// `derivedRoles:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DerivedRoles {
    /// Set name, imported by resource policies.
    pub name: String,
    /// The roles.
    #[serde(default)]
    pub definitions: Vec<RoleDef>,
    /// Variables.
    #[serde(default)]
    pub variables: Option<Variables>,
    /// Constants.
    #[serde(default)]
    pub constants: Option<Constants>,
}

/// One derived role.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleDef {
    /// Role name.
    pub name: String,
    /// Roles a principal needs for this role to be considered; `*` is any.
    #[serde(default)]
    pub parent_roles: Vec<String>,
    /// Condition that must hold.
    #[serde(default)]
    pub condition: Option<Condition>,
}

/// `exportVariables:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportVariables {
    /// Set name.
    pub name: String,
    /// Name to CEL expression.
    #[serde(default)]
    pub definitions: BTreeMap<String, String>,
}

/// `exportConstants:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportConstants {
    /// Set name.
    pub name: String,
    /// Name to value.
    #[serde(default)]
    pub definitions: BTreeMap<String, serde_json::Value>,
}

/// `rolePolicy:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolePolicy {
    /// The role this policy defines.
    pub role: String,
    /// Policy version; `default` when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Dotted scope.
    #[serde(default)]
    pub scope: String,
    /// Roles whose resource-policy permissions this role inherits.
    #[serde(default)]
    pub parent_roles: Vec<String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RoleRule>,
    /// Variables.
    #[serde(default)]
    pub variables: Option<Variables>,
    /// Constants.
    #[serde(default)]
    pub constants: Option<Constants>,
}

/// One rule of a role policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRule {
    /// Resource kind glob.
    pub resource: String,
    /// Actions (globs) the role may perform.
    #[serde(default)]
    pub allow_actions: Vec<String>,
    /// Optional condition.
    #[serde(default)]
    pub condition: Option<Condition>,
    /// Rule name.
    #[serde(default)]
    pub name: Option<String>,
    /// Output expressions.
    #[serde(default)]
    pub output: Option<Output>,
}

/// `ALLOW` or `DENY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Effect {
    /// Permit.
    #[serde(rename = "EFFECT_ALLOW")]
    Allow,
    /// Forbid.
    #[serde(rename = "EFFECT_DENY")]
    Deny,
}

/// How a scoped policy combines with its parent scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ScopePermissions {
    /// Treated as the default.
    #[serde(rename = "SCOPE_PERMISSIONS_UNSPECIFIED")]
    Unspecified,
    /// The first matching scope decides (Cerbos's default).
    #[serde(rename = "SCOPE_PERMISSIONS_OVERRIDE_PARENT")]
    OverrideParent,
    /// An ALLOW here must also be allowed by a parent scope.
    #[serde(rename = "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS")]
    RequireParentalConsentForAllows,
}

/// `condition:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The match tree.
    #[serde(rename = "match")]
    pub match_: Option<Match>,
    /// Removed in Cerbos 0.x; rejected with a clear message.
    #[serde(default)]
    pub script: Option<String>,
}

/// A node of a condition: exactly one of `expr`, `all`, `any`, `none`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// A CEL expression.
    #[serde(default)]
    pub expr: Option<String>,
    /// Every child must hold.
    #[serde(default)]
    pub all: Option<MatchList>,
    /// At least one child must hold.
    #[serde(default)]
    pub any: Option<MatchList>,
    /// No child may hold.
    #[serde(default)]
    pub none: Option<MatchList>,
}

/// `of:` list under `all`/`any`/`none`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchList {
    /// Children.
    #[serde(default)]
    pub of: Vec<Match>,
}

/// `output:` of a rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Output {
    /// Deprecated: same as `when.ruleActivated`.
    #[serde(default)]
    pub expr: Option<String>,
    /// Expressions by outcome.
    #[serde(default)]
    pub when: Option<OutputWhen>,
}

/// `output.when:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputWhen {
    /// Evaluated when the rule's condition holds.
    #[serde(default)]
    pub rule_activated: Option<String>,
    /// Evaluated when the rule matched but its condition did not hold.
    #[serde(default)]
    pub condition_not_met: Option<String>,
}

/// `schemas:` of a resource policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schemas {
    /// Schema for principal attributes.
    #[serde(default)]
    pub principal_schema: Option<SchemaRef>,
    /// Schema for resource attributes.
    #[serde(default)]
    pub resource_schema: Option<SchemaRef>,
}

/// A reference to a schema file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaRef {
    /// `cerbos:///path/under/_schemas.json`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Skip validation when only these actions are requested.
    #[serde(default)]
    pub ignore_when: Option<IgnoreWhen>,
}

/// `ignoreWhen:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoreWhen {
    /// Action globs.
    #[serde(default)]
    pub actions: Vec<String>,
}
