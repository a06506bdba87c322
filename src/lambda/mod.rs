//! The Lambda front end: gateway events in, Cerbos API answers out.
//!
//! There is no HTTP server: each event from API Gateway (REST or HTTP API),
//! a Function URL or an ALB is one request. [`run`] is what `bootstrap`
//! does with no subcommand: set up JSON logs, load the config and the whole
//! policy set once, log one cold-start line, then serve invocations from
//! the Runtime API with a [`Handler`] that borrows that state. A cold start
//! that fails is reported to the Runtime API's init error endpoint and the
//! process exits: a partial policy set is never served.
//!
//! AWS types stop here; `api`, `engine` and `compile` never see them.

pub mod audit;
pub mod cors;
pub mod err;
pub mod event;
pub mod handler;
pub mod logging;
pub mod runtime_api;

use std::process::ExitCode;
use std::time::Instant;

use lambda_runtime::{service_fn, LambdaEvent};

pub use err::{HandlerError, InitError, ReportError};
pub use event::{HttpEvent, LambdaResponse, Origin, MAX_BODY_BYTES};
pub use handler::{Handler, ServerInfo};

use crate::config::Config;
use handler::millis;

/// Variables Lambda sets that `lambda_runtime` reads with `expect`: checked
/// first so that a missing one is an init error, not a panic.
const REQUIRED_ENV: [&str; 3] = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Longest init error message sent to Lambda; the log has every line.
const MAX_REPORTED_MESSAGE: usize = 32 * 1024;

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
    runtime.block_on(serve())
}

async fn serve() -> ExitCode {
    let Some(address) = env("AWS_LAMBDA_RUNTIME_API") else {
        tracing::error!(
            "AWS_LAMBDA_RUNTIME_API is not set: this is not a Lambda environment \
             (use `bootstrap check` or `bootstrap compile` offline)"
        );
        return ExitCode::from(2);
    };
    let handler = match cold_start().await {
        Ok(handler) => handler,
        Err(err) => return fail_init(&address, &err).await,
    };
    let handler = &handler;
    let service = service_fn(move |event: LambdaEvent<HttpEvent>| async move {
        handler.invoke(&event.payload).await
    });
    match lambda_runtime::run(service).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "the Runtime API loop stopped");
            ExitCode::FAILURE
        }
    }
}

async fn cold_start() -> Result<Handler, InitError> {
    let started = Instant::now();
    check_environment()?;
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
    Ok(handler)
}

fn check_environment() -> Result<(), InitError> {
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

async fn fail_init(address: &str, err: &InitError) -> ExitCode {
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
    if let Err(report) = runtime_api::report_init_error(address, err.error_type(), &message).await {
        tracing::error!(error = %report, "cannot report the init error to the Runtime API");
    }
    ExitCode::FAILURE
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
