//! A Lambda Runtime API emulator and a `bootstrap` process driver, for tests
//! that run the real binary as Lambda would.
//!
//! [`RuntimeApi`] serves, on 127.0.0.1 and a free port:
//! - `GET /2018-06-01/runtime/invocation/next`: blocks until an event is
//!   queued with [`RuntimeApi::invoke`], then answers it with the
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`
//!   and `-Trace-Id` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error`;
//! - `POST /2018-06-01/runtime/init/error`.
//!
//! It is plain `std` (threads, `TcpListener`) so it works beside any async
//! runtime a test brings (e.g. an in-process S3 server). Dropping it stops
//! it: blocked `/next` calls get their connection closed, which ends the
//! function's runtime loop. [`Function`] starts `bootstrap` with the
//! environment Lambda sets, captures its stdout lines, and kills it on drop.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "/2018-06-01/runtime";

/// The function ARN the emulator hands out.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:verdict-test";

/// A request the function posted (an error report).
#[derive(Debug, Clone)]
pub struct Posted {
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Posted {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How an invocation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `POST .../{id}/response` with this body.
    Response(Vec<u8>),
    /// `POST .../{id}/error`.
    Error(Posted),
}

impl Outcome {
    /// The response body as JSON; panics on an error outcome.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Outcome::Response(body) => serde_json::from_slice(body).expect("response is JSON"),
            Outcome::Error(posted) => panic!(
                "invocation failed: {:?} {}",
                posted.header("lambda-runtime-function-error-type"),
                String::from_utf8_lossy(&posted.body)
            ),
        }
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Vec<u8>)>,
    outcomes: HashMap<String, Outcome>,
    /// When each event was handed to the function, until it answers.
    delivered: HashMap<String, Instant>,
    /// How long the function held each answered event: from the end of the
    /// `/next` response to the arrival of its answer, what Lambda bills.
    held: HashMap<String, Duration>,
    init_error: Option<Posted>,
    next_calls: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The emulator. Stops when dropped.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    counter: AtomicU64,
}

impl RuntimeApi {
    /// Listens on 127.0.0.1 and a free port.
    pub fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.lock().shutdown {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve_connection(stream, &shared));
            }
        });
        Ok(RuntimeApi {
            address,
            shared,
            acceptor: Some(acceptor),
            counter: AtomicU64::new(0),
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues an event and waits for the function's answer.
    pub fn invoke(&self, event: &[u8], timeout: Duration) -> Result<Outcome, String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n);
        self.invoke_with_id(&id, event, timeout)
    }

    /// Like [`RuntimeApi::invoke`] with a chosen request id.
    pub fn invoke_with_id(
        &self,
        id: &str,
        event: &[u8],
        timeout: Duration,
    ) -> Result<Outcome, String> {
        self.invoke_timed(id, event, timeout)
            .map(|(outcome, _)| outcome)
    }

    /// Like [`RuntimeApi::invoke_with_id`], also returning how long the
    /// function held the event (the billed duration, without the emulator's
    /// own queueing and thread hand-offs).
    pub fn invoke_timed(
        &self,
        id: &str,
        event: &[u8],
        timeout: Duration,
    ) -> Result<(Outcome, Duration), String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        state.queue.push_back((id.to_string(), event.to_vec()));
        self.shared.changed.notify_all();
        loop {
            if let Some(outcome) = state.outcomes.remove(id) {
                let held = state.held.remove(id).unwrap_or_default();
                return Ok((outcome, held));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("no answer to invocation {id} within {timeout:?}"));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits for a `POST /runtime/init/error`.
    pub fn wait_init_error(&self, timeout: Duration) -> Option<Posted> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(posted) = state.init_error.clone() {
                return Some(posted);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// How many times the function asked for the next event.
    pub fn next_calls(&self) -> usize {
        self.shared.lock().next_calls
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    // Keep-alive: the runtime's client reuses the connection.
    while let Some(request) = read_request(&mut reader) {
        if !answer(&request, &mut writer, shared) {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("content-length") {
        let mut buf = vec![0; length.parse().ok()?];
        reader.read_exact(&mut buf).ok()?;
        body = buf;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(
    writer: &mut TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> bool {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // One write: with TCP_NODELAY, head and body would go as two segments.
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    writer.write_all(&message).is_ok() && writer.flush().is_ok()
}

fn accepted(writer: &mut TcpStream) -> bool {
    let json = [("content-type".to_string(), "application/json".to_string())];
    respond(writer, "202 Accepted", &json, br#"{"status":"OK"}"#)
}

/// Answers one request; false closes the connection.
fn answer(request: &Request, writer: &mut TcpStream, shared: &Shared) -> bool {
    let path = request.path.strip_prefix(PREFIX).unwrap_or("");
    let posted = || Posted {
        headers: request.headers.clone(),
        body: request.body.clone(),
    };
    match (request.method.as_str(), path) {
        ("GET", "/invocation/next") => {
            let mut state = shared.lock();
            state.next_calls += 1;
            let sequence = state.next_calls;
            shared.changed.notify_all();
            let (id, event) = loop {
                if state.shutdown {
                    // Closing the connection ends the function's loop.
                    return false;
                }
                if let Some(next) = state.queue.pop_front() {
                    break next;
                }
                state = shared
                    .changed
                    .wait_timeout(state, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            };
            drop(state);
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() + 60_000)
                .unwrap_or_default();
            let headers = [
                ("content-type", "application/json".to_string()),
                ("lambda-runtime-aws-request-id", id.clone()),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    FUNCTION_ARN.to_string(),
                ),
                // New for every invocation, as Lambda's are.
                (
                    "lambda-runtime-trace-id",
                    format!(
                        "Root=1-{:08x}-{sequence:024x};Parent={sequence:016x};Sampled=0",
                        deadline / 1000
                    ),
                ),
            ]
            .map(|(k, v)| (k.to_string(), v));
            // Stamped before writing: a fast function may answer before
            // `respond` returns.
            shared.lock().delivered.insert(id, Instant::now());
            respond(writer, "200 OK", &headers, &event)
        }
        ("POST", "/init/error") => {
            let mut state = shared.lock();
            state.init_error = Some(posted());
            shared.changed.notify_all();
            drop(state);
            accepted(writer)
        }
        ("POST", p) if p.starts_with("/invocation/") => {
            let rest = &p["/invocation/".len()..];
            let outcome = if let Some(id) = rest.strip_suffix("/response") {
                Some((id, Outcome::Response(request.body.clone())))
            } else {
                rest.strip_suffix("/error")
                    .map(|id| (id, Outcome::Error(posted())))
            };
            match outcome {
                Some((id, outcome)) => {
                    let mut state = shared.lock();
                    if let Some(delivered) = state.delivered.remove(id) {
                        state.held.insert(id.to_string(), delivered.elapsed());
                    }
                    state.outcomes.insert(id.to_string(), outcome);
                    shared.changed.notify_all();
                    drop(state);
                    accepted(writer)
                }
                None => respond(writer, "404 Not Found", &[], b""),
            }
        }
        _ => respond(writer, "404 Not Found", &[], b""),
    }
}

/// A temporary folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates an empty folder under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("verdict-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file (creating folders) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `bootstrap` process. Killed on drop.
pub struct Function {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Function {
    /// Starts `binary` with no arguments and the environment Lambda's
    /// `provided.al2023` runtime sets, plus `extra` (e.g. `VERDICT_CONFIG`).
    /// The working directory is `task_root`, as `/var/task` is on Lambda.
    pub fn start(
        binary: &Path,
        api: &RuntimeApi,
        task_root: &Path,
        extra: &[(&str, &str)],
    ) -> std::io::Result<Function> {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .current_dir(task_root)
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("LAMBDA_TASK_ROOT", task_root)
            .env("LAMBDA_RUNTIME_DIR", task_root)
            .env("AWS_LAMBDA_FUNCTION_NAME", "verdict-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/verdict-test")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2024/03/12/[$LATEST]0123456789abcdef",
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.spawn()?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let lines = Arc::clone(&stdout);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            }));
        }
        Ok(Function {
            child,
            stdout,
            readers,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lines written to stdout and stderr so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lines once `done` holds for them, or when `timeout` passes.
    /// Logs reach the test through reader threads, so a line written before
    /// an answer was posted may still be on its way when the answer arrives.
    pub fn lines_when(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if done(&lines) || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit, and for its output to be read.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size from `/proc/<pid>/status`, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}
