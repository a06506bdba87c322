//! Runs Cerbos's CEL test cases (`cel_eval/*.yaml` under `CONFORMANCE_DIR`).
//!
//! Each case is a condition, a request and the truth Cerbos gives it. The
//! condition is placed in a one-rule resource policy and checked through the
//! whole pipeline (parse, compile, evaluate), so what is tested is exactly
//! what a deployed policy would do. `now()` is the instant Cerbos's own tests
//! fix: 2021-04-22T10:05:20.021-05:00.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};
use verdict::compile::{compile, EngineSettings};
use verdict::engine::{self, AuxData, Effect, Principal, Resource, ResourceCheck};

fn conformance_dir() -> PathBuf {
    std::env::var_os("CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    condition: Value,
    request: Request,
    #[serde(default)]
    want: bool,
    #[serde(default)]
    want_error: bool,
    #[serde(default)]
    globals: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    principal: Party,
    resource: Party,
    #[serde(default)]
    aux_data: Option<Aux>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Party {
    #[serde(default)]
    id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    attr: serde_json::Map<String, Value>,
    #[serde(default)]
    policy_version: String,
    #[serde(default)]
    scope: String,
}

#[derive(Deserialize)]
struct Aux {
    #[serde(default)]
    jwt: serde_json::Map<String, Value>,
}

/// Whether the case's condition holds for its request.
fn holds(case: &Case) -> Result<bool, String> {
    let kind = if case.request.resource.kind.is_empty() {
        "cel_probe".to_string()
    } else {
        case.request.resource.kind.clone()
    };
    let version = if case.request.resource.policy_version.is_empty() {
        "default".to_string()
    } else {
        case.request.resource.policy_version.clone()
    };
    let scope = case.request.resource.scope.clone();
    // Scoped requests need the whole scope chain to exist.
    let mut documents = Vec::new();
    let mut scopes = vec![scope.clone()];
    scopes.extend(verdict::compile::names::scope_parents(&scope).map(str::to_string));
    for s in scopes {
        let mut rule = json!({"actions": ["probe"], "roles": ["*"], "effect": "EFFECT_ALLOW"});
        if s == scope {
            rule["condition"] = json!({"match": case.condition});
        }
        let policy = json!({
            "apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {"resource": kind, "version": version, "scope": s, "rules": [rule]}
        });
        documents.push(verdict::store::StoreFile {
            name: format!("probe{}.yaml", documents.len()),
            bytes: policy.to_string().into_bytes(),
        });
    }
    let (policies, errors) = verdict::policy::parse_set(&documents);
    if !errors.is_empty() {
        return Err(format!("{errors:?}"));
    }
    let settings = EngineSettings {
        globals: case.globals.clone().into_iter().collect(),
        ..EngineSettings::default()
    };
    let index = compile(&policies, &[], settings).map_err(|e| e.to_string())?;
    let principal = Principal {
        id: case.request.principal.id.clone(),
        roles: case.request.principal.roles.clone(),
        attr: case.request.principal.attr.clone(),
        policy_version: case.request.principal.policy_version.clone(),
        scope: case.request.principal.scope.clone(),
    };
    let check = ResourceCheck {
        resource: Resource {
            kind,
            id: case.request.resource.id.clone(),
            attr: case.request.resource.attr.clone(),
            policy_version: case.request.resource.policy_version.clone(),
            scope,
        },
        actions: vec!["probe".to_string()],
    };
    let aux = case
        .request
        .aux_data
        .as_ref()
        .map(|a| AuxData { jwt: a.jwt.clone() });
    let now = chrono::DateTime::parse_from_rfc3339("2021-04-22T10:05:20.021-05:00")
        .map_err(|e| e.to_string())?;
    let result = engine::check(&index, &principal, aux.as_ref(), &[check], now);
    Ok(result
        .first()
        .is_some_and(|r| r.effect("probe") == Effect::Allow))
}

#[test]
fn cerbos_cel_cases() {
    let dir = conformance_dir().join("cel_eval");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: no CEL cases at {} (set CONFORMANCE_DIR)",
            dir.display()
        );
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("cel_eval folder lists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(file).expect("case reads");
        let case: Case = serde_yaml_ng::from_str(&text).expect("case parses");
        // An evaluation error makes a condition false, which is what an
        // error case must show.
        let want = case.want && !case.want_error;
        match holds(&case) {
            Ok(got) if got == want => println!("ok   {name}"),
            Ok(got) => {
                println!("FAIL {name}: condition is {got}, want {want}");
                failed.push(name);
            }
            Err(why) => {
                println!("FAIL {name}: {why}");
                failed.push(name);
            }
        }
    }
    println!(
        "{} passed, {} failed",
        files.len() - failed.len(),
        failed.len()
    );
    assert!(!files.is_empty(), "no CEL cases in {}", dir.display());
    assert!(failed.is_empty(), "failing CEL cases: {failed:?}");
}
