//! An S3-protocol server for tests: s3s + s3s-fs on a free 127.0.0.1 port,
//! with a gate that records and can refuse requests. Shared by the test
//! crates that need one; each uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::path::S3Path;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Result};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use verdict::config::BlobConfig;
use verdict::store::s3::{ConnectOptions, S3Store, StaticCredentials};

pub const ACCESS_KEY: &str = "verdict-test-access-key";
pub const SECRET_KEY: &str = "verdict-test-secret-key";
pub const BUCKET: &str = "verdict-policies";

/// What the server does with each request; every request is also recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Allow,
    DenyEverything,
    DenyObject(String),
    /// Answer `503 SlowDown` to this many requests, then allow.
    Throttle(usize),
}

/// An `S3Access` hook: it sees every authenticated request before s3s-fs does.
#[derive(Debug)]
pub struct Gate {
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

    pub fn count(&self, operation: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, _)| op == operation)
            .count()
    }

    pub fn fetched_keys(&self) -> Vec<String> {
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
pub struct GateHandle(Arc<Gate>);

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
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub gate: Arc<Gate>,
    accept_loop: JoinHandle<()>,
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

impl TestServer {
    pub async fn start() -> TestServer {
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
        let accept_loop = tokio::spawn(serve(listener, service));
        TestServer {
            addr,
            root,
            gate,
            accept_loop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes an object straight into the served folder.
    pub fn put(&self, key: &str, body: &str) {
        let path = self.root.join(BUCKET).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    pub fn delete(&self, key: &str) {
        std::fs::remove_file(self.root.join(BUCKET).join(key)).unwrap();
    }

    pub fn set_rule(&self, rule: Rule) {
        *self.gate.rule.lock().unwrap() = rule;
    }

    /// A blob block pointing at this server, in the Lambda guide's form.
    pub fn config(&self, prefix: &str, extra: &str) -> BlobConfig {
        blob_config(&format!(
            "driver: s3\nbucket: {BUCKET}\nregion: us-east-1\nendpoint: {}\nprefix: {prefix:?}\nrequestTimeout: 5s\n{extra}",
            self.endpoint()
        ))
    }

    pub async fn store(&self, prefix: &str) -> S3Store {
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

/// Serves S3 on `listener` until the returned future is dropped (or its
/// task aborted), which also drops every open connection.
pub async fn serve(listener: TcpListener, service: S3Service) {
    let http = ConnectionBuilder::new(TokioExecutor::new());
    // Owned here so that ending the loop also ends open connections.
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
}

/// A listener that accepts connections and never answers.
pub struct SilentServer {
    pub addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
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

pub fn blob_config(yaml: &str) -> BlobConfig {
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// Explicit credentials and a short backoff: nothing comes from the environment.
pub fn options() -> ConnectOptions {
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
