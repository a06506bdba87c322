//! Why the function could not start, and why an invocation was refused.

use lambda_runtime::Diagnostic;

use crate::api::KeySetError;
use crate::config::ConfigError;
use crate::loader::LoadError;

/// A cold start that must not serve: the config, key sets or policies are
/// unusable, or the process is not running where Lambda would run it.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A variable Lambda always sets is missing or malformed.
    #[error("environment variable {name} {problem}")]
    Environment {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// `config.yaml` could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A JWT key set of `auxData.jwt` is unusable.
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// The policy set could not be read or does not compile.
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl InitError {
    /// The `errorType` reported to Lambda, in its `Category.Reason` form.
    pub fn error_type(&self) -> &'static str {
        match self {
            InitError::Environment { .. } => "Runtime.InvalidEnvironment",
            InitError::Runtime(_) => "Runtime.StartFailed",
            InitError::Config(_) => "Verdict.ConfigInvalid",
            InitError::KeySet(_) => "Verdict.KeySetInvalid",
            InitError::Load(_) => "Verdict.PoliciesInvalid",
        }
    }

    /// Every individual problem, one line each, so logs name each file:line.
    pub fn lines(&self) -> Vec<String> {
        match self {
            InitError::Load(err) => err.lines(),
            other => vec![other.to_string()],
        }
    }
}

/// An invocation the function cannot answer with an HTTP response. The
/// runtime reports it to Lambda as an invocation error, which the gateway
/// turns into a 5xx: it is never an allow.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is not JSON or has fields of the wrong type.
    #[error("the event is not a gateway event: {0}")]
    Event(#[source] serde_json::Error),
    /// The event is JSON but not from API Gateway, a Function URL or an ALB.
    #[error(
        "the event is not from API Gateway (REST or HTTP API), a Lambda Function URL or an ALB"
    )]
    UnsupportedEvent,
    /// The gateway response could not be serialised.
    #[error("cannot render the gateway response: {0}")]
    Render(#[source] serde_json::Error),
}

impl HandlerError {
    /// The `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Event(_) | HandlerError::UnsupportedEvent => "Verdict.UnsupportedEvent",
            HandlerError::Render(_) => "Verdict.InternalError",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(err: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.to_string(),
        }
    }
}

/// Why a conversation with the Lambda Runtime API failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    /// `AWS_LAMBDA_RUNTIME_API` names no reachable `host:port`.
    #[error("cannot connect to the Runtime API at {address:?}: {source}")]
    Connect {
        /// The variable's value.
        address: String,
        /// Why resolving or connecting failed.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed or closed mid-exchange.
    #[error("lost the connection to the Runtime API: {0}")]
    Io(#[from] std::io::Error),
    /// The peer's answer is not HTTP/1.1 this client can read.
    #[error("the Runtime API sent a malformed response: {0}")]
    Malformed(String),
    /// An event arrived without `Lambda-Runtime-Aws-Request-Id`.
    #[error("the Runtime API sent an event without a Lambda-Runtime-Aws-Request-Id header")]
    MissingRequestId,
    /// The Runtime API refused a request.
    #[error("the Runtime API answered {status} to {path}")]
    Status {
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// The error document could not be serialised.
    #[error("cannot encode the error document: {0}")]
    Encode(String),
}
