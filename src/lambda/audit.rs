//! Decision logs: one JSON line per check when `audit.enabled` and
//! `audit.decisionLogsEnabled` are set.
//!
//! A line names the call, the client's request id, the principal's id and
//! roles, and each resource with the effect of each action and the policy
//! that decided it. Attributes are left out (they are often personal data).
//! Request headers are logged as Cerbos logs gRPC metadata, filtered by
//! `includeMetadataKeys`/`excludeMetadataKeys`; credentials never are: the
//! `Authorization`, `Proxy-Authorization` and `Cookie` headers are dropped
//! whatever the config says, and any value carrying a JWT is redacted. The
//! request body, and so `auxData.jwt.token`, is never logged.

use std::collections::BTreeMap;

use serde::Serialize;

use super::event::HttpEvent;
use crate::api::Checked;
use crate::config::AuditConfig;
use crate::engine::Effect;

/// Headers that carry credentials and are never logged.
const NEVER_LOGGED: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// What replaces a header value that carries a JWT.
const REDACTED: &str = "[REDACTED]";

/// The decision logger.
#[derive(Debug, Clone)]
pub struct Audit {
    include: Vec<String>,
    exclude: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Decision<'a> {
    call_id: &'a str,
    request_id: &'a str,
    method: &'a str,
    principal: PrincipalEntry<'a>,
    resources: Vec<ResourceEntry<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, MetaValues>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PrincipalEntry<'a> {
    id: &'a str,
    roles: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    policy_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceEntry<'a> {
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    policy_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    actions: BTreeMap<&'a str, ActionEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionEntry<'a> {
    effect: &'static str,
    policy: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

#[derive(Serialize)]
struct MetaValues {
    values: Vec<String>,
}

impl Audit {
    /// The logger, or `None` when decision logs are off.
    pub fn from_config(config: &AuditConfig) -> Option<Audit> {
        let lower = |keys: &[String]| keys.iter().map(|k| k.to_ascii_lowercase()).collect();
        (config.enabled && config.decision_logs_enabled).then(|| Audit {
            include: lower(&config.include_metadata_keys),
            exclude: lower(&config.exclude_metadata_keys),
        })
    }

    /// Logs one decision line for a check answered on `method` (the route).
    pub fn log(&self, checked: &Checked, method: &str, event: &HttpEvent) {
        let resources = checked
            .resources
            .iter()
            .zip(&checked.results)
            .map(|(item, result)| ResourceEntry {
                kind: &item.resource.kind,
                id: &item.resource.id,
                policy_version: &item.resource.policy_version,
                scope: &item.resource.scope,
                actions: result
                    .actions
                    .iter()
                    .map(|a| {
                        let effect = match a.effect {
                            Effect::Allow => "EFFECT_ALLOW",
                            Effect::Deny => "EFFECT_DENY",
                        };
                        (
                            a.action.as_str(),
                            ActionEntry {
                                effect,
                                policy: &a.policy,
                                scope: &a.scope,
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        let decision = Decision {
            call_id: &checked.call_id,
            request_id: &checked.request_id,
            method,
            principal: PrincipalEntry {
                id: &checked.principal.id,
                roles: &checked.principal.roles,
                policy_version: &checked.principal.policy_version,
                scope: &checked.principal.scope,
            },
            resources,
            metadata: self.metadata(event),
        };
        match serde_json::to_string(&decision) {
            // `json_` tells the log formatter to embed the value as JSON.
            Ok(text) => tracing::info!(target: "verdict::audit", json_decision = %text, "decision"),
            Err(err) => {
                tracing::error!(target: "verdict::audit", error = %err, "cannot render decision log")
            }
        }
    }

    fn metadata(&self, event: &HttpEvent) -> BTreeMap<String, MetaValues> {
        // Cerbos logs no metadata unless one of the lists is set.
        if self.include.is_empty() && self.exclude.is_empty() {
            return BTreeMap::new();
        }
        event
            .header_values()
            .into_iter()
            .filter(|(name, _)| {
                !NEVER_LOGGED.contains(&name.as_str())
                    && (self.include.is_empty() || self.include.contains(name))
                    && !self.exclude.contains(name)
            })
            .map(|(name, values)| {
                let values = values
                    .into_iter()
                    .map(|v| {
                        if contains_jwt(&v) {
                            REDACTED.to_string()
                        } else {
                            v
                        }
                    })
                    .collect();
                (name, MetaValues { values })
            })
            .collect()
    }
}

/// Whether a value holds something shaped like a JWT (`eyJ…​.…​.…`).
fn contains_jwt(value: &str) -> bool {
    let segment = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    value.match_indices("eyJ").any(|(i, _)| {
        let mut parts = value[i..].split('.');
        matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(header), Some(payload), Some(_)) if segment(header) && segment(payload)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_values_are_detected() {
        assert!(contains_jwt(
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"
        ));
        assert!(contains_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."));
        assert!(!contains_jwt("application/json"));
        assert!(!contains_jwt("eyJ-not-a-token"));
    }
}
