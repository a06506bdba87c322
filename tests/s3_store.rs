//! The S3 store against a real S3-protocol server (`s3s` over `s3s-fs`) on
//! 127.0.0.1, through the real `aws-sdk-s3` client. Nothing is read from the
//! environment: endpoint and credentials are passed explicitly, so the tests
//! run the same with or without AWS credentials around, and in parallel.

#[path = "support/s3_server.rs"]
mod s3_server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use s3_server::*;
use tokio::net::TcpListener;
use verdict::store::s3::{ConnectOptions, S3Store, StaticCredentials};
use verdict::store::StoreError;

fn s3_message(err: &StoreError) -> String {
    assert!(
        matches!(err, StoreError::S3 { .. }),
        "not an S3 error: {err:?}"
    );
    let message = err.to_string();
    // Visible with --nocapture: these lines are what an operator reads.
    eprintln!("{message}");
    message
}

fn policy_body(i: usize) -> String {
    format!("apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n  resource: kind_{i}\n  rules: []\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loads_1000_policies_in_nested_folders_across_several_pages() {
    let server = TestServer::start().await;
    let mut expected = BTreeMap::new();
    for i in 0..1000 {
        let name = format!("team_{}/service_{}/policy_{i:04}.yaml", i % 10, i % 7);
        server.put(&format!("policies/{name}"), &policy_body(i));
        expected.insert(name, policy_body(i));
    }
    server.put("policies/README.md", "not a policy");
    server.put("policies/team_0/policy_0000_test.yaml", "a test suite");

    let store = S3Store::connect_with(
        &server.config("policies/", ""),
        ConnectOptions {
            page_size: Some(250),
            ..options()
        },
    )
    .await
    .unwrap();
    let snapshot = store.load().await.unwrap();

    let loaded: BTreeMap<_, _> = snapshot
        .policies
        .iter()
        .map(|f| (f.name.clone(), String::from_utf8(f.bytes.clone()).unwrap()))
        .collect();
    assert_eq!(loaded, expected);
    assert!(snapshot.schemas.is_empty());

    let timings = store.last_timings().unwrap();
    assert_eq!(timings.listed, 1002);
    assert_eq!(timings.fetched, 1000);
    assert_eq!(timings.pages, 5, "1,002 keys at 250 per page");
    assert_eq!(server.gate.count("ListObjectsV2"), 5);

    let fetched = server.gate.fetched_keys();
    let mut unique = fetched.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(fetched.len(), 1000, "every policy fetched");
    assert_eq!(unique.len(), 1000, "no object fetched twice");
    assert!(!fetched
        .iter()
        .any(|k| k.ends_with("README.md") || k.ends_with("_test.yaml")));

    eprintln!(
        "1,000 objects, 5 pages: list {:?}, fetch {:?}, {} bytes",
        timings.list, timings.fetch, timings.bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_load_timings_with_server_page_size() {
    let server = TestServer::start().await;
    for i in 0..1000 {
        server.put(
            &format!("p/folder_{}/policy_{i:04}.yaml", i % 20),
            &policy_body(i),
        );
    }
    let store = server.store("p").await;
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.policies.len(), 1000);
    let timings = store.last_timings().unwrap();
    assert_eq!(timings.pages, 1);
    eprintln!(
        "1,000 objects, 1 page: list {:?}, fetch {:?}, {} bytes",
        timings.list, timings.fetch, timings.bytes
    );
}

#[tokio::test]
async fn skips_what_cerbos_skips_and_names_schemas_relative_to_their_folder() {
    let server = TestServer::start().await;
    for key in [
        "policies/a.yaml",
        "policies/c.json",
        "policies/nested/deep/b.yml",
        "policies/.hidden.yaml",
        "policies/.git/config.yaml",
        "policies/nested/.secret/d.yaml",
        "policies/resources/testdata/fixture.yaml",
        "policies/tests/a_test.yaml",
        "policies/tests/b_test.yml",
        "policies/tests/c_test.json",
        "policies/README.md",
        "policies/notes.txt",
        "policies/_schemas/principal.json",
        "policies/_schemas/nested/resource.json",
        "policies-old/stale.yaml",
        "elsewhere/other.yaml",
    ] {
        server.put(key, key);
    }
    // No trailing slash: the prefix is a folder, so policies-old/ stays out.
    let snapshot = server.store("policies").await.load().await.unwrap();

    let policies: Vec<_> = snapshot.policies.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(policies, ["a.yaml", "c.json", "nested/deep/b.yml"]);
    let schemas: Vec<_> = snapshot.schemas.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(schemas, ["nested/resource.json", "principal.json"]);
    assert_eq!(
        snapshot.schemas[1].bytes,
        b"policies/_schemas/principal.json"
    );

    let mut fetched = server.gate.fetched_keys();
    fetched.sort();
    assert_eq!(
        fetched,
        [
            "policies/_schemas/nested/resource.json",
            "policies/_schemas/principal.json",
            "policies/a.yaml",
            "policies/c.json",
            "policies/nested/deep/b.yml",
        ]
    );
}

#[tokio::test]
async fn both_config_forms_and_env_endpoints_reach_the_same_bucket() {
    let server = TestServer::start().await;
    server.put("a.yaml", "a");
    let cerbos_form = blob_config(&format!(
        "bucket: \"s3://{BUCKET}?region=eu-west-1&endpoint={}\"",
        server.endpoint()
    ));
    let from_url = S3Store::connect_with(&cerbos_form, options())
        .await
        .unwrap()
        .load()
        .await
        .unwrap();
    let from_guide = server.store("").await.load().await.unwrap();
    assert_eq!(from_url.policies, from_guide.policies);
    assert_eq!(from_url.revision, from_guide.revision);

    // The Lambda environment's variables, through the same parser `connect` uses.
    let endpoint = server.endpoint();
    let lambda_env = |name: &str| match name {
        "AWS_REGION" => Some("us-east-1".to_string()),
        "AWS_ENDPOINT_URL_S3" => Some(endpoint.clone()),
        "AWS_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET_KEY.to_string()),
        _ => None,
    };
    let bare = blob_config(&format!("bucket: {BUCKET}"));
    let from_env = S3Store::connect_with(&bare, ConnectOptions::from_lookup(&lambda_env))
        .await
        .unwrap()
        .load()
        .await
        .unwrap();
    assert_eq!(from_env.policies, from_guide.policies);
}

#[tokio::test]
async fn missing_bucket_names_bucket_and_prefix() {
    let server = TestServer::start().await;
    let config = blob_config(&format!(
        "bucket: s3://no-such-bucket?region=us-east-1\nendpoint: {}\nprefix: policies/",
        server.endpoint()
    ));
    let store = S3Store::connect_with(&config, options()).await.unwrap();
    let err = store.load().await.unwrap_err();
    let message = s3_message(&err);
    assert!(
        message.starts_with("s3://no-such-bucket/policies/:"),
        "{message}"
    );
    assert!(
        message.contains("does not exist (NoSuchBucket)"),
        "{message}"
    );
    assert!(store.current_revision().await.is_err());
}

#[tokio::test]
async fn wrong_secret_is_reported_as_rejected_credentials() {
    let server = TestServer::start().await;
    server.put("policies/a.yaml", "a");
    let mut wrong = options();
    wrong.credentials = Some(StaticCredentials {
        access_key_id: ACCESS_KEY.to_string(),
        secret_access_key: "not-the-secret".to_string(),
        session_token: Some("a-session-token".to_string()),
    });
    let store = S3Store::connect_with(&server.config("policies/", ""), wrong)
        .await
        .unwrap();
    let message = s3_message(&store.load().await.unwrap_err());
    assert!(
        message.starts_with(&format!("s3://{BUCKET}/policies/:")),
        "{message}"
    );
    assert!(
        message.contains("access denied, the credentials were rejected"),
        "{message}"
    );
    assert!(!message.contains("not-the-secret"), "{message}");

    let mut unknown = options();
    unknown.credentials = Some(StaticCredentials {
        access_key_id: "AKIDUNKNOWN".to_string(),
        secret_access_key: SECRET_KEY.to_string(),
        session_token: None,
    });
    let store = S3Store::connect_with(&server.config("policies/", ""), unknown)
        .await
        .unwrap();
    let message = s3_message(&store.load().await.unwrap_err());
    assert!(
        message.contains("access denied, the credentials were rejected"),
        "{message}"
    );
}

#[tokio::test]
async fn forbidden_listing_says_which_permission_is_missing() {
    let server = TestServer::start().await;
    server.put("policies/a.yaml", "a");
    server.set_rule(Rule::DenyEverything);
    let message = s3_message(&server.store("policies/").await.load().await.unwrap_err());
    assert!(
        message.contains("ListObjectsV2 failed: access denied (HTTP 403 AccessDenied)"),
        "{message}"
    );
    assert!(
        message.contains(&format!("s3:ListBucket on arn:aws:s3:::{BUCKET}")),
        "{message}"
    );
    // A 403 is final: no retries.
    assert_eq!(server.gate.count("ListObjectsV2"), 1);
}

#[tokio::test]
async fn a_failed_download_names_the_object_and_yields_no_snapshot() {
    let server = TestServer::start().await;
    for i in 0..50 {
        server.put(&format!("policies/p{i:02}.yaml"), &policy_body(i));
    }
    server.set_rule(Rule::DenyObject("policies/p17.yaml".to_string()));
    let message = s3_message(&server.store("policies/").await.load().await.unwrap_err());
    assert!(
        message.starts_with(&format!(
            "s3://{BUCKET}/policies/p17.yaml: GetObject failed: access denied"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn empty_prefix_is_an_error_unless_allowed() {
    let server = TestServer::start().await;
    server.put("policies/README.md", "nothing to serve");
    server.put("policies/tests/x_test.yaml", "a suite is not a policy");

    let err = server.store("policies/").await.load().await.unwrap_err();
    assert!(matches!(err, StoreError::Empty { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no policy files found in s3://{BUCKET}/policies/")
    );
    assert!(server.gate.fetched_keys().is_empty());

    let allowed = S3Store::connect_with(&server.config("policies/", "allowEmpty: true"), options())
        .await
        .unwrap();
    let snapshot = allowed.load().await.unwrap();
    assert!(snapshot.policies.is_empty() && snapshot.schemas.is_empty());
    assert_eq!(snapshot.revision, allowed.current_revision().await.unwrap());

    let nothing_at_all = server
        .store("never-written/")
        .await
        .load()
        .await
        .unwrap_err();
    assert!(
        matches!(nothing_at_all, StoreError::Empty { .. }),
        "{nothing_at_all:?}"
    );
}

#[tokio::test]
async fn refused_connection_fails_fast_with_the_endpoint_named() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);

    let config = blob_config(&format!(
        "bucket: {BUCKET}\nendpoint: http://{addr}\nprefix: policies/\nrequestTimeout: 2s"
    ));
    let store = S3Store::connect_with(&config, options()).await.unwrap();
    let started = Instant::now();
    let message = s3_message(&store.load().await.unwrap_err());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(
        message.starts_with(&format!(
            "s3://{BUCKET}/policies/: ListObjectsV2 failed: cannot reach http://{addr}"
        )),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
}

#[tokio::test]
async fn silent_server_hits_request_timeout() {
    let silent = SilentServer::start().await;
    let config = blob_config(&format!(
        "bucket: {BUCKET}\nendpoint: http://{}\nprefix: policies/\nrequestTimeout: 300ms",
        silent.addr
    ));
    let store = S3Store::connect_with(
        &config,
        ConnectOptions {
            max_attempts: 2,
            ..options()
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    let message = s3_message(&store.current_revision().await.unwrap_err());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(600),
        "two attempts of 300ms, took {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(
        message.contains("no response from http://")
            && message.contains("within requestTimeout (300ms); gave up after 2 attempts"),
        "{message}"
    );
}

#[tokio::test]
async fn throttling_is_retried_a_bounded_number_of_times() {
    let server = TestServer::start().await;
    server.put("policies/a.yaml", "a");

    server.set_rule(Rule::Throttle(2));
    let snapshot = server.store("policies/").await.load().await.unwrap();
    assert_eq!(
        snapshot.policies.len(),
        1,
        "two SlowDowns are absorbed by retries"
    );
    assert_eq!(server.gate.count("ListObjectsV2"), 3);

    server.set_rule(Rule::Throttle(usize::MAX));
    let started = Instant::now();
    let message = s3_message(&server.store("policies/").await.load().await.unwrap_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        message.contains(
            "ListObjectsV2 failed: throttled (HTTP 503 SlowDown); gave up after 3 attempts"
        ),
        "{message}"
    );
    assert_eq!(
        server.gate.count("ListObjectsV2"),
        6,
        "three more attempts, then stop"
    );
}

#[tokio::test]
async fn revision_changes_exactly_when_a_served_file_changes() {
    let server = TestServer::start().await;
    server.put("policies/a.yaml", "first");
    server.put("policies/nested/b.yaml", "second");
    server.put("policies/_schemas/s.json", "{}");
    server.put("policies/README.md", "docs");
    let store = server.store("policies/").await;

    let snapshot = store.load().await.unwrap();
    let fetches = server.gate.count("GetObject");
    assert_eq!(store.current_revision().await.unwrap(), snapshot.revision);
    assert_eq!(store.current_revision().await.unwrap(), snapshot.revision);
    assert_eq!(
        server.gate.count("GetObject"),
        fetches,
        "a refresh check only lists"
    );

    // Files Cerbos ignores do not trigger a reload.
    server.put("policies/README.md", "more docs");
    server.put("policies/tests/a_test.yaml", "suite");
    assert_eq!(store.current_revision().await.unwrap(), snapshot.revision);

    // Same size, new contents: only the ETag (here the mtime) differs.
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.put("policies/a.yaml", "FIRST");
    let overwritten = store.current_revision().await.unwrap();
    assert_ne!(overwritten, snapshot.revision);
    assert_eq!(store.current_revision().await.unwrap(), overwritten);
    let reloaded = store.load().await.unwrap();
    assert_eq!(reloaded.revision, overwritten);
    assert_eq!(reloaded.policies[0].bytes, b"FIRST");

    server.put("policies/_schemas/s.json", "{\"type\": \"object\"}");
    let schema_changed = store.current_revision().await.unwrap();
    assert_ne!(schema_changed, overwritten);

    server.put("policies/c.yaml", "new");
    let added = store.current_revision().await.unwrap();
    assert_ne!(added, schema_changed);

    server.delete("policies/c.yaml");
    assert_eq!(store.current_revision().await.unwrap(), schema_changed);
}
