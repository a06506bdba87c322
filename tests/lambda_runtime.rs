//! The real `bootstrap` binary, driven through a Lambda Runtime API
//! emulator on 127.0.0.1 (see `lambda_support`), started with the
//! environment Lambda sets and `VERDICT_CONFIG` pointing at a test config.

mod lambda_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lambda_support::{Function, Outcome, RuntimeApi, TempDir};
use serde_json::{json, Value};

const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn event(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("events").join(name)).expect("fixture")
}

fn bootstrap() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bootstrap"))
}

/// A task root holding `config.yaml` for `policies`, plus `extra` config.
fn task_root(policies: &Path, extra: &str) -> (TempDir, PathBuf) {
    let root = TempDir::new("lambda-task");
    let config = root.write(
        "config.yaml",
        &format!(
            "server:\n  httpListenAddr: \":3592\"\nstorage:\n  driver: disk\n  disk:\n    directory: {}\n{extra}",
            policies.display()
        ),
    );
    (root, config)
}

fn start(api: &RuntimeApi, root: &TempDir, config: &Path) -> Function {
    start_with(api, root, config, &[])
}

/// [`start`] with more environment variables.
fn start_with(api: &RuntimeApi, root: &TempDir, config: &Path, extra: &[(&str, &str)]) -> Function {
    let config = config.to_str().expect("utf-8 path");
    let mut env = vec![("VERDICT_CONFIG", config)];
    env.extend_from_slice(extra);
    Function::start(bootstrap(), api, root.path(), &env).expect("spawn bootstrap")
}

/// The HTTP body inside the gateway response.
fn http_body(outcome: &Outcome) -> (u64, Value) {
    let response = outcome.json();
    let body = serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
    (response["statusCode"].as_u64().expect("statusCode"), body)
}

#[test]
fn first_answer_and_logs() {
    answers_and_logs(&[]);
}

/// The AWS-maintained loop, kept as a fallback, serves the same answers.
#[test]
fn lambda_runtime_loop_answers_and_logs_the_same() {
    answers_and_logs(&[("VERDICT_RUNTIME_LOOP", "lambda_runtime")]);
}

#[test]
fn unknown_runtime_loop_fails_init() {
    let api = RuntimeApi::start().expect("emulator");
    let (root, config) = task_root(&fixtures().join("policies"), "");
    let mut function = start_with(&api, &root, &config, &[("VERDICT_RUNTIME_LOOP", "fast")]);
    let posted = api.wait_init_error(ANSWER_TIMEOUT).expect("init error");
    assert_eq!(posted.json()["errorType"], "Runtime.InvalidEnvironment");
    let message = posted.json()["errorMessage"].as_str().unwrap().to_string();
    assert!(
        message.contains("VERDICT_RUNTIME_LOOP") && message.contains("\"fast\""),
        "{message}"
    );
    assert!(!function.wait_exit(ANSWER_TIMEOUT).expect("exit").success());
    assert_eq!(api.next_calls(), 0);
}

fn answers_and_logs(extra_env: &[(&str, &str)]) {
    let api = RuntimeApi::start().expect("emulator");
    let (root, config) = task_root(
        &fixtures().join("policies"),
        "audit:\n  enabled: true\n  decisionLogsEnabled: true\n",
    );
    let function = start_with(&api, &root, &config, extra_env);

    let outcome = api
        .invoke_with_id(
            "first-request-id",
            &event("http_v2_check.json"),
            ANSWER_TIMEOUT,
        )
        .expect("first answer");
    let (status, body) = http_body(&outcome);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actions"], json!({"view": "EFFECT_ALLOW"}));
    assert_eq!(body["requestId"], "test");

    for name in [
        "rest_v1_check_resources.json",
        "function_url_check_resources.json",
        "alb_check_resources.json",
    ] {
        let outcome = api.invoke(&event(name), ANSWER_TIMEOUT).expect("answer");
        let (status, body) = http_body(&outcome);
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(
            body["results"][0]["actions"],
            json!({"view": "EFFECT_ALLOW", "edit": "EFFECT_ALLOW", "delete": "EFFECT_DENY"}),
            "{name}"
        );
    }

    // A non-HTTP event is an invocation error, never a response.
    let outcome = api
        .invoke(br#"{"Records": []}"#, ANSWER_TIMEOUT)
        .expect("answer");
    match outcome {
        Outcome::Error(posted) => {
            assert_eq!(posted.json()["errorType"], "Verdict.UnsupportedEvent");
        }
        Outcome::Response(body) => panic!("answered {}", String::from_utf8_lossy(&body)),
    }

    // One snapshot, taken once the four decisions are logged: lines can
    // still be arriving (lambda_runtime logs an invocation error after
    // posting it), so two reads may differ.
    let raw = function.lines_when(ANSWER_TIMEOUT, |lines| {
        lines.iter().filter(|l| l.contains("\"decision\"")).count() >= 4
    });
    let all = raw.join("\n");
    let lines: Vec<Value> = raw
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines.len(), raw.len(), "every line is JSON:\n{all}");
    let cold: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "cold start: policies loaded")
        .collect();
    assert_eq!(cold.len(), 1, "{all}");
    let cold = cold[0];
    assert_eq!(cold["policies"], 1, "{cold}");
    assert!(cold["rules"].as_u64().unwrap() >= 3, "{cold}");
    assert!(cold["expressions"].as_u64().unwrap() >= 1, "{cold}");
    assert!(
        cold["loadMs"].is_number() && cold["compileMs"].is_number(),
        "{cold}"
    );
    assert!(!cold["revision"].as_str().unwrap().is_empty(), "{cold}");
    assert!(
        cold["store"].as_str().unwrap().ends_with("policies"),
        "{cold}"
    );
    let warning = lines
        .iter()
        .find(|l| l["level"] == "WARN")
        .unwrap_or_else(|| panic!("no warning for the server block:\n{all}"));
    assert!(warning["keys"].as_str().unwrap().contains("httpListenAddr"));
    let decision = lines
        .iter()
        .find(|l| l["message"] == "decision")
        .unwrap_or_else(|| panic!("no decision log:\n{all}"));
    assert_eq!(decision["requestId"], "first-request-id", "{decision}");
    assert!(
        decision["xrayTraceId"]
            .as_str()
            .is_some_and(|id| id.starts_with("Root=1-")),
        "{decision}"
    );
    assert_eq!(decision["decision"]["principal"]["id"], "alice");
    assert!(lines
        .iter()
        .filter(|l| l["message"] == "decision")
        .all(|l| l["requestId"].is_string()));
    println!("{all}");
}

#[test]
fn broken_policy_fails_init_and_serves_nothing() {
    let api = RuntimeApi::start().expect("emulator");
    let policies = TempDir::new("lambda-broken-policies");
    std::fs::copy(
        fixtures().join("policies/document.yaml"),
        policies.path().join("document.yaml"),
    )
    .expect("copy policy");
    // Line 6 has an unknown key.
    policies.write(
        "broken.yaml",
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: report\n  version: default\n  rules:\n    - actionz: [\"view\"]\n      roles: [\"editor\"]\n      effect: EFFECT_ALLOW\n",
    );
    let (root, config) = task_root(policies.path(), "");
    let mut function = start(&api, &root, &config);

    let posted = api
        .wait_init_error(ANSWER_TIMEOUT)
        .unwrap_or_else(|| panic!("no init error; logs:\n{}", function.lines().join("\n")));
    assert_eq!(
        posted.header("lambda-runtime-function-error-type"),
        Some("Verdict.PoliciesInvalid")
    );
    let report = posted.json();
    assert_eq!(report["errorType"], "Verdict.PoliciesInvalid");
    let message = report["errorMessage"].as_str().expect("errorMessage");
    assert!(message.contains("broken.yaml:6"), "{message}");

    let status = function
        .wait_exit(ANSWER_TIMEOUT)
        .expect("the process exits after the init error");
    assert!(!status.success(), "{status}");
    assert_eq!(api.next_calls(), 0, "nothing may be served");
    let logged = function.lines().join("\n");
    assert!(logged.contains("broken.yaml:6"), "{logged}");
    println!("init error: {message}\nexit: {status}");
}

#[test]
fn bad_config_fails_init() {
    let api = RuntimeApi::start().expect("emulator");
    let (root, config) = task_root(&fixtures().join("policies"), "engine:\n  nope: 1\n");
    let mut function = start(&api, &root, &config);
    let posted = api.wait_init_error(ANSWER_TIMEOUT).expect("init error");
    assert_eq!(posted.json()["errorType"], "Verdict.ConfigInvalid");
    assert!(posted.json()["errorMessage"]
        .as_str()
        .unwrap()
        .contains("nope"));
    assert!(!function.wait_exit(ANSWER_TIMEOUT).expect("exit").success());
    assert_eq!(api.next_calls(), 0);
}

#[test]
fn memory_is_stable_over_10000_invocations() {
    let api = RuntimeApi::start().expect("emulator");
    let (root, config) = task_root(&fixtures().join("policies"), "");
    let function = start(&api, &root, &config);
    let events = [
        event("http_v2_check_resources.json"),
        event("rest_v1_check.json"),
        event("function_url_check_resources.json"),
        event("alb_check.json"),
    ];
    let run = |count: usize| {
        for i in 0..count {
            let outcome = api
                .invoke(&events[i % events.len()], ANSWER_TIMEOUT)
                .expect("answer");
            assert_eq!(outcome.json()["statusCode"], 200);
        }
    };
    run(200);
    let warm = function.rss_kib().expect("VmRSS");
    // Each event carries a new trace id, as on Lambda: a copy of each one
    // kept (glibc's setenv does that) would be about 1.5 MB here.
    run(10_000);
    let end = function.rss_kib().expect("VmRSS");
    let growth = end.saturating_sub(warm);
    println!("VmRSS after warm-up: {warm} KiB; after 10000 more invocations: {end} KiB; growth: {growth} KiB");
    assert!(
        growth <= 1_024,
        "RSS grew by {growth} KiB over 10000 invocations"
    );
}
