//! A Lambda function that does no work, for `scripts/bench_vs_cerbos.py`:
//! under the Runtime API emulator, the time it holds an event is the floor
//! that every warm invocation pays before any policy is looked at.
//!
//! It answers every event with the same fixed gateway response. How it talks
//! to the Runtime API is chosen by `FLOOR_LOOP`:
//! - `lambda_runtime` (default): `lambda_runtime::run` with a handler that
//!   deserializes nothing and returns the fixed answer, on the same
//!   single-threaded Tokio runtime `bootstrap` uses;
//! - `verdict`: `bootstrap`'s own loop, [`RuntimeApi`]: one blocking
//!   keep-alive connection, no async runtime.
//!
//! `FLOOR_WORK_US=N` makes each invocation spin for N µs before answering,
//! to see how the held time grows with the work a function does.
//! `FLOOR_TOUCH_KB=K` makes it also write one byte in each 64-byte line of
//! a K KiB buffer, to stand in for a handler's working set.
//!
//! ```text
//! pdp_probe verdict target/release/examples/runtime_floor CONFIG BODY_1 BODY_10 WARM FLOOR_LOOP=verdict
//! ```

use std::cell::RefCell;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, LambdaEvent};
use serde::de::IgnoredAny;
use serde::Serialize;
use verdict::lambda::runtime_api::RuntimeApi;
use verdict::lambda::RuntimeApiError;

/// A decision, so the probe accepts the answer.
const DECISION: &str = r#"{"requestId":"floor","results":[{"resource":{"id":"doc-0","kind":"floor"},"actions":{"view":"EFFECT_ALLOW"}}]}"#;

fn main() -> ExitCode {
    let Ok(address) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!("runtime_floor: AWS_LAMBDA_RUNTIME_API is not set");
        return ExitCode::FAILURE;
    };
    let work = Work {
        spin: Duration::from_micros(env_number("FLOOR_WORK_US")),
        touch_bytes: usize::try_from(env_number("FLOOR_TOUCH_KB"))
            .unwrap_or(0)
            .saturating_mul(1024),
    };
    let result = match std::env::var("FLOOR_LOOP").as_deref() {
        Ok("verdict") => verdict_loop(&address, work).map_err(|err| err.to_string()),
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
/// `lambda_runtime` to serialize, or serialized once by Verdict's loop.
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

fn env_number(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Stands in for a handler's work: spinning, not sleeping, as a handler
/// computing a decision keeps its CPU busy, after touching its memory.
#[derive(Clone, Copy)]
struct Work {
    spin: Duration,
    touch_bytes: usize,
}

/// Cache line size on the machines the benchmarks run on.
const LINE_BYTES: usize = 64;

thread_local! {
    /// Kept across invocations, as a handler's data is: allocating it per
    /// event would add page faults a warm handler does not have.
    static TOUCHED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Work {
    fn run(self) {
        if self.touch_bytes > 0 {
            TOUCHED.with_borrow_mut(|buffer| {
                buffer.resize(self.touch_bytes, 0);
                for line in buffer.chunks_mut(LINE_BYTES) {
                    line[0] = line[0].wrapping_add(1);
                }
                std::hint::black_box(&buffer);
            });
        }
        let started = Instant::now();
        while started.elapsed() < self.spin {
            std::hint::spin_loop();
        }
    }
}

fn runtime_loop(work: Work) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| err.to_string())?;
    runtime
        .block_on(lambda_runtime::run(service_fn(
            move |_: LambdaEvent<IgnoredAny>| async move {
                work.run();
                Ok::<_, lambda_runtime::Error>(ANSWER)
            },
        )))
        .map_err(|err| err.to_string())
}

/// Ends when the emulator closes the connection.
fn verdict_loop(address: &str, work: Work) -> Result<(), RuntimeApiError> {
    let mut api = RuntimeApi::new(address);
    let answer =
        serde_json::to_vec(&ANSWER).map_err(|err| RuntimeApiError::Encode(err.to_string()))?;
    loop {
        let invocation = api.next_invocation()?;
        work.run();
        api.respond(&invocation.request_id, &answer)?;
    }
}
