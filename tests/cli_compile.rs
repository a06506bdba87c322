//! `bootstrap compile`: policy validation and Cerbos-format test suites.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

fn bootstrap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VERDICT_CONFIG")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("bootstrap runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scratch folder holding a copy of `policies/` plus `extra` files.
fn policy_copy(extra: &[(&str, &str)]) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "verdict-cli-compile-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dir,
    );
    for (name, body) in extra {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

const FAILING_SUITE: &str = r#"
name: Deliberately wrong
tests:
  - name: Bob may edit a stranger's draft
    input:
      principals: [bob]
      resources: [secret_plan]
      actions: [view, edit]
    expected:
      - principal: bob
        resource: secret_plan
        actions:
          edit: EFFECT_ALLOW
"#;

#[test]
fn example_policies_compile_and_their_suite_passes() {
    let out = bootstrap(&["compile", "policies"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{out:?}");
    assert!(
        text.contains("DocumentTestSuite (tests/document_test.yaml)"),
        "{text}"
    );
    assert!(text.contains("tests executed"), "{text}");
    assert!(
        !text.contains("FAILED") && !text.contains("ERROR"),
        "{text}"
    );
}

#[test]
fn json_report_has_cerbos_test_results() {
    let out = bootstrap(&["compile", "--output", "json", "policies"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["compiled"], true);
    let results = &report["testResults"];
    assert_eq!(results["summary"]["overallResult"], "RESULT_PASSED");
    assert!(results["summary"]["testsCount"].as_u64().unwrap() > 40);
    let suite = &results["suites"][0];
    assert_eq!(suite["file"], "tests/document_test.yaml");
    let action = &suite["testCases"][0]["principals"][0]["resources"][0]["actions"][0];
    assert_eq!(action["details"]["result"], "RESULT_PASSED");
    assert_eq!(action["details"]["success"]["effect"], "EFFECT_ALLOW");
}

#[test]
fn conformance_store_suites_pass_as_in_cerbos() {
    let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/store");
    if !store.is_dir() {
        eprintln!("skipped: {} is not here", store.display());
        return;
    }
    let out = bootstrap(&["compile", "--output", "json", store.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let files: Vec<&str> = report["testResults"]["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    // Cerbos runs suites wherever they are, including next to policies.
    assert_eq!(
        files,
        [
            "resource_policies/policy_04_test.yaml",
            "tests/policy_04_test.yaml",
            "tests/policy_05_test.yaml"
        ]
    );
    assert_eq!(report["testResults"]["summary"]["testsCount"], 3);
}

#[test]
fn broken_policy_gives_exit_1_and_file_line_col() {
    let dir = policy_copy(&[(
        "resource_policies/broken.yaml",
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: report\n  version: default\n  rules:\n    - actions: [view]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      conditon:\n        match:\n          expr: \"true\"\n",
    )]);
    let out = bootstrap(&["compile", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("resource_policies/broken.yaml:9:7:"),
        "{text}"
    );
    assert!(text.contains("conditon"), "{text}");

    let out = bootstrap(&["compile", "--output", "junit", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let xml = stdout(&out);
    assert!(
        xml.contains("name=\"resource_policies/broken.yaml:9:7\""),
        "{xml}"
    );
    assert!(xml.contains("<failure type=\"COMPILE_ERROR\""), "{xml}");

    let out = bootstrap(&["compile", "--output", "json", dir.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["compiled"], false);
    assert_eq!(
        report["problems"][0]["file"],
        "resource_policies/broken.yaml"
    );
    assert_eq!(report["problems"][0]["line"], 9);
    assert_eq!(report["problems"][0]["column"], 7);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_cel_is_reported_with_its_position() {
    let dir = policy_copy(&[(
        "resource_policies/bad_cel.yaml",
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: report\n  version: default\n  rules:\n    - actions: [view]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: R.attr.owner ==\n",
    )]);
    let out = bootstrap(&["compile", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("resource_policies/bad_cel.yaml:11:"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn failing_suite_fails_the_run_and_shows_in_junit() {
    let dir = policy_copy(&[("tests/wrong_test.yaml", FAILING_SUITE)]);
    let out = bootstrap(&["compile", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Bob may edit a stranger's draft › bob › secret_plan › edit [FAILED] expected: EFFECT_ALLOW, actual: EFFECT_DENY"),
        "{text}"
    );

    let out = bootstrap(&["compile", "--output", "junit", dir.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"Deliberately wrong\" file=\"tests/wrong_test.yaml\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\">"),
        "{xml}"
    );
    assert!(xml.contains("classname=\"bob.secret_plan.edit\""), "{xml}");
    assert!(
        xml.contains("<failure type=\"RESULT_FAILED\" message=\"Effect expectation unsatisfied\">expected: EFFECT_ALLOW, actual: EFFECT_DENY</failure>"),
        "{xml}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn suite_errors_name_file_line_and_col() {
    let missing = FAILING_SUITE
        .replace("Deliberately wrong", "Missing fixture")
        .replace("principals: [bob]", "principals: [zoe]")
        .replace("principal: bob", "principal: zoe");
    let dir = policy_copy(&[
        ("tests/missing_test.yaml", missing.as_str()),
        (
            "tests/typo_test.yaml",
            "name: typo\ntests:\n  - name: t\n    inputs: {}\n",
        ),
    ]);
    let out = bootstrap(&["compile", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("tests/missing_test.yaml:6:20: invalid test \"Bob may edit a stranger's draft\": principal \"zoe\" not found"),
        "{text}"
    );
    assert!(text.contains("tests/typo_test.yaml:4:5: "), "{text}");

    let out = bootstrap(&["compile", "-o", "junit", dir.to_str().unwrap()]);
    let xml = stdout(&out);
    assert!(xml.contains("<error type=\"RESULT_ERRORED\""), "{xml}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn skip_tests_only_validates() {
    let dir = policy_copy(&[("tests/wrong_test.yaml", FAILING_SUITE)]);
    let out = bootstrap(&["compile", "--skip-tests", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!stdout(&out).contains("Test results"));
    std::fs::remove_dir_all(dir).unwrap();
}
