//! YAML bytes to checked [`Policy`] values.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;

use super::model::{
    Condition, Match, Output, PolicyDocument, ResourcePolicy, RoleRule, ScopePermissions,
};
use super::{Policy, PolicyError, PolicyKind, SourceText};
use crate::store::StoreFile;

const API_VERSION: &str = "api.cerbos.dev/v1";

/// Checks a name against one of Cerbos's character-class patterns.
#[derive(Clone, Copy)]
enum NamePattern {
    /// `^[0-9A-Za-z_]+$`
    Version,
    /// `^([0-9A-Za-z][-0-9A-Za-z_]*(\.[-0-9A-Za-z_]*)*)*$`
    Scope,
    /// `^[-.:0-9A-Za-z_]+$` (roles, derived roles, set names)
    Role,
    /// `^([A-Za-z][-.0-9@A-Za-z_]*)*$`
    RuleName,
    /// `^[A-Za-z_][0-9A-Za-z_]*$` (variable and constant names)
    Ident,
}

impl NamePattern {
    fn is_match(self, value: &str) -> bool {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut chars = value.chars();
        match self {
            NamePattern::Version => !value.is_empty() && value.chars().all(word),
            NamePattern::Scope => match chars.next() {
                None => true,
                Some(first) => {
                    first.is_ascii_alphanumeric() && chars.all(|c| word(c) || c == '-' || c == '.')
                }
            },
            NamePattern::Role => {
                !value.is_empty()
                    && value
                        .chars()
                        .all(|c| word(c) || matches!(c, '-' | '.' | ':'))
            }
            NamePattern::RuleName => match chars.next() {
                None => true,
                Some(first) => {
                    first.is_ascii_alphabetic()
                        && chars.all(|c| word(c) || matches!(c, '-' | '.' | '@'))
                }
            },
            NamePattern::Ident => match chars.next() {
                None => false,
                Some(first) => (first.is_ascii_alphabetic() || first == '_') && chars.all(word),
            },
        }
    }
}

/// Below this many files a set is parsed on the calling thread: starting
/// threads would cost more than it saves.
const PARALLEL_PARSE_MIN_FILES: usize = 64;

/// Parses every policy file of a store snapshot, collecting all errors.
///
/// YAML parsing is most of a cold start, and files are independent, so a
/// large set is split across the available cores. The result does not
/// depend on the split: chunks are joined back in file order.
pub fn parse_set(files: &[StoreFile]) -> (Vec<Policy>, Vec<PolicyError>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || files.len() < PARALLEL_PARSE_MIN_FILES {
        return parse_sequentially(files);
    }
    let chunk = files.len().div_ceil(threads);
    let parsed: Vec<(Vec<Policy>, Vec<PolicyError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let worker = std::thread::Builder::new()
                    .name("verdict-parse".to_string())
                    .spawn_scoped(scope, move || parse_sequentially(part));
                (part, worker)
            })
            .collect();
        workers
            .into_iter()
            // A thread that could not start (or did not finish) has its part
            // parsed here: the set is never returned with files missing.
            .map(|(part, worker)| match worker.map(|w| w.join()) {
                Ok(Ok(parsed)) => parsed,
                _ => parse_sequentially(part),
            })
            .collect()
    });
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for (mut part_policies, mut part_errors) in parsed {
        policies.append(&mut part_policies);
        errors.append(&mut part_errors);
    }
    (policies, errors)
}

fn parse_sequentially(files: &[StoreFile]) -> (Vec<Policy>, Vec<PolicyError>) {
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match parse_file(&file.name, &file.bytes) {
            Ok(mut parsed) => policies.append(&mut parsed),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    (policies, errors)
}

/// Parses one file, which may hold several YAML documents.
pub fn parse_file(name: &str, bytes: &[u8]) -> Result<Vec<Policy>, Vec<PolicyError>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(err) => {
            return Err(vec![PolicyError {
                file: name.to_string(),
                line: 0,
                column: 0,
                message: format!(
                    "not valid UTF-8 (invalid byte at offset {})",
                    err.valid_up_to()
                ),
            }])
        }
    };
    let source = Arc::new(SourceText::new(name, text));
    let offsets = source.document_offsets();
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(&source.text).enumerate() {
        let offset = offsets.get(index).copied().unwrap_or(0);
        match Option::<PolicyDocument>::deserialize(document) {
            Ok(None) => {}
            Ok(Some(doc)) => match check(Arc::clone(&source), offset, doc) {
                Ok(policy) => policies.push(policy),
                Err(mut errs) => errors.append(&mut errs),
            },
            Err(err) => {
                errors.push(yaml_error(name, &err));
                // The deserializer cannot resume after a syntax error.
                break;
            }
        }
    }
    if policies.is_empty() && errors.is_empty() {
        errors.push(PolicyError {
            file: name.to_string(),
            line: 0,
            column: 0,
            message: "empty policy file".to_string(),
        });
    }
    if errors.is_empty() {
        Ok(policies)
    } else {
        Err(errors)
    }
}

/// Turns a serde_yaml_ng error into a positioned error without repeating the position.
pub(crate) fn yaml_error(file: &str, err: &serde_yaml_ng::Error) -> PolicyError {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let message = err.to_string();
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    PolicyError {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// Collects errors for one document while checking it.
struct Checker<'a> {
    policy: &'a Policy,
    errors: Vec<PolicyError>,
}

impl Checker<'_> {
    fn fail(&mut self, needle: &str, message: impl Into<String>) {
        self.errors.push(self.policy.error_at(needle, message));
    }

    fn matches(&mut self, pattern: NamePattern, value: &str, what: &str) {
        if !pattern.is_match(value) {
            self.fail(value, format!("invalid {what} {value:?}"));
        }
    }

    fn version(&mut self, version: &str) {
        self.matches(NamePattern::Version, version, "version");
    }

    fn scope(&mut self, scope: &str) {
        self.matches(NamePattern::Scope, scope, "scope");
    }

    fn unique<'s>(&mut self, items: impl IntoIterator<Item = &'s String>, what: &str) {
        let mut seen = HashSet::new();
        for item in items {
            if !seen.insert(item.as_str()) {
                self.fail(item, format!("duplicate {what} {item:?}"));
            }
        }
    }

    fn non_empty(&mut self, value: &str, key: &str, what: &str) {
        if value.trim().is_empty() {
            self.fail(key, format!("{what} must not be empty"));
        }
    }

    fn rule_name(&mut self, name: Option<&String>) {
        if let Some(name) = name {
            self.matches(NamePattern::RuleName, name, "rule name");
        }
    }

    fn condition(&mut self, condition: Option<&Condition>, context: &str) {
        let Some(condition) = condition else { return };
        if condition.script.is_some() {
            self.fail(
                "script",
                format!("{context}: `script` conditions are not supported, use `match`"),
            );
        }
        match &condition.match_ {
            Some(m) => self.match_node(m, context),
            None if condition.script.is_none() => self.fail(
                "condition",
                format!("{context}: condition needs a `match` block"),
            ),
            None => {}
        }
    }

    fn match_node(&mut self, node: &Match, context: &str) {
        let set = [
            node.expr.is_some(),
            node.all.is_some(),
            node.any.is_some(),
            node.none.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            self.fail(
                "match",
                format!(
                    "{context}: a match must have exactly one of expr, all, any or none (found {set})"
                ),
            );
        }
        if let Some(expr) = &node.expr {
            if expr.trim().is_empty() {
                self.fail("expr", format!("{context}: empty expression"));
            }
        }
        for (op, list) in [("all", &node.all), ("any", &node.any), ("none", &node.none)] {
            if let Some(list) = list {
                if list.of.is_empty() {
                    self.fail(op, format!("{context}: `{op}.of` needs at least one entry"));
                }
                for child in &list.of {
                    self.match_node(child, context);
                }
            }
        }
    }

    fn output(&mut self, output: Option<&Output>, context: &str) {
        let Some(output) = output else { return };
        let empty_when = output
            .when
            .as_ref()
            .is_some_and(|w| w.rule_activated.is_none() && w.condition_not_met.is_none());
        if (output.expr.is_none() && output.when.is_none()) || empty_when {
            self.fail("output", format!("{context}: output has no expression"));
        }
    }

    fn variables(&mut self, local: &BTreeMap<String, String>) {
        for (name, expr) in local {
            self.matches(NamePattern::Ident, name, "variable name");
            if expr.trim().is_empty() {
                self.fail(name, format!("variable {name} has an empty expression"));
            }
        }
    }

    fn constant_names<'s>(&mut self, names: impl IntoIterator<Item = &'s String>) {
        for name in names {
            self.matches(NamePattern::Ident, name, "constant name");
        }
    }

    fn imports(&mut self, imports: &[String], what: &str) {
        self.unique(imports, what);
        for name in imports {
            self.matches(NamePattern::Role, name, what);
        }
    }

    fn scope_permissions(&mut self, permissions: Option<ScopePermissions>, scope: &str) {
        if permissions.is_some_and(|p| p != ScopePermissions::Unspecified) && scope.is_empty() {
            self.fail(
                "scopePermissions",
                "scopePermissions can only be set on a scoped policy",
            );
        }
    }

    fn resource_policy(&mut self, p: &ResourcePolicy) {
        self.non_empty(&p.resource, "resource", "resource");
        self.version(&p.version);
        self.scope(&p.scope);
        self.scope_permissions(p.scope_permissions, &p.scope);
        self.imports(&p.import_derived_roles, "derived roles import");
        if let Some(v) = &p.variables {
            self.imports(&v.import, "variables import");
            self.variables(&v.local);
        }
        if let Some(c) = &p.constants {
            self.imports(&c.import, "constants import");
            self.constant_names(c.local.keys());
        }
        if let Some(schemas) = &p.schemas {
            for schema in [&schemas.principal_schema, &schemas.resource_schema]
                .into_iter()
                .flatten()
            {
                self.non_empty(&schema.reference, "ref", "schema ref");
                if let Some(ignore) = &schema.ignore_when {
                    if ignore.actions.is_empty() {
                        self.fail("ignoreWhen", "ignoreWhen needs at least one action");
                    }
                }
            }
        }
        for (i, rule) in p.rules.iter().enumerate() {
            let context = rule_context(i, rule.name.as_deref());
            if rule.actions.is_empty() {
                self.fail(
                    "actions",
                    format!("{context}: at least one action is required"),
                );
            }
            for action in &rule.actions {
                self.non_empty(action, "actions", "action");
            }
            self.unique(&rule.actions, "action");
            if rule.roles.is_empty() && rule.derived_roles.is_empty() {
                self.fail(
                    rule.actions.first().map_or("rules", |a| a.as_str()),
                    format!("{context}: a rule needs roles or derivedRoles"),
                );
            }
            self.unique(&rule.roles, "role");
            self.unique(&rule.derived_roles, "derived role");
            for role in &rule.roles {
                if role != "*" {
                    self.matches(NamePattern::Role, role, "role");
                }
            }
            for role in &rule.derived_roles {
                self.matches(NamePattern::Role, role, "derived role");
            }
            if rule.effect.is_none() {
                self.fail("actions", format!("{context}: effect is required"));
            }
            self.rule_name(rule.name.as_ref());
            self.condition(rule.condition.as_ref(), &context);
            self.output(rule.output.as_ref(), &context);
        }
    }

    fn role_rules(&mut self, rules: &[RoleRule]) {
        for (i, rule) in rules.iter().enumerate() {
            let context = rule_context(i, rule.name.as_deref());
            self.non_empty(&rule.resource, "resource", "resource");
            if rule.allow_actions.is_empty() {
                self.fail(
                    &rule.resource,
                    format!("{context}: allowActions needs at least one action"),
                );
            }
            self.unique(&rule.allow_actions, "action");
            self.rule_name(rule.name.as_ref());
            self.condition(rule.condition.as_ref(), &context);
            self.output(rule.output.as_ref(), &context);
        }
    }

    fn kind(&mut self, kind: &PolicyKind) {
        match kind {
            PolicyKind::Resource(p) => self.resource_policy(p),
            PolicyKind::Principal(p) => {
                self.non_empty(&p.principal, "principal", "principal");
                self.version(&p.version);
                self.scope(&p.scope);
                self.scope_permissions(p.scope_permissions, &p.scope);
                if let Some(v) = &p.variables {
                    self.imports(&v.import, "variables import");
                    self.variables(&v.local);
                }
                if let Some(c) = &p.constants {
                    self.imports(&c.import, "constants import");
                    self.constant_names(c.local.keys());
                }
                for (i, rule) in p.rules.iter().enumerate() {
                    self.non_empty(&rule.resource, "resource", "resource");
                    if rule.actions.is_empty() {
                        self.fail(
                            &rule.resource,
                            format!(
                                "rule #{} for {}: at least one action is required",
                                i + 1,
                                rule.resource
                            ),
                        );
                    }
                    for (j, action) in rule.actions.iter().enumerate() {
                        let context = format!(
                            "rule for {} action #{}{}",
                            rule.resource,
                            j + 1,
                            action
                                .name
                                .as_ref()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        );
                        self.non_empty(&action.action, "action", "action");
                        if action.effect.is_none() {
                            self.fail(&action.action, format!("{context}: effect is required"));
                        }
                        self.rule_name(action.name.as_ref());
                        self.condition(action.condition.as_ref(), &context);
                        self.output(action.output.as_ref(), &context);
                    }
                }
            }
            PolicyKind::DerivedRoles(p) => {
                self.matches(NamePattern::Role, &p.name, "derived roles name");
                if p.definitions.is_empty() {
                    self.fail("definitions", "derived roles need at least one definition");
                }
                self.unique(p.definitions.iter().map(|d| &d.name), "derived role");
                for def in &p.definitions {
                    self.matches(NamePattern::Role, &def.name, "derived role name");
                    if def.parent_roles.is_empty() {
                        self.fail(
                            &def.name,
                            format!("derived role {}: parentRoles is required", def.name),
                        );
                    }
                    self.unique(&def.parent_roles, "parent role");
                    for role in &def.parent_roles {
                        if role != "*" {
                            self.matches(NamePattern::Role, role, "parent role");
                        }
                    }
                    self.condition(
                        def.condition.as_ref(),
                        &format!("derived role {}", def.name),
                    );
                }
                if let Some(v) = &p.variables {
                    self.imports(&v.import, "variables import");
                    self.variables(&v.local);
                }
                if let Some(c) = &p.constants {
                    self.imports(&c.import, "constants import");
                    self.constant_names(c.local.keys());
                }
            }
            PolicyKind::ExportVariables(p) => {
                self.matches(NamePattern::Role, &p.name, "exported variables name");
                self.variables(&p.definitions);
            }
            PolicyKind::ExportConstants(p) => {
                self.matches(NamePattern::Role, &p.name, "exported constants name");
                self.constant_names(p.definitions.keys());
            }
            PolicyKind::Role(p) => {
                self.non_empty(&p.role, "role", "role");
                if p.role != "*" && !p.role.trim().is_empty() {
                    self.matches(NamePattern::Role, &p.role, "role");
                }
                if let Some(version) = &p.version {
                    self.version(version);
                }
                self.scope(&p.scope);
                self.unique(&p.parent_roles, "parent role");
                for role in &p.parent_roles {
                    self.matches(NamePattern::Role, role, "parent role");
                }
                if let Some(v) = &p.variables {
                    self.imports(&v.import, "variables import");
                    self.variables(&v.local);
                }
                if let Some(c) = &p.constants {
                    self.imports(&c.import, "constants import");
                    self.constant_names(c.local.keys());
                }
                self.role_rules(&p.rules);
            }
        }
    }
}

fn rule_context(index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("rule #{} ({name})", index + 1),
        None => format!("rule #{}", index + 1),
    }
}

fn check(
    source: Arc<SourceText>,
    offset: usize,
    doc: PolicyDocument,
) -> Result<Policy, Vec<PolicyError>> {
    let PolicyDocument {
        api_version,
        description: _,
        disabled,
        metadata,
        variables,
        json_schema: _,
        resource_policy,
        principal_policy,
        derived_roles,
        export_variables,
        export_constants,
        role_policy,
    } = doc;
    let mut kinds: Vec<PolicyKind> = Vec::new();
    kinds.extend(resource_policy.map(PolicyKind::Resource));
    kinds.extend(principal_policy.map(PolicyKind::Principal));
    kinds.extend(derived_roles.map(PolicyKind::DerivedRoles));
    kinds.extend(export_variables.map(PolicyKind::ExportVariables));
    kinds.extend(export_constants.map(PolicyKind::ExportConstants));
    kinds.extend(role_policy.map(PolicyKind::Role));
    let kind_count = kinds.len();
    let placeholder = |kind| Policy {
        source: Arc::clone(&source),
        offset,
        disabled,
        annotations: BTreeMap::new(),
        top_level_variables: BTreeMap::new(),
        kind,
    };
    let Some(kind) = kinds.pop() else {
        let policy = placeholder(PolicyKind::ExportConstants(super::model::ExportConstants {
            name: String::new(),
            definitions: BTreeMap::new(),
        }));
        return Err(vec![policy.error_at(
            "apiVersion",
            "the document holds no policy: expected one of resourcePolicy, principalPolicy, derivedRoles, exportVariables, exportConstants or rolePolicy",
        )]);
    };
    let mut policy = placeholder(kind);
    policy.annotations = metadata.map(|m| m.annotations).unwrap_or_default();
    policy.top_level_variables = variables.unwrap_or_default();
    let mut checker = Checker {
        policy: &policy,
        errors: Vec::new(),
    };
    if kind_count > 1 {
        checker.fail("apiVersion", "a document may hold only one policy");
    }
    match api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => checker.fail(
            other,
            format!("apiVersion must be {API_VERSION:?}, not {other:?}"),
        ),
        None => checker.fail("", format!("apiVersion is required ({API_VERSION:?})")),
    }
    if !policy.top_level_variables.is_empty()
        && matches!(
            policy.kind,
            PolicyKind::ExportVariables(_) | PolicyKind::ExportConstants(_)
        )
    {
        checker.fail(
            "variables",
            "top-level variables are not allowed in exported variables or constants",
        );
    }
    checker.variables(&policy.top_level_variables);
    checker.kind(&policy.kind);
    let errors = checker.errors;
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse_file("p.yaml", text.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(errs) => errs.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn name_patterns() {
        assert!(NamePattern::Version.is_match("20210210"));
        assert!(!NamePattern::Version.is_match("1.0"));
        assert!(NamePattern::Scope.is_match(""));
        assert!(NamePattern::Scope.is_match("acme.hr-uk.b_2"));
        assert!(!NamePattern::Scope.is_match(".acme"));
        assert!(NamePattern::Role.is_match("team.lead-1"));
        assert!(NamePattern::Role.is_match("system:basic_user"));
        assert!(!NamePattern::Role.is_match("a b"));
        assert!(NamePattern::RuleName.is_match("allow-view@v1"));
        assert!(!NamePattern::RuleName.is_match("1st"));
        assert!(NamePattern::Ident.is_match("_x1"));
        assert!(!NamePattern::Ident.is_match("x-y"));
    }

    const GOOD: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n    - actions: [view]\n      roles: [editor]\n      effect: EFFECT_ALLOW\n";

    #[test]
    fn a_good_resource_policy() {
        let policies = parse_file("p.yaml", GOOD.as_bytes()).unwrap();
        assert_eq!(policies.len(), 1);
        assert!(matches!(policies[0].kind, PolicyKind::Resource(_)));
        assert_eq!(
            policies[0].describe(),
            "resource policy document (version default)"
        );
    }

    #[test]
    fn unknown_field_is_reported_with_its_position() {
        let text = GOOD.replace("      effect:", "      efect: EFFECT_ALLOW\n      effect:");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("p.yaml:8:"), "{errs:?}");
        assert!(errs[0].contains("unknown field `efect`"), "{errs:?}");
    }

    #[test]
    fn syntax_error_has_a_position() {
        let errs = errors("apiVersion: api.cerbos.dev/v1\nresourcePolicy: [\n");
        assert!(errs[0].starts_with("p.yaml:"), "{errs:?}");
    }

    #[test]
    fn wrong_api_version() {
        let errs = errors(&GOOD.replace("api.cerbos.dev/v1", "api.cerbos.dev/v2"));
        assert!(
            errs[0].starts_with("p.yaml:1:13: apiVersion must be"),
            "{errs:?}"
        );
    }

    #[test]
    fn bad_effect_value() {
        let errs = errors(&GOOD.replace("EFFECT_ALLOW", "ALLOW"));
        assert!(errs[0].contains("unknown variant `ALLOW`"), "{errs:?}");
        assert!(errs[0].starts_with("p.yaml:8:"), "{errs:?}");
    }

    #[test]
    fn missing_effect_and_roles() {
        let text = GOOD.replace("      roles: [editor]\n      effect: EFFECT_ALLOW\n", "");
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.contains("needs roles or derivedRoles")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("effect is required")),
            "{errs:?}"
        );
    }

    #[test]
    fn bad_version_and_scope() {
        let text = GOOD.replace("version: default", "version: \"1.0\"\n  scope: \"a..b!\"");
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.contains("invalid version \"1.0\"")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("p.yaml:5:") && e.contains("invalid scope")),
            "{errs:?}"
        );
    }

    #[test]
    fn match_needs_exactly_one_operator() {
        let text = GOOD.replace(
            "      effect: EFFECT_ALLOW\n",
            "      effect: EFFECT_ALLOW\n      condition:\n        match:\n          expr: a\n          all:\n            of: [{expr: b}]\n",
        );
        let errs = errors(&text);
        assert!(
            errs[0].contains("exactly one of expr, all, any or none"),
            "{errs:?}"
        );
    }

    #[test]
    fn two_policies_in_one_document() {
        let text = format!("{GOOD}derivedRoles:\n  name: x\n  definitions: []\n");
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.contains("only one policy")),
            "{errs:?}"
        );
    }

    #[test]
    fn several_documents_in_one_file() {
        let text = format!("---\n{GOOD}---\n{}", GOOD.replace("document", "folder"));
        let policies = parse_file("p.yaml", text.as_bytes()).unwrap();
        assert_eq!(policies.len(), 2);
        assert!(policies[1].offset > 0);
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let errs = parse_file("bin.yaml", &[0x61, 0xff, 0x62]).unwrap_err();
        assert!(errs[0].to_string().contains("not valid UTF-8"));
    }

    #[test]
    fn empty_file() {
        let errs = errors("# only a comment\n");
        assert!(errs[0].contains("empty policy file"), "{errs:?}");
    }

    #[test]
    fn derived_roles_need_parents() {
        let errs = errors("apiVersion: api.cerbos.dev/v1\nderivedRoles:\n  name: common\n  definitions:\n    - name: owner\n      parentRoles: []\n");
        assert!(
            errs[0].starts_with("p.yaml:5:") && errs[0].contains("parentRoles is required"),
            "{errs:?}"
        );
    }

    #[test]
    fn script_conditions_are_rejected() {
        let text = GOOD.replace(
            "      effect: EFFECT_ALLOW\n",
            "      effect: EFFECT_ALLOW\n      condition:\n        script: x\n",
        );
        assert!(errors(&text)[0].contains("`script` conditions are not supported"));
    }
}
