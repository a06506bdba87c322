//! A Lambda function that does no work, for `scripts/bench_vs_cerbos.py`:
//! under the Runtime API emulator, the time it holds an event is the floor
//! that every warm invocation pays before any policy is looked at.
//!
//! It answers every event with the same fixed gateway response. How it talks
//! to the Runtime API is chosen by `FLOOR_LOOP`:
//! - `lambda_runtime` (default): `lambda_runtime::run` with a handler that
//!   deserializes nothing and returns the fixed answer, on the same
//!   single-threaded Tokio runtime `bootstrap` uses;
//! - `raw`: one blocking keep-alive TCP connection and hand-written
//!   HTTP/1.1 requests, with no async runtime: the protocol's own cost.
//!
//! `FLOOR_WORK_US=N` makes each invocation spin for N µs before answering,
//! to see how the held time grows with the work a function does.
//!
//! ```text
//! pdp_probe verdict target/release/examples/runtime_floor CONFIG BODY_1 BODY_10 WARM FLOOR_LOOP=raw
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, LambdaEvent};
use serde::de::IgnoredAny;
use serde::Serialize;

/// A decision, so the probe accepts the answer.
const DECISION: &str = r#"{"requestId":"floor","results":[{"resource":{"id":"doc-0","kind":"floor"},"actions":{"view":"EFFECT_ALLOW"}}]}"#;

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

fn main() -> ExitCode {
    let Ok(address) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!("runtime_floor: AWS_LAMBDA_RUNTIME_API is not set");
        return ExitCode::FAILURE;
    };
    let work = Duration::from_micros(
        std::env::var("FLOOR_WORK_US")
            .ok()
            .and_then(|micros| micros.parse().ok())
            .unwrap_or(0),
    );
    let result = match std::env::var("FLOOR_LOOP").as_deref() {
        Ok("raw") => raw_loop(&address, work).map_err(|err| err.to_string()),
        _ => runtime_loop(work),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("runtime_floor: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The gateway response carrying [`DECISION`]: returned by the handler for
/// `lambda_runtime` to serialize, or serialized once by the raw loop.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status_code: u16,
    headers: ContentType,
    body: &'static str,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
struct ContentType {
    #[serde(rename = "content-type")]
    content_type: &'static str,
}

const ANSWER: Answer = Answer {
    status_code: 200,
    headers: ContentType {
        content_type: "application/json",
    },
    body: DECISION,
    is_base64_encoded: false,
};

/// Stands in for a handler's work: spinning, not sleeping, as a handler
/// computing a decision keeps its CPU busy.
fn work_for(work: Duration) {
    let started = Instant::now();
    while started.elapsed() < work {
        std::hint::spin_loop();
    }
}

fn runtime_loop(work: Duration) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    runtime
        .block_on(lambda_runtime::run(service_fn(
            move |_: LambdaEvent<IgnoredAny>| async move {
                work_for(work);
                Ok::<_, lambda_runtime::Error>(ANSWER)
            },
        )))
        .map_err(|err| err.to_string())
}

/// Ends when the emulator closes the connection.
fn raw_loop(address: &str, work: Duration) -> std::io::Result<()> {
    let mut writer = TcpStream::connect(address)?;
    writer.set_nodelay(true)?;
    let mut reader = BufReader::new(writer.try_clone()?);
    let next = format!("GET {NEXT_PATH} HTTP/1.1\r\nhost: {address}\r\n\r\n");
    let answer = serde_json::to_vec(&ANSWER).map_err(std::io::Error::other)?;
    loop {
        writer.write_all(next.as_bytes())?;
        let Some(request_id) = read_response(&mut reader)? else {
            return Ok(());
        };
        work_for(work);
        let mut post = format!(
            "POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\n\
             host: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        post.extend_from_slice(&answer);
        writer.write_all(&post)?;
        if read_response(&mut reader)?.is_none() {
            return Ok(());
        }
    }
}

/// Reads one response and returns its request id header (empty when it has
/// none), or `None` once the connection is closed.
fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut length = 0;
    let mut request_id = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
            request_id = value.to_string();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(request_id))
}
