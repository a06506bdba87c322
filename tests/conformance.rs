//! Runs Cerbos's own engine test cases against Verdict.
//!
//! The cases and their policy store live outside the project, in the folder
//! named by `CONFORMANCE_DIR` (default `../shared/conformance`). Each case
//! file holds `inputs` (Cerbos check inputs) and `wantOutputs`; this runner
//! compares effects, the deciding policy and scope, effective derived roles,
//! outputs and validation errors, prints one line per case and a summary, and
//! fails when fewer than 95% of the cases pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use verdict::compile::{compile, EngineSettings, RuleIndex};
use verdict::config::SchemaEnforcement;
use verdict::engine::{self, AuxData, Principal, Resource, ResourceCheck};

fn conformance_dir() -> PathBuf {
    std::env::var_os("CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"))
}

#[derive(Deserialize)]
struct Case {
    #[serde(default)]
    description: String,
    #[serde(default)]
    inputs: Vec<Input>,
    #[serde(default, rename = "wantOutputs", alias = "want_outputs")]
    want_outputs: Vec<WantOutput>,
    #[serde(default, rename = "wantError")]
    want_error: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    #[serde(default)]
    actions: Vec<String>,
    principal: InPrincipal,
    resource: InResource,
    #[serde(default)]
    aux_data: Option<InAux>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InPrincipal {
    id: String,
    #[serde(default)]
    policy_version: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    attr: serde_json::Map<String, Value>,
    #[serde(default)]
    scope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InResource {
    kind: String,
    #[serde(default)]
    policy_version: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    attr: serde_json::Map<String, Value>,
    #[serde(default)]
    scope: String,
}

#[derive(Deserialize)]
struct InAux {
    #[serde(default)]
    jwt: serde_json::Map<String, Value>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct WantOutput {
    #[serde(default)]
    actions: BTreeMap<String, WantEffect>,
    #[serde(default, alias = "effective_derived_roles")]
    effective_derived_roles: Vec<String>,
    #[serde(default, alias = "validation_errors")]
    validation_errors: Vec<Value>,
    #[serde(default)]
    outputs: Vec<Value>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct WantEffect {
    effect: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    scope: String,
}

fn load_index(store: &Path, settings: EngineSettings) -> RuleIndex {
    let snapshot = verdict::store::disk::load(store).expect("conformance store loads");
    let (policies, errors) = verdict::policy::parse_set(&snapshot.policies);
    assert!(errors.is_empty(), "conformance store parses: {errors:#?}");
    compile(&policies, &snapshot.schemas, settings)
        .unwrap_or_else(|e| panic!("conformance store compiles: {e}"))
}

fn settings(lenient: bool, enforcement: SchemaEnforcement) -> EngineSettings {
    EngineSettings {
        lenient_scope_search: lenient,
        schema_enforcement: enforcement,
        globals: BTreeMap::from([("environment".to_string(), Value::from("test"))]),
        ..EngineSettings::default()
    }
}

fn sorted(mut values: Vec<Value>, key: &str) -> Vec<Value> {
    values.sort_by_key(|v| v.get(key).map(Value::to_string).unwrap_or_default());
    values
}

/// Runs one case; `Err` says what differs.
fn run_case(index: &RuleIndex, case: &Case) -> Result<(), String> {
    if case.want_error {
        return Err("wantError cases are not supported by this runner".to_string());
    }
    if case.inputs.len() != case.want_outputs.len() {
        return Err(format!(
            "{} inputs but {} wanted outputs",
            case.inputs.len(),
            case.want_outputs.len()
        ));
    }
    let now = chrono::Utc::now().fixed_offset();
    let mut problems = Vec::new();
    for (i, (input, want)) in case.inputs.iter().zip(&case.want_outputs).enumerate() {
        let principal = Principal {
            id: input.principal.id.clone(),
            roles: input.principal.roles.clone(),
            attr: input.principal.attr.clone(),
            policy_version: input.principal.policy_version.clone(),
            scope: input.principal.scope.clone(),
        };
        let check = ResourceCheck {
            resource: Resource {
                kind: input.resource.kind.clone(),
                id: input.resource.id.clone(),
                attr: input.resource.attr.clone(),
                policy_version: input.resource.policy_version.clone(),
                scope: input.resource.scope.clone(),
            },
            actions: input.actions.clone(),
        };
        let aux = input
            .aux_data
            .as_ref()
            .map(|a| AuxData { jwt: a.jwt.clone() });
        let got = engine::check(index, &principal, aux.as_ref(), &[check], now)
            .pop()
            .ok_or("no result")?;

        for (action, want_effect) in &want.actions {
            let Some(g) = got.actions.iter().find(|a| &a.action == action) else {
                problems.push(format!("input {i}: no result for {action}"));
                continue;
            };
            let got_effect = WantEffect {
                effect: match g.effect {
                    engine::Effect::Allow => "EFFECT_ALLOW".to_string(),
                    engine::Effect::Deny => "EFFECT_DENY".to_string(),
                },
                policy: g.policy.clone(),
                scope: g.scope.clone(),
            };
            if &got_effect != want_effect {
                problems.push(format!(
                    "input {i}: {action}: got {got_effect:?}, want {want_effect:?}"
                ));
            }
        }
        let mut got_roles = got.effective_derived_roles.clone();
        let mut want_roles = want.effective_derived_roles.clone();
        got_roles.sort();
        want_roles.sort();
        if got_roles != want_roles {
            problems.push(format!(
                "input {i}: effectiveDerivedRoles got {got_roles:?}, want {want_roles:?}"
            ));
        }
        let got_outputs: Vec<Value> = got
            .outputs
            .iter()
            .map(|o| {
                let mut entry = serde_json::json!({"src": o.src, "action": o.action});
                if let Some(val) = &o.val {
                    entry["val"] = val.clone();
                }
                entry
            })
            .collect();
        let (got_outputs, want_outputs) = (
            sorted(got_outputs, "src"),
            sorted(want.outputs.clone(), "src"),
        );
        if got_outputs != want_outputs {
            problems.push(format!(
                "input {i}: outputs got {got_outputs:?}, want {want_outputs:?}"
            ));
        }
        let got_validation: Vec<Value> = got
            .validation_errors
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect();
        let (got_validation, want_validation) = (
            sorted(got_validation, "path"),
            sorted(want.validation_errors.clone(), "path"),
        );
        let key = |v: &Vec<Value>| {
            let mut k: Vec<String> = v.iter().map(Value::to_string).collect();
            k.sort();
            k
        };
        if key(&got_validation) != key(&want_validation) {
            problems.push(format!(
                "input {i}: validationErrors got {got_validation:?}, want {want_validation:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n      "))
    }
}

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn cerbos_engine_cases() {
    let root = conformance_dir();
    if !root.join("store").is_dir() {
        eprintln!(
            "SKIPPED: no conformance data at {} (set CONFORMANCE_DIR)",
            root.display()
        );
        return;
    }
    let store = root.join("store");
    let suites = [
        ("engine", false, SchemaEnforcement::None),
        ("engine_strict_scope_search", false, SchemaEnforcement::None),
        ("engine_lenient_scope_search", true, SchemaEnforcement::None),
        (
            "engine_schema_enforcement/reject",
            false,
            SchemaEnforcement::Reject,
        ),
    ];
    let (mut passed, mut failed) = (0usize, Vec::new());
    for (folder, lenient, enforcement) in suites {
        let index = load_index(&store, settings(lenient, enforcement));
        for file in case_files(&root.join(folder)) {
            let name = format!(
                "{folder}/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            let text = std::fs::read_to_string(&file).expect("case file reads");
            let case: Case = match serde_yaml_ng::from_str(&text) {
                Ok(case) => case,
                Err(err) => {
                    println!("FAIL {name}: unreadable case: {err}");
                    failed.push(name);
                    continue;
                }
            };
            match run_case(&index, &case) {
                Ok(()) => {
                    println!("ok   {name} ({})", case.description);
                    passed += 1;
                }
                Err(why) => {
                    println!("FAIL {name} ({})\n      {why}", case.description);
                    failed.push(name);
                }
            }
        }
    }
    let total = passed + failed.len();
    println!("{passed} passed, {} failed", failed.len());
    assert!(
        total > 0,
        "no conformance cases found under {}",
        root.display()
    );
    assert!(
        passed * 100 >= total * 95,
        "only {passed} of {total} conformance cases pass; failing: {failed:?}"
    );
}
