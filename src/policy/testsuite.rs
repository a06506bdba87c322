//! Cerbos-format policy test suites (`*_test.yaml|yml|json`) and the shared
//! fixtures of a `testdata/` folder (`principals`, `resources`, `auxdata`).
//!
//! The structs mirror Cerbos 0.55's `cerbos.policy.v1.TestSuite` and
//! `TestFixture` messages field for field: camelCase keys (the proto's
//! snake_case names are accepted too, as protojson does), unknown fields
//! refused. Errors carry `file:line:col` like the rest of [`crate::policy`]:
//! syntax errors and unknown fields where the YAML parser saw them, and the
//! checks serde cannot make (an empty name, a duplicate action) at the first
//! occurrence of the offending text. Running suites is up to the caller
//! (`bootstrap compile`, in [`crate::cli`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::model::Effect;
use super::parse::yaml_error;
use super::{PolicyError, SourceText};

type Attributes = serde_json::Map<String, serde_json::Value>;

/// A whole test suite file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestSuite {
    /// Suite name, shown in reports.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Skip every test of the suite.
    #[serde(default)]
    pub skip: bool,
    /// Why the suite is skipped.
    #[serde(default, alias = "skip_reason")]
    pub skip_reason: String,
    /// Principals by the name tests use for them.
    #[serde(default)]
    pub principals: BTreeMap<String, PrincipalFixture>,
    /// Resources by the name tests use for them.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceFixture>,
    /// Named lists of principals.
    #[serde(default, alias = "principal_groups")]
    pub principal_groups: BTreeMap<String, PrincipalGroup>,
    /// Named lists of resources.
    #[serde(default, alias = "resource_groups")]
    pub resource_groups: BTreeMap<String, ResourceGroup>,
    /// Auxiliary data (decoded JWT claims) by name.
    #[serde(default, alias = "aux_data")]
    pub aux_data: BTreeMap<String, AuxDataFixture>,
    /// Options for every test that sets none of its own.
    #[serde(default)]
    pub options: Option<TestOptions>,
    /// The test tables.
    #[serde(default)]
    pub tests: Vec<TestTable>,
}

/// A principal as tests give it (Cerbos's `cerbos.engine.v1.Principal`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalFixture {
    /// Principal id.
    #[serde(default)]
    pub id: String,
    /// Roles; at least one.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Attributes.
    #[serde(default)]
    pub attr: Attributes,
    /// Policy version; empty means the default.
    #[serde(default, alias = "policy_version")]
    pub policy_version: String,
    /// Scope; empty is the root.
    #[serde(default)]
    pub scope: String,
}

/// A resource as tests give it (Cerbos's `cerbos.engine.v1.Resource`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceFixture {
    /// Resource kind.
    #[serde(default)]
    pub kind: String,
    /// Resource id.
    #[serde(default)]
    pub id: String,
    /// Attributes.
    #[serde(default)]
    pub attr: Attributes,
    /// Policy version; empty means the default.
    #[serde(default, alias = "policy_version")]
    pub policy_version: String,
    /// Scope; empty is the root.
    #[serde(default)]
    pub scope: String,
}

/// `principalGroups.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalGroup {
    /// Names of principals.
    #[serde(default)]
    pub principals: Vec<String>,
}

/// `resourceGroups.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceGroup {
    /// Names of resources.
    #[serde(default)]
    pub resources: Vec<String>,
}

/// Auxiliary data: the claims of an already-decoded JWT.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxDataFixture {
    /// Claims, available to conditions as `request.auxData.jwt`.
    #[serde(default)]
    pub jwt: Attributes,
}

/// `options:` of a suite or of one test (a test's options replace the
/// suite's as a whole, as in Cerbos).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestOptions {
    /// The instant `now()` returns, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
    /// Fall back to the nearest ancestor scope that has a policy.
    #[serde(default, alias = "lenient_scope_search")]
    pub lenient_scope_search: bool,
    /// Values of `G` / `globals`.
    #[serde(default)]
    pub globals: BTreeMap<String, serde_json::Value>,
    /// Version used for inputs that name none.
    #[serde(default, alias = "default_policy_version")]
    pub default_policy_version: String,
    /// Scope used for inputs that name none.
    #[serde(default, alias = "default_scope")]
    pub default_scope: String,
}

impl TestOptions {
    /// The parsed `now`, when set and valid.
    pub fn now(&self) -> Option<DateTime<FixedOffset>> {
        self.now
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    }
}

/// One entry of `tests:`: a table of principals × resources × actions.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestTable {
    /// Test name, unique within the suite.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Skip this test.
    #[serde(default)]
    pub skip: bool,
    /// Why it is skipped.
    #[serde(default, alias = "skip_reason")]
    pub skip_reason: String,
    /// What is checked.
    pub input: TestInput,
    /// What is expected; anything not listed is expected to be DENY.
    #[serde(default)]
    pub expected: Vec<Expectation>,
    /// Options replacing the suite's.
    #[serde(default)]
    pub options: Option<TestOptions>,
}

/// `tests[].input`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestInput {
    /// Principal names.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Resource names.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Principal group names.
    #[serde(default, alias = "principal_groups")]
    pub principal_groups: Vec<String>,
    /// Resource group names.
    #[serde(default, alias = "resource_groups")]
    pub resource_groups: Vec<String>,
    /// Actions checked for every principal and resource.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Name of an auxData entry.
    #[serde(default, alias = "aux_data")]
    pub aux_data: String,
}

/// `tests[].expected[]`: effects (and outputs) for some principals and resources.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    /// One principal name.
    #[serde(default)]
    pub principal: String,
    /// Several principal names.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Principal group names.
    #[serde(default, alias = "principal_groups")]
    pub principal_groups: Vec<String>,
    /// One resource name.
    #[serde(default)]
    pub resource: String,
    /// Several resource names.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Resource group names.
    #[serde(default, alias = "resource_groups")]
    pub resource_groups: Vec<String>,
    /// Expected effect by action.
    #[serde(default)]
    pub actions: BTreeMap<String, Effect>,
    /// Expected outputs by action.
    #[serde(default)]
    pub outputs: Vec<OutputExpectations>,
}

/// `expected[].outputs[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputExpectations {
    /// The action whose outputs are checked.
    #[serde(default)]
    pub action: String,
    /// Expected entries; other outputs are not checked.
    #[serde(default)]
    pub expected: Vec<ExpectedOutput>,
}

/// One expected output entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedOutput {
    /// `<policy key>#<rule name>`.
    #[serde(default)]
    pub src: String,
    /// The value.
    #[serde(default)]
    pub val: serde_json::Value,
}

/// `testdata/principals.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalFixtures {
    /// Principals by name.
    #[serde(default)]
    pub principals: BTreeMap<String, PrincipalFixture>,
    /// Groups of them.
    #[serde(default, alias = "principal_groups")]
    pub principal_groups: BTreeMap<String, PrincipalGroup>,
}

/// `testdata/resources.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceFixtures {
    /// Resources by name.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceFixture>,
    /// Groups of them.
    #[serde(default, alias = "resource_groups")]
    pub resource_groups: BTreeMap<String, ResourceGroup>,
}

/// `testdata/auxdata.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuxDataFixtures {
    /// Aux data by name.
    #[serde(default, alias = "aux_data")]
    pub aux_data: BTreeMap<String, AuxDataFixture>,
}

/// A parsed file with its text, to place errors found later (a missing
/// fixture, an inconsistent expectation) at `file:line:col`.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// The file's name and text.
    pub source: Arc<SourceText>,
    /// The content.
    pub value: T,
}

impl<T> Parsed<T> {
    /// The file name.
    pub fn file(&self) -> &str {
        &self.source.name
    }

    /// An error placed at the first occurrence of `needle` at or after the
    /// first occurrence of `after` (or at the file start when absent).
    pub fn error_at(&self, after: &str, needle: &str, message: impl Into<String>) -> PolicyError {
        let from = if after.is_empty() {
            0
        } else {
            self.source.text.find(after).unwrap_or(0)
        };
        let (line, column) = self
            .source
            .locate(from, needle)
            .or_else(|| self.source.locate(0, needle))
            .unwrap_or((1, 1));
        PolicyError {
            file: self.source.name.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Parses and checks a test suite file.
pub fn parse_suite(name: &str, bytes: &[u8]) -> Result<Parsed<TestSuite>, Vec<PolicyError>> {
    let parsed: Parsed<TestSuite> = parse_document(name, bytes)?;
    let errors = check_suite(&parsed);
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Parses `testdata/principals.*`.
pub fn parse_principal_fixtures(
    name: &str,
    bytes: &[u8],
) -> Result<Parsed<PrincipalFixtures>, Vec<PolicyError>> {
    let parsed: Parsed<PrincipalFixtures> = parse_document(name, bytes)?;
    let mut errors = Vec::new();
    for (key, principal) in &parsed.value.principals {
        check_principal(&parsed, key, principal, &mut errors);
    }
    check_groups(
        &parsed,
        parsed
            .value
            .principal_groups
            .iter()
            .map(|(k, g)| (k, &g.principals)),
        |n| parsed.value.principals.contains_key(n),
        &mut errors,
    );
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Parses `testdata/resources.*`.
pub fn parse_resource_fixtures(
    name: &str,
    bytes: &[u8],
) -> Result<Parsed<ResourceFixtures>, Vec<PolicyError>> {
    let parsed: Parsed<ResourceFixtures> = parse_document(name, bytes)?;
    let mut errors = Vec::new();
    for (key, resource) in &parsed.value.resources {
        check_resource(&parsed, key, resource, &mut errors);
    }
    check_groups(
        &parsed,
        parsed
            .value
            .resource_groups
            .iter()
            .map(|(k, g)| (k, &g.resources)),
        |n| parsed.value.resources.contains_key(n),
        &mut errors,
    );
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Parses `testdata/auxdata.*`.
pub fn parse_aux_data_fixtures(
    name: &str,
    bytes: &[u8],
) -> Result<Parsed<AuxDataFixtures>, Vec<PolicyError>> {
    parse_document(name, bytes)
}

fn parse_document<T: for<'de> Deserialize<'de>>(
    name: &str,
    bytes: &[u8],
) -> Result<Parsed<T>, Vec<PolicyError>> {
    let at_start = |message: String| PolicyError {
        file: name.to_string(),
        line: 0,
        column: 0,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|err| {
        vec![at_start(format!(
            "not valid UTF-8 (invalid byte at offset {})",
            err.valid_up_to()
        ))]
    })?;
    let source = Arc::new(SourceText::new(name, text.to_string()));
    let mut documents = serde_yaml_ng::Deserializer::from_str(&source.text);
    let Some(first) = documents.next() else {
        return Err(vec![at_start("empty file".to_string())]);
    };
    let value = match Option::<T>::deserialize(first) {
        Ok(Some(value)) => value,
        Ok(None) => return Err(vec![at_start("empty file".to_string())]),
        Err(err) => return Err(vec![yaml_error(name, &err)]),
    };
    let more = documents.next().is_some();
    drop(documents);
    if more {
        let offset = source.document_offsets().get(1).copied().unwrap_or(0);
        let (line, column) = source.position(offset);
        return Err(vec![PolicyError {
            file: name.to_string(),
            line,
            column,
            message: "a test file holds one YAML document".to_string(),
        }]);
    }
    Ok(Parsed { source, value })
}

/// The checks Cerbos's schema and proto validation make on a suite.
fn check_suite(parsed: &Parsed<TestSuite>) -> Vec<PolicyError> {
    let suite = &parsed.value;
    let mut errors = Vec::new();
    if suite.name.trim().is_empty() {
        errors.push(parsed.error_at("", "name", "the suite needs a non-empty `name`"));
    }
    if suite.tests.is_empty() {
        errors.push(parsed.error_at("", "tests", "the suite needs at least one test in `tests`"));
    }
    for (key, principal) in &suite.principals {
        check_principal(parsed, key, principal, &mut errors);
    }
    for (key, resource) in &suite.resources {
        check_resource(parsed, key, resource, &mut errors);
    }
    if let Some(options) = &suite.options {
        check_options(parsed, "", options, &mut errors);
    }
    for table in &suite.tests {
        check_table(parsed, table, &mut errors);
    }
    errors
}

fn check_principal<T>(
    parsed: &Parsed<T>,
    key: &str,
    principal: &PrincipalFixture,
    errors: &mut Vec<PolicyError>,
) {
    let anchor = format!("{key}:");
    if principal.id.is_empty() {
        errors.push(parsed.error_at("", &anchor, format!("principal {key:?}: `id` is required")));
    }
    if principal.roles.is_empty() {
        errors.push(parsed.error_at(
            "",
            &anchor,
            format!("principal {key:?}: `roles` needs at least one role"),
        ));
    }
    if let Some(role) = duplicate(&principal.roles) {
        errors.push(parsed.error_at(
            &anchor,
            role,
            format!("principal {key:?}: duplicate role {role:?}"),
        ));
    }
}

fn check_resource<T>(
    parsed: &Parsed<T>,
    key: &str,
    resource: &ResourceFixture,
    errors: &mut Vec<PolicyError>,
) {
    let anchor = format!("{key}:");
    if resource.kind.is_empty() {
        errors.push(parsed.error_at("", &anchor, format!("resource {key:?}: `kind` is required")));
    }
    if resource.id.is_empty() {
        errors.push(parsed.error_at("", &anchor, format!("resource {key:?}: `id` is required")));
    }
}

fn check_groups<'a, T>(
    parsed: &Parsed<T>,
    groups: impl Iterator<Item = (&'a String, &'a Vec<String>)>,
    exists: impl Fn(&str) -> bool,
    errors: &mut Vec<PolicyError>,
) {
    for (group, members) in groups {
        for member in members {
            if !exists(member) {
                errors.push(parsed.error_at(
                    &format!("{group}:"),
                    member,
                    format!("missing fixture {member:?} referenced in group {group:?}"),
                ));
            }
        }
    }
}

fn check_options<T>(
    parsed: &Parsed<T>,
    after: &str,
    options: &TestOptions,
    errors: &mut Vec<PolicyError>,
) {
    if let Some(now) = &options.now {
        if DateTime::parse_from_rfc3339(now).is_err() {
            errors.push(parsed.error_at(
                after,
                now,
                format!("options.now {now:?} is not an RFC 3339 timestamp"),
            ));
        }
    }
}

fn check_table(parsed: &Parsed<TestSuite>, table: &TestTable, errors: &mut Vec<PolicyError>) {
    let anchor = if table.name.is_empty() {
        String::new()
    } else {
        table.name.clone()
    };
    let context = format!("test {:?}", table.name);
    if table.name.trim().is_empty() {
        errors.push(parsed.error_at("tests:", "name", "every test needs a non-empty `name`"));
    }
    if table.input.actions.is_empty() {
        errors.push(parsed.error_at(
            &anchor,
            "input",
            format!("{context}: `input.actions` needs at least one action"),
        ));
    }
    for (what, list) in [
        ("input.actions", &table.input.actions),
        ("input.principals", &table.input.principals),
        ("input.resources", &table.input.resources),
        ("input.principalGroups", &table.input.principal_groups),
        ("input.resourceGroups", &table.input.resource_groups),
    ] {
        if list.iter().any(String::is_empty) {
            errors.push(parsed.error_at(
                &anchor,
                "input",
                format!("{context}: `{what}` has an empty entry"),
            ));
        }
        if let Some(item) = duplicate(list) {
            errors.push(parsed.error_at(
                &anchor,
                item,
                format!("{context}: `{what}` lists {item:?} twice"),
            ));
        }
    }
    if table.expected.is_empty() {
        errors.push(parsed.error_at(
            &anchor,
            "expected",
            format!("{context}: `expected` needs at least one entry"),
        ));
    }
    for expectation in &table.expected {
        if expectation.actions.is_empty() {
            errors.push(parsed.error_at(
                &anchor,
                "actions",
                format!("{context}: every expectation needs `actions`"),
            ));
        }
        for output in &expectation.outputs {
            if output.action.is_empty() || output.expected.is_empty() {
                errors.push(parsed.error_at(
                    &anchor,
                    "outputs",
                    format!("{context}: every output expectation needs `action` and `expected`"),
                ));
            }
        }
    }
    if let Some(options) = &table.options {
        check_options(parsed, &anchor, options, errors);
    }
}

fn duplicate(items: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .find(|i| !seen.insert(i.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"
name: Example
principals:
  ann:
    id: ann
    roles: [user]
resources:
  doc:
    kind: document
    id: "1"
    attr: {owner: ann}
options:
  now: "2024-01-01T00:00:00Z"
tests:
  - name: Ann reads
    input:
      principals: [ann]
      resources: [doc]
      actions: [view, edit]
    expected:
      - principal: ann
        resource: doc
        actions:
          view: EFFECT_ALLOW
        outputs:
          - action: view
            expected:
              - src: resource.document.vdefault#r1
                val: {a: 1}
"#;

    #[test]
    fn parses_a_suite() {
        let parsed = parse_suite("s_test.yaml", SUITE.as_bytes()).unwrap();
        let suite = &parsed.value;
        assert_eq!(suite.name, "Example");
        assert_eq!(suite.principals["ann"].roles, ["user"]);
        assert_eq!(suite.resources["doc"].attr["owner"], "ann");
        assert!(suite.options.as_ref().unwrap().now().is_some());
        let table = &suite.tests[0];
        assert_eq!(table.input.actions, ["view", "edit"]);
        assert_eq!(table.expected[0].actions["view"], Effect::Allow);
        assert_eq!(
            table.expected[0].outputs[0].expected[0].val,
            serde_json::json!({"a": 1})
        );
    }

    #[test]
    fn unknown_field_is_placed() {
        let text = "name: x\nprincipal:\n  a: {}\ntests: []\n";
        let errors = parse_suite("bad_test.yaml", text.as_bytes()).unwrap_err();
        let shown = errors[0].to_string();
        assert!(shown.starts_with("bad_test.yaml:2:1: "), "{shown}");
        assert!(shown.contains("principal"), "{shown}");
    }

    #[test]
    fn unknown_effect_is_refused() {
        let text = SUITE.replace("view: EFFECT_ALLOW", "view: EFFECT_MAYBE");
        let errors = parse_suite("e_test.yaml", text.as_bytes()).unwrap_err();
        assert!(
            errors[0].to_string().contains("EFFECT_MAYBE"),
            "{:?}",
            errors
        );
        assert!(errors[0].line > 0);
    }

    #[test]
    fn semantic_checks_name_the_line() {
        let text = SUITE.replace("actions: [view, edit]", "actions: [view, view]");
        let errors = parse_suite("d_test.yaml", text.as_bytes()).unwrap_err();
        let shown = errors[0].to_string();
        assert!(shown.contains("twice"), "{shown}");
        assert!(shown.starts_with("d_test.yaml:19:"), "{shown}");

        let text = SUITE.replace("now: \"2024-01-01T00:00:00Z\"", "now: tomorrow");
        let errors = parse_suite("n_test.yaml", text.as_bytes()).unwrap_err();
        assert!(errors[0].to_string().starts_with("n_test.yaml:13:8: "));
    }

    #[test]
    fn json_suites_and_snake_case_names() {
        let text = r#"{"name": "j", "tests": [{"name": "t", "input": {"principals": ["p"],
            "resources": ["r"], "actions": ["a"], "aux_data": "x"},
            "expected": [{"principal": "p", "resource": "r", "actions": {"a": "EFFECT_DENY"}}]}]}"#;
        let parsed = parse_suite("j_test.json", text.as_bytes()).unwrap();
        assert_eq!(parsed.value.tests[0].input.aux_data, "x");
    }

    #[test]
    fn fixtures() {
        let principals = parse_principal_fixtures(
            "testdata/principals.yaml",
            b"principals:\n  a: {id: a, roles: [r]}\nprincipalGroups:\n  g: {principals: [a, b]}\n",
        )
        .unwrap_err();
        assert!(
            principals[0].to_string().contains("\"b\""),
            "{principals:?}"
        );
        let resources = parse_resource_fixtures(
            "testdata/resources.yaml",
            b"resources:\n  r: {kind: doc, id: '1'}\n",
        )
        .unwrap();
        assert_eq!(resources.value.resources["r"].kind, "doc");
        let aux = parse_aux_data_fixtures(
            "testdata/auxdata.yaml",
            b"auxData:\n  tok:\n    jwt: {sub: me}\n",
        )
        .unwrap();
        assert_eq!(aux.value.aux_data["tok"].jwt["sub"], "me");
    }
}
