//! The request handler: routes a gateway event to the Cerbos API.
//!
//! Built once at cold start and borrowed by every invocation. Each
//! invocation first gives the policy set its chance to refresh (inline: a
//! frozen Lambda has no background timers), then answers. Every failure is
//! an error response in Cerbos's shape; nothing here ever answers ALLOW
//! except the engine.

use std::borrow::Cow;

use serde::Serialize;

use super::audit::Audit;
use super::cors::Cors;
use super::embed::EscapedBody;
use super::err::{HandlerError, InitError};
use super::event::{Headers, HttpEvent, LambdaResponse};
use crate::api::{render_error, Api, ApiError};
use crate::config::Config;
use crate::loader::{LoadReport, PolicySet, Refresh};

/// The `GET /_cerbos/health` answer.
const HEALTH_BODY: &[u8] = br#"{"status":"SERVING"}"#;

/// The routes of DESIGN §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    CheckResources,
    Check,
    ServerInfo,
    Health,
}

impl Route {
    const ALL: [Route; 4] = [
        Route::CheckResources,
        Route::Check,
        Route::ServerInfo,
        Route::Health,
    ];

    fn path(self) -> &'static str {
        match self {
            Route::CheckResources => "/api/check/resources",
            Route::Check => "/api/check",
            Route::ServerInfo => "/api/server_info",
            Route::Health => "/_cerbos/health",
        }
    }

    fn method(self) -> &'static str {
        match self {
            Route::CheckResources | Route::Check => "POST",
            Route::ServerInfo | Route::Health => "GET",
        }
    }

    fn find(path: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.path() == path)
    }
}

/// Build metadata, as Cerbos's `ServerInfoResponse`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// The crate version.
    pub version: &'static str,
    /// The git commit built, or `unknown`.
    pub commit: &'static str,
    /// When the binary was built, or `unknown`.
    pub build_date: &'static str,
}

impl ServerInfo {
    /// The values compiled into this binary (see `build.rs`).
    pub const fn current() -> ServerInfo {
        ServerInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("VERDICT_INFO_COMMIT"),
            build_date: env!("VERDICT_INFO_BUILD_DATE"),
        }
    }
}

/// A refused request, with the `Allow` header a 405 carries.
struct Refusal {
    error: ApiError,
    allow: Option<&'static str>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal { error, allow: None }
    }
}

/// The cold-start state every invocation borrows.
pub struct Handler {
    api: Api,
    policies: PolicySet,
    cors: Cors,
    audit: Option<Audit>,
    server_info: EscapedBody,
}

impl Handler {
    /// Loads everything a warm function needs: JWT key sets and the whole
    /// policy set. Any error fails the cold start; a partial set is never
    /// served.
    pub async fn open(config: &Config) -> Result<(Handler, LoadReport), InitError> {
        let api = Api::new(config)?;
        let (policies, report) = PolicySet::open(config).await?;
        Ok((Handler::new(config, api, policies), report))
    }

    /// Assembles a handler from parts already loaded.
    pub fn new(config: &Config, api: Api, policies: PolicySet) -> Handler {
        let server_info = EscapedBody::render(&ServerInfo::current(), 128)
            .unwrap_or_else(|_| EscapedBody::from_json(br#"{"version":"unknown"}"#));
        Handler {
            api,
            policies,
            cors: Cors::from_config(&config.cors()),
            audit: Audit::from_config(&config.audit),
            server_info,
        }
    }

    /// The live policy set.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Answers one event: refresh if due, then route.
    pub async fn invoke(&self, event: &HttpEvent) -> Result<LambdaResponse, HandlerError> {
        self.refresh().await;
        self.respond(event)
    }

    /// Event JSON in, response JSON out, after a refresh if one is due.
    pub async fn invoke_json(&self, event: &[u8]) -> Result<Vec<u8>, HandlerError> {
        self.refresh().await;
        self.respond_json(event)
    }

    /// Event JSON in, response JSON out with the current policy set, without
    /// refreshing: `bootstrap`'s Runtime API loop calls this directly when
    /// no refresh is due, so a warm invocation never enters the async
    /// runtime (whose code and data would be a few more cache lines to fetch
    /// on a CPU that was idle before the event).
    pub fn respond_json(&self, event: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let event = HttpEvent::from_json(event).map_err(HandlerError::Event)?;
        self.respond(&event)?
            .to_json()
            .map_err(HandlerError::Render)
    }

    /// Checks the store for new policies if the poll interval has elapsed,
    /// and logs what came of it.
    pub async fn refresh(&self) {
        match self.policies.refresh_if_due().await {
            Refresh::NotDue | Refresh::Unchanged => {}
            Refresh::Reloaded(report) => tracing::info!(
                policies = report.policies,
                rules = report.rules,
                expressions = report.expressions,
                loadMs = millis(report.load),
                compileMs = millis(report.compile),
                revision = %report.revision,
                "policies reloaded"
            ),
            Refresh::Failed(err) => {
                for line in err.lines() {
                    tracing::error!(error = %line, "policy reload failed; still serving the last good set");
                }
            }
        }
    }

    /// Answers one event with the current policy set, without refreshing.
    pub fn respond(&self, event: &HttpEvent) -> Result<LambdaResponse, HandlerError> {
        let origin = event.origin().ok_or(HandlerError::UnsupportedEvent)?;
        if let Some(headers) = self.cors.preflight(event) {
            return Ok(LambdaResponse::new(
                origin,
                204,
                headers,
                EscapedBody::default(),
            ));
        }
        let (status, body, allow) = match self.route(event) {
            Ok(body) => (200, body, None),
            Err(Refusal { error, allow }) => {
                let status = error.http_status();
                if status >= 500 {
                    tracing::error!(status, error = %error.message, "request failed");
                } else {
                    tracing::debug!(status, error = %error.message, "request refused");
                }
                (status, EscapedBody::from_json(&error.body()), allow)
            }
        };
        // Room for `allow` or the two CORS headers without growing.
        let mut headers: Headers = Vec::with_capacity(3);
        headers.push(("content-type", Cow::Borrowed("application/json")));
        if let Some(allow) = allow {
            headers.push(("allow", Cow::Borrowed(allow)));
        }
        self.cors.decorate(event, &mut headers);
        Ok(LambdaResponse::new(origin, status, headers, body))
    }

    fn route(&self, event: &HttpEvent) -> Result<EscapedBody, Refusal> {
        let route = Route::find(event.path())
            .or_else(|| event.path_without_stage().and_then(Route::find))
            .ok_or_else(|| ApiError::not_found("Not Found"))?;
        if !event.method().eq_ignore_ascii_case(route.method()) {
            return Err(Refusal {
                error: ApiError::method_not_allowed("Method Not Allowed"),
                allow: Some(route.method()),
            });
        }
        match route {
            Route::Health => Ok(EscapedBody::from_json(HEALTH_BODY)),
            Route::ServerInfo => Ok(self.server_info.clone()),
            Route::Check | Route::CheckResources => Ok(self.check(route, event)?),
        }
    }

    fn check(&self, route: Route, event: &HttpEvent) -> Result<EscapedBody, ApiError> {
        let body = event.body()?;
        let index = self.policies.current();
        let now = chrono::Utc::now().fixed_offset();
        let (checked, rendered) = if route == Route::Check {
            let checked = self.api.check(&index, &body, now)?;
            let rendered =
                EscapedBody::render(&checked.check_response()?, checked.response_len_hint());
            (checked, rendered)
        } else {
            let checked = self.api.check_resources(&index, &body, now)?;
            let rendered = EscapedBody::render(
                &checked.check_resources_response(),
                checked.response_len_hint(),
            );
            (checked, rendered)
        };
        let rendered = rendered.map_err(render_error)?;
        if let Some(audit) = &self.audit {
            audit.log(&checked, route.path(), event);
        }
        Ok(rendered)
    }
}

/// Milliseconds with a fraction, for log fields.
pub(crate) fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}
