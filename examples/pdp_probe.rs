//! One measured run of a PDP, for `scripts/bench_vs_cerbos.py`: a cold start
//! to the first decision, then warm decisions, then peak RSS, printed as one
//! JSON line. Native on both sides, so neither PDP is measured through a
//! slow client.
//!
//! ```text
//! pdp_probe verdict BOOTSTRAP CONFIG BODY_1 BODY_10 WARM [NAME=VALUE ...]
//! pdp_probe cerbos  CERBOS POLICY_DIR BODY_1 BODY_10 WARM
//! ```
//!
//! BODY_1 and BODY_10 are CheckResources request bodies. Verdict runs under
//! the Runtime API emulator the integration tests use, on 127.0.0.1, with the
//! environment Lambda sets (plus NAME=VALUE pairs); each body is sent as an
//! HTTP API event, and a warm decision is the time the function held the
//! event (what Lambda bills). Cerbos runs as `cerbos server` on free loopback
//! ports; a warm decision is one `POST /api/check/resources` round trip on
//! one keep-alive connection. Cold start is exec to the first decision.
//! Between the first decision and the warm requests, each PDP sits idle for
//! 500 ms, or `PDP_PROBE_SETTLE_MS` (see [`settle`]).

#[path = "../tests/lambda_support/mod.rs"]
mod lambda_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use lambda_support::{Function, Outcome, RuntimeApi};
use serde_json::{json, Value};

const FIRST_DECISION_TIMEOUT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("verdict") if args.len() >= 6 => probe_verdict(&args[1..]),
        Some("cerbos") if args.len() == 6 => probe_cerbos(&args[1..]),
        _ => Err("usage: pdp_probe verdict BOOTSTRAP CONFIG BODY_1 BODY_10 WARM [NAME=VALUE ...]\n       \
                  pdp_probe cerbos CERBOS POLICY_DIR BODY_1 BODY_10 WARM"
            .to_string()),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("pdp_probe: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Bodies {
    one: Vec<u8>,
    ten: Vec<u8>,
    warm: usize,
}

fn bodies(one: &str, ten: &str, warm: &str) -> Result<Bodies, String> {
    let read = |path: &str| std::fs::read(path).map_err(|err| format!("{path}: {err}"));
    Ok(Bodies {
        one: read(one)?,
        ten: read(ten)?,
        warm: warm
            .parse()
            .map_err(|err| format!("WARM {warm:?}: {err}"))?,
    })
}

fn probe_verdict(args: &[String]) -> Result<Value, String> {
    // Absolute: the function runs in its task root, not here.
    let absolute = |path: &str| std::path::absolute(path).map_err(|err| format!("{path}: {err}"));
    let binary = absolute(&args[0])?;
    let config = absolute(&args[1])?;
    let bodies = bodies(&args[2], &args[3], &args[4])?;
    let mut extra = vec![("VERDICT_CONFIG".to_string(), config.display().to_string())];
    for pair in &args[5..] {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not NAME=VALUE"))?;
        extra.push((name.to_string(), value.to_string()));
    }
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The task root must not be the policy folder: the config would be read as a policy.
    let task_root = config.parent().unwrap_or(Path::new("."));
    let event_one = http_api_event(&bodies.one);
    let event_ten = http_api_event(&bodies.ten);

    let api = RuntimeApi::start().map_err(|err| format!("runtime API emulator: {err}"))?;
    let started = Instant::now();
    let function = Function::start(&binary, &api, task_root, &extra)
        .map_err(|err| format!("{}: {err}", binary.display()))?;
    let (first, _) = api.invoke_timed("cold-0", &event_one, FIRST_DECISION_TIMEOUT)?;
    let cold = started.elapsed();
    let cold_cpu = cpu_time(function.pid());
    expect_allow(&first, &function)?;

    let mut report = json!({ "cold_ms": millis(cold), "phases": cold_start_phases(&function) });
    if let Some(cpu) = cold_cpu {
        report["cold_cpu_ms"] = json!(millis(cpu));
    }
    settle(&mut report)?;
    for (shape, event) in [("1x3", &event_one), ("10x3", &event_ten)] {
        let mut held = Vec::with_capacity(bodies.warm);
        let cpu_before = cpu_time(function.pid());
        let faults_before = minor_faults(function.pid());
        let migrations_before = migrations(function.pid());
        for n in 0..bodies.warm {
            let (outcome, duration) =
                api.invoke_timed(&format!("{shape}-{n}"), event, Duration::from_secs(10))?;
            expect_allow(&outcome, &function)?;
            held.push(duration);
        }
        if let (Some(before), Some(after), Ok(count)) = (
            cpu_before,
            cpu_time(function.pid()),
            u32::try_from(bodies.warm),
        ) {
            if count > 0 {
                let per_invocation = after.saturating_sub(before) / count;
                report[format!("cpu_{shape}_us")] = json!(per_invocation.as_secs_f64() * 1e6);
            }
        }
        if let (Some(before), Some(after)) = (faults_before, minor_faults(function.pid())) {
            report[format!("faults_{shape}")] =
                json!(after.saturating_sub(before) as f64 / bodies.warm.max(1) as f64);
        }
        if let (Some(before), Some(after)) = (migrations_before, migrations(function.pid())) {
            report[format!("migrations_{shape}")] =
                json!(after.saturating_sub(before) as f64 / bodies.warm.max(1) as f64);
        }
        add_percentiles(&mut report, shape, &mut held);
    }
    report["rss_mb"] = json!(peak_rss_mb(function.pid())?);
    for (key, field) in [("rss_anon_mb", "RssAnon:"), ("rss_file_mb", "RssFile:")] {
        if let Ok(mb) = status_mb(function.pid(), field) {
            report[key] = json!(mb);
        }
    }
    Ok(report)
}

/// The phase timings `bootstrap` logs at cold start (store read, compile,
/// S3 list and fetch), to see where a cold start went.
fn cold_start_phases(function: &Function) -> Value {
    const FIELDS: [&str; 5] = ["loadMs", "compileMs", "initMs", "list_ms", "fetch_ms"];
    let mut phases = serde_json::Map::new();
    let lines = function.lines_when(Duration::from_millis(500), |lines| {
        lines.iter().any(|line| line.contains("\"initMs\""))
    });
    for line in lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
    {
        for field in FIELDS {
            if let Some(value) = line
                .get(field)
                .or_else(|| line.pointer(&format!("/fields/{field}")))
            {
                phases.insert(field.to_string(), value.clone());
            }
        }
    }
    Value::Object(phases)
}

fn expect_allow(outcome: &Outcome, function: &Function) -> Result<(), String> {
    match outcome {
        Outcome::Response(body) if contains(body, b"EFFECT_ALLOW") => Ok(()),
        Outcome::Response(body) => Err(format!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&body[..body.len().min(400)])
        )),
        Outcome::Error(posted) => Err(format!(
            "invocation failed: {}\n{}",
            String::from_utf8_lossy(&posted.body),
            function.lines().join("\n")
        )),
    }
}

/// How long both PDPs sit idle between their first decision and the warm
/// loop, unless `PDP_PROBE_SETTLE_MS` says otherwise.
const SETTLE: Duration = Duration::from_millis(500);

/// Leaves the PDP idle for [`SETTLE`] before the warm loop. Linux's
/// scheduler keeps a decaying average of each task's recent CPU use (half
/// life 32 ms), and on a 2-vCPU VM that average, carried from the cold
/// start's burst, sways whether a woken function is moved to the waker's
/// vCPU (cheap hand-offs) or woken on its own (an idle-vCPU wake-up per
/// hand-off), and the choice tends to hold for the rest of the run
/// (BENCHMARKS.md). The same pause for both PDPs measures their warm cost,
/// not how recently they compiled.
fn settle(report: &mut Value) -> Result<(), String> {
    let settle = match std::env::var("PDP_PROBE_SETTLE_MS") {
        Ok(ms) => Duration::from_millis(
            ms.parse()
                .map_err(|err| format!("PDP_PROBE_SETTLE_MS {ms:?}: {err}"))?,
        ),
        Err(_) => SETTLE,
    };
    std::thread::sleep(settle);
    report["settle_ms"] = json!(millis(settle));
    Ok(())
}

/// An API Gateway HTTP API (payload 2.0) event carrying `body`.
fn http_api_event(body: &[u8]) -> Vec<u8> {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/api/check/resources",
        "rawQueryString": "",
        "headers": { "content-type": "application/json", "host": "bench.local" },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.local",
            "domainPrefix": "bench",
            "http": {
                "method": "POST",
                "path": "/api/check/resources",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pdp_probe"
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_564_800_000_u64
        },
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false
    })
    .to_string()
    .into_bytes()
}

fn probe_cerbos(args: &[String]) -> Result<Value, String> {
    let binary = &args[0];
    let policies = &args[1];
    let bodies = bodies(&args[2], &args[3], &args[4])?;
    let http_port = free_port()?;
    let grpc_port = free_port()?;

    let started = Instant::now();
    let child = Command::new(binary)
        .args([
            "server",
            "--set",
            "storage.driver=disk",
            "--set",
            &format!("storage.disk.directory={policies}"),
            "--set",
            "storage.disk.watchForChanges=false",
            "--set",
            &format!("server.httpListenAddr=127.0.0.1:{http_port}"),
            "--set",
            &format!("server.grpcListenAddr=127.0.0.1:{grpc_port}"),
        ])
        .env("CERBOS_NO_TELEMETRY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("{binary}: {err}"))?;
    let mut server = KillOnDrop(child);

    let mut connection = loop {
        if started.elapsed() > FIRST_DECISION_TIMEOUT {
            return Err("cerbos gave no decision in time".to_string());
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            return Err(format!("cerbos exited before its first decision: {status}"));
        }
        match TcpStream::connect(("127.0.0.1", http_port)) {
            Ok(stream) => {
                let mut connection = Connection::new(stream)?;
                match connection.post(&bodies.one) {
                    Ok((200, body)) if contains(&body, b"EFFECT_ALLOW") => break connection,
                    Ok((200, body)) => {
                        return Err(format!(
                            "unexpected answer: {}",
                            String::from_utf8_lossy(&body)
                        ))
                    }
                    // Not ready yet: the HTTP listener may open before the store is loaded.
                    _ => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let cold = started.elapsed();

    let mut report = json!({ "cold_ms": millis(cold) });
    settle(&mut report)?;
    for (shape, body) in [("1x3", &bodies.one), ("10x3", &bodies.ten)] {
        let mut latencies = Vec::with_capacity(bodies.warm);
        for _ in 0..bodies.warm {
            let sent = Instant::now();
            let (status, answer) = connection.post(body)?;
            latencies.push(sent.elapsed());
            if status != 200 || !contains(&answer, b"EFFECT_ALLOW") {
                return Err(format!(
                    "unexpected warm answer ({status}): {}",
                    String::from_utf8_lossy(&answer)
                ));
            }
        }
        add_percentiles(&mut report, shape, &mut latencies);
    }
    report["rss_mb"] = json!(peak_rss_mb(server.0.id())?);
    Ok(report)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One keep-alive HTTP/1.1 connection to Cerbos.
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn new(stream: TcpStream) -> Result<Connection, String> {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let reader = stream.try_clone().map_err(|err| err.to_string())?;
        Ok(Connection {
            writer: stream,
            reader: BufReader::new(reader),
        })
    }

    fn post(&mut self, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let head = format!(
            "POST /api/check/resources HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.writer
            .write_all(head.as_bytes())
            .and_then(|()| self.writer.write_all(body))
            .map_err(|err| err.to_string())?;
        self.read_response().map_err(|err| err.to_string())
    }

    fn read_response(&mut self) -> std::io::Result<(u16, Vec<u8>)> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed"));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    length = value.parse().ok();
                } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("chunk size"))?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length.ok_or_else(|| bad("no content-length"))?, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok((status, body))
    }
}

fn add_percentiles(report: &mut Value, shape: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1e6
    };
    report[format!("warm_{shape}_p50_us")] = json!(at(0.5));
    report[format!("warm_{shape}_p99_us")] = json!(at(0.99));
}

fn peak_rss_mb(pid: u32) -> Result<f64, String> {
    status_mb(pid, "VmHWM:")
}

/// A memory line of `/proc/PID/status` (e.g. `VmHWM:`), in MiB.
fn status_mb(pid: u32, field: &str) -> Result<f64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|err| format!("/proc/{pid}/status: {err}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// CPU time the process's live threads have used so far
/// (`/proc/PID/task/*/schedstat`, in ns).
fn cpu_time(pid: u32) -> Option<Duration> {
    sum_over_threads(pid, "schedstat", |stat| stat.split_whitespace().next())
        .map(Duration::from_nanos)
}

/// Minor page faults of the whole process so far (`/proc/PID/stat`, field
/// 10): a warm invocation that faults pays a kernel entry per page.
fn minor_faults(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Moves of the process's live threads between CPUs so far
/// (`/proc/PID/task/*/sched`): a thread that moves finds its cache lines on
/// the other CPU.
fn migrations(pid: u32) -> Option<u64> {
    sum_over_threads(pid, "sched", |sched| {
        sched
            .lines()
            .find_map(|line| line.strip_prefix("se.nr_migrations"))
            .map(|rest| rest.trim_start_matches([' ', ':']).trim())
    })
}

/// Sums one number over the process's live threads: `field` finds it in
/// each thread's `/proc/PID/task/TID/FILE`.
fn sum_over_threads(pid: u32, file: &str, field: impl Fn(&str) -> Option<&str>) -> Option<u64> {
    let mut sum = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join(file)).ok()?;
        sum += field(&text)?.parse::<u64>().ok()?;
    }
    Some(sum)
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|err| format!("no free port: {err}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
