//! The S3 store against a real S3-protocol server (`s3s` over `s3s-fs`) on
//! 127.0.0.1, through the real `aws-sdk-s3` client. Nothing is read from the
//! environment: endpoint and credentials are passed explicitly, so the tests
//! run the same with or without AWS credentials around, and in parallel.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::path::S3Path;
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Result};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use verdict::config::BlobConfig;
use verdict::store::s3::{ConnectOptions, S3Store, StaticCredentials};
use verdict::store::StoreError;

const ACCESS_KEY: &str = "verdict-test-access-key";
const SECRET_KEY: &str = "verdict-test-secret-key";
const BUCKET: &str = "verdict-policies";

/// What the server does with each request; every request is also recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Allow,
    DenyEverything,
    DenyObject(String),
    /// Answer `503 SlowDown` to this many requests, then allow.
    Throttle(usize),
}

/// An `S3Access` hook: it sees every authenticated request before s3s-fs does.
#[derive(Debug)]
struct Gate {
    rule: Mutex<Rule>,
    /// (operation name, object key) of every request, in arrival order.
    requests: Mutex<Vec<(String, Option<String>)>>,
}

impl Gate {
    fn decide(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let key = match cx.s3_path() {
            S3Path::Object { key, .. } => Some(key.to_string()),
            _ => None,
        };
        self.requests
            .lock()
            .unwrap()
            .push((cx.s3_op().name().to_string(), key.clone()));
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        let mut rule = self.rule.lock().unwrap();
        match &mut *rule {
            Rule::Allow => Ok(()),
            Rule::DenyEverything => Err(s3_error!(AccessDenied, "denied by test policy")),
            Rule::DenyObject(denied) if key.as_deref() == Some(denied.as_str()) => {
                Err(s3_error!(AccessDenied, "denied by test policy"))
            }
            Rule::DenyObject(_) => Ok(()),
            Rule::Throttle(0) => Ok(()),
            Rule::Throttle(remaining) => {
                *remaining -= 1;
                Err(s3_error!(SlowDown, "please reduce your request rate"))
            }
        }
    }

    fn count(&self, operation: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, _)| op == operation)
            .count()
    }

    fn fetched_keys(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, _)| op == "GetObject")
            .filter_map(|(_, key)| key.clone())
            .collect()
    }
}

#[derive(Clone)]
struct GateHandle(Arc<Gate>);

// `S3Access` is an `async_trait`; this is its expansion, written out because
// the crate does not re-export the macro and the decision needs no await.
impl S3Access for GateHandle {
    fn check<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        cx: &'life1 mut S3AccessContext<'life2>,
    ) -> Pin<Box<dyn Future<Output = S3Result<()>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let decision = self.0.decide(cx);
        Box::pin(async move { decision })
    }
}

/// An S3 server on a free loopback port, serving files under a temp dir.
/// Dropping it stops the server and removes the files.
struct TestServer {
    addr: SocketAddr,
    root: PathBuf,
    gate: Arc<Gate>,
    accept_loop: JoinHandle<()>,
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

impl TestServer {
    async fn start() -> TestServer {
        let root = std::env::temp_dir().join(format!(
            "verdict-s3-{}-{}",
            std::process::id(),
            SCRATCH.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();

        let gate = Arc::new(Gate {
            rule: Mutex::new(Rule::Allow),
            requests: Mutex::new(Vec::new()),
        });
        let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(&root).unwrap());
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        builder.set_access(GateHandle(Arc::clone(&gate)));
        let service = builder.build();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept_loop = tokio::spawn(async move {
            let http = ConnectionBuilder::new(TokioExecutor::new());
            // Owned here so that aborting the loop also aborts open connections.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                connections.spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        TestServer {
            addr,
            root,
            gate,
            accept_loop,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes an object straight into the served folder.
    fn put(&self, key: &str, body: &str) {
        let path = self.root.join(BUCKET).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    fn delete(&self, key: &str) {
        std::fs::remove_file(self.root.join(BUCKET).join(key)).unwrap();
    }

    fn set_rule(&self, rule: Rule) {
        *self.gate.rule.lock().unwrap() = rule;
    }

    /// A blob block pointing at this server, in the Lambda guide's form.
    fn config(&self, prefix: &str, extra: &str) -> BlobConfig {
        blob_config(&format!(
            "driver: s3\nbucket: {BUCKET}\nregion: us-east-1\nendpoint: {}\nprefix: {prefix:?}\nrequestTimeout: 5s\n{extra}",
            self.endpoint()
        ))
    }

    async fn store(&self, prefix: &str) -> S3Store {
        S3Store::connect_with(&self.config(prefix, ""), options())
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A listener that accepts connections and never answers.
struct SilentServer {
    addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl SilentServer {
    async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept_loop = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                if let Ok((socket, _)) = listener.accept().await {
                    held.push(socket);
                }
            }
        });
        SilentServer { addr, accept_loop }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

fn blob_config(yaml: &str) -> BlobConfig {
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// Explicit credentials and a short backoff: nothing comes from the environment.
fn options() -> ConnectOptions {
    ConnectOptions {
        region: None,
        endpoint: None,
        credentials: Some(StaticCredentials {
            access_key_id: ACCESS_KEY.to_string(),
            secret_access_key: SECRET_KEY.to_string(),
            session_token: None,
        }),
        initial_backoff: Duration::from_millis(20),
        ..ConnectOptions::default()
    }
}

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
