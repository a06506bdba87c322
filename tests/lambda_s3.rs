//! The real `bootstrap`, started with exactly the environment template.yaml
//! gives the function (VERDICT_CONFIG on the layer's config, bucket and
//! prefix through `${ENV}` interpolation), loads the example policies from a
//! real S3-protocol server on 127.0.0.1 and answers through the Runtime API
//! emulator; and, when its poll interval has passed, picks up a changed
//! policy set between two invocations.

mod lambda_support;
#[path = "support/s3_server.rs"]
mod s3_server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lambda_support::{Function, Outcome, RuntimeApi, TempDir};
use s3_server::{TestServer, ACCESS_KEY, BUCKET, SECRET_KEY};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn policy_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("policies folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            policy_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Uploads the example policies under `policies/`; returns their paths.
fn upload_examples(server: &TestServer) -> Vec<PathBuf> {
    let policies = repo().join("policies");
    let mut files = Vec::new();
    policy_files(&policies, &mut files);
    for file in &files {
        let key = file
            .strip_prefix(&policies)
            .expect("inside policies")
            .to_string_lossy()
            .replace('\\', "/");
        let body = std::fs::read_to_string(file).expect("policy file");
        server.put(&format!("policies/{key}"), &body);
    }
    files
}

/// What template.yaml sets, plus what the Lambda service provides (role
/// credentials) and, for this local server, the S3 endpoint override.
fn deployed_env(server: &TestServer, poll_interval: &str) -> Vec<(String, String)> {
    let config = repo().join("examples/lambda-config/config.yaml");
    [
        ("VERDICT_CONFIG", config.to_str().expect("utf-8 path")),
        ("POLICY_BUCKET", BUCKET),
        ("POLICY_PREFIX", "policies/"),
        ("POLICY_POLL_INTERVAL", poll_interval),
        ("RUST_LOG", "info"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", "session-token-from-the-role"),
        ("AWS_ENDPOINT_URL_S3", &server.endpoint()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn example_event() -> Vec<u8> {
    std::fs::read(repo().join("examples/apigw-event.json")).expect("event")
}

/// Starts `bootstrap` under the emulator and sends it the example event.
async fn start_and_invoke(
    env: Vec<(String, String)>,
    task_root: &TempDir,
) -> (Function, Outcome, RuntimeApi) {
    let api = RuntimeApi::start().expect("emulator");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_bootstrap"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let function = Function::start(&binary, &api, task_root.path(), &env).expect("spawn bootstrap");
    let (outcome, api) = invoke_example(api, &function).await;
    (function, outcome, api)
}

/// Sends the example event and waits for the answer off the async runtime
/// that serves S3.
async fn invoke_example(api: RuntimeApi, function: &Function) -> (Outcome, RuntimeApi) {
    let (outcome, api) = tokio::task::spawn_blocking(move || {
        let outcome = api.invoke(&example_event(), Duration::from_secs(30));
        (outcome, api)
    })
    .await
    .expect("join");
    let outcome = outcome.unwrap_or_else(|e| panic!("no answer: {e}\n{:#?}", function.lines()));
    (outcome, api)
}

/// The decision for `view` in the answer to the example event.
fn view_effect(outcome: &Outcome, function: &Function) -> String {
    let response = outcome.json();
    assert_eq!(
        response["statusCode"],
        200,
        "{response}\n{:#?}",
        function.lines()
    );
    let body: serde_json::Value =
        serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
    body["actions"]["view"]
        .as_str()
        .unwrap_or_else(|| panic!("no view decision: {body}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_configuration_serves_policies_from_s3() {
    let server = TestServer::start().await;
    let files = upload_examples(&server);
    let task_root = TempDir::new("lambda-s3");
    let (function, outcome, _api) =
        start_and_invoke(deployed_env(&server, "60s"), &task_root).await;
    assert_eq!(view_effect(&outcome, &function), "EFFECT_ALLOW");

    // The cold-start line says where the policies came from.
    let bucket_prefix = format!("s3://{BUCKET}/policies/");
    let logs = function
        .lines_when(Duration::from_secs(10), |lines| {
            lines.iter().any(|l| l.contains(&bucket_prefix))
        })
        .join("\n");
    assert!(
        logs.contains(&bucket_prefix),
        "cold-start log names the bucket: {logs}"
    );
    let policies = repo().join("policies");
    let policy_count = files
        .iter()
        .filter(|f| {
            let key = f.strip_prefix(&policies).unwrap_or(f).to_string_lossy();
            verdict::store::classify(&key) == verdict::store::FileRole::Policy
        })
        .count();
    assert_eq!(server.gate.count("GetObject"), policy_count);
}

/// A principal policy that takes `view` on documents away from alice, the
/// example event's principal; principal policies win over resource ones.
const DENY_ALICE_VIEW: &str = "apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: alice
  version: default
  rules:
    - resource: document
      actions:
        - action: view
          effect: EFFECT_DENY
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_refresh_between_invocations_serves_the_changed_policies() {
    let server = TestServer::start().await;
    upload_examples(&server);
    let task_root = TempDir::new("lambda-s3-refresh");
    let (function, outcome, api) = start_and_invoke(deployed_env(&server, "1s"), &task_root).await;
    assert_eq!(view_effect(&outcome, &function), "EFFECT_ALLOW");
    let listings = server.gate.count("ListObjectsV2");

    server.put("policies/principal_policies/alice.yaml", DENY_ALICE_VIEW);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (outcome, api) = invoke_example(api, &function).await;
    assert_eq!(
        view_effect(&outcome, &function),
        "EFFECT_DENY",
        "{:#?}",
        function.lines()
    );
    assert!(server.gate.count("ListObjectsV2") > listings);
    let logs = function
        .lines_when(Duration::from_secs(10), |lines| {
            lines.iter().any(|l| l.contains("policies reloaded"))
        })
        .join("\n");
    assert!(logs.contains("policies reloaded"), "{logs}");

    // Within the interval, no further listing.
    let listings = server.gate.count("ListObjectsV2");
    let (outcome, _api) = invoke_example(api, &function).await;
    assert_eq!(view_effect(&outcome, &function), "EFFECT_DENY");
    assert_eq!(server.gate.count("ListObjectsV2"), listings);
}
