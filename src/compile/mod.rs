//! Policies to rule index: imports resolved, CEL compiled once, lookups hashed.
//!
//! Every error in the set is collected and reported together; a set with any
//! error yields no index, so nothing is ever served half-loaded.

pub mod direct;
pub mod err;
mod expr;
pub mod glob;
mod index;
pub mod names;
mod schema;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub use err::{CompileError, CompileErrors, Location};
pub use expr::{CompiledExpr, Condition};
pub use index::{
    DerivedRole, EngineSettings, IndexStats, Params, PrincipalRule, PrincipalUnit, ResourceRule,
    ResourceUnit, RoleMatch, RoleRule, RoleUnit, RuleIndex, RuleOutput, StaticVal,
};
pub use schema::SchemaUse;

use crate::celx;
use crate::policy::model::{self, Constants, Effect, ScopePermissions, Variables};
use crate::policy::{Policy, PolicyKind};
use crate::store::StoreFile;
use expr::{order_variables, variables_read, ExprCache};
use glob::Pattern;
use index::{ByName, ParentRoles};
pub(crate) use index::{FastMap, FastSet};
use names::{
    default_rule_name, principal_policy_key, resource_policy_key, role_policy_key, sanitize,
};
use schema::SchemaRegistry;

/// Compiles a parsed policy set.
pub fn compile(
    policies: &[Policy],
    schemas: &[StoreFile],
    settings: EngineSettings,
) -> Result<RuleIndex, CompileErrors> {
    let mut builder = Builder::new(policies, schemas);
    let globals = builder.globals(&settings);
    builder.check_unique();
    let mut index = RuleIndex {
        settings,
        globals,
        resource_scopes: FastSet::default(),
        principal_scopes: FastSet::default(),
        scope_permissions: FastMap::default(),
        resources: FastMap::default(),
        principals: FastMap::default(),
        principal_version_scopes: FastMap::default(),
        roles: FastMap::default(),
        parent_roles: FastMap::default(),
        stats: Default::default(),
    };
    let mut role_parents: ByName<ByName<Vec<String>>> = ByName::default();
    // Units stay mutable until schemas are inherited along each scope chain.
    let mut resource_units: HashMap<(Box<str>, Box<str>), ByName<ResourceUnit>> = HashMap::new();
    for policy in builder.active.clone() {
        match &policy.kind {
            PolicyKind::Resource(p) => {
                if let Some(unit) = builder.resource_unit(policy, p) {
                    let version: Box<str> = p.version.as_str().into();
                    let kind: Box<str> = sanitize(&p.resource).into();
                    let scope: Box<str> = p.scope.as_str().into();
                    index.resource_scopes.insert(scope.clone());
                    index
                        .scope_permissions
                        .insert(scope.clone(), effective_permissions(p.scope_permissions));
                    resource_units
                        .entry((version, kind))
                        .or_default()
                        .insert(scope, unit);
                }
            }
            PolicyKind::Principal(p) => {
                if let Some(unit) = builder.principal_unit(policy, p) {
                    let scope: Box<str> = p.scope.as_str().into();
                    index.principal_scopes.insert(scope.clone());
                    index
                        .scope_permissions
                        .insert(scope.clone(), effective_permissions(p.scope_permissions));
                    index
                        .principal_version_scopes
                        .entry(p.version.as_str().into())
                        .or_default()
                        .insert(scope.clone());
                    index
                        .principals
                        .entry(p.principal.as_str().into())
                        .or_default()
                        .entry(p.version.as_str().into())
                        .or_default()
                        .insert(scope, Arc::new(unit));
                }
            }
            PolicyKind::Role(p) => {
                if let Some(unit) = builder.role_unit(policy, p) {
                    let scope: Box<str> = p.scope.as_str().into();
                    if !unit.rules.is_empty() {
                        index.resource_scopes.insert(scope.clone());
                    }
                    role_parents
                        .entry(scope.clone())
                        .or_default()
                        .insert(p.role.as_str().into(), p.parent_roles.clone());
                    index
                        .roles
                        .entry(role_version(p).into())
                        .or_default()
                        .entry(scope)
                        .or_default()
                        .insert(p.role.as_str().into(), Arc::new(unit));
                }
            }
            PolicyKind::DerivedRoles(_)
            | PolicyKind::ExportVariables(_)
            | PolicyKind::ExportConstants(_) => {}
        }
    }
    builder.check_ancestors();
    for ((version, kind), mut by_scope) in resource_units {
        inherit_schemas(&mut by_scope);
        index.resources.entry(version).or_default().insert(
            kind,
            by_scope
                .into_iter()
                .map(|(scope, unit)| (scope, Arc::new(unit)))
                .collect(),
        );
    }
    index.parent_roles = close_parent_roles(role_parents);
    index.stats = IndexStats {
        policies: builder.active.len(),
        rules: builder.rule_count,
        expressions: builder.exprs.len(),
        schemas: builder.schemas.compiled_count(),
    };
    if builder.errors.is_empty() {
        Ok(index)
    } else {
        Err(CompileErrors(builder.errors))
    }
}

fn effective_permissions(p: Option<ScopePermissions>) -> ScopePermissions {
    match p {
        None | Some(ScopePermissions::Unspecified) => ScopePermissions::OverrideParent,
        Some(p) => p,
    }
}

/// A scoped policy without schemas validates with those of its nearest
/// ancestor that has them, as Cerbos compiles a scope chain.
fn inherit_schemas(by_scope: &mut ByName<ResourceUnit>) {
    let inherited: Vec<(Box<str>, Option<SchemaUse>, Option<SchemaUse>)> = by_scope
        .iter()
        .filter(|(_, unit)| unit.principal_schema.is_none() && unit.resource_schema.is_none())
        .filter_map(|(scope, _)| {
            names::scope_parents(scope)
                .filter_map(|parent| by_scope.get(parent))
                .find(|u| u.principal_schema.is_some() || u.resource_schema.is_some())
                .map(|u| {
                    (
                        scope.clone(),
                        u.principal_schema.clone(),
                        u.resource_schema.clone(),
                    )
                })
        })
        .collect();
    for (scope, principal, resource) in inherited {
        if let Some(unit) = by_scope.get_mut(&scope) {
            unit.principal_schema = principal;
            unit.resource_schema = resource;
        }
    }
}

fn role_version(p: &model::RolePolicy) -> &str {
    p.version.as_deref().unwrap_or("default")
}

/// Expands each role's parents to all its ancestors within the scope.
fn close_parent_roles(direct: ByName<ByName<Vec<String>>>) -> ParentRoles {
    direct
        .into_iter()
        .map(|(scope, roles)| {
            let closed = roles
                .keys()
                .map(|role| {
                    let mut seen: Vec<Arc<str>> = Vec::new();
                    let mut stack: Vec<&str> = roles
                        .get(role)
                        .map(|p| p.iter().map(String::as_str).collect())
                        .unwrap_or_default();
                    stack.reverse();
                    while let Some(next) = stack.pop() {
                        if &**role == next || seen.iter().any(|s| &**s == next) {
                            continue;
                        }
                        seen.push(Arc::from(next));
                        if let Some(more) = roles.get(next) {
                            stack.extend(more.iter().rev().map(String::as_str));
                        }
                    }
                    (role.clone(), seen)
                })
                .collect();
            (scope, closed)
        })
        .collect()
}

type ExportedVariables = Vec<(String, Arc<CompiledExpr>)>;

struct Builder<'p> {
    active: Vec<&'p Policy>,
    errors: Vec<CompileError>,
    exprs: ExprCache,
    /// Compiled patterns by text, so a pattern repeated across policies is
    /// built once (as with expressions).
    patterns: HashMap<String, Pattern>,
    schemas: SchemaRegistry,
    next_slot: usize,
    next_params: usize,
    rule_count: usize,
    derived_sets: HashMap<&'p str, (&'p Policy, &'p model::DerivedRoles)>,
    compiled_derived_sets: HashMap<String, Option<Vec<Arc<DerivedRole>>>>,
    exported_variables: HashMap<&'p str, (&'p Policy, &'p model::ExportVariables)>,
    compiled_exported_variables: HashMap<String, Option<ExportedVariables>>,
    exported_constants: HashMap<&'p str, (&'p Policy, &'p model::ExportConstants)>,
}

/// Where a variable or constant came from, for duplicate reports.
struct Defined<T> {
    value: T,
    source: String,
}

impl<'p> Builder<'p> {
    fn new(policies: &'p [Policy], schema_files: &[StoreFile]) -> Builder<'p> {
        let mut active: Vec<&Policy> = policies.iter().filter(|p| !p.disabled).collect();
        active.sort_by(|a, b| a.file().cmp(b.file()).then(a.offset.cmp(&b.offset)));
        let mut builder = Builder {
            active,
            errors: Vec::new(),
            exprs: ExprCache::default(),
            patterns: HashMap::new(),
            schemas: SchemaRegistry::new(schema_files),
            next_slot: 0,
            next_params: 0,
            rule_count: 0,
            derived_sets: HashMap::new(),
            compiled_derived_sets: HashMap::new(),
            exported_variables: HashMap::new(),
            compiled_exported_variables: HashMap::new(),
            exported_constants: HashMap::new(),
        };
        for policy in builder.active.clone() {
            match &policy.kind {
                PolicyKind::DerivedRoles(d) => {
                    builder.register(policy, &d.name, "derived roles", |b| &mut b.derived_sets, d)
                }
                PolicyKind::ExportVariables(v) => builder.register(
                    policy,
                    &v.name,
                    "exported variables",
                    |b| &mut b.exported_variables,
                    v,
                ),
                PolicyKind::ExportConstants(c) => builder.register(
                    policy,
                    &c.name,
                    "exported constants",
                    |b| &mut b.exported_constants,
                    c,
                ),
                _ => {}
            }
        }
        builder
    }

    fn register<T>(
        &mut self,
        policy: &'p Policy,
        name: &'p str,
        what: &str,
        map: impl Fn(&mut Self) -> &mut HashMap<&'p str, (&'p Policy, &'p T)>,
        value: &'p T,
    ) {
        let existing = map(self).get(name).map(|(p, _)| p.file().to_string());
        match existing {
            Some(other) => self.errors.push(CompileError::Duplicate {
                at: at(policy, name),
                what: format!("{what} {name:?}"),
                other,
            }),
            None => {
                map(self).insert(name, (policy, value));
            }
        }
    }

    fn globals(&mut self, settings: &EngineSettings) -> StaticVal {
        let object = serde_json::Value::Object(
            settings
                .globals
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        celx::json_to_static_val(&object)
    }

    /// Rejects two resource, principal or role policies with the same identity.
    fn check_unique(&mut self) {
        let mut seen: HashMap<String, &Policy> = HashMap::new();
        for policy in self.active.clone() {
            let identity = match &policy.kind {
                PolicyKind::Resource(p) => resource_policy_key(&p.resource, &p.version, &p.scope),
                PolicyKind::Principal(p) => {
                    principal_policy_key(&p.principal, &p.version, &p.scope)
                }
                PolicyKind::Role(p) => role_policy_key(&p.role, role_version(p), &p.scope),
                _ => continue,
            };
            if let Some(first) = seen.get(&identity) {
                self.errors.push(CompileError::Duplicate {
                    at: at(policy, ""),
                    what: format!("policy {identity}"),
                    other: first.file().to_string(),
                });
            } else {
                seen.insert(identity, policy);
            }
        }
    }

    /// Scoped resource and principal policies need a policy in every ancestor scope.
    fn check_ancestors(&mut self) {
        let mut resource: HashSet<(String, String, &str)> = HashSet::new();
        let mut principal: HashSet<(String, String, &str)> = HashSet::new();
        for policy in &self.active {
            match &policy.kind {
                PolicyKind::Resource(p) => {
                    resource.insert((
                        sanitize(&p.resource).into_owned(),
                        p.version.clone(),
                        &p.scope,
                    ));
                }
                PolicyKind::Principal(p) => {
                    principal.insert((p.principal.clone(), p.version.clone(), &p.scope));
                }
                _ => {}
            }
        }
        let mut missing = Vec::new();
        for policy in &self.active {
            let (set, name, version, scope) = match &policy.kind {
                PolicyKind::Resource(p) => (
                    &resource,
                    sanitize(&p.resource).into_owned(),
                    &p.version,
                    &p.scope,
                ),
                PolicyKind::Principal(p) => (&principal, p.principal.clone(), &p.version, &p.scope),
                _ => continue,
            };
            for parent in names::scope_parents(scope) {
                if !set.contains(&(name.clone(), version.clone(), parent)) {
                    missing.push(CompileError::MissingAncestor {
                        at: at(policy, "scope"),
                        what: policy.describe(),
                        missing: parent.to_string(),
                    });
                }
            }
        }
        self.errors.extend(missing);
    }

    fn slot(&mut self) -> usize {
        self.next_slot += 1;
        self.next_slot - 1
    }

    fn cel_error(&mut self, policy: &Policy, expr: &str, message: String) {
        self.errors.push(CompileError::Cel {
            at: at(policy, expr),
            expr: expr.trim().to_string(),
            message,
        });
    }

    fn expr(&mut self, policy: &Policy, source: &str) -> Option<Arc<CompiledExpr>> {
        match self.exprs.compile(source) {
            Ok(e) => Some(e),
            Err(message) => {
                self.cel_error(policy, source, message);
                None
            }
        }
    }

    fn pattern(&mut self, policy: &Policy, text: &str) -> Option<Pattern> {
        if let Some(known) = self.patterns.get(text) {
            return Some(known.clone());
        }
        match Pattern::new(text) {
            Ok(p) => {
                self.patterns.insert(text.to_string(), p.clone());
                Some(p)
            }
            Err(message) => {
                self.errors.push(CompileError::Pattern {
                    at: at(policy, text),
                    message,
                });
                None
            }
        }
    }

    fn patterns(&mut self, policy: &Policy, texts: &[String]) -> Vec<Pattern> {
        texts
            .iter()
            .filter_map(|t| self.pattern(policy, t))
            .collect()
    }

    /// Checks that an expression only reads defined variables and constants.
    fn check_refs(&mut self, policy: &Policy, expr: &CompiledExpr, scope: &Scope) {
        for (kind, used, defined) in [
            ("variable", &expr.variables, &scope.variables),
            ("constant", &expr.constants, &scope.constants),
        ] {
            for name in used {
                if !defined.contains(name) {
                    self.errors.push(CompileError::Undefined {
                        at: at(policy, &expr.source),
                        kind,
                        name: name.clone(),
                        expr: expr.source.to_string(),
                    });
                }
            }
        }
    }

    fn condition(
        &mut self,
        policy: &Policy,
        condition: Option<&model::Condition>,
        scope: &Scope,
    ) -> Option<Option<Condition>> {
        let Some(node) = condition.and_then(|c| c.match_.as_ref()) else {
            return Some(None);
        };
        match self.exprs.condition(node) {
            Ok(compiled) => {
                let mut exprs = Vec::new();
                compiled.for_each_expr(&mut |e| exprs.push(Arc::clone(e)));
                for e in exprs {
                    self.check_refs(policy, &e, scope);
                }
                Some(Some(compiled))
            }
            Err((expr, message)) => {
                self.cel_error(policy, &expr, message);
                None
            }
        }
    }

    fn output(
        &mut self,
        policy: &Policy,
        output: Option<&model::Output>,
        scope: &Scope,
    ) -> Option<Option<RuleOutput>> {
        let Some(output) = output else {
            return Some(None);
        };
        let (activated, not_met) = match &output.when {
            Some(when) => (
                when.rule_activated.as_ref(),
                when.condition_not_met.as_ref(),
            ),
            None => (output.expr.as_ref(), None),
        };
        let compile = |b: &mut Self, source: Option<&String>| match source {
            None => Some(None),
            Some(s) => {
                let e = b.expr(policy, s)?;
                b.check_refs(policy, &e, scope);
                Some(Some(e))
            }
        };
        let rule_activated = compile(self, activated)?;
        let condition_not_met = compile(self, not_met)?;
        Some(Some(RuleOutput {
            rule_activated,
            condition_not_met,
        }))
    }

    fn exported_variables(&mut self, name: &str) -> Option<ExportedVariables> {
        if let Some(done) = self.compiled_exported_variables.get(name) {
            return done.clone();
        }
        let (policy, set) = *self.exported_variables.get(name)?;
        let mut compiled = Some(Vec::new());
        for (var, source) in &set.definitions {
            match self.expr(policy, source) {
                Some(e) => {
                    if let Some(c) = compiled.as_mut() {
                        c.push((var.clone(), e));
                    }
                }
                None => compiled = None,
            }
        }
        self.compiled_exported_variables
            .insert(name.to_string(), compiled.clone());
        compiled
    }

    /// Builds the variables and constants of a policy; `None` when they have errors.
    fn params(
        &mut self,
        policy: &Policy,
        variables: Option<&Variables>,
        constants: Option<&Constants>,
        top_level: &BTreeMap<String, String>,
    ) -> Option<(Arc<Params>, Scope)> {
        let errors_before = self.errors.len();
        let mut consts: BTreeMap<String, Defined<serde_json::Value>> = BTreeMap::new();
        for import in constants.map(|c| c.import.as_slice()).unwrap_or_default() {
            match self.exported_constants.get(import.as_str()) {
                Some((_, set)) => {
                    for (name, value) in &set.definitions {
                        self.define(
                            policy,
                            "constant",
                            &mut consts,
                            name,
                            value.clone(),
                            format!("exported constants {import}"),
                        );
                    }
                }
                None => self.errors.push(CompileError::UnknownImport {
                    at: at(policy, import),
                    kind: "constants",
                    name: import.clone(),
                }),
            }
        }
        for (name, value) in constants.map(|c| &c.local).into_iter().flatten() {
            self.define(
                policy,
                "constant",
                &mut consts,
                name,
                value.clone(),
                "local constants".to_string(),
            );
        }

        let mut vars: BTreeMap<String, Defined<Arc<CompiledExpr>>> = BTreeMap::new();
        for import in variables.map(|v| v.import.as_slice()).unwrap_or_default() {
            if !self.exported_variables.contains_key(import.as_str()) {
                self.errors.push(CompileError::UnknownImport {
                    at: at(policy, import),
                    kind: "variables",
                    name: import.clone(),
                });
                continue;
            }
            for (name, expr) in self.exported_variables(import).unwrap_or_default() {
                self.define(
                    policy,
                    "variable",
                    &mut vars,
                    &name,
                    expr,
                    format!("exported variables {import}"),
                );
            }
        }
        let local = variables.map(|v| &v.local).into_iter().flatten();
        for (origin, (name, source)) in local
            .map(|kv| ("local variables", kv))
            .chain(top_level.iter().map(|kv| ("top-level variables", kv)))
        {
            if let Some(e) = self.expr(policy, source) {
                self.define(policy, "variable", &mut vars, name, e, origin.to_string());
            }
        }

        let scope = Scope {
            variables: vars.keys().cloned().collect(),
            constants: consts.keys().cloned().collect(),
        };
        let dependencies: Vec<(String, BTreeSet<String>)> = vars
            .iter()
            .map(|(name, d)| (name.clone(), d.value.variables.clone()))
            .collect();
        let exprs: Vec<Arc<CompiledExpr>> = vars.values().map(|d| Arc::clone(&d.value)).collect();
        for e in &exprs {
            self.check_refs(policy, e, &scope);
        }
        let order = match order_variables(&dependencies) {
            Ok(order) => order,
            Err(cycle) => {
                self.errors.push(CompileError::VariableCycle {
                    at: at(policy, cycle.first().map_or("variables", String::as_str)),
                    cycle: cycle.join(" -> "),
                });
                Vec::new()
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        let constants_json =
            serde_json::Value::Object(consts.into_iter().map(|(k, d)| (k, d.value)).collect());
        let variables: Vec<(Arc<str>, Arc<CompiledExpr>)> = order
            .into_iter()
            .filter_map(|name| {
                let expr = Arc::clone(&vars.get(&name)?.value);
                Some((Arc::from(name.as_str()), expr))
            })
            .collect();
        let reads = variables
            .iter()
            .enumerate()
            .map(|(i, (_, expr))| variables_read(&variables[..i], expr).collect())
            .collect();
        self.next_params += 1;
        Some((
            Arc::new(Params {
                id: self.next_params - 1,
                constants: celx::json_to_static_val(&constants_json),
                constant_values: constants_json
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str().into(), celx::json_to_static_val(value)))
                    .collect(),
                reads_runtime: variables.iter().any(|(_, e)| e.reads_runtime),
                variables,
                reads,
            }),
            scope,
        ))
    }

    fn define<T>(
        &mut self,
        policy: &Policy,
        kind: &'static str,
        map: &mut BTreeMap<String, Defined<T>>,
        name: &str,
        value: T,
        source: String,
    ) {
        if let Some(first) = map.get(name) {
            self.errors.push(CompileError::Redefined {
                at: at(policy, name),
                kind,
                name: name.to_string(),
                sources: format!("{} and {source}", first.source),
            });
        } else {
            map.insert(name.to_string(), Defined { value, source });
        }
    }

    fn derived_set(&mut self, name: &str) -> Option<Vec<Arc<DerivedRole>>> {
        if let Some(done) = self.compiled_derived_sets.get(name) {
            return done.clone();
        }
        let (policy, set) = *self.derived_sets.get(name)?;
        let compiled = self.compile_derived_set(policy, set);
        self.compiled_derived_sets
            .insert(name.to_string(), compiled.clone());
        compiled
    }

    fn compile_derived_set(
        &mut self,
        policy: &Policy,
        set: &model::DerivedRoles,
    ) -> Option<Vec<Arc<DerivedRole>>> {
        let (params, scope) = self.params(
            policy,
            set.variables.as_ref(),
            set.constants.as_ref(),
            &policy.top_level_variables,
        )?;
        let mut roles = Vec::new();
        let mut ok = true;
        for def in &set.definitions {
            match self.condition(policy, def.condition.as_ref(), &scope) {
                Some(condition) => roles.push(Arc::new(DerivedRole {
                    name: Arc::from(def.name.as_str()),
                    parent_roles: def.parent_roles.iter().map(|r| RoleMatch::new(r)).collect(),
                    reads_runtime: params.reads_runtime
                        || condition.as_ref().is_some_and(Condition::reads_runtime),
                    condition,
                    params: Arc::clone(&params),
                })),
                None => ok = false,
            }
        }
        ok.then_some(roles)
    }

    fn resource_unit(
        &mut self,
        policy: &Policy,
        p: &model::ResourcePolicy,
    ) -> Option<ResourceUnit> {
        let key: Arc<str> = Arc::from(resource_policy_key(&p.resource, &p.version, &p.scope));
        let params = self.params(
            policy,
            p.variables.as_ref(),
            p.constants.as_ref(),
            &policy.top_level_variables,
        );

        // Imported derived roles by name, remembering which set each came from.
        let mut imported: BTreeMap<Arc<str>, Vec<(String, Arc<DerivedRole>)>> = BTreeMap::new();
        // Cerbos reports as effective only the derived roles the rules use.
        let mut referenced: Vec<Arc<DerivedRole>> = Vec::new();
        for set_name in &p.import_derived_roles {
            if !self.derived_sets.contains_key(set_name.as_str()) {
                self.errors.push(CompileError::UnknownImport {
                    at: at(policy, set_name),
                    kind: "derived roles",
                    name: set_name.clone(),
                });
                continue;
            }
            for role in self.derived_set(set_name).unwrap_or_default() {
                imported
                    .entry(Arc::clone(&role.name))
                    .or_default()
                    .push((set_name.clone(), role));
            }
        }

        let (params, scope) = params?;
        let consent =
            p.scope_permissions == Some(ScopePermissions::RequireParentalConsentForAllows);
        let mut rules = Vec::with_capacity(p.rules.len());
        let mut ok = true;
        for (i, rule) in p.rules.iter().enumerate() {
            let name = rule.name.clone().unwrap_or_else(|| default_rule_name(i));
            let mut derived_roles = Vec::new();
            for role_name in &rule.derived_roles {
                match imported.get(role_name.as_str()).map(Vec::as_slice) {
                    Some([(_, role)]) => {
                        let slot = self.slot();
                        derived_roles.push((Arc::clone(role), slot));
                        if !referenced.iter().any(|r| Arc::ptr_eq(r, role)) {
                            referenced.push(Arc::clone(role));
                        }
                    }
                    Some(several) if several.len() > 1 => {
                        ok = false;
                        self.errors.push(CompileError::AmbiguousDerivedRole {
                            at: at(policy, role_name),
                            name: role_name.clone(),
                            sets: several
                                .iter()
                                .map(|(s, _)| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                    _ => {
                        ok = false;
                        self.errors.push(CompileError::UnknownDerivedRole {
                            at: at(policy, role_name),
                            name: role_name.clone(),
                            imports: p.import_derived_roles.join(", "),
                        });
                    }
                }
            }
            let actions = self.patterns(policy, &rule.actions);
            let condition = self.condition(policy, rule.condition.as_ref(), &scope);
            let output = self.output(policy, rule.output.as_ref(), &scope);
            let (Some(condition), Some(output)) = (condition, output) else {
                ok = false;
                continue;
            };
            let (effect, condition) =
                parental_consent(consent, rule.effect.unwrap_or(Effect::Deny), condition);
            let slot = self.slot();
            rules.push(ResourceRule {
                src: Arc::from(format!("{key}#{name}")),
                actions,
                roles: rule.roles.iter().map(|r| RoleMatch::new(r)).collect(),
                derived_roles,
                condition,
                effect,
                output,
                slot,
            });
        }
        self.rule_count += rules.len();

        let schema_use =
            |b: &mut Self, s: Option<&model::SchemaRef>| -> Option<Option<SchemaUse>> {
                let Some(s) = s else { return Some(None) };
                match b.schemas.validator(&s.reference) {
                    Ok(validator) => Some(Some(SchemaUse {
                        reference: Arc::from(s.reference.as_str()),
                        validator,
                        document: b.schemas.document(&s.reference).unwrap_or_default(),
                        ignore_when: s
                            .ignore_when
                            .as_ref()
                            .map(|i| b.patterns(policy, &i.actions))
                            .unwrap_or_default(),
                    })),
                    Err(message) => {
                        b.errors.push(CompileError::Schema {
                            at: at(policy, &s.reference),
                            reference: s.reference.clone(),
                            message,
                        });
                        None
                    }
                }
            };
        let schemas = p.schemas.clone().unwrap_or_default();
        let principal_schema = schema_use(self, schemas.principal_schema.as_ref());
        let resource_schema = schema_use(self, schemas.resource_schema.as_ref());
        let (Some(principal_schema), Some(resource_schema)) = (principal_schema, resource_schema)
        else {
            return None;
        };
        ok.then(|| ResourceUnit {
            key,
            params,
            rules,
            derived_roles: referenced,
            principal_schema,
            resource_schema,
        })
    }

    fn principal_unit(
        &mut self,
        policy: &Policy,
        p: &model::PrincipalPolicy,
    ) -> Option<PrincipalUnit> {
        let key = principal_policy_key(&p.principal, &p.version, &p.scope);
        let (params, scope) = self.params(
            policy,
            p.variables.as_ref(),
            p.constants.as_ref(),
            &policy.top_level_variables,
        )?;
        let consent =
            p.scope_permissions == Some(ScopePermissions::RequireParentalConsentForAllows);
        let mut rules = Vec::new();
        let mut ok = true;
        for rule in &p.rules {
            // Cerbos indexes principal rules under the sanitized resource
            // name, as it does resource policies, so `a:b` also matches a
            // request for `a_b`; a glob is never sanitized.
            let resource = self.pattern(policy, &sanitize(&rule.resource));
            for (i, action) in rule.actions.iter().enumerate() {
                let name = action
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}_{}", rule.resource, default_rule_name(i)));
                let pattern = self.pattern(policy, &action.action);
                let condition = self.condition(policy, action.condition.as_ref(), &scope);
                let output = self.output(policy, action.output.as_ref(), &scope);
                let (Some(resource), Some(pattern), Some(condition), Some(output)) =
                    (resource.clone(), pattern, condition, output)
                else {
                    ok = false;
                    continue;
                };
                let (effect, condition) =
                    parental_consent(consent, action.effect.unwrap_or(Effect::Deny), condition);
                let slot = self.slot();
                rules.push(PrincipalRule {
                    src: Arc::from(format!("{key}#{name}")),
                    resource,
                    action: pattern,
                    condition,
                    effect,
                    output,
                    slot,
                });
            }
        }
        self.rule_count += rules.len();
        ok.then_some(PrincipalUnit { params, rules })
    }

    fn role_unit(&mut self, policy: &Policy, p: &model::RolePolicy) -> Option<RoleUnit> {
        let key = role_policy_key(&p.role, role_version(p), &p.scope);
        let (params, scope) = self.params(
            policy,
            p.variables.as_ref(),
            p.constants.as_ref(),
            &policy.top_level_variables,
        )?;
        let mut rules = Vec::new();
        let mut ok = true;
        for rule in &p.rules {
            // Cerbos gives unnamed role policy rules no name in outputs:
            // their `src` is `role.<role>.v<version>#`.
            let name = rule.name.clone().unwrap_or_default();
            let resource = self.pattern(policy, &rule.resource);
            let actions = self.patterns(policy, &rule.allow_actions);
            let condition = self.condition(policy, rule.condition.as_ref(), &scope);
            let output = self.output(policy, rule.output.as_ref(), &scope);
            let (Some(resource), Some(condition), Some(output)) = (resource, condition, output)
            else {
                ok = false;
                continue;
            };
            let slot = self.slot();
            rules.push(RoleRule {
                src: Arc::from(format!("{key}#{name}")),
                resource,
                actions,
                condition,
                output,
                slot,
            });
        }
        self.rule_count += rules.len();
        ok.then(|| RoleUnit {
            key: Arc::from(key),
            params,
            rules,
        })
    }
}

/// Under REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS, a conditional ALLOW becomes a
/// DENY when its condition does not hold, as Cerbos compiles it: the ALLOW
/// itself must then come from a parent scope.
fn parental_consent(
    consent: bool,
    effect: Effect,
    condition: Option<Condition>,
) -> (Effect, Option<Condition>) {
    match (consent, effect, condition) {
        (true, Effect::Allow, Some(c)) => (Effect::Deny, Some(Condition::None(vec![c]))),
        (_, effect, condition) => (effect, condition),
    }
}

/// The names visible to a policy's expressions.
struct Scope {
    variables: BTreeSet<String>,
    constants: BTreeSet<String>,
}

fn at(policy: &Policy, needle: &str) -> Location {
    Location::from(&policy.error_at(needle, String::new()))
}
