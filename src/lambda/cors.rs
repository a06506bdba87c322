//! CORS, as Cerbos answers it with `server.cors`, so that browser clients
//! such as `@cerbos/http` can call a Function URL or an API directly.
//!
//! Cerbos wraps its HTTP server in `rs/cors`; the answers here follow it:
//! preflights are answered before routing with 204, a refused preflight gets
//! no `Access-Control-Allow-*` headers (the browser then blocks the call),
//! and simple requests from an allowed origin get `Access-Control-Allow-Origin`.

use std::borrow::Cow;

use super::event::{Headers, HttpEvent};
use crate::config::CorsConfig;

/// Methods a preflight may ask for: the API only has GET and POST routes.
const ALLOWED_METHODS: [&str; 2] = ["GET", "POST"];

/// The compiled `server.cors` settings.
#[derive(Debug, Clone)]
pub struct Cors {
    enabled: bool,
    any_origin: bool,
    origins: Vec<String>,
    any_header: bool,
    headers: Vec<String>,
    max_age: Option<u64>,
}

impl Cors {
    /// Reads `server.cors`; an empty origin list or `*` allows any origin.
    pub fn from_config(config: &CorsConfig) -> Cors {
        let any_origin =
            config.allowed_origins.is_empty() || config.allowed_origins.iter().any(|o| o == "*");
        Cors {
            enabled: !config.disabled,
            any_origin,
            origins: config
                .allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            any_header: config.allowed_headers.iter().any(|h| h == "*"),
            headers: config
                .allowed_headers
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            max_age: config.max_age.map(|d| d.as_secs()),
        }
    }

    /// Whether CORS headers are produced at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn allows_origin(&self, origin: &str) -> bool {
        if self.any_origin {
            return true;
        }
        let origin = origin.to_ascii_lowercase();
        self.origins
            .iter()
            .any(|pattern| wildcard_match(pattern, &origin))
    }

    fn allow_origin_value(&self, origin: &str) -> Cow<'static, str> {
        // Without credentials, `*` is what rs/cors answers for "any origin".
        if self.any_origin {
            Cow::Borrowed("*")
        } else {
            Cow::Owned(origin.to_string())
        }
    }

    fn allows_headers(&self, requested: &str) -> bool {
        self.any_header
            || requested
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .all(|h| {
                    h.eq_ignore_ascii_case("origin")
                        || self.headers.iter().any(|a| a.eq_ignore_ascii_case(h))
                })
    }

    /// The headers of a preflight answer, or `None` when the request is not
    /// a preflight (or CORS is disabled) and must be routed normally.
    pub fn preflight(&self, event: &HttpEvent) -> Option<Headers> {
        if !self.enabled || !event.method().eq_ignore_ascii_case("OPTIONS") {
            return None;
        }
        let origin = event.header("origin")?;
        let method = event.header("access-control-request-method")?;
        let mut headers: Headers = vec![(
            "vary",
            Cow::Borrowed("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        )];
        let requested_headers = event.header("access-control-request-headers").unwrap_or("");
        let allowed = self.allows_origin(origin)
            && ALLOWED_METHODS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
            && self.allows_headers(requested_headers);
        if !allowed {
            return Some(headers);
        }
        headers.push((
            "access-control-allow-origin",
            self.allow_origin_value(origin),
        ));
        headers.push((
            "access-control-allow-methods",
            Cow::Owned(method.to_ascii_uppercase()),
        ));
        if !requested_headers.trim().is_empty() {
            headers.push((
                "access-control-allow-headers",
                Cow::Owned(requested_headers.to_string()),
            ));
        }
        if let Some(seconds) = self.max_age {
            headers.push(("access-control-max-age", Cow::Owned(seconds.to_string())));
        }
        Some(headers)
    }

    /// Adds the headers of a non-preflight answer.
    pub fn decorate(&self, event: &HttpEvent, headers: &mut Headers) {
        if !self.enabled {
            return;
        }
        headers.push(("vary", Cow::Borrowed("Origin")));
        if let Some(origin) = event.header("origin").filter(|o| self.allows_origin(o)) {
            headers.push((
                "access-control-allow-origin",
                self.allow_origin_value(origin),
            ));
        }
    }
}

/// Matches an origin against a pattern with at most one `*`, as rs/cors does
/// (`https://*.example.com`).
fn wildcard_match(pattern: &str, origin: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == origin,
        Some((prefix, suffix)) => {
            origin.len() >= prefix.len() + suffix.len()
                && origin.starts_with(prefix)
                && origin.ends_with(suffix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            "https://*.example.com",
            "https://a.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.org"
        ));
        assert!(wildcard_match(
            "https://app.example.com",
            "https://app.example.com"
        ));
    }
}
