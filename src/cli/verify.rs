//! Runs the Cerbos-format test suites of a policy folder, as `cerbos compile`
//! does after a successful compilation.
//!
//! Every `*_test.{yaml,yml,json}` under the folder is a suite (`testdata/`
//! folders hold fixtures and are not searched; hidden folders are searched,
//! as Cerbos does). A suite may use the principals, resources and aux data of
//! the `testdata/` folder beside it. Each test is the product of its
//! principals, resources and actions; every action not listed in `expected`
//! is expected to be DENY. The results mirror Cerbos's `TestResults` message,
//! so the JSON report has Cerbos's shape.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::compile::{EngineSettings, RuleIndex};
use crate::engine::{self, AuxData, CheckResult, Effect, Principal, Resource, ResourceCheck};
use crate::loader;
use crate::policy::testsuite::{
    self, AuxDataFixture, AuxDataFixtures, Parsed, PrincipalFixture, PrincipalFixtures,
    ResourceFixture, ResourceFixtures, TestOptions, TestSuite, TestTable,
};
use crate::policy::PolicyError;
use crate::store::Snapshot;

/// The folder name of shared fixtures.
pub const TESTDATA: &str = "testdata";

/// The error Cerbos reports when a policy reads `now()` in a test without `options.now`.
pub const NOW_NOT_SET: &str =
    "a policy used a time-based condition, but `now` was not provided in the test options";

/// The outcome of one action, one suite or the whole run, ordered like
/// Cerbos's `TestResults.Result` so that the worst one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
pub enum Outcome {
    /// Nothing ran.
    #[default]
    #[serde(rename = "RESULT_UNSPECIFIED")]
    Unspecified,
    /// Skipped.
    #[serde(rename = "RESULT_SKIPPED")]
    Skipped,
    /// Met its expectation.
    #[serde(rename = "RESULT_PASSED")]
    Passed,
    /// Did not.
    #[serde(rename = "RESULT_FAILED")]
    Failed,
    /// Could not be run.
    #[serde(rename = "RESULT_ERRORED")]
    Errored,
}

impl Outcome {
    /// The short label of reports: `OK`, `FAILED`, ...
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Unspecified => "UNSPECIFIED",
            Outcome::Skipped => "SKIPPED",
            Outcome::Passed => "OK",
            Outcome::Failed => "FAILED",
            Outcome::Errored => "ERROR",
        }
    }
}

/// Every suite's results.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResults {
    /// One entry per suite file, in path order.
    pub suites: Vec<SuiteResult>,
    /// Counts over all suites.
    pub summary: Summary,
}

impl TestResults {
    /// Whether any test failed or any suite could not run.
    pub fn failed(&self) -> bool {
        self.summary.overall_result >= Outcome::Failed
    }
}

/// Counts of outcomes.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The worst outcome.
    pub overall_result: Outcome,
    /// Actions checked (one per principal × resource × action).
    #[serde(skip_serializing_if = "is_zero")]
    pub tests_count: u32,
    /// How many of each outcome, in outcome order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub result_counts: Vec<Tally>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Summary {
    fn add(&mut self, outcome: Outcome, count: u32) {
        match self.result_counts.iter_mut().find(|t| t.result == outcome) {
            Some(tally) => tally.count += count,
            None => {
                self.result_counts.push(Tally {
                    result: outcome,
                    count,
                });
                self.result_counts.sort_by_key(|t| t.result);
            }
        }
    }

    /// How many actions had `outcome`.
    pub fn count(&self, outcome: Outcome) -> u32 {
        self.result_counts
            .iter()
            .find(|t| t.result == outcome)
            .map_or(0, |t| t.count)
    }
}

/// One outcome's count.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    /// The outcome.
    pub result: Outcome,
    /// How many.
    pub count: u32,
}

/// The results of one suite file.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteResult {
    /// Path relative to the policy folder.
    pub file: String,
    /// Suite name (`Unknown` when the file does not parse).
    pub name: String,
    /// Suite description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Counts.
    pub summary: Summary,
    /// Results by test, principal, resource and action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_cases: Vec<TestCaseResult>,
    /// Why the suite could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the suite was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
}

/// One test table's results.
#[derive(Debug, Clone, Serialize)]
pub struct TestCaseResult {
    /// Test name.
    pub name: String,
    /// By principal name.
    pub principals: Vec<PrincipalResult>,
}

/// One principal's results within a test.
#[derive(Debug, Clone, Serialize)]
pub struct PrincipalResult {
    /// Principal name (the fixture key).
    pub name: String,
    /// By resource name.
    pub resources: Vec<ResourceResult>,
}

/// One resource's results for a principal.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceResult {
    /// Resource name (the fixture key).
    pub name: String,
    /// By action.
    pub actions: Vec<ActionResult>,
}

/// One action's result.
#[derive(Debug, Clone, Serialize)]
pub struct ActionResult {
    /// The action.
    pub name: String,
    /// What happened.
    pub details: Details,
}

/// What happened to one action.
#[derive(Debug, Clone, Serialize)]
pub struct Details {
    /// The outcome.
    pub result: Outcome,
    /// Its details.
    #[serde(flatten)]
    pub detail: Detail,
}

/// The outcome-specific part of [`Details`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Detail {
    /// The expectation was met.
    Success {
        /// The effect.
        effect: Effect,
        /// The outputs emitted for this action.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        outputs: Vec<OutputEntry>,
    },
    /// It was not.
    Failure {
        /// Expected effect.
        expected: Effect,
        /// Actual effect.
        actual: Effect,
        /// Output expectations that were not met.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        outputs: Vec<OutputFailure>,
    },
    /// The check could not be made.
    Error(String),
    /// The test was skipped.
    SkipReason(String),
}

/// An output as reported.
#[derive(Debug, Clone, Serialize)]
pub struct OutputEntry {
    /// `<policy key>#<rule name>`.
    pub src: String,
    /// The value.
    pub val: serde_json::Value,
    /// The action it was emitted for.
    pub action: String,
}

/// An output expectation that was not met.
#[derive(Debug, Clone, Serialize)]
pub struct OutputFailure {
    /// `<policy key>#<rule name>`.
    pub src: String,
    /// What went wrong.
    #[serde(flatten)]
    pub problem: OutputProblem,
}

/// How an output expectation failed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputProblem {
    /// A different value was emitted.
    Mismatched {
        /// What was emitted.
        actual: serde_json::Value,
        /// What was expected.
        expected: serde_json::Value,
    },
    /// Nothing was emitted under that `src`.
    Missing {
        /// What was expected.
        expected: serde_json::Value,
    },
}

/// Runs every suite under `root`. `index` is the set compiled with `base`
/// settings; tests whose options change the engine settings get their own
/// compilation of `snapshot`.
pub fn run(
    root: &Path,
    snapshot: &Snapshot,
    index: Arc<RuleIndex>,
    base: EngineSettings,
) -> std::io::Result<TestResults> {
    let (suite_files, fixture_dirs) = discover(root)?;
    let mut engines = Engines::new(snapshot, index, base);
    let mut fixtures: HashMap<String, Result<Arc<Fixtures>, String>> = HashMap::new();
    let mut results = TestResults::default();
    for file in suite_files {
        let dir = match file.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{TESTDATA}"),
            None => TESTDATA.to_string(),
        };
        let fixture = if fixture_dirs.contains(&dir) {
            fixtures
                .entry(dir.clone())
                .or_insert_with(|| Fixtures::load(root, &dir).map(Arc::new))
                .clone()
                .map(Some)
        } else {
            Ok(None)
        };
        let bytes = std::fs::read(root.join(&file))?;
        let suite = run_file(&file, &bytes, fixture, &mut engines);
        results.summary.tests_count += suite.summary.tests_count;
        for tally in &suite.summary.result_counts {
            results.summary.add(tally.result, tally.count);
        }
        results.summary.overall_result = results
            .summary
            .overall_result
            .max(suite.summary.overall_result);
        results.suites.push(suite);
    }
    Ok(results)
}

/// Finds suite files and fixture folders, as paths relative to `root` with
/// `/` separators, in the order Cerbos walks them.
pub fn discover(root: &Path) -> std::io::Result<(Vec<String>, BTreeSet<String>)> {
    let mut suites = Vec::new();
    let mut fixture_dirs = BTreeSet::new();
    walk(root, "", &mut suites, &mut fixture_dirs)?;
    Ok((suites, fixture_dirs))
}

fn walk(
    root: &Path,
    relative: &str,
    suites: &mut Vec<String>,
    fixture_dirs: &mut BTreeSet<String>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(relative))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = if relative.is_empty() {
            name.clone()
        } else {
            format!("{relative}/{name}")
        };
        if entry.path().is_dir() {
            if name == TESTDATA {
                fixture_dirs.insert(path);
            } else {
                walk(root, &path, suites, fixture_dirs)?;
            }
        } else if is_suite_file(&name) {
            suites.push(path);
        }
    }
    Ok(())
}

/// `*_test.yaml`, `*_test.yml` or `*_test.json` (extension in any case).
pub fn is_suite_file(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    matches!(ext.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json")
        && stem.to_lowercase().ends_with("_test")
}

/// The fixtures of one `testdata/` folder.
#[derive(Debug, Default)]
struct Fixtures {
    principals: Option<Parsed<PrincipalFixtures>>,
    resources: Option<Parsed<ResourceFixtures>>,
    aux_data: Option<Parsed<AuxDataFixtures>>,
}

impl Fixtures {
    fn load(root: &Path, dir: &str) -> Result<Fixtures, String> {
        let fail = |what: &str, errors: Vec<PolicyError>| {
            format!(
                "failed to load test fixtures from {dir}: failed to load {what}: {}",
                join(&errors)
            )
        };
        let mut fixtures = Fixtures::default();
        if let Some((name, bytes)) = read_one_of(root, dir, &["principals"])? {
            fixtures.principals = Some(
                testsuite::parse_principal_fixtures(&name, &bytes)
                    .map_err(|e| fail("principals", e))?,
            );
        }
        if let Some((name, bytes)) = read_one_of(root, dir, &["resources"])? {
            fixtures.resources = Some(
                testsuite::parse_resource_fixtures(&name, &bytes)
                    .map_err(|e| fail("resources", e))?,
            );
        }
        if let Some((name, bytes)) = read_one_of(root, dir, &["auxdata", "auxData", "aux_data"])? {
            fixtures.aux_data = Some(
                testsuite::parse_aux_data_fixtures(&name, &bytes)
                    .map_err(|e| fail("aux data", e))?,
            );
        }
        Ok(fixtures)
    }

    fn principal(&self, name: &str) -> Option<&PrincipalFixture> {
        self.principals.as_ref()?.value.principals.get(name)
    }

    fn resource(&self, name: &str) -> Option<&ResourceFixture> {
        self.resources.as_ref()?.value.resources.get(name)
    }

    fn aux_data(&self, name: &str) -> Option<&AuxDataFixture> {
        self.aux_data.as_ref()?.value.aux_data.get(name)
    }

    fn principal_group(&self, name: &str) -> Option<&Vec<String>> {
        self.principals
            .as_ref()?
            .value
            .principal_groups
            .get(name)
            .map(|g| &g.principals)
    }

    fn resource_group(&self, name: &str) -> Option<&Vec<String>> {
        self.resources
            .as_ref()?
            .value
            .resource_groups
            .get(name)
            .map(|g| &g.resources)
    }
}

/// Reads `dir/<base>.{yaml,yml,json}` for the first base name that exists.
fn read_one_of(
    root: &Path,
    dir: &str,
    bases: &[&str],
) -> Result<Option<(String, Vec<u8>)>, String> {
    for base in bases {
        for ext in ["yaml", "yml", "json"] {
            let name = format!("{dir}/{base}.{ext}");
            let path = root.join(&name);
            if path.is_file() {
                return std::fs::read(&path)
                    .map(|bytes| Some((name.clone(), bytes)))
                    .map_err(|e| format!("cannot read {name}: {e}"));
            }
        }
    }
    Ok(None)
}

fn join(errors: &[PolicyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Rule indexes by engine settings: tests may change the default version,
/// scope search or globals, which are compiled into the index.
struct Engines<'a> {
    snapshot: &'a Snapshot,
    base: EngineSettings,
    built: HashMap<String, Result<Arc<RuleIndex>, String>>,
}

impl<'a> Engines<'a> {
    fn new(snapshot: &'a Snapshot, index: Arc<RuleIndex>, base: EngineSettings) -> Self {
        let mut built = HashMap::new();
        built.insert(settings_key(&base), Ok(index));
        Engines {
            snapshot,
            base,
            built,
        }
    }

    fn index_for(&mut self, options: Option<&TestOptions>) -> Result<Arc<RuleIndex>, String> {
        let mut settings = self.base.clone();
        if let Some(options) = options {
            settings.lenient_scope_search = options.lenient_scope_search;
            if !options.default_policy_version.is_empty() {
                settings
                    .default_policy_version
                    .clone_from(&options.default_policy_version);
            }
            if !options.globals.is_empty() {
                settings.globals.clone_from(&options.globals);
            }
        }
        let snapshot = self.snapshot;
        self.built
            .entry(settings_key(&settings))
            .or_insert_with(|| {
                loader::build(snapshot, settings)
                    .map(Arc::new)
                    .map_err(|e| {
                        format!("the policy set does not compile with these test options: {e}")
                    })
            })
            .clone()
    }
}

fn settings_key(settings: &EngineSettings) -> String {
    serde_json::json!([
        settings.default_policy_version,
        settings.lenient_scope_search,
        settings.globals,
    ])
    .to_string()
}

/// Runs one suite file.
fn run_file(
    file: &str,
    bytes: &[u8],
    fixtures: Result<Option<Arc<Fixtures>>, String>,
    engines: &mut Engines<'_>,
) -> SuiteResult {
    let mut result = SuiteResult {
        file: file.to_string(),
        name: "Unknown".to_string(),
        ..SuiteResult::default()
    };
    let parsed = match testsuite::parse_suite(file, bytes) {
        Ok(parsed) => parsed,
        Err(errors) => {
            return errored(
                result,
                format!("failed to load test suite: {}", join(&errors)),
            );
        }
    };
    result.name.clone_from(&parsed.value.name);
    result.description.clone_from(&parsed.value.description);
    let fixtures = match fixtures {
        Ok(fixtures) => fixtures.unwrap_or_default(),
        Err(message) => return errored(result, message),
    };
    let run = SuiteRun {
        parsed: &parsed,
        fixtures: &fixtures,
    };
    if let Err(message) = run.check_groups() {
        return errored(result, message);
    }
    let suite = &parsed.value;
    if suite.skip {
        result.summary.overall_result = Outcome::Skipped;
        result.skip_reason = Some(suite.skip_reason.clone());
        return result;
    }
    let mut seen = BTreeSet::new();
    let duplicates: Vec<String> = suite
        .tests
        .iter()
        .filter(|t| !seen.insert(t.name.as_str()))
        .map(|t| {
            parsed
                .error_at("tests:", &format!("name: {}", t.name), {
                    format!("another test named {} already exists", t.name)
                })
                .to_string()
        })
        .collect();
    if !duplicates.is_empty() {
        return errored(
            result,
            format!("Invalid test suite: {}", duplicates.join("; ")),
        );
    }
    let mut tests = Vec::new();
    for table in &suite.tests {
        match run.build(table) {
            Ok(mut built) => tests.append(&mut built),
            Err(err) => {
                return errored(result, format!("Failed to load the test suite: {}", err));
            }
        }
    }
    for test in &tests {
        let outcomes = run.execute(test, engines);
        for (action, details) in outcomes {
            add_result(&mut result, test, &action, details);
        }
    }
    result
}

fn errored(mut result: SuiteResult, message: String) -> SuiteResult {
    result.summary.overall_result = Outcome::Errored;
    result.error = Some(message);
    result
}

fn add_result(result: &mut SuiteResult, test: &Test<'_>, action: &str, details: Details) {
    result.summary.tests_count += 1;
    result.summary.add(details.result, 1);
    result.summary.overall_result = result.summary.overall_result.max(details.result);
    let case = match result
        .test_cases
        .iter()
        .position(|c| c.name == test.table.name)
    {
        Some(i) => &mut result.test_cases[i],
        None => {
            result.test_cases.push(TestCaseResult {
                name: test.table.name.clone(),
                principals: Vec::new(),
            });
            result.test_cases.last_mut().expect("just pushed")
        }
    };
    let principal = match case
        .principals
        .iter()
        .position(|p| p.name == test.principal_key)
    {
        Some(i) => &mut case.principals[i],
        None => {
            case.principals.push(PrincipalResult {
                name: test.principal_key.clone(),
                resources: Vec::new(),
            });
            case.principals.last_mut().expect("just pushed")
        }
    };
    let resource = match principal
        .resources
        .iter()
        .position(|r| r.name == test.resource_key)
    {
        Some(i) => &mut principal.resources[i],
        None => {
            principal.resources.push(ResourceResult {
                name: test.resource_key.clone(),
                actions: Vec::new(),
            });
            principal.resources.last_mut().expect("just pushed")
        }
    };
    resource.actions.push(ActionResult {
        name: action.to_string(),
        details,
    });
}

/// What is expected of one principal and resource.
#[derive(Debug, Clone, Default)]
struct Expected {
    actions: BTreeMap<String, Effect>,
    outputs: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// One principal × resource of a test table.
struct Test<'s> {
    table: &'s TestTable,
    principal_key: String,
    resource_key: String,
    principal: &'s PrincipalFixture,
    resource: &'s ResourceFixture,
    aux_data: Option<&'s AuxDataFixture>,
    expected: Expected,
}

struct SuiteRun<'s> {
    parsed: &'s Parsed<TestSuite>,
    fixtures: &'s Fixtures,
}

impl<'s> SuiteRun<'s> {
    fn suite(&self) -> &'s TestSuite {
        &self.parsed.value
    }

    fn principal(&self, name: &str) -> Option<&'s PrincipalFixture> {
        self.suite()
            .principals
            .get(name)
            .or_else(|| self.fixtures.principal(name))
    }

    fn resource(&self, name: &str) -> Option<&'s ResourceFixture> {
        self.suite()
            .resources
            .get(name)
            .or_else(|| self.fixtures.resource(name))
    }

    fn principal_group(&self, name: &str) -> Option<&'s Vec<String>> {
        self.suite()
            .principal_groups
            .get(name)
            .map(|g| &g.principals)
            .or_else(|| self.fixtures.principal_group(name))
    }

    fn resource_group(&self, name: &str) -> Option<&'s Vec<String>> {
        self.suite()
            .resource_groups
            .get(name)
            .map(|g| &g.resources)
            .or_else(|| self.fixtures.resource_group(name))
    }

    /// The suite's own groups must name existing fixtures.
    fn check_groups(&self) -> Result<(), String> {
        for (group, def) in &self.suite().principal_groups {
            if let Some(missing) = def.principals.iter().find(|p| self.principal(p).is_none()) {
                let err = self.parsed.error_at(
                    "principalGroups",
                    missing,
                    format!("missing fixture {missing:?} referenced in group {group:?}"),
                );
                return Err(format!("Invalid principal groups in test suite: {err}"));
            }
        }
        for (group, def) in &self.suite().resource_groups {
            if let Some(missing) = def.resources.iter().find(|r| self.resource(r).is_none()) {
                let err = self.parsed.error_at(
                    "resourceGroups",
                    missing,
                    format!("missing fixture {missing:?} referenced in group {group:?}"),
                );
                return Err(format!("Invalid resource groups in test suite: {err}"));
            }
        }
        Ok(())
    }

    fn fail(&self, table: &TestTable, needle: &str, message: String) -> PolicyError {
        let anchor = format!("name: {}", table.name);
        self.parsed.error_at(
            &anchor,
            needle,
            format!("invalid test {:?}: {message}", table.name),
        )
    }

    /// Names from a single name, a list and groups, in order, without repeats.
    fn collect(
        &self,
        table: &TestTable,
        single: &str,
        names: &[String],
        groups: &[String],
        group: impl Fn(&str) -> Option<&'s Vec<String>>,
        what: &str,
    ) -> Result<Vec<String>, PolicyError> {
        let mut out: Vec<String> = if single.is_empty() {
            names.to_vec()
        } else {
            vec![single.to_string()]
        };
        let mut seen: BTreeSet<String> = out.iter().cloned().collect();
        for name in groups {
            let members = group(name).ok_or_else(|| {
                self.fail(table, name, format!("{what} group {name:?} not found"))
            })?;
            for member in members {
                if seen.insert(member.clone()) {
                    out.push(member.clone());
                }
            }
        }
        Ok(out)
    }

    /// Expands a table into one test per principal and resource.
    fn build(&self, table: &'s TestTable) -> Result<Vec<Test<'s>>, PolicyError> {
        let input = &table.input;
        let mut lookup: BTreeMap<(String, String), Expected> = BTreeMap::new();
        let mut order: Vec<(String, String)> = Vec::new();
        for expectation in &table.expected {
            let unreachable: Vec<&str> = expectation
                .outputs
                .iter()
                .map(|o| o.action.as_str())
                .filter(|a| !input.actions.iter().any(|i| i == a))
                .collect();
            if !unreachable.is_empty() {
                return Err(self.fail(
                    table,
                    unreachable[0],
                    format!(
                        "found output expectations for actions that are not in the input actions list: [{}]",
                        unreachable.join(",")
                    ),
                ));
            }
            let extra: Vec<&str> = expectation
                .actions
                .keys()
                .map(String::as_str)
                .filter(|a| !input.actions.iter().any(|i| i == a))
                .collect();
            let principals = self.collect(
                table,
                &expectation.principal,
                &expectation.principals,
                &expectation.principal_groups,
                |n| self.principal_group(n),
                "principal",
            )?;
            let resources = self.collect(
                table,
                &expectation.resource,
                &expectation.resources,
                &expectation.resource_groups,
                |n| self.resource_group(n),
                "resource",
            )?;
            if !extra.is_empty() && !principals.is_empty() && !resources.is_empty() {
                return Err(self.fail(
                    table,
                    extra[0],
                    format!(
                        "found expectations for actions that do not exist in the input actions list: [{}]",
                        extra.join(",")
                    ),
                ));
            }
            for principal in &principals {
                for resource in &resources {
                    let key = (principal.clone(), resource.clone());
                    let target = lookup.entry(key.clone()).or_insert_with(|| {
                        order.push(key.clone());
                        Expected::default()
                    });
                    for (action, effect) in &expectation.actions {
                        match target.actions.get(action) {
                            Some(old) if old != effect => {
                                return Err(self.fail(
                                    table,
                                    action,
                                    format!(
                                        "found inconsistent expectations for principal {principal:?} performing action {action:?} on resource {resource:?}"
                                    ),
                                ));
                            }
                            Some(_) => {}
                            None => {
                                target.actions.insert(action.clone(), *effect);
                            }
                        }
                    }
                    for output in &expectation.outputs {
                        let entries = target.outputs.entry(output.action.clone()).or_default();
                        for entry in &output.expected {
                            match entries.get(&entry.src) {
                                Some(old) if !json_eq(old, &entry.val) => {
                                    return Err(self.fail(
                                        table,
                                        &entry.src,
                                        format!(
                                            "found inconsistent expectations for output {:?} from principal {principal:?} performing action {:?} on resource {resource:?}",
                                            entry.src, output.action
                                        ),
                                    ));
                                }
                                Some(_) => {}
                                None => {
                                    entries.insert(entry.src.clone(), entry.val.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
        let principals = self.collect(
            table,
            "",
            &input.principals,
            &input.principal_groups,
            |n| self.principal_group(n),
            "principal",
        )?;
        let resources = self.collect(
            table,
            "",
            &input.resources,
            &input.resource_groups,
            |n| self.resource_group(n),
            "resource",
        )?;
        let aux_data = if input.aux_data.is_empty() {
            None
        } else {
            Some(
                self.suite()
                    .aux_data
                    .get(&input.aux_data)
                    .or_else(|| self.fixtures.aux_data(&input.aux_data))
                    .ok_or_else(|| {
                        self.fail(
                            table,
                            &input.aux_data,
                            format!("auxData {:?} not found", input.aux_data),
                        )
                    })?,
            )
        };
        let mut tests = Vec::new();
        for principal_key in &principals {
            for resource_key in &resources {
                let key = (principal_key.clone(), resource_key.clone());
                let expected = lookup.remove(&key).unwrap_or_default();
                let principal = self.principal(principal_key).ok_or_else(|| {
                    self.fail(
                        table,
                        principal_key,
                        format!("principal {principal_key:?} not found"),
                    )
                })?;
                let resource = self.resource(resource_key).ok_or_else(|| {
                    self.fail(
                        table,
                        resource_key,
                        format!("resource {resource_key:?} not found"),
                    )
                })?;
                tests.push(Test {
                    table,
                    principal_key: principal_key.clone(),
                    resource_key: resource_key.clone(),
                    principal,
                    resource,
                    aux_data,
                    expected,
                });
            }
        }
        if let Some((principal, resource)) = order.into_iter().find(|k| lookup.contains_key(k)) {
            return Err(self.fail(
                table,
                &principal,
                format!(
                    "found an expectation for principal {principal:?} and resource {resource:?}, but at least one of these is not present in input"
                ),
            ));
        }
        Ok(tests)
    }

    /// Checks every action of one test in one engine call, as Cerbos does.
    fn execute(&self, test: &Test<'_>, engines: &mut Engines<'_>) -> Vec<(String, Details)> {
        let actions = &test.table.input.actions;
        let every = |details: Details| -> Vec<(String, Details)> {
            actions
                .iter()
                .map(|a| (a.clone(), details.clone()))
                .collect()
        };
        if test.table.skip {
            return every(Details {
                result: Outcome::Skipped,
                detail: Detail::SkipReason(test.table.skip_reason.clone()),
            });
        }
        let options = test
            .table
            .options
            .as_ref()
            .or(self.suite().options.as_ref());
        let index = match engines.index_for(options) {
            Ok(index) => index,
            Err(message) => {
                return every(Details {
                    result: Outcome::Errored,
                    detail: Detail::Error(message),
                })
            }
        };
        let default_scope = options.map_or("", |o| o.default_scope.as_str());
        let scope = |s: &str| {
            if s.is_empty() {
                default_scope.to_string()
            } else {
                s.to_string()
            }
        };
        let principal = Principal {
            id: test.principal.id.clone(),
            roles: test.principal.roles.clone(),
            attr: test.principal.attr.clone(),
            policy_version: test.principal.policy_version.clone(),
            scope: scope(&test.principal.scope),
        };
        let resources = [ResourceCheck {
            resource: Resource {
                kind: test.resource.kind.clone(),
                id: test.resource.id.clone(),
                attr: test.resource.attr.clone(),
                policy_version: test.resource.policy_version.clone(),
                scope: scope(&test.resource.scope),
            },
            actions: actions.clone(),
        }];
        let aux = test.aux_data.map(|a| AuxData { jwt: a.jwt.clone() });
        let check = |now: DateTime<FixedOffset>| {
            engine::check(&index, &principal, aux.as_ref(), &resources, now)
                .into_iter()
                .next()
        };
        let actual = match options.and_then(TestOptions::now) {
            Some(now) => check(now),
            None => {
                // Cerbos evaluates with the zero time and fails the check if
                // a condition read it. The engine does not report reads of
                // now(), so a read is detected by a change of any decision
                // or output between two far-apart instants.
                let first = check(zero_time());
                if first != check(far_time()) {
                    return every(Details {
                        result: Outcome::Errored,
                        detail: Detail::Error(NOW_NOT_SET.to_string()),
                    });
                }
                first
            }
        };
        let Some(actual) = actual else {
            return every(Details {
                result: Outcome::Errored,
                detail: Detail::Error("Empty response from server".to_string()),
            });
        };
        actions
            .iter()
            .map(|action| (action.clone(), judge(test, action, &actual)))
            .collect()
    }
}

fn judge(test: &Test<'_>, action: &str, actual: &CheckResult) -> Details {
    let Some(decided) = actual.actions.iter().find(|a| a.action == action) else {
        return Details {
            result: Outcome::Errored,
            detail: Detail::Error(format!("no result for action {action:?}")),
        };
    };
    let expected = test
        .expected
        .actions
        .get(action)
        .copied()
        .unwrap_or(Effect::Deny);
    if expected != decided.effect {
        return Details {
            result: Outcome::Failed,
            detail: Detail::Failure {
                expected,
                actual: decided.effect,
                outputs: Vec::new(),
            },
        };
    }
    let outputs: Vec<OutputEntry> = actual
        .outputs
        .iter()
        .filter(|o| o.action == action)
        .map(|o| OutputEntry {
            src: o.src.clone(),
            val: o.val.clone().unwrap_or(serde_json::Value::Null),
            action: o.action.clone(),
        })
        .collect();
    if let Some(wanted) = test.expected.outputs.get(action) {
        let failures: Vec<OutputFailure> = wanted
            .iter()
            .filter_map(|(src, want)| {
                // The last value under a src wins, as in Cerbos's map of outputs.
                match outputs.iter().rev().find(|o| &o.src == src) {
                    None => Some(OutputFailure {
                        src: src.clone(),
                        problem: OutputProblem::Missing {
                            expected: want.clone(),
                        },
                    }),
                    Some(have) if !json_eq(&have.val, want) => Some(OutputFailure {
                        src: src.clone(),
                        problem: OutputProblem::Mismatched {
                            actual: have.val.clone(),
                            expected: want.clone(),
                        },
                    }),
                    Some(_) => None,
                }
            })
            .collect();
        if !failures.is_empty() {
            return Details {
                result: Outcome::Failed,
                detail: Detail::Failure {
                    expected,
                    actual: decided.effect,
                    outputs: failures,
                },
            };
        }
    }
    Details {
        result: Outcome::Passed,
        detail: Detail::Success {
            effect: decided.effect,
            outputs,
        },
    }
}

/// Equality of protobuf `Value`s: every number is a double.
pub fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Cerbos's stand-in for an unset `now`: Go's zero time, 0001-01-01T00:00:00Z.
fn zero_time() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z").expect("valid timestamp")
}

fn far_time() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").expect("valid timestamp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_file_names() {
        assert!(is_suite_file("album_test.yaml"));
        assert!(is_suite_file("album_TEST.YML"));
        assert!(is_suite_file("a_test.json"));
        assert!(!is_suite_file("album.yaml"));
        assert!(!is_suite_file("album_test.txt"));
        assert!(!is_suite_file("_test"));
    }

    #[test]
    fn numbers_compare_as_doubles() {
        use serde_json::json;
        assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_eq(&json!("1"), &json!(1)));
    }

    #[test]
    fn worst_outcome_wins() {
        let mut summary = Summary::default();
        summary.add(Outcome::Passed, 2);
        summary.add(Outcome::Skipped, 1);
        summary.add(Outcome::Passed, 1);
        assert_eq!(summary.count(Outcome::Passed), 3);
        assert_eq!(summary.result_counts[0].result, Outcome::Skipped);
        assert!(Outcome::Errored > Outcome::Failed && Outcome::Failed > Outcome::Passed);
    }
}
