//! The one Runtime API call `lambda_runtime` does not expose: reporting a
//! failed cold start to `/runtime/init/error`.
//!
//! `lambda_runtime` 1.5 only posts there for SnapStart hook failures, and
//! privately. The request goes through `lambda_runtime_api_client`, the
//! hyper client the runtime itself uses, so no other HTTP stack is needed.

use std::time::Duration;

use lambda_http::http::Uri;
use lambda_runtime_api_client::body::Body;
use serde::Serialize;

use super::err::ReportError;

/// Path of the init error endpoint.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// How long to wait for the Runtime API before giving up on the report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Lambda's error document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDocument<'a> {
    error_message: &'a str,
    error_type: &'a str,
}

/// Posts `{errorMessage, errorType}` to `http://{address}/2018-06-01/runtime/init/error`
/// with the `Lambda-Runtime-Function-Error-Type` header.
pub async fn report_init_error(
    address: &str,
    error_type: &str,
    message: &str,
) -> Result<(), ReportError> {
    let base: Uri =
        format!("http://{address}")
            .parse()
            .map_err(
                |e: lambda_http::http::uri::InvalidUri| ReportError::Address {
                    address: address.to_string(),
                    message: e.to_string(),
                },
            )?;
    if base.authority().is_none() {
        return Err(ReportError::Address {
            address: address.to_string(),
            message: "no host".to_string(),
        });
    }
    let body = serde_json::to_vec(&ErrorDocument {
        error_message: message,
        error_type,
    })
    .map_err(|e| ReportError::Request(e.to_string()))?;
    let request = lambda_runtime_api_client::build_request()
        .method("POST")
        .uri(INIT_ERROR_PATH)
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .header("Content-Type", "application/json")
        .body(Body::from(body))
        .map_err(|e| ReportError::Request(e.to_string()))?;
    let client = lambda_runtime_api_client::PooledClient::builder()
        .with_endpoint(base)
        .build();
    let response = tokio::time::timeout(REPORT_TIMEOUT, client.call(request))
        .await
        .map_err(|_| ReportError::Transport(format!("no answer within {REPORT_TIMEOUT:?}")))?
        .map_err(|e| ReportError::Transport(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(ReportError::Status(status.as_u16()))
    }
}
