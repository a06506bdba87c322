//! The Lambda front end: gateway events in, Cerbos API answers out.
//!
//! There is no HTTP server: each event from API Gateway (REST or HTTP API),
//! a Function URL or an ALB is one request. [`run`] is what `bootstrap`
//! does with no subcommand: set up JSON logs, load the config and the whole
//! policy set once, log one cold-start line, then serve invocations from
//! the Runtime API with a [`Handler`] that borrows that state: through
//! [`runtime_api::RuntimeApi`], or through the `lambda_runtime` crate when
//! [`RUNTIME_LOOP_ENV`] says so. A cold start
//! that fails is reported to the Runtime API's init error endpoint and the
//! process exits: a partial policy set is never served.
//!
//! AWS types stop here; `api`, `engine` and `compile` never see them.

pub mod audit;
pub mod cors;
pub mod embed;
pub mod err;
pub mod event;
pub mod handler;
pub mod logging;
pub mod runtime_api;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, LambdaEvent};
use tokio::runtime::Runtime;

pub use embed::EscapedBody;
pub use err::{HandlerError, InitError, RuntimeApiError};
pub use event::{HttpEvent, LambdaResponse, Origin, MAX_BODY_BYTES};
pub use handler::{Handler, ServerInfo};

use crate::config::Config;
use handler::millis;
use runtime_api::{Invocation, RuntimeApi};

/// The variable the AWS SDK reads the invocation's X-Ray trace from.
const TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// How long a failed cold start waits for the Runtime API to take its report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Variables Lambda sets that `lambda_runtime` reads with `expect`: checked
/// first so that a missing one is an init error, not a panic.
const REQUIRED_ENV: [&str; 3] = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Longest init error message sent to Lambda; the log has every line.
const MAX_REPORTED_MESSAGE: usize = 32 * 1024;

/// Which client talks to the Runtime API, chosen by `VERDICT_RUNTIME_LOOP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeLoop {
    /// `verdict` (the default): [`runtime_api::RuntimeApi`], one blocking
    /// keep-alive connection.
    Verdict,
    /// `lambda_runtime`: the AWS-maintained `lambda_runtime` crate's loop, for
    /// an environment where Verdict's own client misbehaves. It sets
    /// `_X_AMZN_TRACE_ID` on every invocation, which costs heap that is never
    /// returned (see `answer` in this module).
    LambdaRuntime,
}

/// The variable that picks the [`RuntimeLoop`].
pub const RUNTIME_LOOP_ENV: &str = "VERDICT_RUNTIME_LOOP";

impl RuntimeLoop {
    fn from_env() -> Result<RuntimeLoop, InitError> {
        match env(RUNTIME_LOOP_ENV).as_deref() {
            None | Some("verdict") => Ok(RuntimeLoop::Verdict),
            Some("lambda_runtime") => Ok(RuntimeLoop::LambdaRuntime),
            Some(other) => Err(InitError::Environment {
                name: RUNTIME_LOOP_ENV,
                problem: format!("must be verdict or lambda_runtime, not {other:?}"),
            }),
        }
    }
}

/// Runs the function until the Runtime API goes away. Returns non-zero when
/// the cold start fails (after reporting it) or the loop stops on an error.
pub fn run() -> ExitCode {
    logging::init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = InitError::Runtime(err);
            tracing::error!(errorType = err.error_type(), error = %err, "cold start failed");
            return ExitCode::FAILURE;
        }
    };
    let Some(address) = env("AWS_LAMBDA_RUNTIME_API") else {
        tracing::error!(
            "AWS_LAMBDA_RUNTIME_API is not set: this is not a Lambda environment \
             (use `bootstrap check` or `bootstrap compile` offline)"
        );
        return ExitCode::from(2);
    };
    let (handler, runtime_loop) = match runtime.block_on(cold_start()) {
        Ok(started) => started,
        Err(err) => return fail_init(&address, &err),
    };
    let stopped = match runtime_loop {
        RuntimeLoop::Verdict => {
            serve(&runtime, &handler, &mut RuntimeApi::new(&address)).to_string()
        }
        RuntimeLoop::LambdaRuntime => match runtime.block_on(serve_with_lambda_runtime(&handler)) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(err) => err.to_string(),
        },
    };
    tracing::error!(error = %stopped, "the Runtime API loop stopped");
    ExitCode::FAILURE
}

/// Answers events until the Runtime API cannot be reached or sends
/// something that is not an event.
fn serve(runtime: &Runtime, handler: &Handler, api: &mut RuntimeApi) -> RuntimeApiError {
    loop {
        let invocation = match api.next_invocation() {
            Ok(invocation) => invocation,
            Err(err) => return err,
        };
        match answer(runtime, handler, api, &invocation) {
            Ok(()) => {}
            // Lambda has already failed that invocation (e.g. an answer over
            // its size limit); the next one may be fine.
            Err(err @ RuntimeApiError::Status { .. }) => {
                tracing::warn!(error = %err, "the Runtime API refused the answer");
            }
            Err(err) => return err,
        }
    }
}

/// Runs one invocation: every log line carries the request id, and
/// `_X_AMZN_TRACE_ID` is set for the AWS SDK when a policy refresh may call
/// it.
///
/// Only then: glibc's `setenv` keeps a copy of every distinct value it was
/// ever given, and every invocation brings a new trace id, so setting it on
/// each one (as `lambda_runtime` does) grows the heap by about 155 bytes an
/// invocation, never returned: 31 MB after 200,000 invocations.
fn answer(
    runtime: &Runtime,
    handler: &Handler,
    api: &mut RuntimeApi,
    invocation: &Invocation,
) -> Result<(), RuntimeApiError> {
    let _scope = logging::invocation_scope(&invocation.request_id, invocation.trace_id.as_deref());
    if handler.policies().refresh_due() {
        match &invocation.trace_id {
            Some(trace_id) => std::env::set_var(TRACE_ENV, trace_id),
            None => std::env::remove_var(TRACE_ENV),
        }
        runtime.block_on(handler.refresh());
    }
    match handler.respond_json(&invocation.event) {
        Ok(body) => api.respond(&invocation.request_id, &body),
        Err(err) => {
            tracing::error!(errorType = err.error_type(), error = %err, "invocation failed");
            api.fail(&invocation.request_id, err.error_type(), &err.to_string())
        }
    }
}

async fn serve_with_lambda_runtime(handler: &Handler) -> Result<(), lambda_runtime::Error> {
    let service = service_fn(move |event: LambdaEvent<HttpEvent>| async move {
        let response = handler.invoke(&event.payload).await?;
        // The envelope is written by hand around a body rendered escaped
        // (see `embed`); this loop wants a value serde can write again.
        let json = response.to_json().map_err(HandlerError::Render)?;
        serde_json::from_slice::<serde_json::Value>(&json).map_err(HandlerError::Render)
    });
    lambda_runtime::run(service).await
}

async fn cold_start() -> Result<(Handler, RuntimeLoop), InitError> {
    let started = Instant::now();
    let runtime_loop = RuntimeLoop::from_env()?;
    if runtime_loop == RuntimeLoop::LambdaRuntime {
        check_lambda_runtime_environment()?;
    } else if let Some(concurrency) = env("AWS_LAMBDA_MAX_CONCURRENCY") {
        // Lambda Managed Instances: events still arrive one per `/next`.
        tracing::warn!(
            concurrency = %concurrency,
            "AWS_LAMBDA_MAX_CONCURRENCY is set, but this function answers one invocation at a time"
        );
    }
    let (config, config_path) = Config::discover(None)?;
    let ignored = config.ignored_server_keys();
    if !ignored.is_empty() {
        tracing::warn!(
            keys = %ignored.join(", "),
            "ignoring server settings that have no meaning in a Lambda function (only server.cors is used)"
        );
    }
    let (handler, report) = Handler::open(&config).await?;
    let config_source = config_path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in default".to_string());
    tracing::info!(
        policies = report.policies,
        rules = report.rules,
        expressions = report.expressions,
        loadMs = millis(report.load),
        compileMs = millis(report.compile),
        initMs = millis(started.elapsed()),
        revision = %report.revision,
        store = %handler.policies().location(),
        config = %config_source,
        version = env!("CARGO_PKG_VERSION"),
        "cold start: policies loaded"
    );
    Ok((handler, runtime_loop))
}

fn check_lambda_runtime_environment() -> Result<(), InitError> {
    for name in REQUIRED_ENV {
        if env(name).is_none() {
            return Err(InitError::Environment {
                name,
                problem: "is not set".to_string(),
            });
        }
    }
    let memory = env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
    if memory.parse::<i32>().is_err() {
        return Err(InitError::Environment {
            name: "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            problem: format!("is not a number: {memory:?}"),
        });
    }
    Ok(())
}

fn fail_init(address: &str, err: &InitError) -> ExitCode {
    let lines = err.lines();
    for line in &lines {
        tracing::error!(errorType = err.error_type(), error = %line, "cold start failed");
    }
    let mut message = lines.join("\n");
    if message.len() > MAX_REPORTED_MESSAGE {
        let mut cut = MAX_REPORTED_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("\n… (truncated; the function log has every error)");
    }
    let report = RuntimeApi::new(address)
        .with_timeout(REPORT_TIMEOUT)
        .fail_init(err.error_type(), &message);
    if let Err(report) = report {
        tracing::error!(error = %report, "cannot report the init error to the Runtime API");
    }
    ExitCode::FAILURE
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
