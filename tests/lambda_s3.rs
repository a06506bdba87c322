//! The real `bootstrap`, started with exactly the environment template.yaml
//! gives the function (VERDICT_CONFIG on the layer's config, bucket and
//! prefix through `${ENV}` interpolation), loads the example policies from a
//! real S3-protocol server on 127.0.0.1 and answers through the Runtime API
//! emulator.

mod lambda_support;
#[path = "support/s3_server.rs"]
mod s3_server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lambda_support::{Function, RuntimeApi, TempDir};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_configuration_serves_policies_from_s3() {
    let server = TestServer::start().await;
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

    let api = RuntimeApi::start().expect("emulator");
    let task_root = TempDir::new("lambda-s3");
    let config = repo().join("examples/lambda-config/config.yaml");
    let endpoint = server.endpoint();
    // What template.yaml sets, plus what the Lambda service provides (role
    // credentials) and, for this local server, the S3 endpoint override.
    let env: Vec<(&str, &str)> = vec![
        ("VERDICT_CONFIG", config.to_str().expect("utf-8 path")),
        ("POLICY_BUCKET", BUCKET),
        ("POLICY_PREFIX", "policies/"),
        ("POLICY_POLL_INTERVAL", "60s"),
        ("RUST_LOG", "info"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", "session-token-from-the-role"),
        ("AWS_ENDPOINT_URL_S3", &endpoint),
    ];
    let event = std::fs::read(repo().join("examples/apigw-event.json")).expect("event");
    let function = tokio::task::spawn_blocking({
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_bootstrap"));
        let root = task_root.path().to_path_buf();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let function = Function::start(&binary, &api, &root, &env).expect("spawn bootstrap");
            let outcome = api.invoke(&event, Duration::from_secs(30));
            (function, outcome, api)
        }
    })
    .await
    .expect("join");
    let (function, outcome, _api) = function;
    let outcome = outcome.unwrap_or_else(|e| panic!("no answer: {e}\n{:#?}", function.lines()));
    let response = outcome.json();
    assert_eq!(
        response["statusCode"],
        200,
        "{response}\n{:#?}",
        function.lines()
    );
    let body: serde_json::Value =
        serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
    assert_eq!(body["actions"]["view"], "EFFECT_ALLOW", "{body}");

    // The cold-start line says where the policies came from.
    let logs = function.lines().join("\n");
    assert!(
        logs.contains(&format!("s3://{BUCKET}/policies/")),
        "cold-start log names the bucket: {logs}"
    );
    let policy_count = files
        .iter()
        .filter(|f| {
            let key = f.strip_prefix(&policies).unwrap_or(f).to_string_lossy();
            verdict::store::classify(&key) == verdict::store::FileRole::Policy
        })
        .count();
    assert_eq!(server.gate.count("GetObject"), policy_count);
}
