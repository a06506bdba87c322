//! `bootstrap check`: offline decisions from the built binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn bootstrap(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VERDICT_CONFIG")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bootstrap starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin written");
    }
    drop(input);
    child.wait_with_output().expect("bootstrap finishes")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn readme_request_is_allowed() {
    let out = bootstrap(
        &["check", "--policies", "policies", "examples/check.json"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let answer = &json_lines(&out)[0];
    assert_eq!(answer["requestId"], "test");
    assert_eq!(answer["resourceId"], "1");
    assert_eq!(answer["actions"]["view"], "EFFECT_ALLOW");
}

#[test]
fn default_config_file_reads_the_local_policies() {
    // No --policies: ./config.yaml (disk store on policies/) is discovered.
    let out = bootstrap(&["check", "examples/check.json"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json_lines(&out)[0]["actions"]["view"], "EFFECT_ALLOW");
    let out = bootstrap(
        &["check", "--config", "config.yaml", "examples/check.json"],
        None,
    );
    assert_eq!(json_lines(&out)[0]["actions"]["view"], "EFFECT_ALLOW");
}

#[test]
fn check_resources_form_with_outputs_and_meta() {
    let out = bootstrap(
        &[
            "check",
            "--policies",
            "policies",
            "examples/check_resources.json",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let answer = &json_lines(&out)[0];
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results[0]["actions"]["delete"], "EFFECT_ALLOW");
    assert_eq!(results[0]["meta"]["effectiveDerivedRoles"][0], "owner");
    assert_eq!(results[1]["actions"]["edit"], "EFFECT_DENY");
    assert_eq!(
        results[1]["outputs"][0]["src"],
        "resource.document.vdefault#public-view"
    );
}

#[test]
fn ndjson_answers_one_line_per_request() {
    let out = bootstrap(
        &[
            "check",
            "--policies",
            "policies",
            "--ndjson",
            "examples/requests.ndjson",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let answers = json_lines(&out);
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["requestId"], "n1");
    assert_eq!(answers[0]["actions"]["edit"], "EFFECT_ALLOW");
    assert_eq!(answers[1]["actions"]["delete"], "EFFECT_ALLOW");
    assert_eq!(answers[2]["results"][0]["actions"]["view"], "EFFECT_ALLOW");
    assert_eq!(answers[2]["results"][0]["actions"]["edit"], "EFFECT_DENY");
}

#[test]
fn ndjson_from_stdin_reports_bad_lines_and_fails() {
    let input = concat!(
        r#"{"requestId":"a","actions":["view"],"resource":{"kind":"document","id":"1"},"principal":{"id":"alice","roles":["editor"]}}"#,
        "\n\n",
        r#"{"requestId":"b","actions":["view"],"resource":{"kind":"document","id":"1"},"principal":{"id":"alice"}}"#,
        "\n",
    );
    let out = bootstrap(
        &["check", "--policies", "policies", "--ndjson", "-"],
        Some(input),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let answers = json_lines(&out);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["actions"]["view"], "EFFECT_ALLOW");
    assert_eq!(answers[1]["code"], 3, "{}", answers[1]);
}

#[test]
fn a_bad_value_in_a_check_resources_request_gets_that_form_s_error() {
    let input = concat!(
        r#"{"requestId":"a","principal":{"id":"alice","roles":["editor"]},"#,
        r#""resources":[{"actions":["view"],"resource":{"kind":"document","id":"1","attr":{"n":1e999}}}]}"#,
    );
    let out = bootstrap(&["check", "--policies", "policies", "-"], Some(input));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let answers = json_lines(&out);
    let message = answers[0]["message"].as_str().unwrap_or_default();
    assert_eq!(answers[0]["code"], 3, "{}", answers[0]);
    assert!(
        message.contains("resources[0].resource.attr.n"),
        "{message}"
    );
    assert!(!message.contains("unknown field"), "{message}");
}

#[test]
fn missing_policy_folder_is_an_error() {
    let out = bootstrap(
        &[
            "check",
            "--policies",
            "no/such/folder",
            "examples/check.json",
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no/such/folder"), "{stderr}");
}

#[test]
fn lambda_layer_config_reads_the_bucket_from_the_environment() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lambda-config/config.yaml");
    let text = std::fs::read_to_string(path).expect("layer config");
    let config = verdict::config::Config::from_yaml("config.yaml", &text, &|name| match name {
        "POLICY_BUCKET" => Some("team-policies".to_string()),
        "AWS_REGION" => Some("eu-west-1".to_string()),
        "POLICY_PREFIX" => Some("prod/policies/".to_string()),
        _ => None,
    })
    .expect("layer config parses");
    assert_eq!(config.storage.driver, verdict::config::StorageDriver::Blob);
    let blob = config.storage.blob.expect("blob block");
    let location = blob.location().expect("bucket location");
    assert_eq!(location.bucket, "team-policies");
    assert_eq!(location.region.as_deref(), Some("eu-west-1"));
    assert_eq!(blob.prefix, "prod/policies/");
    assert_eq!(
        blob.update_poll_interval,
        Some(std::time::Duration::from_secs(60))
    );
    // Without POLICY_BUCKET the config names the missing variable.
    let err = verdict::config::Config::from_yaml("config.yaml", &text, &|_| None).unwrap_err();
    assert!(err.to_string().contains("POLICY_BUCKET"), "{err}");
}

#[test]
fn default_config_file_is_the_disk_store() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
    let text = std::fs::read_to_string(path).expect("config.yaml");
    let config =
        verdict::config::Config::from_yaml("config.yaml", &text, &|_| None).expect("parses");
    assert_eq!(config.storage.driver, verdict::config::StorageDriver::Disk);
    assert_eq!(
        config.storage.disk.expect("disk").directory,
        Path::new("policies")
    );
}
