//! The rule index: compiled policies, looked up by hash.
//!
//! Resource policies are found by (version, kind, scope), principal policies
//! by (principal id, version, scope) and role policies by (version, scope,
//! role): each lookup is a few hash probes whatever the size of the set.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::common::value::Val;

use super::expr::{variables_read, CompiledExpr, Condition};
use super::glob::Pattern;
use super::schema::SchemaUse;
use crate::config::SchemaEnforcement;
use crate::policy::model::{Effect, ScopePermissions};

/// Engine settings that travel with the index.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Version used when a request names none.
    pub default_policy_version: String,
    /// Fall back to the nearest ancestor scope that has policies.
    pub lenient_scope_search: bool,
    /// What to do when attributes fail their schema.
    pub schema_enforcement: SchemaEnforcement,
    /// `G` / `globals` in conditions.
    pub globals: BTreeMap<String, serde_json::Value>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            default_policy_version: "default".to_string(),
            lenient_scope_search: false,
            schema_enforcement: SchemaEnforcement::None,
            globals: BTreeMap::new(),
        }
    }
}

impl From<&crate::config::Config> for EngineSettings {
    fn from(config: &crate::config::Config) -> Self {
        EngineSettings {
            default_policy_version: config.engine.default_policy_version.clone(),
            lenient_scope_search: config.engine.lenient_scope_search,
            schema_enforcement: config.schema.enforcement,
            globals: config.engine.globals.clone(),
        }
    }
}

/// A CEL value computed once at load time and shared by every check.
pub type StaticVal = Box<dyn Val + 'static>;

/// Variables and constants of one policy (or derived roles set).
#[derive(Debug)]
pub struct Params {
    /// Identifies the set in the per-check variable cache.
    pub id: usize,
    /// `C` / `constants`, as `cel` reads it.
    pub constants: StaticVal,
    /// The same constants by name, for the engine's direct form: a lookup
    /// in `constants` hashes the name with SipHash.
    pub constant_values: FastMap<Box<str>, StaticVal>,
    /// `V` / `variables`, in an order where each comes after those it reads.
    pub variables: Vec<(Arc<str>, Arc<CompiledExpr>)>,
    /// For each variable, by position in `variables`, the positions of the
    /// variables it reads (all earlier ones when it reads `V` as a whole).
    pub reads: Vec<Vec<usize>>,
    /// Whether some variable reads `runtime`, so that its value depends on
    /// the scope being evaluated.
    pub reads_runtime: bool,
}

impl Params {
    /// Marks in `needed` (one flag per variable, in evaluation order) the
    /// variables `expr` reads, with those they read in turn.
    pub fn mark_needed(&self, expr: &CompiledExpr, needed: &mut Vec<bool>) {
        needed.clear();
        needed.resize(self.variables.len(), false);
        for i in variables_read(&self.variables, expr) {
            needed[i] = true;
        }
        // A variable only reads earlier ones, so one pass from the end
        // closes the set.
        for i in (0..needed.len()).rev() {
            if needed[i] {
                for &j in self.reads.get(i).into_iter().flatten() {
                    needed[j] = true;
                }
            }
        }
    }
}

/// Which principal roles a rule row applies to.
#[derive(Debug, Clone)]
pub enum RoleMatch {
    /// `*`
    Any,
    /// A role name.
    Named(Arc<str>),
}

impl RoleMatch {
    /// Builds from a policy's role text.
    pub fn new(role: &str) -> RoleMatch {
        if role == "*" {
            RoleMatch::Any
        } else {
            RoleMatch::Named(Arc::from(role))
        }
    }

    /// Whether a row with this role is found when querying with `roles`.
    pub fn matches(&self, roles: &[&str]) -> bool {
        match self {
            RoleMatch::Any => !roles.is_empty(),
            RoleMatch::Named(name) => roles.contains(&&**name),
        }
    }
}

/// Output expressions of a rule.
#[derive(Debug, Clone, Default)]
pub struct RuleOutput {
    /// Emitted when the rule's condition holds.
    pub rule_activated: Option<Arc<CompiledExpr>>,
    /// Emitted when the rule matched but its condition did not hold.
    pub condition_not_met: Option<Arc<CompiledExpr>>,
}

/// One derived role definition, shared by every policy importing its set.
#[derive(Debug)]
pub struct DerivedRole {
    /// Role name.
    pub name: Arc<str>,
    /// Roles it derives from.
    pub parent_roles: Vec<RoleMatch>,
    /// Its condition.
    pub condition: Option<Condition>,
    /// Its set's variables and constants.
    pub params: Arc<Params>,
    /// Whether its condition reads `runtime`, directly or through its set's
    /// variables: if not, it has one value throughout a check.
    pub reads_runtime: bool,
}

/// A rule of a resource policy.
#[derive(Debug)]
pub struct ResourceRule {
    /// `<policy key>#<rule name>`, the `src` of its outputs.
    pub src: Arc<str>,
    /// Action patterns.
    pub actions: Vec<Pattern>,
    /// Plain roles.
    pub roles: Vec<RoleMatch>,
    /// Derived roles, with their cache slots (one per role).
    pub derived_roles: Vec<(Arc<DerivedRole>, usize)>,
    /// Condition, after the parental-consent rewrite.
    pub condition: Option<Condition>,
    /// Effect, after the parental-consent rewrite.
    pub effect: Effect,
    /// Outputs.
    pub output: Option<RuleOutput>,
    /// Condition cache slot of the plain-role rows.
    pub slot: usize,
}

/// A resource policy at one scope.
#[derive(Debug)]
pub struct ResourceUnit {
    /// `resource.<kind>.v<version>[/<scope>]`.
    pub key: Arc<str>,
    /// Variables and constants.
    pub params: Arc<Params>,
    /// Rules, in file order.
    pub rules: Vec<ResourceRule>,
    /// The derived roles its rules use, for `effectiveDerivedRoles`.
    pub derived_roles: Vec<Arc<DerivedRole>>,
    /// Principal attribute schema.
    pub principal_schema: Option<SchemaUse>,
    /// Resource attribute schema.
    pub resource_schema: Option<SchemaUse>,
}

/// One action rule of a principal policy.
#[derive(Debug)]
pub struct PrincipalRule {
    /// `<policy key>#<rule name>`.
    pub src: Arc<str>,
    /// Resource kind pattern.
    pub resource: Pattern,
    /// Action pattern.
    pub action: Pattern,
    /// Condition, after the parental-consent rewrite.
    pub condition: Option<Condition>,
    /// Effect, after the parental-consent rewrite.
    pub effect: Effect,
    /// Outputs.
    pub output: Option<RuleOutput>,
    /// Condition cache slot.
    pub slot: usize,
}

/// A principal policy at one scope.
#[derive(Debug)]
pub struct PrincipalUnit {
    /// Variables and constants.
    pub params: Arc<Params>,
    /// Rules in file order.
    pub rules: Vec<PrincipalRule>,
}

/// A rule of a role policy: the actions the role keeps on some resources.
#[derive(Debug)]
pub struct RoleRule {
    /// `<policy key>#<rule name>`.
    pub src: Arc<str>,
    /// Resource kind pattern.
    pub resource: Pattern,
    /// Allowed action patterns.
    pub actions: Vec<Pattern>,
    /// Condition under which the actions stay allowed.
    pub condition: Option<Condition>,
    /// Outputs.
    pub output: Option<RuleOutput>,
    /// Condition cache slot.
    pub slot: usize,
}

/// A role policy at one scope and version.
#[derive(Debug)]
pub struct RoleUnit {
    /// `role.<role>.v<version>[/<scope>]`.
    pub key: Arc<str>,
    /// Variables and constants.
    pub params: Arc<Params>,
    /// Rules in file order.
    pub rules: Vec<RoleRule>,
}

/// Counts for the cold-start log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Policies compiled (disabled ones excluded).
    pub policies: usize,
    /// Rules across them.
    pub rules: usize,
    /// Distinct CEL expressions compiled.
    pub expressions: usize,
    /// Schemas compiled.
    pub schemas: usize,
}

/// The index's maps. Every check probes several with names from the request,
/// so they hash with foldhash rather than SipHash: about a third of the cost
/// per probe. Their keys come from the policy set, not from requests.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set of names, hashed as [`FastMap`] is.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A map keyed by a name: a version, kind, scope, principal id or role.
pub(crate) type ByName<T> = FastMap<Box<str>, T>;
type ByScope<T> = ByName<T>;
/// kind -> scope -> resource policy
pub(crate) type ResourcesByKind = ByName<ByScope<Arc<ResourceUnit>>>;
/// version -> scope -> principal policy
pub(crate) type PrincipalsByVersion = ByName<ByScope<Arc<PrincipalUnit>>>;
/// scope -> role -> role policy
pub(crate) type RolesByScope = ByScope<ByName<Arc<RoleUnit>>>;
/// scope -> role -> its ancestor roles
pub(crate) type ParentRoles = ByScope<ByName<Vec<Arc<str>>>>;

/// The compiled policy set.
pub struct RuleIndex {
    pub(crate) settings: EngineSettings,
    pub(crate) globals: StaticVal,
    pub(crate) resource_scopes: FastSet<Box<str>>,
    pub(crate) principal_scopes: FastSet<Box<str>>,
    pub(crate) scope_permissions: FastMap<Box<str>, ScopePermissions>,
    /// version -> sanitized kind -> scope -> policy
    pub(crate) resources: ByName<ResourcesByKind>,
    /// principal id -> version -> scope -> policy
    pub(crate) principals: ByName<PrincipalsByVersion>,
    /// version -> scopes holding any principal policy
    pub(crate) principal_version_scopes: FastMap<Box<str>, FastSet<Box<str>>>,
    /// version -> scope -> role -> policy
    pub(crate) roles: ByName<RolesByScope>,
    /// scope -> role -> every ancestor role (role policies' parentRoles, transitively)
    pub(crate) parent_roles: ParentRoles,
    pub(crate) stats: IndexStats,
}

impl std::fmt::Debug for RuleIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleIndex")
            .field("stats", &self.stats)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RuleIndex {
    /// Counts of what was compiled.
    pub fn stats(&self) -> IndexStats {
        self.stats
    }

    /// The engine settings compiled in.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The resource policy for (version, sanitized kind, scope).
    pub(crate) fn resource_unit(
        &self,
        version: &str,
        kind: &str,
        scope: &str,
    ) -> Option<&Arc<ResourceUnit>> {
        self.resources.get(version)?.get(kind)?.get(scope)
    }

    /// The principal policy for (id, version, scope).
    pub(crate) fn principal_unit(
        &self,
        id: &str,
        version: &str,
        scope: &str,
    ) -> Option<&Arc<PrincipalUnit>> {
        self.principals.get(id)?.get(version)?.get(scope)
    }

    /// Role policies at (version, scope), by role.
    pub(crate) fn role_units(
        &self,
        version: &str,
        scope: &str,
    ) -> Option<&FastMap<Box<str>, Arc<RoleUnit>>> {
        self.roles.get(version)?.get(scope)
    }

    /// Whether any principal policy exists at `version` in one of `scopes`.
    pub(crate) fn scoped_principal_exists(&self, version: &str, scopes: &[&str]) -> bool {
        self.principal_version_scopes
            .get(version)
            .is_some_and(|set| scopes.iter().any(|s| set.contains(*s)))
    }

    /// The scope's permission mode (Cerbos keeps one per scope).
    pub(crate) fn scope_permissions(&self, scope: &str) -> Option<ScopePermissions> {
        self.scope_permissions.get(scope).copied()
    }

    /// `role` followed by its ancestors from role policies in `scope`.
    pub(crate) fn with_parent_roles<'a>(
        &'a self,
        scope: &str,
        role: &'a str,
        out: &mut Vec<&'a str>,
    ) {
        out.push(role);
        if let Some(parents) = self.parent_roles.get(scope).and_then(|m| m.get(role)) {
            out.extend(parents.iter().map(|p| &**p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::expr::{variables_read, ExprCache};
    use super::*;

    /// Params whose variables are `(name, source)` pairs in evaluation order.
    fn params(definitions: &[(&str, &str)]) -> (Params, ExprCache) {
        let mut cache = ExprCache::default();
        let mut variables: Vec<(Arc<str>, Arc<CompiledExpr>)> = Vec::new();
        let mut reads = Vec::new();
        for (name, source) in definitions {
            let expr = cache.compile(source).unwrap();
            reads.push(variables_read(&variables, &expr).collect());
            variables.push((Arc::from(*name), expr));
        }
        let params = Params {
            id: 0,
            constants: crate::celx::json_to_static_val(&serde_json::json!({})),
            constant_values: FastMap::default(),
            variables,
            reads,
            reads_runtime: false,
        };
        (params, cache)
    }

    fn needed(params: &Params, cache: &mut ExprCache, source: &str) -> Vec<bool> {
        let mut flags = vec![true; 9];
        params.mark_needed(&cache.compile(source).unwrap(), &mut flags);
        flags
    }

    #[test]
    fn an_expression_needs_the_variables_it_reads_and_theirs() {
        let (params, mut cache) = params(&[
            ("base", "R.attr.a == 1"),
            ("unrelated", "R.attr.b == 2"),
            ("derived", "V.base && P.id == 'x'"),
            ("other", "V.unrelated"),
        ]);
        assert_eq!(
            needed(&params, &mut cache, "V.derived"),
            [true, false, true, false]
        );
        assert_eq!(
            needed(&params, &mut cache, "variables[\"other\"]"),
            [false, true, false, true]
        );
        assert_eq!(
            needed(&params, &mut cache, "R.attr.c"),
            [false, false, false, false]
        );
    }

    #[test]
    fn reading_v_as_a_whole_needs_every_variable() {
        let (params, mut cache) = params(&[("a", "1"), ("b", "2"), ("all", "V.size() > 1")]);
        assert_eq!(needed(&params, &mut cache, "V[R.attr.key]"), [true; 3]);
        assert_eq!(needed(&params, &mut cache, "V.all"), [true; 3]);
    }
}
