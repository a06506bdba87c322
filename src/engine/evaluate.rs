//! Cerbos's check algorithm over the rule index.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelMap, CelMapKey};
use cel::common::value::Val;
use cel::{Context, Value};
use chrono::{DateTime, FixedOffset};

use super::activation::{Activation, LazyVal, RequestView, Runtime};
use super::direct::{self, Inputs, Scalar};
use super::validate::validate;
use super::{
    ActionResult, AuxData, CheckResult, Effect, OutputEntry, Principal, Resource, ResourceCheck,
    NO_MATCH,
};
use crate::celx;
use crate::compile::names::{principal_policy_key, resource_policy_key, sanitize};
use crate::compile::{
    CompiledExpr, Condition, DerivedRole, FastMap, FastSet, Params, PrincipalRule, PrincipalUnit,
    ResourceRule, ResourceUnit, RoleRule, RoleUnit, RuleIndex, RuleOutput,
};
use crate::config::SchemaEnforcement;
use crate::policy::model::ScopePermissions;

type StaticVal = Box<dyn Val + 'static>;

static EMPTY_MAP: LazyLock<StaticVal> = LazyLock::new(|| Box::new(CelMap::from(HashMap::new())));

pub fn check(
    index: &RuleIndex,
    principal: &Principal,
    aux_data: Option<&AuxData>,
    resources: &[ResourceCheck],
    now: DateTime<FixedOffset>,
) -> Vec<CheckResult> {
    let principal_cel = LazyVal::principal(principal);
    let aux_cel = LazyVal::aux_data(aux_data);
    let now_cel = celx::timestamp_val(now);
    resources
        .iter()
        .map(|item| {
            let resource_cel = LazyVal::resource(&item.resource);
            let shared = Shared {
                index,
                principal,
                resource: &item.resource,
                request: RequestView {
                    principal: &principal_cel,
                    resource: &resource_cel,
                    aux_data: &aux_cel,
                },
                now: &*now_cel,
            };
            check_resource(&shared, item)
        })
        .collect()
}

/// What every evaluation of one resource shares.
struct Shared<'a> {
    index: &'a RuleIndex,
    principal: &'a Principal,
    resource: &'a Resource,
    request: RequestView<'a>,
    now: &'a dyn Val,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Decision {
    NoMatch,
    Allow,
    Deny,
}

/// A decision with the policy and scope that made it, borrowed until the
/// action's result is written.
#[derive(Clone, Copy, Debug)]
struct EffectInfo<'x> {
    decision: Decision,
    policy: &'x str,
    scope: &'x str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyType {
    Principal,
    Resource,
}

/// The scopes, nearest first, at which policies of one type exist for a
/// request scope, and the key of the policy at the first of them.
fn all_scopes<'s>(
    existing: &FastSet<Box<str>>,
    scope: &'s str,
    lenient: bool,
    key: impl Fn(&str) -> String,
) -> (Vec<&'s str>, String) {
    let mut scopes = Vec::new();
    if existing.contains(scope) {
        scopes.push(scope);
    } else if !lenient {
        return (scopes, String::new());
    }
    scopes.extend(crate::compile::names::scope_parents(scope).filter(|s| existing.contains(*s)));
    let first = scopes.first().map(|s| key(s)).unwrap_or_default();
    (scopes, first)
}

fn check_resource(shared: &Shared<'_>, item: &ResourceCheck) -> CheckResult {
    let index = shared.index;
    let settings = &index.settings;
    let principal = shared.principal;
    let resource = &item.resource;
    let default_version = settings.default_policy_version.as_str();
    let principal_version = non_empty_or(&principal.policy_version, default_version);
    let resource_version = non_empty_or(&resource.policy_version, default_version);
    let principal_scope = principal.scope.trim_start_matches('.');
    let resource_scope = resource.scope.trim_start_matches('.');

    let mut result = CheckResult {
        actions: item
            .actions
            .iter()
            .map(|a| ActionResult {
                action: a.clone(),
                effect: Effect::Deny,
                policy: NO_MATCH.to_string(),
                scope: String::new(),
            })
            .collect(),
        ..CheckResult::default()
    };

    let lenient = settings.lenient_scope_search;
    let (principal_scopes, principal_key) =
        all_scopes(&index.principal_scopes, principal_scope, lenient, |s| {
            principal_policy_key(&principal.id, principal_version, s)
        });
    let (resource_scopes, resource_key) =
        all_scopes(&index.resource_scopes, resource_scope, lenient, |s| {
            resource_policy_key(&resource.kind, resource_version, s)
        });
    if principal_scopes.is_empty() && resource_scopes.is_empty() {
        return result;
    }

    let kind = sanitize(&resource.kind);
    let resource_units = ScopeUnits::lookup(
        index,
        PolicyType::Resource,
        resource_version,
        &kind,
        &resource_scopes,
    );
    if settings.schema_enforcement != SchemaEnforcement::None {
        if let Some(unit) = resource_units.first().and_then(|units| units.resource) {
            result.validation_errors = validate(unit, principal, resource, &item.actions);
            if !result.validation_errors.is_empty()
                && settings.schema_enforcement == SchemaEnforcement::Reject
            {
                for action in &mut result.actions {
                    action.policy.clone_from(&resource_key);
                }
                return result;
            }
        }
    }

    let scoped_principal_exists =
        index.scoped_principal_exists(principal_version, &principal_scopes);
    let scoped_resource_exists = resource_units
        .iter()
        .any(|units| units.has_rules_for(&kind));
    if !scoped_principal_exists && !scoped_resource_exists {
        return result;
    }

    // Each principal role with its ancestors, looked up once for all
    // actions: `role_spans[i]` is where role `i`'s list lies in `all_roles`.
    let mut all_roles: Vec<&str> = Vec::new();
    let mut role_spans = Vec::with_capacity(principal.roles.len());
    for role in &principal.roles {
        let start = all_roles.len();
        index.with_parent_roles(resource_scope, role, &mut all_roles);
        role_spans.push(start..all_roles.len());
    }
    // Cerbos finds a principal policy's scopes at the principal's version,
    // but reads its rules from the rule table at the resource's version.
    let principal_units = ScopeUnits::lookup(
        index,
        PolicyType::Principal,
        resource_version,
        &principal.id,
        &principal_scopes,
    );

    let mut run = Run {
        shared,
        kind: &kind,
        conditions: Vec::new(),
        variables: Vec::new(),
        needed: Vec::new(),
        derived_conditions: Vec::new(),
        bindings: Vec::new(),
        outputs: Vec::new(),
        runtime: Runtime::new(Vec::new()),
        effective_derived_roles: Vec::new(),
        derived_at: vec![false; resource_units.len()],
    };

    for (slot, action) in item.actions.iter().enumerate() {
        let mut decided = EffectInfo {
            decision: Decision::NoMatch,
            policy: "",
            scope: "",
        };
        for policy_type in [PolicyType::Principal, PolicyType::Resource] {
            let (main_key, scopes, exists) = match policy_type {
                PolicyType::Principal => {
                    (&principal_key, &principal_units, scoped_principal_exists)
                }
                PolicyType::Resource => (&resource_key, &resource_units, scoped_resource_exists),
            };
            decided.decision = Decision::NoMatch;
            for (i, span) in role_spans.iter().enumerate() {
                // Principal rules apply to every role: one pass covers them all.
                if i > 0 && policy_type == PolicyType::Principal {
                    break;
                }
                let role_effect = run.evaluate_role(
                    policy_type,
                    action,
                    &all_roles[span.clone()],
                    &all_roles,
                    scopes,
                    if exists { main_key.as_str() } else { NO_MATCH },
                );
                if decided.decision == Decision::NoMatch {
                    decided = role_effect;
                }
                if role_effect.decision == Decision::Allow {
                    decided = role_effect;
                    break;
                }
            }
            if decided.decision != Decision::NoMatch {
                break;
            }
        }
        let entry = &mut result.actions[slot];
        entry.effect = if decided.decision == Decision::Allow {
            Effect::Allow
        } else {
            Effect::Deny
        };
        entry.policy = decided.policy.to_string();
        entry.scope = decided.scope.to_string();
    }

    result.effective_derived_roles = run.effective_derived_roles;
    result.outputs = run.outputs;
    result
}

/// Adds `name` to a sorted, duplicate-free list. The lists hold a few
/// derived roles, so this is a few comparisons, and it spares a check the
/// code of a `BTreeSet` per element type.
fn insert_sorted<'n, T: AsRef<str>>(list: &mut Vec<T>, name: &'n str, make: impl Fn(&'n str) -> T) {
    if let Err(at) = list.binary_search_by(|held| held.as_ref().cmp(name)) {
        list.insert(at, make(name));
    }
}

fn non_empty_or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

/// The policies at one scope that a check reads, looked up once per
/// resource rather than once per action and role: each lookup hashes and
/// compares names whose bytes a warm invocation must fetch again.
struct ScopeUnits<'a, 's> {
    scope: &'s str,
    principal: Option<&'a PrincipalUnit>,
    resource: Option<&'a ResourceUnit>,
    roles: Option<&'a FastMap<Box<str>, Arc<RoleUnit>>>,
    permissions: Option<ScopePermissions>,
}

impl<'a, 's> ScopeUnits<'a, 's> {
    /// The policies of one type at each of `scopes`: `name` is the
    /// principal id for principal policies, the sanitized kind for resource
    /// and role policies.
    fn lookup(
        index: &'a RuleIndex,
        policy_type: PolicyType,
        version: &str,
        name: &str,
        scopes: &[&'s str],
    ) -> Vec<ScopeUnits<'a, 's>> {
        scopes
            .iter()
            .map(|&scope| {
                let mut units = ScopeUnits {
                    scope,
                    principal: None,
                    resource: None,
                    roles: None,
                    permissions: index.scope_permissions(scope),
                };
                match policy_type {
                    PolicyType::Principal => {
                        units.principal = index.principal_unit(name, version, scope).map(|u| &**u);
                    }
                    PolicyType::Resource => {
                        units.resource = index.resource_unit(version, name, scope).map(|u| &**u);
                        units.roles = index.role_units(version, scope);
                    }
                }
                units
            })
            .collect()
    }

    /// Whether this scope has a resource policy for `kind`, or a role
    /// policy with a rule for it.
    fn has_rules_for(&self, kind: &str) -> bool {
        self.resource.is_some()
            || self.roles.is_some_and(|units| {
                units
                    .values()
                    .any(|unit| unit.rules.iter().any(|rule| rule.resource.matches(kind)))
            })
    }
}

/// One applicable rule row, as Cerbos's rule table would return it.
enum Binding<'i> {
    Principal(&'i PrincipalRule, &'i Params),
    Resource {
        rule: &'i ResourceRule,
        params: &'i Params,
        derived: Option<(&'i DerivedRole, usize)>,
    },
    /// The role has a role policy here, but nothing in it allows the action.
    RoleDenied(&'i str),
    /// A role policy rule that allows the action, subject to its condition.
    RoleRule(&'i RoleRule, &'i RoleUnit),
}

/// How a row's conditions came out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Satisfied,
    NotSatisfied,
    /// The derived role's condition failed on first evaluation: Cerbos skips
    /// the row without emitting outputs.
    Skipped,
}

/// Which evaluation of a set of variables a cached value belongs to.
///
/// Cerbos keeps three kinds of variable evaluations apart within a check: a
/// policy's own (for its rules and outputs), a derived role set's while the
/// effective derived roles of a scope are worked out, and a derived role's
/// when a rule that uses it is evaluated. The last two can differ, as they
/// see different `runtime.effectiveDerivedRoles`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum VarSlot<'i> {
    /// A resource, principal or role policy's variables, by params id.
    Policy(usize),
    /// A derived role set's variables while deriving roles, by params id.
    Derive(usize),
    /// A derived role's variables inside a rule, by derived role name.
    DerivedRole(&'i str),
}

/// The variables of one slot evaluated so far: each is evaluated the first
/// time an expression needs it, at most once per check.
struct SlotVariables<'i> {
    slot: VarSlot<'i>,
    /// By position in `Params::variables`: the value, or `None` before it
    /// is evaluated and when it failed (an undefined variable, as in
    /// Cerbos). Kept by position rather than in a `V` map, which hashed
    /// each name with SipHash on every insert and lookup; the map is only
    /// built for `cel`, and only when an expression reads `V`.
    values: Vec<Option<StaticVal>>,
    /// Which variables, by position in `Params::variables`, were evaluated.
    evaluated: Vec<bool>,
    /// `values` as the map `cel` reads as `V`, once an expression that
    /// reads `V` needed it; dropped whenever `values` changes.
    cel: Option<StaticVal>,
}

/// The values of one slot's variables, by name.
#[derive(Clone, Copy)]
struct SlotValues<'x> {
    definitions: &'x [(Arc<str>, Arc<CompiledExpr>)],
    values: &'x [Option<StaticVal>],
    /// The slot's `V` map for `cel`, when it was built.
    cel: Option<&'x dyn Val>,
}

impl SlotValues<'_> {
    const NONE: SlotValues<'static> = SlotValues {
        definitions: &[],
        values: &[],
        cel: None,
    };

    /// `V` as `cel` reads it: the values so far, by name.
    fn cel_map(self) -> StaticVal {
        let map: HashMap<CelMapKey<'static>, StaticVal> = self
            .definitions
            .iter()
            .zip(self.values)
            .filter_map(|((name, _), value)| {
                let value = value.as_ref()?;
                Some((
                    CelMapKey::from(String::from(&**name)),
                    value.clone_as_boxed(),
                ))
            })
            .collect();
        Box::new(CelMap::from(map))
    }
}

/// Whether `expr` reads `V` at all.
fn reads_variables(expr: &CompiledExpr) -> bool {
    !expr.variables.is_empty() || expr.reads_all_variables
}

impl direct::NamedValues for SlotValues<'_> {
    fn value(&self, name: &str) -> Option<&dyn Val> {
        // A policy defines a handful of variables: comparing names is
        // cheaper than hashing one.
        let at = self.definitions.iter().position(|(n, _)| **n == *name)?;
        self.values.get(at)?.as_deref()
    }
}

/// The evaluation state of one resource check.
struct Run<'a, 's> {
    shared: &'s Shared<'a>,
    kind: &'s str,
    /// Condition results by cache slot.
    conditions: Vec<(usize, bool)>,
    /// Variables evaluated so far, by slot.
    variables: Vec<SlotVariables<'a>>,
    /// Scratch space: which variables an expression needs.
    needed: Vec<bool>,
    /// Derived role conditions already evaluated that cannot change within
    /// the check (they read no `runtime`), by role.
    derived_conditions: Vec<(&'a DerivedRole, bool)>,
    /// Scratch space for the rows of one scope.
    bindings: Vec<Binding<'a>>,
    outputs: Vec<OutputEntry>,
    /// `runtime` for the scope being evaluated.
    runtime: Runtime<'a>,
    /// Sorted, as Cerbos lists them.
    effective_derived_roles: Vec<String>,
    /// Which resource scopes, by position, have had their roles derived.
    derived_at: Vec<bool>,
}

impl<'a, 's> Run<'a, 's> {
    #[allow(clippy::too_many_arguments)]
    fn evaluate_role<'x>(
        &mut self,
        policy_type: PolicyType,
        action: &str,
        roles: &[&str],
        all_roles: &[&str],
        scopes: &[ScopeUnits<'a, 's>],
        policy: &'x str,
    ) -> EffectInfo<'x>
    where
        'a: 'x,
        's: 'x,
    {
        let mut effect = EffectInfo {
            decision: Decision::NoMatch,
            policy,
            scope: "",
        };
        let mut has_allow = false;
        // The rows buffer is kept across calls, so a check allocates it once.
        let mut bindings = std::mem::take(&mut self.bindings);
        'scopes: for (position, units) in scopes.iter().enumerate() {
            let scope = units.scope;
            if policy_type == PolicyType::Resource && !self.derived_at[position] {
                self.derive_roles(units.resource, all_roles);
                self.derived_at[position] = true;
            }
            bindings.clear();
            match policy_type {
                PolicyType::Principal => {
                    self.principal_bindings(units.principal, action, &mut bindings)
                }
                PolicyType::Resource => self.resource_bindings(units, action, roles, &mut bindings),
            }
            for binding in &bindings {
                let (outcome, output, src) = self.evaluate_binding(binding);
                if let Some(output) = output {
                    let expr = match outcome {
                        Outcome::Satisfied => output.rule_activated.as_ref(),
                        Outcome::NotSatisfied => output.condition_not_met.as_ref(),
                        Outcome::Skipped => None,
                    };
                    if let Some(expr) = expr {
                        let (val, error) = match self.output_value(binding, expr) {
                            Ok(val) => (Some(val), None),
                            Err(error) => (None, Some(error)),
                        };
                        self.outputs.push(OutputEntry {
                            src: src.to_string(),
                            val,
                            action: action.to_string(),
                            error,
                        });
                    }
                }
                let denied_by = match (binding, outcome) {
                    (Binding::RoleDenied(key), _) => Some(*key),
                    (Binding::RoleRule(_, unit), Outcome::NotSatisfied | Outcome::Skipped) => {
                        Some(&*unit.key)
                    }
                    (Binding::Principal(rule, _), Outcome::Satisfied) => match rule.effect {
                        Effect::Allow => {
                            has_allow = true;
                            None
                        }
                        Effect::Deny => Some(""),
                    },
                    (Binding::Resource { rule, .. }, Outcome::Satisfied) => match rule.effect {
                        Effect::Allow => {
                            has_allow = true;
                            None
                        }
                        Effect::Deny => Some(""),
                    },
                    _ => None,
                };
                if let Some(role_policy) = denied_by {
                    effect.decision = Decision::Deny;
                    effect.scope = scope;
                    if !role_policy.is_empty() {
                        effect.policy = role_policy;
                    }
                    break 'scopes;
                }
            }
            if has_allow {
                match units.permissions {
                    Some(ScopePermissions::RequireParentalConsentForAllows) => has_allow = false,
                    Some(ScopePermissions::OverrideParent) => {
                        effect.decision = Decision::Allow;
                        effect.scope = scope;
                        break 'scopes;
                    }
                    _ => {}
                }
            }
        }
        bindings.clear();
        self.bindings = bindings;
        effect
    }

    fn principal_bindings(
        &self,
        unit: Option<&'a PrincipalUnit>,
        action: &str,
        out: &mut Vec<Binding<'a>>,
    ) {
        let Some(unit) = unit else {
            return;
        };
        out.extend(
            unit.rules
                .iter()
                .filter(|r| r.resource.matches(self.kind) && r.action.matches(action))
                .map(|r| Binding::Principal(r, &unit.params)),
        );
    }

    fn resource_bindings(
        &self,
        units: &ScopeUnits<'a, 's>,
        action: &str,
        roles: &[&str],
        out: &mut Vec<Binding<'a>>,
    ) {
        let unit = units.resource;
        // Role policies come first so their denials take precedence. A role
        // policy only denies what it does not list when the scope has some
        // rule for this kind and these roles (Cerbos's rule table query
        // returns no rows otherwise, so there is nothing to deny).
        let role_units = units
            .roles
            .filter(|units| roles.iter().any(|r| units.contains_key(*r)))
            .filter(|units| kind_has_rows(unit, units, self.kind, roles));
        if let Some(units) = role_units {
            for role in roles {
                let Some(unit) = units.get(*role) else {
                    continue;
                };
                let mut allowed = false;
                for rule in unit
                    .rules
                    .iter()
                    .filter(|r| r.resource.matches(self.kind))
                    .filter(|r| r.actions.iter().any(|a| a.matches(action)))
                {
                    allowed = true;
                    if rule.condition.is_some() || rule.output.is_some() {
                        out.push(Binding::RoleRule(rule, unit));
                    }
                }
                if !allowed {
                    out.push(Binding::RoleDenied(&unit.key));
                }
            }
        }
        let Some(unit) = unit else {
            return;
        };
        for rule in &unit.rules {
            for _ in rule.actions.iter().filter(|a| a.matches(action)) {
                for _ in rule.roles.iter().filter(|r| r.matches(roles)) {
                    out.push(Binding::Resource {
                        rule,
                        params: &unit.params,
                        derived: None,
                    });
                }
                for (derived, slot) in &rule.derived_roles {
                    for _ in derived.parent_roles.iter().filter(|r| r.matches(roles)) {
                        out.push(Binding::Resource {
                            rule,
                            params: &unit.params,
                            derived: Some((derived, *slot)),
                        });
                    }
                }
            }
        }
    }

    /// Works out which derived roles hold at `scope`, as Cerbos does once per
    /// scope: conditions there see only the roles of that scope.
    fn derive_roles(&mut self, unit: Option<&'a ResourceUnit>, all_roles: &[&str]) {
        let mut here: Vec<&str> = Vec::new();
        if let Some(unit) = unit {
            for derived in &unit.derived_roles {
                let parents_match = derived.parent_roles.iter().any(|p| p.matches(all_roles));
                if !parents_match {
                    continue;
                }
                let holds = self.derived_condition(derived, VarSlot::Derive(derived.params.id));
                if holds {
                    insert_sorted(&mut here, &derived.name, |name| name);
                    insert_sorted(
                        &mut self.effective_derived_roles,
                        &derived.name,
                        str::to_string,
                    );
                }
            }
        }
        self.runtime = Runtime::new(here);
    }

    fn cached(&self, slot: usize) -> Option<bool> {
        self.conditions
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, v)| *v)
    }

    fn evaluate_binding(
        &mut self,
        binding: &Binding<'a>,
    ) -> (Outcome, Option<&'a RuleOutput>, &'a str) {
        match binding {
            Binding::RoleDenied(key) => (Outcome::Satisfied, None, key),
            Binding::Principal(rule, params) => {
                let outcome = self.rule_outcome(rule.slot, rule.condition.as_ref(), params);
                (outcome, rule.output.as_ref(), &rule.src)
            }
            Binding::RoleRule(rule, unit) => {
                let outcome = self.rule_outcome(rule.slot, rule.condition.as_ref(), &unit.params);
                (outcome, rule.output.as_ref(), &rule.src)
            }
            Binding::Resource {
                rule,
                params,
                derived,
            } => {
                let slot = derived.map_or(rule.slot, |(_, s)| s);
                if let Some(cached) = self.cached(slot) {
                    let outcome = if cached {
                        Outcome::Satisfied
                    } else {
                        Outcome::NotSatisfied
                    };
                    return (outcome, rule.output.as_ref(), &rule.src);
                }
                if let Some((role, _)) = derived {
                    let holds = self.derived_condition(role, VarSlot::DerivedRole(&role.name));
                    if !holds {
                        self.conditions.push((slot, false));
                        return (Outcome::Skipped, rule.output.as_ref(), &rule.src);
                    }
                }
                let holds = match &rule.condition {
                    None => true,
                    Some(condition) => {
                        self.condition(condition, params, VarSlot::Policy(params.id))
                    }
                };
                self.conditions.push((slot, holds));
                let outcome = if holds {
                    Outcome::Satisfied
                } else {
                    Outcome::NotSatisfied
                };
                (outcome, rule.output.as_ref(), &rule.src)
            }
        }
    }

    fn rule_outcome(
        &mut self,
        slot: usize,
        condition: Option<&Condition>,
        params: &Params,
    ) -> Outcome {
        let holds = match self.cached(slot) {
            Some(cached) => cached,
            None => {
                let holds =
                    condition.is_none_or(|c| self.condition(c, params, VarSlot::Policy(params.id)));
                self.conditions.push((slot, holds));
                holds
            }
        };
        if holds {
            Outcome::Satisfied
        } else {
            Outcome::NotSatisfied
        }
    }

    fn params_of(binding: &Binding<'a>) -> Option<&'a Params> {
        match binding {
            Binding::Principal(_, params) | Binding::Resource { params, .. } => Some(params),
            Binding::RoleRule(_, unit) => Some(&unit.params),
            Binding::RoleDenied(_) => None,
        }
    }

    /// An output expression's value as JSON, or why it has none.
    fn output_value(
        &mut self,
        binding: &Binding<'a>,
        expr: &CompiledExpr,
    ) -> Result<serde_json::Value, String> {
        let Some(params) = Self::params_of(binding) else {
            return Ok(serde_json::Value::Null);
        };
        let slot = VarSlot::Policy(params.id);
        self.ensure_variables(params, slot, expr);
        let variables = self.variables_of(params, slot);
        if let Some(direct) = &expr.direct {
            if let Some(json) = direct::output(direct, &self.inputs(params, &variables)) {
                return Ok(json);
            }
        }
        let reads = self.prepare_cel_variables(params, slot, expr);
        let variables = self.variables_of(params, slot).cel.filter(|_| reads);
        let activation = self.activation(params, variables);
        let mut context = Context::with_env(celx::environment());
        context.set_variable_resolver(&activation);
        let json = match Value::resolve_val(expr.program.expression(), &context) {
            Ok(value) => celx::val_to_json(&*value).map_err(|e| conversion_message(&e)),
            Err(err) => Err(evaluation_message(&err)),
        };
        json
    }

    /// The values of `slot`'s variables so far; `params` defines them.
    fn variables_of<'x>(&'x self, params: &'x Params, slot: VarSlot<'_>) -> SlotValues<'x> {
        self.variables
            .iter()
            .find(|v| v.slot == slot)
            .map_or(SlotValues::NONE, |v| SlotValues {
                definitions: &params.variables,
                values: &v.values,
                cel: v.cel.as_deref(),
            })
    }

    /// Builds the `V` map of `slot` for `cel` if `expr` reads `V` and
    /// the map is not built yet (it is kept until the values change), and
    /// says whether `expr` reads `V`.
    fn prepare_cel_variables(
        &mut self,
        params: &Params,
        slot: VarSlot<'_>,
        expr: &CompiledExpr,
    ) -> bool {
        if !reads_variables(expr) {
            return false;
        }
        if let Some(state) = self.variables.iter_mut().find(|v| v.slot == slot) {
            if state.cel.is_none() {
                let values = SlotValues {
                    definitions: &params.variables,
                    values: &state.values,
                    cel: None,
                };
                state.cel = Some(values.cel_map());
            }
        }
        true
    }

    fn inputs<'x>(
        &'x self,
        params: &'x Params,
        variables: &'x dyn direct::NamedValues,
    ) -> Inputs<'x> {
        Inputs {
            principal: self.shared.principal,
            resource: self.shared.resource,
            variables,
            constants: &params.constant_values,
        }
    }

    /// The activation for `cel`, with `variables` as `V` (an empty map when
    /// the expression does not read it).
    fn activation<'x>(
        &'x self,
        params: &'x Params,
        variables: Option<&'x dyn Val>,
    ) -> Activation<'x> {
        Activation {
            request: self.shared.request,
            runtime: &self.runtime,
            variables: variables.unwrap_or(&**EMPTY_MAP),
            constants: &*params.constants,
            globals: &*self.shared.index.globals,
            now: self.shared.now,
        }
    }

    /// A derived role's condition. One that reads no `runtime`, directly
    /// or through its variables, has the same value wherever it is asked
    /// for in a check, so it is evaluated once.
    fn derived_condition(&mut self, role: &'a DerivedRole, slot: VarSlot<'a>) -> bool {
        let Some(condition) = &role.condition else {
            return true;
        };
        let fixed = !role.reads_runtime;
        if fixed {
            let done = self
                .derived_conditions
                .iter()
                .find(|(r, _)| std::ptr::eq(*r, role));
            if let Some((_, holds)) = done {
                return *holds;
            }
        }
        let holds = self.condition(condition, &role.params, slot);
        if fixed {
            self.derived_conditions.push((role, holds));
        }
        holds
    }

    /// Evaluates a condition tree; an evaluation error counts as false.
    fn condition(&mut self, condition: &Condition, params: &Params, slot: VarSlot<'a>) -> bool {
        let slot = Self::shared_slot(params, slot);
        self.satisfied(condition, params, slot)
    }

    fn satisfied(&mut self, condition: &Condition, params: &Params, slot: VarSlot<'a>) -> bool {
        match condition {
            Condition::Expr(expr) => {
                self.ensure_variables(params, slot, expr);
                let variables = self.variables_of(params, slot);
                if let Some(direct) = &expr.direct {
                    if let Some(value) = direct::evaluate(direct, &self.inputs(params, &variables))
                    {
                        return value == Scalar::Bool(true);
                    }
                }
                let reads = self.prepare_cel_variables(params, slot, expr);
                let variables = self.variables_of(params, slot).cel.filter(|_| reads);
                let activation = self.activation(params, variables);
                matches!(evaluate(expr, &activation), Some(Value::Bool(true)))
            }
            Condition::All(children) => children.iter().all(|c| self.satisfied(c, params, slot)),
            Condition::Any(children) => children.iter().any(|c| self.satisfied(c, params, slot)),
            Condition::None(children) => !children.iter().any(|c| self.satisfied(c, params, slot)),
        }
    }

    /// The slot whose values serve `slot`: variables that do not read
    /// `runtime` have the same values whenever they are evaluated in a
    /// check, so a derived role set's are computed once for both uses.
    fn shared_slot(params: &Params, slot: VarSlot<'a>) -> VarSlot<'a> {
        match slot {
            VarSlot::DerivedRole(_) if !params.reads_runtime => VarSlot::Derive(params.id),
            other => other,
        }
    }

    /// Evaluates, in dependency order, the variables of `slot` that `expr`
    /// reads and that are not evaluated yet, with the `runtime` in effect
    /// now. Variables no expression reads are never evaluated: CEL has no
    /// side effects, so only the cost differs from evaluating them all.
    fn ensure_variables(&mut self, params: &Params, slot: VarSlot<'a>, expr: &CompiledExpr) {
        if params.variables.is_empty() || (!reads_variables(expr) && !params.reads_runtime) {
            return;
        }
        let mut needed = std::mem::take(&mut self.needed);
        if params.reads_runtime {
            // Such variables keep the `runtime` of their first use; evaluating
            // them all then keeps their values independent of use order.
            needed.clear();
            needed.resize(params.variables.len(), true);
        } else {
            params.mark_needed(expr, &mut needed);
        }
        let position = match self.variables.iter().position(|v| v.slot == slot) {
            Some(position) => position,
            None => {
                self.variables.push(SlotVariables {
                    slot,
                    values: std::iter::repeat_with(|| None)
                        .take(params.variables.len())
                        .collect(),
                    evaluated: vec![false; params.variables.len()],
                    cel: None,
                });
                self.variables.len() - 1
            }
        };
        let pending = |state: &SlotVariables<'_>, i: usize| needed[i] && !state.evaluated[i];
        if (0..needed.len()).any(|i| pending(&self.variables[position], i)) {
            let mut values = std::mem::take(&mut self.variables[position].values);
            for (i, (_, expr)) in params.variables.iter().enumerate() {
                if !pending(&self.variables[position], i) {
                    continue;
                }
                self.variables[position].evaluated[i] = true;
                let so_far = SlotValues {
                    definitions: &params.variables,
                    values: &values,
                    cel: None,
                };
                let direct = expr.direct.as_ref().and_then(|direct| {
                    direct::evaluate(direct, &self.inputs(params, &so_far)).map(Scalar::to_val)
                });
                // A variable that fails to evaluate is left undefined, as in Cerbos.
                let result = direct.or_else(|| {
                    let map = reads_variables(expr).then(|| so_far.cel_map());
                    let activation = self.activation(params, map.as_deref());
                    evaluate(expr, &activation).and_then(|v| StaticVal::try_from(v).ok())
                });
                values[i] = result;
            }
            let state = &mut self.variables[position];
            state.values = values;
            state.cel = None;
        }
        self.needed = needed;
    }
}

/// cel-go's wording of an evaluation error, as Cerbos reports it in an
/// output entry's `error`.
fn evaluation_message(err: &cel::ExecutionError) -> String {
    use cel::ExecutionError as E;
    match err {
        E::NoSuchKey(key) => format!("no such key: {key}"),
        E::NoSuchOverload(_)
        | E::UnsupportedBinaryOperator(..)
        | E::ValuesNotComparable(..)
        | E::UnexpectedType { .. } => "no such overload".to_string(),
        E::DivisionByZero(_) => "division by zero".to_string(),
        E::RemainderByZero(_) => "modulus by zero".to_string(),
        E::Overflow(..) => "integer overflow".to_string(),
        E::UndeclaredReference(name) => format!("no such attribute: {name}"),
        E::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// cel-go's wording when a value has no `google.protobuf.Value` form.
fn conversion_message(err: &celx::err::CelxError) -> String {
    match err {
        celx::err::CelxError::Convert { type_name, reason } => {
            match reason.strip_prefix("map key of type `") {
                Some(rest) => format!(
                    "unsupported type conversion from '{}' to string",
                    rest.split('`').next().unwrap_or_default()
                ),
                None => format!("type conversion not supported for '{type_name}'"),
            }
        }
        other => other.to_string(),
    }
}

/// Whether any rule at one scope applies to `kind` for one of `roles`, for
/// any action: a resource policy rule naming one of the roles (directly, as
/// `*`, or as the parent of a derived role), or a role policy rule of one of
/// the roles that lists the kind.
fn kind_has_rows(
    unit: Option<&ResourceUnit>,
    role_units: &FastMap<Box<str>, Arc<RoleUnit>>,
    kind: &str,
    roles: &[&str],
) -> bool {
    let in_resource_policy = unit.is_some_and(|u| {
        u.rules.iter().any(|rule| {
            rule.roles.iter().any(|r| r.matches(roles))
                || rule
                    .derived_roles
                    .iter()
                    .any(|(d, _)| d.parent_roles.iter().any(|p| p.matches(roles)))
        })
    });
    in_resource_policy
        || roles.iter().any(|role| {
            role_units
                .get(*role)
                .is_some_and(|u| u.rules.iter().any(|r| r.resource.matches(kind)))
        })
}

fn evaluate(expr: &CompiledExpr, activation: &Activation<'_>) -> Option<Value> {
    let mut context = Context::with_env(celx::environment());
    context.set_variable_resolver(activation);
    expr.program.execute(&context).ok()
}
